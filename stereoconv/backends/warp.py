"""The warp backend: z-buffered forward warp of the frame, holes filled from the background.

Fast and model-free apart from depth: for previews, modest hardware and every frame the
diffusion backend does not need to touch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from stereoconv.geometry import background_side_columns, forward_warp, view_disparities


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


def fill_holes(
    image: torch.Tensor, holes: torch.Tensor, disparity: torch.Tensor, sigma: float = 3.0
) -> torch.Tensor:
    """Fill disocclusion holes with the background: each hole pixel first takes the colour of the
    nearest seen pixel on its background side (the smaller disparity: a disocclusion reveals what
    is behind, never the foreground that moved away), then the filled region is smoothed with a
    Gaussian over hole pixels only, which removes the horizontal streaks of plain extension."""
    src = background_side_columns(~holes, disparity)
    extended = image.gather(-1, src.unsqueeze(1).expand_as(image))
    if sigma <= 0:
        return extended
    smooth = _masked_blur(extended, holes, sigma)
    return torch.where(holes.unsqueeze(1), smooth, image)


class WarpBackend:
    """frames (B, 3, H, W) float in [0, 1] and disparity (B, H, W) in pixels -> (left, right)."""

    name = "warp"

    def __init__(self, views: str = "right", fill_sigma: float = 3.0):
        self.views = views
        self.fill_sigma = fill_sigma

    def synthesise(self, frames: torch.Tensor, disparity: torch.Tensor) -> torch.Tensor:
        """One warped view of `frames` by `disparity`, holes filled."""
        warped = forward_warp(frames, disparity)
        return fill_holes(warped.image, warped.holes, warped.disparity, self.fill_sigma)

    def __call__(
        self, frames: torch.Tensor, disparity: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        d_left, d_right = view_disparities(disparity, self.views)
        right = self.synthesise(frames, d_right)
        left = frames if self.views == "right" else self.synthesise(frames, d_left)
        return left, right
