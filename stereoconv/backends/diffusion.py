"""The diffusion backend: StereoDiffusion for what the left view cannot see.

Frames of any size work at a resolution of at most `max_side` on the long side (aspect kept),
padded to multiples of 8 pixels (never cropped). By default (`composite = hybrid`) the left view
is the original frame, untouched, and the right view is the frame forward-warped at full
resolution wherever the left view sees the surface, with the diffusion result in the holes,
blended over `seam` pixels. `composite = none` returns both views as decoded, as in the paper.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F

from stereoconv.backends.crops import paint_boxes, same_size_groups
from stereoconv.backends.views import StereoViews
from stereoconv.backends.warp import CRACK_WIDTH, border_runs, fill_holes, warp_view
from stereoconv.config import DEFAULT_SD_MODEL, StereoConfig
from stereoconv.diffusion.components import SDComponents, load_components, pick_dtype
from stereoconv.diffusion.pipeline import StereoDiffusion, StereoOutput
from stereoconv.diffusion.settings import DiffusionSettings
from stereoconv.geometry import WarpResult, background_side_columns, nearest_valid_columns
from stereoconv.progress import Progress


@dataclass(frozen=True)
class HybridSettings:
    """The diffusion backend's own settings: where StereoDiffusion works and how its result
    joins the warped frame (each is the config field of the same name)."""

    composite: str = "hybrid"  # hybrid: the warped frame, diffusion in the holes; none: decoded
    fill_min_width: int = 12  # holes narrower than this keep the warp's fill
    fill_border: bool = True  # generate the strips at the frame's edges too
    fill_margin: int = 16  # edge-replicated margin left and right of the working image, px
    seam: float = 2.0  # blend width into the background side of each hole, px
    fill_sigma: float = 3.0  # the warp fill's smoothing (holes that are not generated)
    max_side: int = 768  # diffusion works at most at this long side

    @classmethod
    def of(cls, config: StereoConfig, **overrides) -> HybridSettings:
        names = [f.name for f in dataclasses.fields(cls)]
        return cls(**{name: getattr(config, name) for name in names} | overrides)


def load_model(config: StereoConfig, device: torch.device, default: str = DEFAULT_SD_MODEL):
    """The configured Stable Diffusion model (or the command's `default`), its VAE, on `device`
    at the configured precision, compiled if asked: the one loader of every command."""
    device = torch.device(device)
    components = load_components(
        config.model or default, device, pick_dtype(device, config.precision), vae=config.vae
    )
    if config.compile:
        compile_unet(components)
    return components


def working_size(height: int, width: int, max_side: int) -> tuple[int, int]:
    """Size (no padding) at which diffusion runs: scaled down to `max_side`, never up."""
    scale = min(1.0, max_side / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def pad_to_multiple(x: torch.Tensor, multiple: int = 8) -> torch.Tensor:
    """Replicate-pad the last two dims (right and bottom) up to multiples of `multiple`."""
    h, w = x.shape[-2:]
    ph, pw = math.ceil(h / multiple) * multiple - h, math.ceil(w / multiple) * multiple - w
    if ph == 0 and pw == 0:
        return x
    squeeze = x.dim() == 3
    x = x.unsqueeze(1) if squeeze else x
    x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    return x.squeeze(1) if squeeze else x


def hole_runs(holes: torch.Tensor) -> torch.Tensor:
    """The length of the horizontal run of holes each hole pixel belongs to (0 elsewhere)."""
    before, after = nearest_valid_columns(~holes)
    return torch.where(holes, after - before - 1, torch.zeros_like(before))


def generation_holes(
    holes: torch.Tensor, min_width: int = CRACK_WIDTH + 1, border: bool = True
) -> torch.Tensor:
    """The holes worth generating: runs at least `min_width` pixels wide. Narrower ones (cracks
    of a slanted surface, slivers at an edge, strips thinner than a latent pixel that the
    diffusion model cannot paint at its 8-pixel grain) keep the warp's own fill, as do the
    strips at the frame's edges unless `border`."""
    wide = holes & (hole_runs(holes) >= min_width)
    return wide if border else wide & ~border_runs(holes)


def seam_alpha(holes: torch.Tensor, disparity: torch.Tensor, seam: float) -> torch.Tensor:
    """Blend weight of the generated view, (B, 1, H, W): 1 in the holes, falling to 0 over
    `seam` pixels into the background side of each hole (the side a hole pixel's fill comes
    from: the smaller disparity, or the only seen side at a frame border), never into the
    foreground that borders it. disparity: of the surface seen at each pixel (forward_warp)."""
    alpha = holes.float()
    reach = int(seam)
    if reach <= 0 or not holes.any():
        return alpha.unsqueeze(1)
    w = holes.shape[-1]
    cols = torch.arange(w, device=holes.device).expand_as(holes)
    src = background_side_columns(~holes, disparity)
    step = torch.sign(src - cols)  # towards the background, 0 outside holes
    for k in range(reach):
        weight = alpha.new_tensor((reach - k) / (reach + 1)) * holes
        alpha = alpha.scatter_reduce(-1, (src + k * step).clamp(0, w - 1), weight, reduce="amax")
    return alpha.unsqueeze(1)


class HybridPlan(NamedTuple):
    """What every hybrid starts from: the sub-pixel warp, the warp backend's right view (holes
    filled from the background) and the holes worth generating."""

    warped: WarpResult
    base: torch.Tensor  # (B, 3, H, W)
    holes: torch.Tensor  # (B, H, W) bool


def warp_and_fill(
    frames: torch.Tensor, disparity: torch.Tensor, settings: HybridSettings
) -> HybridPlan:
    """The warp, its filled view and the holes at least `fill_min_width` px wide (never
    narrower than a crack; the frame-edge strips only if `fill_border`)."""
    warped = warp_view(frames, disparity)
    base = fill_holes(warped.image, warped.holes, warped.disparity, settings.fill_sigma)
    min_width = max(settings.fill_min_width, CRACK_WIDTH + 1)
    return HybridPlan(warped, base, generation_holes(warped.holes, min_width, settings.fill_border))


def hybrid_composite(plan: HybridPlan, generated: torch.Tensor, seam: float) -> torch.Tensor:
    """The hybrid right view: the warped frame wherever the left view sees the surface,
    `generated` (held to the warp's colour at the hole borders) in the holes of the plan,
    blended `seam` pixels into their background side; other holes keep the warp's fill. The
    one composite of every command (image, video, text and depth to stereo)."""
    if not plan.holes.any():
        return plan.base
    alpha = seam_alpha(plan.holes, plan.warped.disparity, seam)
    generated = align_to_border(generated, plan.base, plan.warped)
    return plan.base * (1 - alpha) + generated * alpha


def align_to_border(
    generated: torch.Tensor, base: torch.Tensor, warped: WarpResult, sigma: float = 2.0
) -> torch.Tensor:
    """The generated view's colour held to the warp's at the hole borders: the difference
    between the warp and the generated view where the left view sees the surface (the VAE's
    round-trip error, a drift of the fill) is carried into each hole from its background side
    and smoothed, then added there, so the generated texture meets the pixel-exact warp
    without a seam of colour."""
    holes = warped.holes.unsqueeze(1)
    residual = torch.where(holes, torch.zeros_like(base), base - generated)
    carried = fill_holes(residual, warped.holes, warped.disparity, sigma)
    return torch.where(holes, (generated + carried).clamp(0, 1), generated)


def latent_known(holes: torch.Tensor, factor: int) -> torch.Tensor:
    """(B, H, W) image holes, H and W multiples of `factor` -> (B, H/f, W/f): latent pixels
    none of whose image pixels is a hole."""
    return F.max_pool2d(holes.unsqueeze(1).float(), factor).squeeze(1) == 0


def compile_unet(components: SDComponents) -> None:
    """torch.compile the UNet (channels-last), with the stereo processors installed for good so
    that compiled graphs are reused from call to call. The first batch of each shape compiles
    (a minute or more on a GPU); it pays off for videos."""
    from stereoconv.diffusion.attention import install

    install(components.unet)
    components.unet.to(memory_format=torch.channels_last)
    components.unet = torch.compile(components.unet)


class DiffusionBackend:
    """frames (B, 3, H, W) float in [0, 1] and disparity (B, H, W) in pixels -> (left, right)."""

    name = "diffusion"

    def __init__(self, pipeline: StereoDiffusion, settings: HybridSettings = HybridSettings()):
        self.pipeline = pipeline
        self.settings = settings
        # fill's UNet calls take turns: the video job's chunks may run at once in threads
        # (runner.local.chunks_at_once), and the pipeline's attention processors and counters
        # are state of the one UNet
        self._unet_turn = threading.Lock()

    @classmethod
    def of(
        cls, components: SDComponents, config: StereoConfig, progress: Progress | None = None
    ) -> DiffusionBackend:
        """The backend of a config's settings on loaded components."""
        pipeline = StereoDiffusion(components, DiffusionSettings.of(config), progress)
        return cls(pipeline, HybridSettings.of(config))

    @classmethod
    def from_config(
        cls, config: StereoConfig, device: torch.device, progress: Progress | None = None
    ) -> DiffusionBackend:
        return cls.of(load_model(config, device), config, progress)

    @property
    def components(self) -> SDComponents:
        return self.pipeline.components

    def generate(
        self, frames: torch.Tensor, disparity: torch.Tensor, decode_left: bool = True
    ) -> StereoOutput:
        """Run StereoDiffusion at the working size; views and disparity come back at the frames'
        size."""
        height, width = frames.shape[-2:]
        wh, ww = working_size(height, width, self.settings.max_side)
        small = F.interpolate(frames, size=(wh, ww), mode="bilinear", antialias=True)
        d_small = F.interpolate(disparity.unsqueeze(1), size=(wh, ww), mode="bilinear")
        d_small = d_small.squeeze(1) * (ww / width)
        out = self.pipeline.image_to_stereo(
            pad_to_multiple(small.clamp(0, 1)), pad_to_multiple(d_small), decode_left=decode_left
        )

        def back(views: torch.Tensor) -> torch.Tensor:
            views = views[..., :wh, :ww]
            if (wh, ww) == (height, width):
                return views
            return F.interpolate(views, size=(height, width), mode="bicubic").clamp(0, 1)

        left = back(out.left) if out.left is not None else None
        return StereoOutput(left, back(out.right), disparity, out.holes)

    def fill(
        self,
        frames: torch.Tensor,
        warped: torch.Tensor,
        holes: torch.Tensor,
        sparse: bool = False,
    ) -> tuple[torch.Tensor, int]:
        """The generated right view at the frames' size: StereoDiffusion at the working size,
        the holes generated beside the left view, the rest held to `warped` (sample_fill);
        `sparse`: the UNet works only on boxes of the latent around the holes (crops.paint_boxes),
        elsewhere the view is `warped` at the working size. Returns the view and the latent
        pixels the UNet evaluated (working_latent_area gives the unit of one evaluation).
        Safe to call from several threads at once: the UNet calls take turns."""
        height, width = frames.shape[-2:]
        wh, ww = working_size(height, width, self.settings.max_side)
        # an edge-replicated margin left and right, known: the frame-edge strips are then not
        # painted at the edge of the latent, where the networks see their zero padding
        m = self.settings.fill_margin

        def small(x: torch.Tensor) -> torch.Tensor:
            x = F.interpolate(x, size=(wh, ww), mode="bilinear", antialias=True)
            return pad_to_multiple(F.pad(x.clamp(0, 1), (m, m, 0, 0), mode="replicate"))

        f = self.components.vae_scale_factor
        h_small = F.interpolate(holes.unsqueeze(1).float(), size=(wh, ww), mode="area")
        h_small = pad_to_multiple(F.pad(h_small, (m, m, 0, 0)).squeeze(1)) > 0
        known = latent_known(h_small, f)
        left, right = small(frames), small(warped)
        lh, lw = known.shape[-2:]
        boxes = [(0, lh, 0, lw)]
        if sparse:  # one frame: its own boxes
            assert len(frames) == 1, "sparse fills take one frame at a time"
            boxes = paint_boxes(
                ~known[0], 2 ** (len(self.components.unet.config.block_out_channels) - 1)
            )
        out = right.clone()
        crop = lambda x, b, k=f: x[..., b[0] * k : b[1] * k, b[2] * k : b[3] * k]  # noqa: E731
        with self._unet_turn:
            before = self.pipeline.latent_pixels
            for group in same_size_groups(boxes, self.pipeline.settings.batch_size):
                filled = self.pipeline.fill_right(
                    torch.cat([crop(left, b) for b in group]),
                    torch.cat([crop(right, b) for b in group]),
                    torch.cat([crop(known, b, 1) for b in group]),
                )
                for b, view in zip(group, filled.split(len(frames)), strict=True):
                    crop(out, b).copy_(view)
            pixels = self.pipeline.latent_pixels - before
        out = out[..., :wh, m : m + ww]
        if (wh, ww) != (height, width):
            out = F.interpolate(out, size=(height, width), mode="bicubic").clamp(0, 1)
        return out, pixels

    def working_latent_area(self, height: int, width: int) -> int:
        """Latent pixels of one frame's working image, margins and padding included: what one
        UNet image-evaluation of the whole frame costs (the unit of StereoViews'
        unet_evaluations)."""
        wh, ww = working_size(height, width, self.settings.max_side)
        m, f = self.settings.fill_margin, self.components.vae_scale_factor
        return math.ceil(wh / 8) * 8 // f * (math.ceil((ww + 2 * m) / 8) * 8 // f)

    def convert(self, frames: torch.Tensor, disparity: torch.Tensor) -> StereoViews:
        n = len(frames)
        if self.settings.composite != "hybrid":
            before = self.pipeline.latent_pixels
            out = self.generate(frames, disparity)
            wh, ww = working_size(*frames.shape[-2:], self.settings.max_side)
            area = n * math.ceil(wh / 8) * math.ceil(ww / 8)  # the padded working latent
            cost = torch.full((n,), (self.pipeline.latent_pixels - before) / area)
            return StereoViews(out.left, out.right, warp_view(frames, disparity).holes, cost)
        # the warp backend's right view; diffusion only where the left view cannot see
        plan = warp_and_fill(frames, disparity, self.settings)
        if not plan.holes.any():
            return StereoViews(frames, plan.base, plan.warped.holes, torch.zeros(n))
        generated, pixels = self.fill(frames, plan.base, plan.holes)
        right = hybrid_composite(plan, generated, self.settings.seam)
        cost = torch.full((n,), pixels / n / self.working_latent_area(*frames.shape[-2:]))
        return StereoViews(frames, right, plan.warped.holes, cost)

    def __call__(
        self, frames: torch.Tensor, disparity: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.convert(frames, disparity)[:2]
