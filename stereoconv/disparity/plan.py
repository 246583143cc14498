"""The disparity plan: one object that every job uses to turn relative disparity into pixels.

    relative disparity (estimated or given)
      -> range        robust per-frame percentiles (robust_range)
      -> smoothing    video: the range smoothed over the shot, reset at cuts (ShotTracker)
      -> convergence  the screen plane: configured, per picture or per shot (--convergence auto)
      -> pixels       signed disparity in image pixels (relative_to_pixels)

Disparity given in pixels (--depth with --depth-kind disparity-px) skips the range: it is used as
given, less the shift that --convergence auto puts on the screen plane; --convergence auto also
scales it down where its span exceeds --divergence (given_scale).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from stereoconv.config import StereoConfig
from stereoconv.disparity.comfort import (
    border_nearness,
    budget_scale,
    shot_convergence,
    shot_shift,
    span_pct,
    still_convergence,
)
from stereoconv.disparity.shots import (
    CUT_THRESHOLD,
    DepthRangeSmoother,
    thumbnail_changes,
    thumbnails,
)


def robust_range(
    relative: torch.Tensor, low_pct: float = 2.0, high_pct: float = 98.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-frame (low, high) percentiles of a relative disparity map (B, H, W) -> two (B,) tensors.

    Percentiles instead of min and max, so that a few outliers (sky noise, a speck on the lens)
    do not squash the depth of everything else. Computed on a copy at most 256 pixels on its
    long side: percentiles barely move, and torch.quantile has an input size limit.
    """
    rel = relative.float().unsqueeze(1)
    h, w = rel.shape[-2:]
    scale = min(1.0, 256.0 / max(h, w))
    if scale < 1.0:
        size = (max(1, round(h * scale)), max(1, round(w * scale)))
        rel = F.interpolate(rel, size=size, mode="area")
    flat = rel.flatten(1)
    q = torch.tensor([low_pct / 100.0, high_pct / 100.0], device=flat.device)
    low, high = torch.quantile(flat, q, dim=1)
    return low, high


def relative_to_pixels(
    relative: torch.Tensor,
    width: int,
    divergence: float,
    convergence: float | torch.Tensor,
    low: torch.Tensor | None = None,
    high: torch.Tensor | None = None,
) -> torch.Tensor:
    """Relative disparity (near = large, any scale) -> signed disparity in pixels.

    divergence: the near-to-far disparity range in % of `width`, the width of one eye's view.
    convergence in [0, 1]: the normalised depth that sits on the screen plane; 0 puts the
    farthest point there (everything in front, as in the paper), 1 the nearest (everything behind).
    A (B,) tensor gives each frame its own.
    low, high: the normalisation range per frame (B,); robust percentiles of this map if None
    (video passes smoothed values so that the depth scale does not flicker).
    """
    if low is None or high is None:
        low, high = robust_range(relative)
    low = low.reshape(-1, 1, 1).to(relative)
    high = high.reshape(-1, 1, 1).to(relative)
    span = (high - low).clamp_min(torch.finfo(relative.dtype).eps)
    normalised = ((relative - low) / span).clamp(0.0, 1.0)
    if isinstance(convergence, torch.Tensor):
        convergence = convergence.reshape(-1, 1, 1).to(relative)
    return (normalised - convergence) * (divergence / 100.0 * width)


@dataclass(frozen=True)
class DisparityPlan:
    """The settings of the disparity stage, from the config, and its steps as methods."""

    divergence: float  # % of the width, near to far
    convergence: float  # normalised depth on the screen plane (the base for auto)
    auto_convergence: bool
    low_pct: float
    high_pct: float
    given_px: bool = False  # disparity given in pixels: used as given
    given_scale: float = 1.0  # --convergence auto: its factor into the --divergence budget

    @classmethod
    def of(
        cls, config: StereoConfig, given: bool = False, given_scale: float = 1.0
    ) -> DisparityPlan:
        """The plan of a config; `given`: the job's depth comes from --depth; given_scale: the
        factor --convergence auto chose for disparity given in pixels (a video's first pass)."""
        return cls(
            config.divergence,
            config.convergence,
            config.auto_convergence,
            config.depth_low_pct,
            config.depth_high_pct,
            given and config.depth_kind == "disparity-px",
            given_scale,
        )

    def range(self, relative: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-frame (low, high) normalisation range, (B,) each."""
        return robust_range(relative, self.low_pct, self.high_pct)

    def pixels(
        self,
        relative: torch.Tensor,
        low: torch.Tensor,
        high: torch.Tensor,
        convergence: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Pixel disparity (B, H, W) of relative disparity in the range (low, high), at the
        configured screen plane or at `convergence` per frame (B,); disparity given in pixels
        is kept (times given_scale), less `convergence` (pixels) if given."""
        if self.given_px:
            scaled = relative * self.given_scale if self.given_scale != 1 else relative
            return scaled if convergence is None else scaled - convergence.view(-1, 1, 1)
        if convergence is None:
            convergence = self.convergence
        width = relative.shape[-1]
        return relative_to_pixels(relative, width, self.divergence, convergence, low, high)

    def still(self, relative: torch.Tensor) -> torch.Tensor:
        """Pixel disparity (B, H, W) of still pictures, each its own shot: its own range and,
        with --convergence auto, its own screen plane (disparity given in pixels: one picture)."""
        if self.given_px:  # as given; auto: within the budget, shifted behind the borders
            if not self.auto_convergence:
                return relative
            scaled = relative * budget_scale(float(span_pct(relative)[0]), self.divergence)
            return scaled - shot_shift([float(border_nearness(scaled)[0])], [False])[0]
        low, high = self.range(relative)
        convergence = None
        if self.auto_convergence:
            convergence = still_convergence(relative, low, high, self.convergence)
        return self.pixels(relative, low, high, convergence)

    def without_auto(
        self, disparity: torch.Tensor, convergence: torch.Tensor, width: int
    ) -> torch.Tensor:
        """The pixel disparity the configured screen plane would have given, from the disparity
        at the planned one (`convergence` per frame): what --convergence auto changed."""
        if self.given_px:  # the disparity as given
            return (disparity + convergence.view(-1, 1, 1)) / self.given_scale
        span = self.divergence / 100 * width
        return disparity + (convergence - self.convergence).view(-1, 1, 1) * span

    def nearness(self, relative: torch.Tensor, low: float, high: float) -> float:
        """How near the border bands of one frame (H, W) get, in the unit auto convergence
        plans in: normalised depth in the range (low, high), or pixels if given so."""
        if self.given_px:
            return float(border_nearness(relative[None])[0])
        normalised = ((relative - low) / max(high - low, 1e-12)).clamp(0, 1)
        return float(border_nearness(normalised[None])[0])

    def shot_planes(self, nearness: list[float], cuts: list[bool]) -> tuple[list[float], float]:
        """--convergence auto over a video: the screen plane of every frame, constant per shot,
        and the plane of frames not measured (the configured one; 0 pixels if given so)."""
        if self.given_px:
            return shot_shift(nearness, cuts), 0.0
        return shot_convergence(nearness, cuts, self.convergence), self.convergence


class ShotTracker:
    """A video's frames in order, batch by batch: scene cuts and the normalisation range of
    each frame, smoothed over its shot. Depends only on the frames seen (start WINDOW frames
    early to rebuild the state of any frame).

    The cuts are the thumbnail rule's (--shots threshold), frame by frame, or those a detector
    planned (`cuts`: the frames that start a shot, --shots transnet or none; or a function
    giving those of frames first ... stop - 1, waiting for them while a pass decides them),
    read by frame number: a frame starts a shot where a planned cut lies after the frame seen
    before it and at or before it (a cut on a frame that did not decode moves to the next)."""

    def __init__(
        self,
        plan: DisparityPlan,
        cuts: Iterable[int] | CutSource | None = None,
        start: int | None = None,
    ):
        """start: the frame number reading begins at (a planned cut from there on, before the
        first frame that decodes, falls on that frame); default: the first frame seen."""
        self.plan = plan
        self.smoother = DepthRangeSmoother()
        self.previous: torch.Tensor | None = None
        self.planned = cuts if cuts is None or callable(cuts) else planned_between(cuts)
        self.last: int | None = None if start is None else start - 1  # the frame seen last

    def update(
        self, frames: torch.Tensor, relative: torch.Tensor, indices: list[int] | None = None
    ) -> tuple[list[tuple[float, float]], list[bool]]:
        """(smoothed (low, high), cut) of each frame of a batch, (B, 3, H, W) and (B, H, W),
        at frame numbers `indices` (needed with planned cuts)."""
        lows, highs = self.plan.range(relative)
        if self.planned is None:
            thumbs = thumbnails(frames)
            changes = thumbnail_changes(self.previous, thumbs).to(lows)
            self.previous = thumbs[-1]
            # one read back from the device per batch (a chunk thread waits on each)
            rows = torch.stack([lows, highs, changes], 1).tolist()
            cuts = [change > CUT_THRESHOLD for _, _, change in rows]
        else:
            if indices is None or len(indices) != len(lows):
                raise ValueError("planned cuts are read by frame number: pass the indices")
            first = indices[0] if self.last is None else self.last + 1
            cuts = cut_flags(indices, self.planned(first, indices[-1] + 1), first)
            self.last = indices[-1]
            rows = torch.stack([lows, highs], 1).tolist()
        numbers = indices if indices is not None else [None] * len(rows)
        smoothed = [
            self.smoother.update(row[0], row[1], cut, i)
            for row, cut, i in zip(rows, cuts, numbers, strict=True)
        ]
        return smoothed, cuts


# the frames first ... stop - 1 that start a shot (a shot pass's, waiting for them if need be)
CutSource = Callable[[int, int], Sequence[int]]


def planned_between(cuts: Iterable[int]) -> CutSource:
    """Known cuts as a CutSource."""
    known = sorted(set(cuts))

    def between(first: int, stop: int) -> list[int]:
        return known[bisect.bisect_left(known, first) : bisect.bisect_left(known, stop)]

    return between


def cut_flags(indices: list[int], cuts: Sequence[int], first: int) -> list[bool]:
    """Whether each frame (numbers `indices`, rising) starts a shot: a cut lies after the
    frame before it (for the first, at or after `first`) and at or before it."""
    flags, at = [], first
    for i in indices:
        flags.append(any(at <= c <= i for c in cuts))
        at = i + 1
    return flags
