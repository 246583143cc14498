"""Stereo layouts: how the two views are packed into one picture (or kept as two).

All functions take and return (B, 3, H, W) float tensors in [0, 1].
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from stereoconv.config import StereoConfig
from stereoconv.errors import UserError

VR180_HFOV = StereoConfig.vr180_hfov  # the field of view a vr180 picture covers by default

# File-name tags by which players (DeoVR, SKYBOX, Pigasus, HereSphere, Quest's gallery) tell
# stereo files from flat ones. pair has its own (_L, _R); spatial video is signalled inside
# the file (vexu), as Apple's players expect.
# vr180: `_180_LR`, 180 degrees then the eyes' order, the tag DeoVR and SKYBOX document.
NAME_TAGS = {
    "sbs": "_LR",
    "half-sbs": "_3dh",
    "tb": "_TB",
    "half-tb": "_3dv",
    "anaglyph": "_anaglyph",
    "sbs-rl": "_RL",
    "vr180": "_180_LR",
}


def name_tag(layout: str, requested: str) -> str:
    """The tag for names stereoconv chooses: `auto` the layout's, `none` no tag, or the given
    literal tag (such as _SBS)."""
    if requested == "none":
        return ""
    if requested == "auto":
        return NAME_TAGS.get(layout, "")
    if not requested or "/" in requested or "\\" in requested:
        raise UserError(f"--name-tag must be auto, none or a tag such as _SBS, not {requested!r}")
    return requested


# Dubois' least-squares red-cyan anaglyph matrices (E. Dubois, "A projection method to generate
# anaglyph stereo images", ICASSP 2001), applied to linear RGB.
_DUBOIS_LEFT = torch.tensor(
    [[0.456, 0.500, 0.176], [-0.040, -0.038, -0.016], [-0.015, -0.021, -0.005]]
)
_DUBOIS_RIGHT = torch.tensor(
    [[-0.043, -0.088, -0.002], [0.378, 0.734, -0.018], [-0.072, -0.113, 1.226]]
)


def packed_size(height: int, width: int, layout: str, hfov: float = VR180_HFOV) -> tuple[int, int]:
    """Height and width of one packed frame for views of height x width (`hfov`: the field of
    view of the vr180 layout, degrees)."""
    if layout == "vr180":
        side = vr180_side(width, hfov)
        return side, 2 * side
    if layout in ("sbs", "sbs-rl"):
        return height, 2 * width
    if layout == "half-sbs":
        return height, 2 * (width // 2)
    if layout == "tb":
        return 2 * height, width
    if layout == "half-tb":
        return 2 * (height // 2), width
    if layout in ("anaglyph", "pair"):
        return height, width
    if layout == "spatial":  # the views stacked for the MV-HEVC encoder, each of even height
        return 2 * (height + height % 2), width
    raise ValueError(f"unknown layout {layout!r}")


# --- vr180: a perspective picture on the front half of a sphere -------------------------------
# Axes: x right, y up, z forward (the straight-ahead ray). Longitude turns from z towards x,
# latitude from the horizon up; the half-equirectangular image spans -90..90 degrees of each,
# columns left to right, rows top to bottom, sampled at pixel centres.


def focal_px(width: int, hfov: float) -> float:
    """Focal length, pixels, of a pinhole picture `width` wide that spans `hfov` degrees."""
    return width / 2 / math.tan(math.radians(hfov) / 2)


def vr180_side(width: int, hfov: float) -> int:
    """Each eye's square, pixels: as many pixels per degree at its centre as the picture has
    (pi x focal length for 180 degrees), rounded to an even number."""
    return max(2, 2 * round(math.pi * focal_px(width, hfov) / 2))


def ray(lon: torch.Tensor, lat: torch.Tensor) -> torch.Tensor:
    """Unit directions (..., 3) of longitude and latitude in radians."""
    return torch.stack([lat.cos() * lon.sin(), lat.sin(), lat.cos() * lon.cos()], dim=-1)


def project(direction: torch.Tensor, height: int, width: int, hfov: float):
    """Where rays (..., 3) meet a pinhole picture of height x width spanning hfov degrees:
    pixel coordinates (u, v) (pixel edges at integers: the centre is (width / 2, height / 2))
    and whether they land on it (in front and inside)."""
    f = focal_px(width, hfov)
    x, y, z = direction.unbind(-1)
    front = z > 1e-9
    zs = torch.where(front, z, torch.ones_like(z))
    u, v = width / 2 + f * x / zs, height / 2 - f * y / zs
    inside = front & (u >= 0) & (u <= width) & (v >= 0) & (v <= height)
    return u, v, inside


def equirect_180(view: torch.Tensor, hfov: float, side: int) -> torch.Tensor:
    """(B, 3, H, W) perspective views -> (B, 3, side, side) half-equirectangular images
    (180 x 180 degrees), the picture spanning hfov degrees across, straight ahead; black
    outside it."""
    b, _, h, w = view.shape
    angles = (torch.arange(side, dtype=torch.float64) + 0.5) / side * math.pi - math.pi / 2
    lat, lon = torch.meshgrid(-angles, angles, indexing="ij")
    u, v, inside = project(ray(lon, lat), h, w, hfov)
    grid = torch.stack([u / w * 2 - 1, v / h * 2 - 1], dim=-1).to(view)
    grid = torch.where(inside[..., None].to(view.device), grid, torch.full_like(grid, 2.0))
    out = F.grid_sample(
        view,
        grid.expand(b, -1, -1, -1),
        mode="bilinear",
        padding_mode="border",
        align_corners=False,
    )
    return out * inside.to(view)[None, None]


def view_size_within(
    height: int, width: int, layout: str, max_size: int | None, hfov: float = VR180_HFOV
) -> tuple[int, int]:
    """The size to scale views of height x width to (aspect kept, even sides) so that their
    packed frame is at most max_size pixels on its long side; the views' own size when they
    already fit or there is no cap."""
    if not max_size or max(packed_size(height, width, layout, hfov)) <= max_size:
        return height, width
    scale = max_size / max(packed_size(height, width, layout, hfov))
    while True:
        h, w = (max(2, 2 * math.floor(side * scale / 2)) for side in (height, width))
        if max(packed_size(h, w, layout, hfov)) <= max_size or (h, w) == (2, 2):
            return h, w
        scale *= 0.995  # vr180's sphere rounds up: a little less until it fits


def capped_views(
    left: torch.Tensor, right: torch.Tensor, layout: str, max_size: int | None, hfov: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The views scaled down so that their packed frame is at most max_size pixels on its long
    side (--max-size); as they are without a cap or when they fit."""
    size = view_size_within(*left.shape[-2:], layout, max_size, hfov)
    return resize_views((left, right), *size)


def resize_views(
    views: tuple[torch.Tensor, ...], height: int, width: int
) -> tuple[torch.Tensor, ...]:
    """The views scaled to height x width (antialiased), or as they are if of that size."""
    if views[0].shape[-2:] == (height, width):
        return views
    return tuple(_squeeze(v, height, width) for v in views)


def _squeeze(view: torch.Tensor, height: int, width: int) -> torch.Tensor:
    return F.interpolate(view, size=(height, width), mode="bilinear", antialias=True).clamp(0, 1)


def _srgb_to_linear(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(x: torch.Tensor) -> torch.Tensor:
    x = x.clamp(0, 1)
    return torch.where(x <= 0.0031308, x * 12.92, 1.055 * x.pow(1 / 2.4) - 0.055)


def anaglyph(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """Red-cyan anaglyph (Dubois) of two views."""
    lin_l, lin_r = _srgb_to_linear(left), _srgb_to_linear(right)
    ml, mr = _DUBOIS_LEFT.to(left), _DUBOIS_RIGHT.to(right)
    mixed = torch.einsum("ij,bjhw->bihw", ml, lin_l) + torch.einsum("ij,bjhw->bihw", mr, lin_r)
    return _linear_to_srgb(mixed)


def pack(
    left: torch.Tensor, right: torch.Tensor, layout: str, hfov: float = VR180_HFOV
) -> torch.Tensor:
    """Pack two views into one frame per the layout (not for "pair", which stays two files);
    `hfov`: the horizontal field of view the views cover in the vr180 layout, degrees."""
    h, w = left.shape[-2:]
    if layout == "vr180":
        side = vr180_side(w, hfov)
        return torch.cat([equirect_180(v, hfov, side) for v in (left, right)], dim=-1)
    if layout == "sbs":
        return torch.cat([left, right], dim=-1)
    if layout == "sbs-rl":
        return torch.cat([right, left], dim=-1)
    if layout == "half-sbs":
        return torch.cat([_squeeze(left, h, w // 2), _squeeze(right, h, w // 2)], dim=-1)
    if layout == "tb":
        return torch.cat([left, right], dim=-2)
    if layout == "half-tb":
        return torch.cat([_squeeze(left, h // 2, w), _squeeze(right, h // 2, w)], dim=-2)
    if layout == "anaglyph":
        return anaglyph(left, right)
    if layout == "spatial":
        raise UserError("--layout spatial is Apple spatial video: use `stereoconv video` to .mov")
    raise ValueError(f"layout {layout!r} is not a packed layout")


def stack_views(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """The two views one above the other, each padded to an even height (edge rows repeated):
    the frame the spatial (MV-HEVC) encoder takes and splits again."""
    if left.shape[-2] % 2:
        left, right = (F.pad(v, (0, 0, 0, 1), mode="replicate") for v in (left, right))
    return torch.cat([left, right], dim=-2)
