"""The temporally coherent hybrid of a video (temporal_fill = carry): what the right view showed in
one frame is carried into the next where the same background is still hidden from the left eye,
and only what no frame before showed is painted, on crops around it.

For each frame, in order (one CarryFill per chunk; a cut starts afresh):
    1. the warp: the sub-pixel warp, its filled view and its holes (as the per-frame hybrid);
    2. the motion: the left view's backward optical flow; a hole pixel moves as the seen
       background beside it (its background side, in the left view's coordinates);
    3. the carry: a hole pixel takes the right view of the frame before at the place it came
       from, when that place showed a surface at the same depth as the background the hole
       reveals now (a frame-edge strip takes whatever was there);
    4. the paint: runs of hole pixels that carried nothing seen or painted (nothing at all, or
       only a stop-gap fill) at least fill_min_width wide are generated (the diffusion
       backend's fill, the UNet on boxes around them only), conditioned on what was carried;
       where that touches a frame-edge strip, the whole strip of that edge is painted again
       (what lies beyond the left view is only guessed from the content beside it, which a pan
       keeps revealing); narrower runs keep what they carried, or take the warp's fill from
       their background side if they carried nothing, and stay stop-gaps: painted once their
       run is wide enough, or once enough of them wait (PAINT_MIN_SHARE);
    5. the memory: the right view, the disparity of the surface at each of its pixels, which of
       them are seen or painted (not stop-gaps) and which have only a guessed depth.
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
from stereoconv.geometry import WarpResult, background_side_columns, nearest_valid_columns
from stereoconv.motion import backward_flow, grey_for_flow, sample

# a carried pixel's surface may differ this much from the background the hole reveals now:
# 1 px of disparity plus this share of it (the depth changes a little between frames, and a
# pixel of error in the motion moves along a slanted surface)
DEPTH_TOLERANCE = (1.0, 0.1)
# after a shot's first frame, paint once what waits for it covers this share of the frame: a
# few small runs keep their stop-gap fill a while rather than cost a call of the UNet each
PAINT_MIN_SHARE = 0.005


@dataclass(frozen=True)
class Memory:
    """The frame before, as the carry reads it."""

    grey: np.ndarray  # the left view, grey, for the optical flow
    right: torch.Tensor  # (3, H, W) the right view as written
    surface: torch.Tensor  # (H, W) disparity of the surface each right-view pixel shows
    painted: torch.Tensor  # (H, W) bool: seen or painted, or carried from such (no stop-gap)
    guessed: torch.Tensor  # (H, W) bool: the surface is only guessed (a frame-edge strip)


def surface_disparity(warped: WarpResult) -> torch.Tensor:
    """(B, H, W): the disparity of the surface each right-view pixel shows: the warp's where
    the left view sees it, the background's beside a hole in the hole."""
    src = background_side_columns(~warped.holes, warped.disparity)
    return warped.disparity.gather(-1, src)


def hole_sources(warped: WarpResult, flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Where each pixel of one frame's right view (warped of batch 1) was in the frame before,
    (x, y) each (H, W): it moves as the left view at the surface it shows; a hole pixel as the
    seen background beside it (its background side). flow: the left view's backward flow,
    (2, H, W)."""
    _, h, w = warped.holes.shape
    src = background_side_columns(~warped.holes, warped.disparity)[0]  # (H, W) columns
    rows = torch.arange(h, device=src.device).view(h, 1).expand(h, w).float()
    left_x = src.float() + warped.disparity[0].gather(-1, src)  # right x = left x - d
    motion = sample(flow.to(src.device), left_x, rows, "bilinear")
    cols = torch.arange(w, device=src.device).view(1, w).expand(h, w).float()
    return cols + motion[0], rows + motion[1]


def refreshed_edges(paint: torch.Tensor, holes: torch.Tensor) -> torch.Tensor:
    """Where a frame-edge strip is painted, the whole strip of that edge is painted again, in
    every row: what lies beyond the left view is only guessed from the seen content beside it,
    and a guess carried along a pan drifts from the content the pan has since revealed next to
    it, so the strip is refreshed as one whenever it needs paint at all."""
    strips = border_runs(holes)
    before, after = nearest_valid_columns(~strips)
    out = paint.clone()
    for edge, side in ((0, before < 0), (-1, after >= holes.shape[-1])):
        if (paint[..., edge] & strips[..., edge]).any():
            out |= strips & side
    return out


def carried(
    memory: Memory, warped: WarpResult, surface: torch.Tensor, flow: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(values (3, H, W), carried (H, W), painted (H, W)): the frame before's right view at each
    hole pixel's source, the hole pixels whose source showed a surface at their depth (any
    surface in a frame-edge strip, whose depth is only guessed), and which of those carried a
    seen or painted surface, not a stop-gap."""
    x, y = hole_sources(warped, flow)
    h, w = surface.shape
    inside = (x >= 0) & (x <= w - 1) & (y > -1) & (y < h)
    y = y.clamp(0, h - 1)  # a row's motion may stray a fraction of a pixel past the top or bottom
    # the nearest source pixel decides: a bilinear read mixes the two sides of a depth edge
    before = sample(memory.surface[None], x, y, "nearest")[0]
    painted = sample(memory.painted[None].float(), x, y, "nearest")[0] > 0.5
    guessed = sample(memory.guessed[None].float(), x, y, "nearest")[0] > 0.5
    # a frame-edge strip shows what lies beyond the left view, not what a nearer surface hides:
    # its depth is only guessed (from the edge's), so any surface carries into it, and what
    # was shown in one carries out of it
    guessed |= border_runs(warped.holes)[0]
    tolerance = DEPTH_TOLERANCE[0] + DEPTH_TOLERANCE[1] * surface.abs()
    same_depth = ((before - surface).abs() <= tolerance) | guessed
    ok = warped.holes[0] & inside & same_depth
    values = sample(memory.right, x, y, "bicubic").clamp(0, 1)
    return values, ok, ok & painted


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
        height, width = frame.shape[-2:]
        # 1. The warp
        plan = warp_and_fill(frame, disparity, settings)
        warped, right, holes = plan.warped, plan.base, plan.warped.holes
        surface = surface_disparity(warped)
        grey = grey_for_flow(frame[0])
        ok, painted = torch.zeros_like(holes), torch.zeros_like(holes)
        # 2-3. The motion and the carry
        if self.memory is not None:
            flow = backward_flow(self.memory.grey, grey, height, width)
            values, ok, painted = (x[None] for x in carried(self.memory, warped, surface[0], flow))
            right = torch.where(ok.unsqueeze(1), values, right)
        # 4. The paint: wide runs of what carried nothing seen or painted (edge strips as one);
        #    the rest a stop-gap: the warp's fill, carried pixels counted as known
        unpainted = holes & ~painted
        if ok.any() and (holes & ~ok).any():
            right = fill_holes(right, holes & ~ok, surface, settings.fill_sigma)
        min_width = max(settings.fill_min_width, CRACK_WIDTH + 1)
        paint = generation_holes(unpainted, min_width, settings.fill_border)
        if self.memory is not None and paint.sum() < PAINT_MIN_SHARE * height * width:
            paint = torch.zeros_like(paint)
        cost = 0.0
        if paint.any():
            paint = refreshed_edges(paint, holes)
            generated, pixels = self.backend.fill(frame, right, paint, sparse=True)
            cost = pixels / self.backend.working_latent_area(height, width)
            region = HybridPlan(WarpResult(right, paint, surface), right, paint)
            right = hybrid_composite(region, generated, settings.seam)
        # 5. The memory
        guessed = border_runs(holes)[0]
        self.memory = Memory(grey, right[0], surface[0], (~holes | painted | paint)[0], guessed)
        return StereoViews(frame, right, holes, torch.tensor([cost]))
