"""The temporally coherent hybrid of a video (temporal_fill = carry): what the right view showed in
one frame is carried into the next where the same background is still hidden from the left eye,
and only what no frame before showed is painted, on crops around it.

For each frame, in order (one CarryFill per chunk; a cut starts afresh):
    1. the warp: the sub-pixel warp, its filled view and its holes (as the per-frame hybrid);
    2. the motion: the left view's backward optical flow; a hole pixel moves as the seen
       background beside it (its background side, in the left view's coordinates);
    3. the carry: a hole pixel takes the right view of the frame before at the place it came
       from, when that place showed a trusted surface (seen, painted or carried) at the same
       depth as the background the hole reveals now;
    4. the paint: runs of the rest at least fill_min_width wide are generated (the diffusion
       backend's fill, the UNet on boxes around them only), conditioned on what was carried;
       narrower runs take the warp's fill from their background side, carried pixels included,
       and stay untrusted, so they are painted once their run is wide enough;
    5. the memory: the right view, the disparity of the surface at each of its pixels and
       which pixels are trusted, for the next frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from stereoconv.backends.diffusion import (
    DiffusionBackend,
    HybridPlan,
    border_runs,
    generation_holes,
    hybrid_composite,
    warp_and_fill,
)
from stereoconv.backends.views import StereoViews
from stereoconv.backends.warp import CRACK_WIDTH, fill_holes
from stereoconv.geometry import WarpResult, background_side_columns
from stereoconv.motion import backward_flow, grey_for_flow, sample

# a carried pixel's surface may differ this much (pixels of disparity) from the background the
# hole reveals now: the depth changes a little between frames
DEPTH_TOLERANCE = 1.0


@dataclass(frozen=True)
class Memory:
    """The frame before, as the carry reads it."""

    grey: np.ndarray  # the left view, grey, for the optical flow
    right: torch.Tensor  # (3, H, W) the right view as written
    surface: torch.Tensor  # (H, W) disparity of the surface each right-view pixel shows
    trusted: torch.Tensor  # (H, W) bool: seen, painted or carried (not a stop-gap fill)


def surface_disparity(warped: WarpResult) -> torch.Tensor:
    """(B, H, W): the disparity of the surface each right-view pixel shows: the warp's where
    the left view sees it, the background's beside a hole in the hole."""
    src = background_side_columns(~warped.holes, warped.disparity)
    return warped.disparity.gather(-1, src)


def hole_sources(warped: WarpResult, flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Where each right-view pixel of the frame was in the frame before, (x, y) each (H, W),
    for one frame (warped of batch 1): it moves as the left view at the surface it shows, and
    a hole pixel as the seen background beside it (its background side)."""
    _, h, w = warped.holes.shape
    src = background_side_columns(~warped.holes, warped.disparity)[0]  # (H, W) columns
    rows = torch.arange(h, device=src.device).view(h, 1).expand(h, w).float()
    left_x = src.float() + warped.disparity[0].gather(-1, src)  # right x = left x - d
    motion = sample(flow.to(src.device), left_x, rows, "bilinear")
    cols = torch.arange(w, device=src.device).view(1, w).expand(h, w).float()
    return cols + motion[0], rows + motion[1]


def carried(
    memory: Memory, warped: WarpResult, surface: torch.Tensor, flow: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(values (3, H, W), carried (H, W) bool): the frame before's right view at each hole
    pixel's source, and the hole pixels whose source showed a trusted surface at their depth."""
    x, y = hole_sources(warped, flow)
    h, w = surface.shape
    inside = (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)
    # the nearest source pixel decides: a bilinear read mixes the two sides of a depth edge
    trusted = sample(memory.trusted[None].float(), x, y, "nearest")[0] > 0.5
    before = sample(memory.surface[None], x, y, "nearest")[0]
    # a frame-edge strip shows what lies beyond the left view, not what a nearer surface hides:
    # its depth is only guessed (from the edge's), so any trusted surface carries into it
    same_depth = ((before - surface).abs() <= DEPTH_TOLERANCE) | border_runs(warped.holes)[0]
    ok = warped.holes[0] & inside & trusted & same_depth
    values = sample(memory.right, x, y, "bicubic").clamp(0, 1)
    return values, ok


class CarryFill:
    """The video job's views with temporal_fill = carry: one per chunk (it keeps the frame
    before), fed the chunk's frames in order with their cuts."""

    def __init__(self, backend: DiffusionBackend):
        self.backend = backend
        self.memory: Memory | None = None

    def __call__(
        self, frames: torch.Tensor, disparity: torch.Tensor, cuts: list[bool]
    ) -> StereoViews:
        views = []
        for i, cut in enumerate(cuts):
            if cut:  # a new shot: nothing to carry
                self.memory = None
            views.append(self.frame(frames[i : i + 1], disparity[i : i + 1]))
        return StereoViews(*(torch.cat(parts) for parts in zip(*views, strict=True)))

    def frame(self, frame: torch.Tensor, disparity: torch.Tensor) -> StereoViews:
        settings = self.backend.settings
        # 1. The warp
        plan = warp_and_fill(frame, disparity, settings)
        warped, holes = plan.warped, plan.warped.holes
        surface = surface_disparity(warped)
        grey = grey_for_flow(frame[0])
        right, ok = plan.base, torch.zeros_like(holes)
        # 2-3. The motion and the carry
        if self.memory is not None:
            flow = backward_flow(self.memory.grey, grey, *holes.shape[-2:])
            values, ok_frame = carried(self.memory, warped, surface[0], flow)
            ok = ok_frame[None]
            right = torch.where(ok.unsqueeze(1), values[None], right)
        # 4. The paint: wide runs of what nothing carried; the rest filled from its background
        unpainted = holes & ~ok
        if ok.any() and unpainted.any():
            right = fill_holes(right, unpainted, surface, settings.fill_sigma)
        min_width = max(settings.fill_min_width, CRACK_WIDTH + 1)
        paint = generation_holes(unpainted, min_width, settings.fill_border)
        cost = 0.0
        if paint.any():
            generated, cost = self.backend.fill(frame, right, paint, sparse=True)
            painted = HybridPlan(WarpResult(right, paint, surface), right, paint)
            right = hybrid_composite(painted, generated, settings.seam)
        # 5. The memory
        trusted = ~holes | ok | paint
        self.memory = Memory(grey, right[0], surface[0], trusted[0])
        return StereoViews(frame, right, holes, torch.tensor([cost]))
