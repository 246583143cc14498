"""What a backend gives back for a batch of frames: both views and what the report and the video
job need to know about them, so that nobody warps the frames a second time to find out."""

from __future__ import annotations

from typing import NamedTuple

import torch


class StereoViews(NamedTuple):
    left: torch.Tensor  # (B, 3, H, W) in [0, 1]
    right: torch.Tensor  # (B, 3, H, W) in [0, 1]
    holes: torch.Tensor  # (B, H, W) bool: right-view pixels the left view does not see
    # (B,) UNet image-evaluations each frame cost: a latent of the full working size counts 1,
    # a crop its share of that area (guidance branches and both views count); None: no model
    unet_evaluations: torch.Tensor | None = None
