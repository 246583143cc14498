"""The numbers of a comfort report, from per-frame (or per-photo) statistics: pure functions,
no files, no plots.

A frame's statistics are the dicts of stereoconv.report.stats.frame_stats, completed by the video
job (index, time, cut, convergence, change_left / change_right, and with --convergence auto
violation_without_auto / near_pct_without_auto). Parallax is in % of one view's width; d > 0 is
in front of the screen plane.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from stereoconv.disparity.comfort import VIOLATION_SHARE
from stereoconv.report.stats import flicker_ratio

REPORT_VERSION = 1


def split_shots(frames: Sequence[dict]) -> list[list[dict]]:
    """Frames in index order, split where a shot starts (`cut`); the first frame always starts
    one."""
    shots: list[list[dict]] = []
    for frame in sorted(frames, key=lambda f: f["index"]):
        if not shots or frame["cut"]:
            shots.append([])
        shots[-1].append(frame)
    return shots


def budget_limits(divergence: float | None, convergence: float) -> tuple[float, float] | None:
    """The parallax the asked divergence allows at this screen plane: (farthest, nearest) in %
    of the width; None where the divergence does not apply (disparity given in pixels)."""
    if divergence is None:
        return None
    return -divergence * convergence, divergence * (1.0 - convergence)


def runs(indices: Sequence[int]) -> list[tuple[int, int]]:
    """Consecutive runs of sorted frame indices as (first, last)."""
    out: list[tuple[int, int]] = []
    for i in indices:
        if out and i == out[-1][1] + 1:
            out[-1] = (out[-1][0], i)
        else:
            out.append((i, i))
    return out


def flicker_of(frames: Sequence[dict]) -> float | None:
    """The flicker ratio of a shot: its frames' change of the right view over that of the left
    (1.0: the synthesised eye changes exactly as much as the original). The shot's first frame
    is left out, its change is the cut. None when nothing was measured."""
    pairs = [
        (f["change_left"], f["change_right"])
        for f in frames[1:]
        if f.get("change_left") is not None and f.get("change_right") is not None
    ]
    if not pairs:
        return None
    return flicker_ratio(sum(p[0] for p in pairs), sum(p[1] for p in pairs))


def mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def violation_sides(frame: dict, share: float) -> list[str]:
    """Which borders something in front of the screen touches: `left`, `right` or both."""
    return [side for side in ("left", "right") if frame[f"front_{side}"] > share]


# the parallax range may exceed the budget by this share before a report calls it over (the
# plan fits it to the budget exactly; floating point does the rest)
OVER_BUDGET = 1.001


def over_budget(used_pct: float, divergence: float | None) -> bool:
    """Whether a near-to-far parallax range is beyond the --divergence budget."""
    return divergence is not None and used_pct > divergence * OVER_BUDGET


def shot_summary(
    number: int, frames: Sequence[dict], divergence: float | None, given_px: bool = False
) -> dict:
    """One shot: frame and time range, the screen plane, the parallax used against the budget,
    window violations, flicker and holes. given_px: the disparity was given in pixels, its
    screen plane a shift (no band of the budget around it; its range is still measured
    against the budget)."""
    near = [f["near_pct"] for f in frames]
    far = [f["far_pct"] for f in frames]
    planes = sorted({f["convergence"] for f in frames})
    limits = None
    if len(planes) == 1 and not given_px:
        limits = budget_limits(divergence, planes[0])
    holes = [f["holes"] for f in frames if f.get("holes") is not None]
    out: dict[str, Any] = {
        "shot": number,
        "first_frame": frames[0]["index"],
        "last_frame": frames[-1]["index"],
        "frames": len(frames),
        "start_s": frames[0]["time"],
        "end_s": frames[-1]["time"],
        "convergence": planes[0] if len(planes) == 1 else planes,
        "near_pct_max": max(near),
        "near_pct_min": min(near),
        "far_pct_min": min(far),
        "far_pct_max": max(far),
        "used_pct": max(near) - min(far),
        "budget_pct": divergence,
        "budget_far_pct": None if limits is None else limits[0],
        "budget_near_pct": None if limits is None else limits[1],
        "over_budget": over_budget(max(near) - min(far), divergence),
        "violation_frames": [f["index"] for f in frames if f["violation"]],
        "flicker_ratio": flicker_of(frames),
        "holes_mean": mean(holes),
        "holes_max": max(holes) if holes else None,
    }
    if "violation_without_auto" in frames[0]:
        out["violation_frames_without_auto"] = [
            f["index"] for f in frames if f["violation_without_auto"]
        ]
        out["near_pct_max_without_auto"] = max(f["near_pct_without_auto"] for f in frames)
    return out


def overall(shots: Sequence[dict], frames: Sequence[dict]) -> dict:
    """The whole run in a few numbers."""
    holes = [f["holes"] for f in frames if f.get("holes") is not None]
    out: dict[str, Any] = {
        "frames": len(frames),
        "shots": len(shots),
        "near_pct_max": max((s["near_pct_max"] for s in shots), default=None),
        "far_pct_min": min((s["far_pct_min"] for s in shots), default=None),
        "used_pct_max": max((s["used_pct"] for s in shots), default=None),
        "over_budget_shots": [s["shot"] for s in shots if s["over_budget"]],
        "violation_frames": [i for s in shots for i in s["violation_frames"]],
        "holes_mean": mean(holes),
        "holes_max": max(holes) if holes else None,
    }
    if shots and "violation_frames_without_auto" in shots[0]:
        out["violation_frames_without_auto"] = [
            i for s in shots for i in s["violation_frames_without_auto"]
        ]
    return out


def video_summary(frames: Sequence[dict], divergence: float | None, given_px: bool = False) -> dict:
    """Shots and the overall numbers of a video's per-frame statistics."""
    shots = [
        shot_summary(n, shot, divergence, given_px)
        for n, shot in enumerate(split_shots(frames), start=1)
    ]
    return {"overall": overall(shots, frames), "shots": shots}


def photo_row(
    source: str, outputs: Sequence[str], stats: dict, divergence: float, convergence: float
) -> dict:
    """One converted photo: its parallax against the budget, violation and holes. The budget
    is drawn at the screen plane the statistics record, if any, else at `convergence`."""
    convergence = stats.get("convergence", convergence)
    far_limit, near_limit = budget_limits(divergence, convergence)
    return {
        "source": source,
        "outputs": list(outputs),
        "near_pct": stats["near_pct"],
        "far_pct": stats["far_pct"],
        "used_pct": stats["near_pct"] - stats["far_pct"],
        "budget_pct": divergence,
        "budget_near_pct": near_limit,
        "budget_far_pct": far_limit,
        "convergence": convergence,
        "front_left": stats["front_left"],
        "front_right": stats["front_right"],
        "violation": stats["violation"],
        "sides": violation_sides(stats, VIOLATION_SHARE) if stats["violation"] else [],
        "holes": stats["holes"],
    }


def pick_evenly(items: Sequence, count: int) -> list:
    """At most `count` items spread evenly over the sequence, first and last included (one
    item: the middle one)."""
    if len(items) <= count:
        return list(items)
    if count == 1:
        return [items[len(items) // 2]]
    step = (len(items) - 1) / (count - 1)
    return [items[round(k * step)] for k in range(count)]


def rounded(value: Any, digits: int = 5) -> Any:
    """Floats rounded for a compact JSON file, recursively; nan and inf (not JSON) as None."""
    if isinstance(value, float):
        return round(value, digits) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: rounded(v, digits) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [rounded(v, digits) for v in value]
    return value
