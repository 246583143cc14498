"""The definitions a comfort report measures with, each in one place: the parallax and window
statistics of a frame (frame_stats) and flicker, the mean absolute change of a view from one
frame to the next (frame_change, flicker, flicker_ratio).

Jobs call these while they convert; the report and the evaluation only read what they return.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from stereoconv.disparity.comfort import VIOLATION_SHARE, border_bands

# --- flicker -------------------------------------------------------------------------------------


def frame_change(previous, current, dims: int):
    """The flicker term: the mean absolute change from `previous` to `current` (torch tensors or
    numpy arrays) over their last `dims` dimensions (pixels, and channels where there are), in
    the frames' own units."""
    diff = current - previous
    if isinstance(diff, torch.Tensor):
        return diff.abs().flatten(-dims).mean(-1)
    return np.abs(diff).reshape(*diff.shape[: diff.ndim - dims], -1).mean(-1)


def flicker(frames: np.ndarray) -> float:
    """Mean absolute frame-to-frame change of a view, (T, H, W, C) in any range, per pixel and
    channel, normalised to 0..1 for integer inputs."""
    frames = np.asarray(frames, dtype=np.float64)
    if frames.shape[0] < 2:
        return 0.0
    scale = 255.0 if frames.max() > 1.0 else 1.0
    return float(frame_change(frames[:-1], frames[1:], frames.ndim - 1).mean() / scale)


def flicker_ratio(left: float, right: float, undefined=None):
    """Flicker of the right view relative to the left: 1.0 means the synthesised eye changes
    from frame to frame exactly as much as the original (also when neither changes); above 1,
    it shimmers on its own. `undefined` where only the right view changes."""
    if left > 0:
        return right / left
    return 1.0 if right == 0 else undefined


# --- parallax and the window ---------------------------------------------------------------------


@dataclass(frozen=True)
class Parallax:
    """What a frame's disparity asks of the eyes (dataclasses.asdict gives the JSON form)."""

    near_pct: float  # nearest parallax, % of the view width (d > 0: in front of the screen)
    far_pct: float  # farthest parallax
    front_left: float  # share of the left border band in front of the screen
    front_right: float  # the same on the right
    violation: bool  # a window violation: a band more than VIOLATION_SHARE in front
    holes: float | None  # share of the right view the left view cannot see; None: not measured


def frame_stats(
    disparity: torch.Tensor, width: int, holes: torch.Tensor | None = None
) -> list[Parallax]:
    """Per frame of (B, H, W) pixel disparity: nearest and farthest parallax in % of the view
    width, the share of each border band in front of the screen, whether it violates the
    window, and the share of the right view that the left view cannot see (the backend's
    `holes`, (B, H, W), if given)."""
    left, right = border_bands(disparity)
    front_left = (left > 0.5).float().mean(1)
    front_right = (right > 0.5).float().mean(1)
    hole_share = None if holes is None else holes.float().mean((1, 2))
    out = []
    for i in range(disparity.shape[0]):
        d = disparity[i]
        out.append(
            Parallax(
                near_pct=float(d.max()) / width * 100,
                far_pct=float(d.min()) / width * 100,
                front_left=float(front_left[i]),
                front_right=float(front_right[i]),
                violation=bool(max(front_left[i], front_right[i]) > VIOLATION_SHARE),
                holes=None if hole_share is None else float(hole_share[i]),
            )
        )
    return out
