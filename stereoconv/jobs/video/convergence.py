"""--convergence auto for video: a first pass over every frame's depth plans the screen plane
of each shot before any chunk is converted."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from stereoconv.converter import StereoConverter
from stereoconv.disparity.comfort import budget_scale, span_pct
from stereoconv.disparity.plan import DisparityPlan, ShotTracker
from stereoconv.jobs.video.frames import depth_batches
from stereoconv.jobs.video.job import VideoJob
from stereoconv.progress import Progress, silent


def plan_convergence(
    job: VideoJob,
    converter: StereoConverter,
    progress: Progress = silent,
    notify: Callable[[str], None] = lambda text: None,
) -> VideoJob:
    """--convergence auto: a first pass over the depth of every frame finds, per shot, the
    screen plane that keeps the border bands behind it (at least the configured convergence;
    for disparity given in pixels, the least shift of it that does, after scaling it into the
    --divergence budget where it spans more, said in one line); the plan is part of the job,
    so every chunk and every worker uses the same one."""
    plan = DisparityPlan.of(converter.config, given=job.depth is not None)
    shots = ShotTracker(plan, job.cuts, start=0)
    nearness, cuts, decoded, span = [], [], [], 0.0
    for batch in depth_batches(job, converter, 0, len(job.pts)):
        smoothed, batch_cuts = shots.update(batch.frames, batch.relative, batch.indices)
        decoded += batch.indices
        cuts += batch_cuts
        for r, (lo, hi) in zip(batch.relative, smoothed, strict=True):
            nearness.append(plan.nearness(r, lo, hi))
        if plan.given_px:
            span = max(span, float(span_pct(batch.relative).max()))
        progress("convergence", len(batch.indices), len(job.pts))
    scale = budget_scale(span, plan.divergence) if plan.given_px else 1.0
    if scale < 1:  # border nearness in pixels scales with the disparity
        nearness = [n * scale for n in nearness]
        notify(
            f"--convergence auto: the given disparity spans up to {span:.1f} % of the width, "
            f"more than --divergence {plan.divergence:g} %: scaled by {scale:.3f} to fit (as "
            f"--depth-scale {converter.config.depth_scale * scale:.4g} would)"
        )
    planes, default = plan.shot_planes(nearness, cuts)
    per_frame = dict(zip(decoded, planes, strict=True))
    every = tuple(per_frame.get(i, default) for i in range(len(job.pts)))
    return dataclasses.replace(job, convergence_plan=every, given_scale=scale)
