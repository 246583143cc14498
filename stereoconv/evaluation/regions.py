"""The parts of a right view that are scored apart, from the ground-truth disparity alone (never
from a method's own warp, so that every method is measured on the same pixels).

- holes: the target pixels that a plain integer z-buffered forward warp of the left view's
  *measured* pixels leaves uncovered (every left pixel to column round(x - d), the nearest wins;
  pixels of unknown disparity land nowhere): what the left view cannot show.
- near: the other pixels within NEAR_PX pixels (chessboard distance) of a hole; far: the rest,
  the surface the left view sees well away from any disocclusion.
- edge_fg / edge_bg: the seen pixels (not holes) in the EDGE_PX-pixel band on the near
  (foreground) and on the far (background) side of each depth edge of the right view, an edge
  being a jump of at least EDGE_JUMP pixels of disparity between two 4-neighbours of the
  ground truth as the right view sees it. A foreground halo shows in edge_bg, background colour
  on the foreground's rim in edge_fg.

Masks are (H, W) bool numpy arrays.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from stereoconv.geometry import fill_unknown_disparity

NEAR_PX = 4
EDGE_JUMP = 2.0
EDGE_PX = 4
REGIONS = ("holes", "near", "far", "edge_fg", "edge_bg")


def integer_zbuffer(disparity: np.ndarray, known: np.ndarray) -> np.ndarray:
    """The disparity each right-view pixel sees under the integer z-buffered warp of the known
    left pixels, -inf where none lands. disparity, known: (H, W)."""
    h, w = disparity.shape
    d = np.where(known, disparity, 0).astype(np.float64)
    target = np.round(np.arange(w)[None, :] - d).astype(np.int64)
    inside = known & (target >= 0) & (target < w)
    flat = (np.arange(h)[:, None] * w + target)[inside]
    zbuf = np.full(h * w, -np.inf)
    np.maximum.at(zbuf, flat, d[inside])
    return zbuf.reshape(h, w)


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Chessboard dilation: every pixel within `radius` of a set pixel."""
    m = torch.from_numpy(mask.astype(np.float32))[None, None]
    return F.max_pool2d(m, 2 * radius + 1, 1, radius)[0, 0].numpy() > 0


def _pool(values: np.ndarray, radius: int, largest: bool) -> np.ndarray:
    v = torch.from_numpy(values.astype(np.float32))[None, None]
    v = v if largest else -v
    out = F.max_pool2d(v, 2 * radius + 1, 1, radius)[0, 0].numpy()
    return out if largest else -out


def scene_regions(disparity: np.ndarray, known: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """holes, near, far, edge_fg and edge_bg of the right view (see the module's text).
    disparity: the left view's, pixels (unknown values any number); known: where it was
    measured (None: everywhere)."""
    known = np.isfinite(disparity) if known is None else known & np.isfinite(disparity)
    zbuf = integer_zbuffer(disparity, known)
    holes = np.isinf(zbuf)
    near = _dilate(holes, NEAR_PX) & ~holes
    far = ~holes & ~near

    # The right view's disparity: a hole shows the background beside it.
    seen = torch.from_numpy(np.where(holes, 0, zbuf).astype(np.float32))[None]
    d = fill_unknown_disparity(seen, torch.from_numpy(~holes)[None])[0].numpy()
    fg_side = np.zeros_like(holes)
    bg_side = np.zeros_like(holes)
    for axis in (0, 1):
        jump = np.diff(d, axis=axis)
        a = [slice(None), slice(None)]
        b = [slice(None), slice(None)]
        a[axis], b[axis] = slice(None, -1), slice(1, None)
        a, b = tuple(a), tuple(b)
        fg_side[b] |= jump >= EDGE_JUMP  # the second pixel is the nearer one
        bg_side[a] |= jump >= EDGE_JUMP
        fg_side[a] |= -jump >= EDGE_JUMP
        bg_side[b] |= -jump >= EDGE_JUMP
    # Within EDGE_PX of an edge pixel, on its side: nearer (farther) than something within
    # EDGE_PX + 1 pixels by at least the jump.
    reach = EDGE_PX
    nearer = d - _pool(d, reach, largest=False) >= EDGE_JUMP
    farther = _pool(d, reach, largest=True) - d >= EDGE_JUMP
    edge_fg = _dilate(fg_side, EDGE_PX - 1) & nearer & ~holes
    edge_bg = _dilate(bg_side, EDGE_PX - 1) & farther & ~holes
    return {"holes": holes, "near": near, "far": far, "edge_fg": edge_fg, "edge_bg": edge_bg}
