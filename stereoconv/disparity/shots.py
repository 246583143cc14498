"""Temporal stability of video conversion: scene cuts and smoothed depth normalisation
(flicker, what they keep low, is measured in stereoconv.report.stats).

Everything here depends only on a short window of frames before the current one (never on
where a chunk of work starts), so a video converted in chunks, by one process or by many,
gives the same frames as one converted in one piece.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

CUT_THRESHOLD = 0.12  # mean absolute change of a 64-pixel grey thumbnail, 0..1
WINDOW = 16  # frames of history the depth normalisation looks at
DECAY = 0.8  # weight of each older frame in that history


def thumbnails(frames: torch.Tensor, size: int = 64) -> torch.Tensor:
    """(B, 3, H, W) float frames -> (B, h, w) grey thumbnails with the longer side `size`."""
    h, w = frames.shape[-2:]
    scale = size / max(h, w)
    small = F.interpolate(
        frames.float(), size=(max(1, round(h * scale)), max(1, round(w * scale))), mode="area"
    )
    return small.mean(dim=1)


def thumbnail_changes(previous: torch.Tensor | None, thumbs: torch.Tensor) -> torch.Tensor:
    """(B,) mean absolute change of each thumbnail (B, h, w) from the one before it, the first
    from `previous`; inf for the first without one (it starts a shot). A change above
    CUT_THRESHOLD is a hard cut. One tensor for a batch: the caller reads it back once."""
    if previous is not None:
        thumbs = torch.cat([previous[None], thumbs])
    change = (thumbs[1:] - thumbs[:-1]).abs().flatten(1).mean(1)
    if previous is None:
        change = torch.cat([change.new_full((1,), float("inf")), change])
    return change


class DepthRangeSmoother:
    """Exponentially weighted average of the per-frame depth percentiles over the last WINDOW
    frames of the current shot (reset at cuts): the depth scale follows the scene without
    pumping from frame to frame."""

    def __init__(self, window: int = WINDOW, decay: float = DECAY):
        self.window, self.decay = window, decay
        self.history: list[tuple[float, float]] = []
        self.numbers: list[int | None] = []  # each entry's frame number, where known

    def update(
        self, low: float, high: float, cut: bool, index: int | None = None
    ) -> tuple[float, float]:
        """The smoothed range at a frame, `index` its number: the history then holds the
        frames of the last `window` numbers (a frame that did not decode leaves a gap, so a
        chunk that warms up on the `window` frames before it has the same history as one
        piece), or the last `window` frames without numbers."""
        if cut:
            self.history, self.numbers = [], []
        self.history.append((low, high))
        self.numbers.append(index)
        while index is not None and self.numbers[0] is not None:  # numbers rise
            if self.numbers[0] > index - self.window:
                break
            del self.history[0], self.numbers[0]
        self.history, self.numbers = self.history[-self.window :], self.numbers[-self.window :]
        weights = self.decay ** np.arange(len(self.history))[::-1]
        values = np.array(self.history)
        lo, hi = (weights[:, None] * values).sum(0) / weights.sum()
        return float(lo), float(hi)
