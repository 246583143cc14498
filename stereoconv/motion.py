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


def greys_for_flow(frames: torch.Tensor) -> list[np.ndarray]:
    """(B, 3, H, W) in [0, 1] -> B (h, w) uint8 luma arrays at most FLOW_SIDE on the long side,
    contiguous (what DIS takes), read back from the device at once."""
    h, w = frames.shape[-2:]
    scale = min(1.0, FLOW_SIDE / max(h, w))
    x = frames.float()
    if scale < 1.0:
        size = (max(1, round(h * scale)), max(1, round(w * scale)))
        x = F.interpolate(x, size=size, mode="area")
    luma = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).clamp(0, 1)
    return list((luma * 255).round().to(torch.uint8).cpu().numpy())


def dis_flow(previous: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Where each pixel of the current grey frame was in the previous one, (h, w, 2) offsets
    (x, y) at the grey frames' size. On the CPU; OpenCV lets go of the GIL meanwhile, so frames
    of a batch can be run in threads."""
    import cv2

    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return dis.calc(current, previous, None)  # current -> previous


def full_size_flow(
    flow: np.ndarray, height: int, width: int, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """dis_flow's offsets (h, w, 2) as (2, height, width) pixel offsets of the full-size frame,
    interpolated on `device`."""
    h, w = flow.shape[:2]
    x = torch.from_numpy(flow)
    if torch.device(device).type == "cuda":  # a copy from pageable memory waits for the device
        x = x.pin_memory().to(device, non_blocking=True)
    x = x.permute(2, 0, 1)[None]
    if (h, w) != (height, width):
        x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False)
        x = torch.stack([x[:, 0] * (width / w), x[:, 1] * (height / h)], dim=1)
    return x[0]


def sample(image: torch.Tensor, x: torch.Tensor, y: torch.Tensor, mode: str) -> torch.Tensor:
    """image (C, H, W) read at pixel positions x, y (H, W) (bilinear or bicubic; zeros
    outside)."""
    h, w = image.shape[-2:]
    grid = torch.stack([2 * x / max(w - 1, 1) - 1, 2 * y / max(h - 1, 1) - 1], dim=-1)
    out = F.grid_sample(
        image[None].float(), grid[None].to(image.device).float(), mode=mode, align_corners=True
    )
    return out[0]
