"""The warp backend: z-buffered forward warp of the frame, holes filled from the background.

Fast and model-free apart from depth: for previews, modest hardware and every frame the
diffusion backend does not need to touch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from stereoconv.backends.views import StereoViews
from stereoconv.geometry import (
    WarpResult,
    background_side_columns,
    forward_warp,
    nearest_valid_columns,
    view_disparities,
)

# Surfaces whose neighbouring pixels differ by at most this many pixels of disparity are drawn as
# one surface by the warp (steep slants stretch instead of cracking open).
MAX_JUMP = 1.5
# Hole runs at most this wide with seen pixels on both sides are cracks: interpolated across.
CRACK_WIDTH = 2
# Seen pixels averaged on the background side of a hole, the edge pixel first.
BACKGROUND_PIXELS = 3
# Seen pixels at most this much nearer (px of disparity) than a hole's background count as it.
BACKGROUND_TOLERANCE = 0.5


def gaussian_1d(sigma: float, device, dtype) -> torch.Tensor:
    radius = max(1, round(2 * sigma))
    x = torch.arange(-radius, radius + 1, device=device, dtype=dtype)
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _masked_blur(image: torch.Tensor, mask: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of `image` that averages only pixels where mask is set (normalised
    convolution), separable. image (B, C, H, W), mask (B, H, W)."""
    g = gaussian_1d(sigma, image.device, image.dtype)
    r = g.numel() // 2
    m = mask.unsqueeze(1).to(image.dtype)
    stacked = torch.cat([image * m, m], dim=1)
    ch = stacked.shape[1]
    x = F.pad(stacked, (0, 0, r, r), mode="replicate")
    x = F.conv2d(x, g.view(1, 1, -1, 1).expand(ch, 1, -1, 1), groups=ch)
    x = F.pad(x, (r, r, 0, 0), mode="replicate")
    x = F.conv2d(x, g.view(1, 1, 1, -1).expand(ch, 1, 1, -1), groups=ch)
    return x[:, :-1] / x[:, -1:].clamp_min(1e-6)


def _gather_columns(image: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """image (B, C, H, W) read at columns (B, H, W) of the same row."""
    return image.gather(-1, columns.unsqueeze(1).expand_as(image))


def _background_colour(
    image: torch.Tensor, seen: torch.Tensor, disparity: torch.Tensor, src: torch.Tensor
) -> torch.Tensor:
    """The colour a hole pixel extends from its background side: the mean of up to
    BACKGROUND_PIXELS seen pixels from the edge pixel `src` onwards, away from the hole, that lie
    on the same surface (disparity within 1 px per step of the edge pixel's). One pixel alone is
    often a poor sample: at a depth edge it mixes foreground and background colour, and the
    outermost column of a frame is often darkened or smeared by the camera."""
    w = seen.shape[-1]
    cols = torch.arange(w, device=src.device)
    step = torch.sign(src - cols)  # away from the hole; 0 for seen pixels
    d0 = disparity.gather(-1, src)
    total = torch.zeros_like(image)
    weight = torch.zeros_like(disparity)
    for k in range(BACKGROUND_PIXELS):
        col = src + step * k
        inside = (col >= 0) & (col < w)
        col = col.clamp(0, w - 1)
        same = (disparity.gather(-1, col) - d0).abs() <= k
        ok = (inside & seen.gather(-1, col) & same) | (k == 0)
        wk = ok.to(image.dtype)
        total = total + _gather_columns(image, col) * wk.unsqueeze(1)
        weight = weight + wk
    return total / weight.unsqueeze(1)


def _crack_fill(image: torch.Tensor, holes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Runs of at most CRACK_WIDTH hole pixels in a row with seen pixels on both sides are cracks
    (a steep surface torn open by the warp, or a sliver too thin to show anything but the mixed
    colour of its sides): linear interpolation between the two sides. Returns the interpolated
    colours and the crack mask."""
    w = holes.shape[-1]
    before, after = nearest_valid_columns(~holes)
    cols = torch.arange(w, device=holes.device)
    cracks = holes & (before >= 0) & (after < w) & (after - before - 1 <= CRACK_WIDTH)
    a = _gather_columns(image, before.clamp(0, w - 1))
    b = _gather_columns(image, after.clamp(0, w - 1))
    t = ((cols - before) / (after - before).clamp_min(1)).to(image.dtype).unsqueeze(1)
    return a + t * (b - a), cracks


def fill_holes(
    image: torch.Tensor, holes: torch.Tensor, disparity: torch.Tensor, sigma: float = 3.0
) -> torch.Tensor:
    """Fill disocclusion holes with the background.

    - Cracks (runs of at most CRACK_WIDTH pixels between seen pixels) are interpolated across.
    - Every other hole pixel takes the colour of its background side (the nearest seen pixel of
      its row with the smaller disparity: a disocclusion reveals what is behind, never the
      foreground that moved away; at a frame border the only side there is), averaged over a few
      pixels of that surface, then the filled region is smoothed with a Gaussian (normalised
      convolution) over hole pixels and the seen background around them, never the foreground,
      which removes the horizontal streaks of plain extension.

    image (B, C, H, W), holes and disparity (B, H, W)."""
    seen = ~holes
    src = background_side_columns(seen, disparity)
    extended = torch.where(
        holes.unsqueeze(1), _background_colour(image, seen, disparity, src), image
    )
    interpolated, cracks = _crack_fill(image, holes)
    extended = torch.where(cracks.unsqueeze(1), interpolated, extended)
    if sigma <= 0:
        return extended
    filled = holes & ~cracks
    # The smoothing also averages the seen pixels around a hole that are no nearer than the
    # background it was filled from (within `sigma` pixels, BACKGROUND_TOLERANCE): the fill then
    # blends into the real background texture in 2D, as inpainting does, but never takes colour
    # from the foreground that moved away.
    reach = max(1, round(sigma))
    fill_disparity = torch.where(
        filled, disparity.gather(-1, src), torch.full_like(disparity, -torch.inf)
    )
    nearest_fill = F.max_pool2d(fill_disparity.unsqueeze(1), (1, 2 * reach + 1), 1, (0, reach))
    nearest_fill = F.max_pool2d(nearest_fill, (2 * reach + 1, 1), 1, (reach, 0)).squeeze(1)
    background = seen & (disparity <= nearest_fill + BACKGROUND_TOLERANCE)
    smooth = _masked_blur(extended, holes | background, sigma)
    return torch.where(filled.unsqueeze(1), smooth, extended)


def warp_view(frames: torch.Tensor, disparity: torch.Tensor) -> WarpResult:
    """The sub-pixel z-buffered warp every right view starts from (holes still open)."""
    return forward_warp(frames, disparity, max_jump=MAX_JUMP)


class WarpBackend:
    """frames (B, 3, H, W) float in [0, 1] and disparity (B, H, W) in pixels -> (left, right)."""

    name = "warp"

    def __init__(self, views: str = "right", fill_sigma: float = 3.0):
        self.views = views
        self.fill_sigma = fill_sigma

    def filled_view(self, frames: torch.Tensor, disparity: torch.Tensor) -> WarpResult:
        """One warped view of `frames` by `disparity`, holes filled (their mask kept)."""
        warped = warp_view(frames, disparity)
        filled = fill_holes(warped.image, warped.holes, warped.disparity, self.fill_sigma)
        return warped._replace(image=filled)

    def synthesise(self, frames: torch.Tensor, disparity: torch.Tensor) -> torch.Tensor:
        """One warped view of `frames` by `disparity`, holes filled."""
        return self.filled_view(frames, disparity).image

    def convert(self, frames: torch.Tensor, disparity: torch.Tensor) -> StereoViews:
        d_left, d_right = view_disparities(disparity, self.views)
        right = self.filled_view(frames, d_right)
        left = frames if self.views == "right" else self.synthesise(frames, d_left)
        return StereoViews(left, right.image, right.holes)

    def __call__(
        self, frames: torch.Tensor, disparity: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.convert(frames, disparity)[:2]
