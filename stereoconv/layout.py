"""The pixels of the stereo layouts (their records: layouts.py): how the two views are packed
into one picture (or kept as two), capped to --max-size, and vr180's half sphere.

All functions take and return (B, 3, H, W) float tensors in [0, 1].
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from stereoconv.config import StereoConfig
from stereoconv.layouts import Layout

VR180_HFOV = StereoConfig.vr180_hfov  # the field of view a vr180 picture covers by default


# Dubois' least-squares red-cyan anaglyph matrices (E. Dubois, "A projection method to generate
# anaglyph stereo images", ICASSP 2001), applied to linear RGB.
_DUBOIS_LEFT = torch.tensor(
    [[0.456, 0.500, 0.176], [-0.040, -0.038, -0.016], [-0.015, -0.021, -0.005]]
)
_DUBOIS_RIGHT = torch.tensor(
    [[-0.043, -0.088, -0.002], [0.378, 0.734, -0.018], [-0.072, -0.113, 1.226]]
)


def packed_size(
    height: int, width: int, layout: Layout, hfov: float = VR180_HFOV
) -> tuple[int, int]:
    """Height and width of one packed frame for views of height x width (`hfov`: the field of
    view of the vr180 layout, degrees); a file's, for the views kept as two files."""
    if layout.projection == "equirect-180":
        height = width = vr180_side(width, hfov)
    if layout.packing == "side-by-side":
        return height, 2 * (width // 2 if layout.half else width)
    if layout.packing == "top-bottom":
        return 2 * (height // 2 if layout.half else height), width
    if layout.packing == "stacked":  # each view of even height for the MV-HEVC encoder
        return 2 * (height + height % 2), width
    return height, width  # anaglyph, two files


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
    height: int, width: int, layout: Layout, max_size: int | None, hfov: float = VR180_HFOV
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
    left: torch.Tensor, right: torch.Tensor, layout: Layout, max_size: int | None, hfov: float
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


def arrange(
    left: torch.Tensor, right: torch.Tensor, layout: Layout, max_size: int | None, hfov: float
) -> tuple[torch.Tensor, ...]:
    """The pictures the layout stores for two views: the views scaled down so that their packed
    frame is at most max_size pixels on its long side (--max-size; None: as they are), then
    packed into one picture, or kept as one picture each for a layout of two files (pair).
    The one step from views to pictures of images, photos, video chunks and previews."""
    left, right = capped_views(left, right, layout, max_size, hfov)
    if layout.files == 2:
        return left, right
    return (pack(left, right, layout, hfov),)


def pack(
    left: torch.Tensor, right: torch.Tensor, layout: Layout, hfov: float = VR180_HFOV
) -> torch.Tensor:
    """Pack two views into one frame per the layout (not for pair, which stays two files);
    `hfov`: the horizontal field of view the views cover in the vr180 layout, degrees."""
    if layout.packing == "anaglyph":
        return anaglyph(left, right)
    if layout.packing == "stacked":
        return stack_views(left, right)
    if layout.packing not in ("side-by-side", "top-bottom"):
        raise ValueError(f"layout {layout.name!r} is not a packed layout")
    views = (right, left) if layout.right_first else (left, right)
    if layout.projection == "equirect-180":
        side = vr180_side(left.shape[-1], hfov)
        views = tuple(equirect_180(v, hfov, side) for v in views)
    h, w = views[0].shape[-2:]
    across = layout.packing == "side-by-side"
    if layout.half:
        views = tuple(_squeeze(v, *((h, w // 2) if across else (h // 2, w))) for v in views)
    return torch.cat(views, dim=-1 if across else -2)


def stack_views(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """The two views one above the other, each padded to an even height (edge rows repeated):
    the frame the spatial (MV-HEVC) encoder takes and splits again."""
    if left.shape[-2] % 2:
        left, right = (F.pad(v, (0, 0, 0, 1), mode="replicate") for v in (left, right))
    return torch.cat([left, right], dim=-2)
