"""The diffusion backend: StereoDiffusion for what the left view cannot see.

Frames of any size work at a resolution of at most `max_side` on the long side (aspect kept),
padded to multiples of 8 pixels (never cropped). By default (`composite = hybrid`) the left view
is the original frame, untouched, and the right view is the frame forward-warped at full
resolution wherever the left view sees the surface, with the diffusion result in the holes,
blended over `seam` pixels. `composite = none` returns both views as decoded, as in the paper.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from stereoconv.backends.warp import gaussian_1d
from stereoconv.config import StereoConfig
from stereoconv.diffusion.components import (
    DEFAULT_SD_MODEL,
    SDComponents,
    load_components,
    pick_dtype,
)
from stereoconv.diffusion.pipeline import StereoDiffusion, StereoOutput
from stereoconv.geometry import forward_warp


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


def seam_alpha(holes: torch.Tensor, seam: float) -> torch.Tensor:
    """Blend weight of the generated view, (B, 1, H, W): 1 in the holes, falling to 0 over about
    `seam` pixels around them."""
    alpha = holes.unsqueeze(1).float()
    if seam <= 0:
        return alpha
    r = max(1, round(seam))
    grown = F.max_pool2d(alpha, kernel_size=2 * r + 1, stride=1, padding=r)
    g = gaussian_1d(seam / 2, alpha.device, alpha.dtype)
    p = g.numel() // 2
    soft = F.conv2d(F.pad(grown, (0, 0, p, p), mode="replicate"), g.view(1, 1, -1, 1))
    soft = F.conv2d(F.pad(soft, (p, p, 0, 0), mode="replicate"), g.view(1, 1, 1, -1))
    return torch.maximum(alpha, soft.clamp(0, 1))


def hybrid_right_view(
    left: torch.Tensor, disparity: torch.Tensor, generated: torch.Tensor, seam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The left frame forward-warped where the left view sees the surface, `generated` in the
    holes, blended at the seam. Returns (right view, hole mask)."""
    warped = forward_warp(left, disparity)
    alpha = seam_alpha(warped.holes, seam)
    return warped.image * (1 - alpha) + generated * alpha, warped.holes


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

    def __init__(self, pipeline: StereoDiffusion):
        self.pipeline = pipeline
        self.config = pipeline.config

    @classmethod
    def from_config(cls, config: StereoConfig, device: torch.device) -> DiffusionBackend:
        device = torch.device(device)
        components = load_components(
            config.model or DEFAULT_SD_MODEL,
            device,
            pick_dtype(device, config.precision),
            vae=config.vae,
        )
        if config.compile:
            compile_unet(components)
        return cls(StereoDiffusion(components, config))

    @property
    def components(self) -> SDComponents:
        return self.pipeline.components

    def generate(
        self, frames: torch.Tensor, disparity: torch.Tensor, decode_left: bool = True
    ) -> StereoOutput:
        """Run StereoDiffusion at the working size; views and disparity come back at the frames'
        size."""
        height, width = frames.shape[-2:]
        wh, ww = working_size(height, width, self.config.max_side)
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

    def __call__(
        self, frames: torch.Tensor, disparity: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        hybrid = self.config.composite == "hybrid"
        out = self.generate(frames, disparity, decode_left=not hybrid)
        if not hybrid:
            return out.left, out.right
        right, _ = hybrid_right_view(frames, disparity, out.right, self.config.seam)
        return frames, right
