"""The classical baselines, on an integer z-buffered forward warp (what the paper's baselines and
the reference code's pixel shift do): every left pixel goes to column round(x - d), the nearest
(largest d) wins a collision, target pixels nothing lands on are holes.

- leave blank: holes stay black (zero), as the paper's "leave blank".
- stretch: each run of holes in a row is filled by linear interpolation between the two pixels
  that border it in that row, the edge pixel repeated where the run touches the frame border;
  the image is stretched across the gap without knowing which side is background.
- warp + Telea: holes inpainted by OpenCV's Telea method (radius 3), the usual classic.

And one on a sub-pixel warp, the reference of issue 28 for what the left view sees:

- soft splat: every left pixel splats bilinearly onto the two target columns around x - d; a
  soft z-buffer keeps, per target pixel, every contribution within SOFT_Z px of disparity of
  the nearest one, weights normalised; target pixels nothing reaches are inpainted by Telea.

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


# soft splat: contributions this close in disparity to the nearest one are the same surface
SOFT_Z = 1.0


def soft_splat(left: np.ndarray, disparity: np.ndarray, radius: float = 3) -> np.ndarray:
    """Bilinear forward splat with a soft z-buffer, holes by Telea (see the module's text)."""
    h, w = disparity.shape
    pos = np.arange(w)[None, :] - disparity.astype(np.float64)
    base = np.floor(pos)
    frac = pos - base
    rows = np.broadcast_to(np.arange(h)[:, None], (h, w))
    target = np.concatenate([base, base + 1]).astype(np.int64).ravel()
    weight = np.concatenate([1 - frac, frac]).ravel()
    depth = np.concatenate([disparity, disparity]).ravel().astype(np.float64)
    flat = (np.concatenate([rows, rows]).ravel() * w) + target
    colour = np.concatenate([left.reshape(-1, left.shape[2])] * 2).astype(np.float64)
    ok = (target >= 0) & (target < w) & (weight > 1e-6)
    flat, weight, depth, colour = flat[ok], weight[ok], depth[ok], colour[ok]
    nearest = np.full(h * w, -np.inf)
    np.maximum.at(nearest, flat, depth)
    keep = depth >= nearest[flat] - SOFT_Z
    total = np.zeros(h * w)
    acc = np.zeros((h * w, left.shape[2]))
    np.add.at(total, flat[keep], weight[keep])
    np.add.at(acc, flat[keep], colour[keep] * weight[keep, None])
    holes = total <= 0
    image = acc / np.maximum(total, 1e-12)[:, None]
    image = np.clip(np.round(image), 0, 255).astype(left.dtype).reshape(left.shape)
    return cv2.inpaint(image, holes.reshape(h, w).astype(np.uint8), radius, cv2.INPAINT_TELEA)


CLASSICAL_METHODS = {
    "leave-blank": leave_blank,
    "stretch": stretch,
    "telea": warp_telea,
    "soft-splat": soft_splat,
}
