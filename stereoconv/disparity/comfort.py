"""Viewing comfort: the border bands where window violations happen, and the automatic screen
plane (--convergence auto). The statistics a report shows are in stereoconv.report.stats.

A window violation is something in front of the screen plane (d > 0) cut by the left or right
frame border: the eyes read it as in front of the screen while the frame edge, which is on the
screen, hides it. It is the classic cause of stereo discomfort that no converter reports.
"""

from __future__ import annotations

import torch

BORDER = 0.01  # the band along the left and right edges that counts, as a share of the width
VIOLATION_SHARE = 0.02  # a side violates when this share of its band's pixels is in front
MARGIN = 0.02  # --convergence auto: the screen plane this much (normalised depth) in front
MARGIN_PX = 1.0  # the same for disparity given in pixels (a border band counts from 0.5 px)


def border_bands(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The left and right edge bands of (B, H, W) maps, each (B, H * band)."""
    band = max(1, round(values.shape[-1] * BORDER))
    return values[..., :band].flatten(1), values[..., -band:].flatten(1)


def border_nearness(normalised: torch.Tensor) -> torch.Tensor:
    """Per frame of (B, H, W) normalised depth (0 far, 1 near): how near the border bands get,
    as the value below which all but VIOLATION_SHARE of their pixels lie."""
    left, right = border_bands(normalised)
    q = 1.0 - VIOLATION_SHARE
    return torch.maximum(
        torch.quantile(left.float(), q, dim=1), torch.quantile(right.float(), q, dim=1)
    )


def _per_shot(values: list[float], cuts: list[bool], pick) -> list[float]:
    """pick(values of a shot) for every frame of that shot."""
    out: list[float] = []
    shot: list[float] = []
    for value, cut in zip(values, cuts, strict=True):
        if cut and shot:
            out.extend([pick(shot)] * len(shot))
            shot = []
        shot.append(value)
    if shot:
        out.extend([pick(shot)] * len(shot))
    return out


def shot_convergence(nearness: list[float], cuts: list[bool], base: float) -> list[float]:
    """One screen plane per shot (constant inside it: no jumps), at least `base` and far enough
    forward that no border band comes in front of it."""
    return _per_shot(nearness, cuts, lambda shot: min(1.0, max(base, max(shot) + MARGIN)))


def shot_shift(nearness_px: list[float], cuts: list[bool]) -> list[float]:
    """--convergence auto for disparity given in pixels: per shot, the disparity (pixels) to
    put on the screen plane, i.e. to subtract, so that no border band is in front of it; 0 where
    none is (the given disparity is then kept as it is)."""
    return _per_shot(nearness_px, cuts, lambda shot: max(0.0, max(shot) + MARGIN_PX))


def span_pct(disparity: torch.Tensor) -> torch.Tensor:
    """Per frame of (B, H, W) pixel disparity: its near-to-far span in % of the width, the
    parallax range a report measures."""
    flat = disparity.flatten(1)
    return (flat.amax(1) - flat.amin(1)) / disparity.shape[-1] * 100


def budget_scale(span: float, divergence: float) -> float:
    """--convergence auto for disparity given in pixels: the factor (at most 1) that brings its
    span (% of the width) within the --divergence budget. On screen, parallax is a comfort fact
    whatever the depth's units: measured disparity of a close scene can span 11 % of the width."""
    return 1.0 if span <= divergence else divergence / span


def still_convergence(
    relative: torch.Tensor, low: torch.Tensor, high: torch.Tensor, base: float
) -> torch.Tensor:
    """--convergence auto for still pictures, each its own shot: per picture (B,), the screen
    plane that keeps its border bands behind it, at least `base`."""
    span = (high - low).clamp_min(1e-12).view(-1, 1, 1)
    normalised = ((relative - low.view(-1, 1, 1)) / span).clamp(0, 1)
    return (border_nearness(normalised) + MARGIN).clamp(min=base, max=1.0)
