"""Motion between consecutive frames: dense optical flow of the left view (OpenCV's DIS, Kroeger
et al., ECCV 2016), which the temporally coherent fill follows to carry the right view's painted
holes from one frame to the next.

DIS runs on the CPU, on grey frames at most FLOW_SIDE pixels on the long side; its result does
not depend on OpenCV's thread count (checked in tests/test_motion.py), so a resumed or
distributed job carries the same pixels.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

FLOW_SIDE = 512  # the long side the flow is estimated at; finer motion is interpolated


def grey_for_flow(frame: torch.Tensor) -> np.ndarray:
    """(3, H, W) in [0, 1] -> (h, w) uint8 luma at most FLOW_SIDE on the long side, contiguous
    (what DIS takes)."""
    h, w = frame.shape[-2:]
    scale = min(1.0, FLOW_SIDE / max(h, w))
    x = frame[None].float()
    if scale < 1.0:
        size = (max(1, round(h * scale)), max(1, round(w * scale)))
        x = F.interpolate(x, size=size, mode="area")
    luma = (0.299 * x[0, 0] + 0.587 * x[0, 1] + 0.114 * x[0, 2]).clamp(0, 1)
    return np.ascontiguousarray((luma * 255).round().to(torch.uint8).cpu().numpy())


def backward_flow(
    previous: np.ndarray, current: np.ndarray, height: int, width: int
) -> torch.Tensor:
    """Where each pixel of the current frame was in the previous one: (2, height, width) pixel
    offsets (x, y) at the frames' full size, from their grey versions (grey_for_flow)."""
    import cv2

    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    flow = dis.calc(current, previous, None)  # (h, w, 2): current -> previous
    flow = torch.from_numpy(flow).permute(2, 0, 1)[None]
    h, w = current.shape
    if (h, w) != (height, width):
        flow = F.interpolate(flow, size=(height, width), mode="bilinear", align_corners=False)
        flow = flow * torch.tensor([width / w, height / h]).view(1, 2, 1, 1)
    return flow[0]


def sample(image: torch.Tensor, x: torch.Tensor, y: torch.Tensor, mode: str) -> torch.Tensor:
    """image (C, H, W) read at pixel positions x, y (H, W) (bilinear or bicubic; zeros
    outside)."""
    h, w = image.shape[-2:]
    grid = torch.stack([2 * x / max(w - 1, 1) - 1, 2 * y / max(h - 1, 1) - 1], dim=-1)
    out = F.grid_sample(
        image[None].float(), grid[None].to(image.device).float(), mode=mode, align_corners=True
    )
    return out[0]
