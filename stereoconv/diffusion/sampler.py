"""The StereoDiffusion denoising loop (Wang et al., CVPR-W 2024, Sec. 3 and Fig. 2).

Notation, paper -> code:
    x_t          left           the left latent
    x'_t         right          the right latent, from the shift step t' on
    D, s         disparity      latent-pixel disparity (s is already folded in)
    M            mask           latent pixels that the shift covered (not holes)
    S(x, D)      shift_latent   Stereo Pixel Shift, eq. 3
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from stereoconv.geometry import shift_latent

# model(x, t, step, views) -> model output; x is [left frames] or [left frames, right frames]
StereoModel = Callable[[torch.Tensor, int, int, int], torch.Tensor]


@dataclass(frozen=True)
class StereoSchedule:
    """When the stereo operations happen, as denoising-loop indices."""

    shift_step: int | None  # t': build the right latent here; None: plain (mono) sampling
    copy_every: int = 10  # SPSMD copies at loop indices i > t' with i % copy_every == 0; 0: never
    deblur: bool = False  # fill the shifted latent's holes with fresh noise (eq. 8)

    def copies_at(self, i: int) -> bool:
        return (
            self.shift_step is not None
            and self.copy_every > 0
            and i > self.shift_step
            and i % self.copy_every == 0
        )


def sample_stereo(
    model: StereoModel,
    scheduler,
    left: torch.Tensor,
    disparity: torch.Tensor,
    schedule: StereoSchedule,
    start: int = 0,
    stop: int | None = None,
    noise: torch.Tensor | None = None,
    callback: Callable[[dict], None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Denoise `left` (the latent at loop index `start`) through loop index `stop` (exclusive;
    the end by default); from the shift step on, the right latent is denoised beside it.

    Returns (left, right, mask); right and mask are None if the loop never reached the shift.
    `noise` (same shape as left) fills the holes when schedule.deblur is set. callback gets a
    dict after the shift and after every step.
    """
    right = mask = None
    timesteps = scheduler.timesteps.tolist()
    for i, t in enumerate(timesteps[:stop]):
        if i < start:
            continue
        # 1. Stereo Pixel Shift at t' (eq. 3); deblur fills the uncovered pixels with noise (eq. 8)
        if i == schedule.shift_step:
            right, mask = shift_latent(left, disparity)
            if schedule.deblur:
                right = torch.where(mask.unsqueeze(1), right, noise)
            if callback is not None:
                callback({"event": "shift", "step": i, "left": left, "right": right, "mask": mask})
        # 2. One DDIM step; both views go through the UNet together once the right one exists
        views = 1 if right is None else 2
        x = left if right is None else torch.cat([left, right])
        x = scheduler.step(model(x, t, i, views), t, x).prev_sample
        left, right = (x, None) if views == 1 else x.chunk(2)
        # 3. SPSMD, as the reference code: the right latent's visible region (mask of the shift
        #    step) takes the shifted *current* left latent, after the scheduler step
        if schedule.copies_at(i):
            shifted, _ = shift_latent(left, disparity)
            right = torch.where(mask.unsqueeze(1), shifted, right)
        if callback is not None:
            callback({"event": "step", "step": i, "left": left, "right": right, "mask": mask})
    return left, right, mask


def sample_fill(
    model: StereoModel,
    scheduler,
    left_path: list[torch.Tensor] | None,
    right_path: list[torch.Tensor],
    known: torch.Tensor,
    start: int,
    noise: torch.Tensor | None = None,
    callback: Callable[[dict], None] | None = None,
) -> torch.Tensor:
    """The hybrid composite's right view (the product's own, beside the paper's loop): only the
    right latent's holes are generated, beside the left view, from loop index `start` (t') on.

    left_path, right_path: trajectories to t' (ddim_invert or noised_trajectory with the same
    `start`) of the left frame and of the right view the sub-pixel warp makes (holes filled from
    the background). Both views start at t' on their trajectories and are put back on them after
    every step wherever they are known: the whole left view, and the right view where `known`
    (B, h, w) is set. So the generated holes meet the pixel-exact warp at their borders and
    grow out of the background that fills them; `noise`, if given, replaces the holes at t'
    (the paper's deblur, eq. 8). left_path None: the right view alone (no stereo attention, so
    the left view would not change it). Returns the right latent at the end of the loop.
    """
    steps = len(scheduler.timesteps)
    keep = known.unsqueeze(1)

    def before(path: list[torch.Tensor], i: int) -> torch.Tensor:
        return path[steps - i]  # the latent the loop holds before its step i

    right = before(right_path, start)
    if noise is not None:
        right = torch.where(keep, right, noise)
    for i, t in enumerate(scheduler.timesteps.tolist()):
        if i < start:
            continue
        if left_path is None:
            right = scheduler.step(model(right, t, i, 1), t, right).prev_sample
        else:
            x = torch.cat([before(left_path, i), right])
            _, right = scheduler.step(model(x, t, i, 2), t, x).prev_sample.chunk(2)
        right = torch.where(keep, before(right_path, i + 1), right)
        if callback is not None:
            left = None if left_path is None else before(left_path, i + 1)
            callback({"event": "step", "step": i, "left": left, "right": right, "mask": known})
    return right
