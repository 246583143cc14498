"""The classical baselines, on an integer z-buffered forward warp (what the paper's baselines and
the reference code's pixel shift do): every left pixel goes to column round(x - d), the nearest
(largest d) wins a collision, target pixels nothing lands on are holes.

- leave blank: holes stay black (zero), as the paper's "leave blank".
- stretch: each run of holes in a row is filled by linear interpolation between the two pixels
  that border it in that row, the edge pixel repeated where the run touches the frame border;
  the image is stretched across the gap without knowing which side is background.
- warp + Telea: holes inpainted by OpenCV's Telea method (radius 3), the usual classic.

Views are (H, W, 3) uint8, disparity (H, W) float pixels with no unknown values.
"""

from __future__ import annotations

import cv2
import numpy as np


def integer_warp(left: np.ndarray, disparity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Z-buffered integer forward warp: (right view with zeros in holes, holes (H, W) bool)."""
    h, w = disparity.shape
    target = np.round(np.arange(w)[None, :] - disparity).astype(np.int64)
    inside = (target >= 0) & (target < w)
    flat = (np.arange(h)[:, None] * w + target)[inside]
    depth = disparity[inside]
    zbuf = np.full(h * w, -np.inf)
    np.maximum.at(zbuf, flat, depth)
    win = depth == zbuf[flat]
    out = np.zeros((h * w, left.shape[2]), left.dtype)
    out[flat[win]] = left[inside][win]
    return out.reshape(left.shape), np.isinf(zbuf).reshape(h, w)


def leave_blank(left: np.ndarray, disparity: np.ndarray) -> np.ndarray:
    return integer_warp(left, disparity)[0]


def stretch_fill(image: np.ndarray, holes: np.ndarray) -> np.ndarray:
    """Fill each run of holes in a row by linear interpolation between its bordering pixels."""
    h, w = holes.shape
    cols = np.arange(w)[None, :]
    before = np.maximum.accumulate(np.where(holes, -1, cols), axis=1)
    after = np.minimum.accumulate(np.where(holes, w, cols)[:, ::-1], axis=1)[:, ::-1]
    has_before, has_after = before >= 0, after < w
    span = np.maximum(after - before, 1)
    t = np.where(has_before & has_after, (cols - before) / span, np.where(has_before, 0.0, 1.0))
    rows = np.arange(h)[:, None]
    a = image[rows, before.clip(0, w - 1)].astype(np.float64)
    b = image[rows, after.clip(0, w - 1)].astype(np.float64)
    filled = a * (1 - t[..., None]) + b * t[..., None]
    filled[~(has_before | has_after)] = 0  # rows with nothing seen
    out = np.where(holes[..., None], np.round(filled), image)
    return out.astype(image.dtype)


def stretch(left: np.ndarray, disparity: np.ndarray) -> np.ndarray:
    return stretch_fill(*integer_warp(left, disparity))


def warp_telea(left: np.ndarray, disparity: np.ndarray, radius: float = 3) -> np.ndarray:
    image, holes = integer_warp(left, disparity)
    return cv2.inpaint(image, holes.astype(np.uint8), radius, cv2.INPAINT_TELEA)


CLASSICAL_METHODS = {"leave-blank": leave_blank, "stretch": stretch, "telea": warp_telea}
