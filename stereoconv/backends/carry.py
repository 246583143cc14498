"""The temporally coherent hybrid of a video (temporal_fill = carry): what the right view showed in
one frame is carried into the next where the same background is still hidden from the left eye,
and only what no frame before showed is painted, on crops around it.

For each frame, in order (one CarryFill per chunk; a cut starts afresh):
    1. the warp: the sub-pixel warp, its filled view and its holes (as the per-frame hybrid);
    2. the motion: the left view's backward optical flow; a hole pixel moves as the seen
       background beside it (its background side, in the left view's coordinates);
    3. the carry: a hole pixel takes the right view of the frame before at the place it came
       from, when that place showed a seen or painted surface at the same depth as the
       background the hole reveals now; in a frame-edge strip (what lies beyond the left
       view), only what the left eye saw in some frame before, which a pan towards the strip's
       side brings. A crack (an interior run at most CRACK_WIDTH wide) carries nothing, nor is
       a stop-gap fill ever carried, nor a painted guess into a strip: all three drift from the
       content revealed beside them since, where the warp's fill made afresh follows it (measured:
       docs/video.md, "The carried fill");
    4. the paint: interior runs of hole pixels that carried nothing, at least fill_min_width
       wide, are generated (the diffusion backend's fill, the UNet on boxes around them only),
       conditioned on what was carried; the rest take the warp's fill from their background
       side, carried pixels counted as known: narrow runs until their run is wide enough or
       enough of them wait (PAINT_MIN_SHARE), frame-edge strips always (they are not painted,
       but textured by the block beside them, as the warp backend's are: textured_strips);
    5. the memory: the right view, the disparity of the surface at each of its pixels, which of
       them are seen, which seen or painted (not stop-gaps) and which have only a guessed depth.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from stereoconv.backends.diffusion import (
    DiffusionBackend,
    HybridPlan,
    generation_holes,
    hole_runs,
    hybrid_composite,
)
from stereoconv.backends.views import StereoViews
from stereoconv.backends.warp import (
    CRACK_WIDTH,
    border_runs,
    fill_holes,
    textured_strips,
    warp_view,
)
from stereoconv.geometry import WarpResult, background_side_columns
from stereoconv.motion import dis_flow, full_size_flow, greys_for_flow, sample

# a carried pixel's surface may differ this much from the background the hole reveals now:
# 1 px of disparity plus this share of it (the depth changes a little between frames, and a
# pixel of error in the motion moves along a slanted surface)
DEPTH_TOLERANCE = (1.0, 0.1)
# after a shot's first frame, paint once what waits for it covers this share of the frame: a
# few small runs keep their stop-gap fill a while rather than cost a call of the UNet each
PAINT_MIN_SHARE = 0.005
# threads for the optical flows of all chunks (DIS, about 15 ms a 512-px frame on one core)
FLOW_THREADS = 4


@dataclass(frozen=True)
class Memory:
    """The frame before, as the carry reads it."""

    grey: np.ndarray  # the left view, grey, for the optical flow
    right: torch.Tensor  # (3, H, W) the right view as written
    surface: torch.Tensor  # (H, W) disparity of the surface each right-view pixel shows
    seen: torch.Tensor  # (H, W) bool: seen by the left eye, now or carried from a frame before
    painted: torch.Tensor  # (H, W) bool: seen or painted, or carried from such (no stop-gap)
    guessed: torch.Tensor  # (H, W) bool: the surface is only guessed (a frame-edge strip)


def surface_columns(warped: WarpResult) -> torch.Tensor:
    """(B, H, W): the column whose seen surface each right-view pixel shows: its own where the
    left view sees it, the seen background beside a hole (its background side) in the hole."""
    return background_side_columns(~warped.holes, warped.disparity)


def surface_disparity(warped: WarpResult, src: torch.Tensor | None = None) -> torch.Tensor:
    """(B, H, W): the disparity of the surface each right-view pixel shows: the warp's where
    the left view sees it, the background's beside a hole in the hole. src: surface_columns,
    where the caller has them."""
    src = surface_columns(warped) if src is None else src
    return warped.disparity.gather(-1, src)


class FrameWarp(NamedTuple):
    """Step 1 of a frame: what the carry reads of its warp (batch of 1)."""

    warped: WarpResult  # the sub-pixel warp, holes open
    base: torch.Tensor  # (1, 3, H, W) the warp's fill of its holes (strips not yet textured)
    src: torch.Tensor  # (1, H, W) surface_columns
    surface: torch.Tensor  # (1, H, W) surface_disparity
    strips: torch.Tensor  # (1, H, W) bool: the frame-edge strips of the holes
    cracks: torch.Tensor  # (1, H, W) bool: interior hole runs at most CRACK_WIDTH wide


def frame_warp(frame: torch.Tensor, disparity: torch.Tensor, fill_sigma: float) -> FrameWarp:
    """Step 1 of a frame (batch of 1): the warp, its filled view, the surface each pixel shows,
    the strips and the cracks."""
    warped = warp_view(frame, disparity)
    base = fill_holes(warped.image, warped.holes, warped.disparity, fill_sigma)
    src = surface_columns(warped)
    strips = border_runs(warped.holes)
    cracks = (hole_runs(warped.holes) <= CRACK_WIDTH) & ~strips
    return FrameWarp(warped, base, src, surface_disparity(warped, src), strips, cracks)


def hole_sources(
    warped: WarpResult, src: torch.Tensor, flow: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Where each pixel of one frame's right view (warped of batch 1) was in the frame before,
    (x, y) each (H, W): it moves as the left view at the surface it shows; a hole pixel as the
    seen background beside it (its background side). src: surface_columns of the frame, (H, W);
    flow: the left view's backward flow, (2, H, W)."""
    _, h, w = warped.holes.shape
    rows = torch.arange(h, device=src.device).view(h, 1).expand(h, w).float()
    left_x = src.float() + warped.disparity[0].gather(-1, src)  # right x = left x - d
    motion = sample(flow.to(src.device), left_x, rows, "bilinear")
    cols = torch.arange(w, device=src.device).view(1, w).expand(h, w).float()
    return cols + motion[0], rows + motion[1]


def carried(
    memory: Memory, warp: FrameWarp, flow: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(values (3, H, W), carried, seen (H, W) each): the frame before's right view at each hole
    pixel's source; the hole pixels that carry it: inside a frame-edge strip, those whose
    source was seen; elsewhere, those whose source showed a seen or painted surface (not a
    stop-gap) at their depth (at any depth, where the source's depth was only guessed); and
    which of those carried a seen one. warp: of the frame (batch of 1); flow: (2, H, W)."""
    x, y = hole_sources(warp.warped, warp.src[0], flow)
    surface = warp.surface[0]
    h, w = surface.shape
    inside = (x >= 0) & (x <= w - 1) & (y > -1) & (y < h)
    y = y.clamp(0, h - 1)  # a row's motion may stray a fraction of a pixel past the top or bottom
    # the nearest source pixel decides: a bilinear read mixes the two sides of a depth edge
    before = sample(memory.surface[None], x, y, "nearest")[0]
    was = {
        name: sample(getattr(memory, name)[None].float(), x, y, "nearest")[0] > 0.5
        for name in ("seen", "painted", "guessed")
    }
    tolerance = DEPTH_TOLERANCE[0] + DEPTH_TOLERANCE[1] * surface.abs()
    same_depth = ((before - surface).abs() <= tolerance) | was["guessed"]
    # a crack (an interior run no wider than CRACK_WIDTH, mostly the end of a run beside a
    # depth step) takes the warp's fill made afresh: a value carried there lands a pixel off
    # the edge it borders (teddy-zoom's visible pixels, docs/video.md)
    ok = warp.warped.holes[0] & ~warp.cracks[0] & inside
    ok &= torch.where(warp.strips[0], was["seen"], same_depth & was["painted"])
    values = sample(memory.right, x, y, "bicubic").clamp(0, 1)
    return values, ok, ok & was["seen"]


class CarryFill:
    """The video job's views with temporal_fill = carry: one per chunk (it keeps the frame
    before), fed the chunk's frames in order with their cuts. The optical flows of a batch,
    which do not depend on the carry, start first, in threads, while the frames are carried
    one by one. (Warping a batch's frames at once instead was tried: faster for the carry
    alone on a GPU, not measured faster for the whole job, at twice the memory; docs/video.md.)"""

    def __init__(self, backend: DiffusionBackend):
        self.backend = backend
        self.memory: Memory | None = None

    def __call__(
        self, frames: torch.Tensor, disparity: torch.Tensor, cuts: list[bool]
    ) -> StereoViews:
        greys = greys_for_flow(frames)
        flows = self.flows(greys, cuts)
        views = []
        for i, cut in enumerate(cuts):
            if cut:  # a new shot: nothing to carry
                self.memory = None
            flow = None if flows[i] is None else flows[i].result()
            views.append(self.frame(frames[i : i + 1], disparity[i : i + 1], greys[i], flow))
        return StereoViews(*(torch.cat(parts) for parts in zip(*views, strict=True)))

    def flows(self, greys: list[np.ndarray], cuts: list[bool]) -> list[Future | None]:
        """Each frame's dis_flow from the frame before, started in the flow threads; None
        where there is no frame before (a cut, or a chunk's first frame)."""
        flows: list[Future | None] = []
        for i, cut in enumerate(cuts):
            before = greys[i - 1] if i else self.memory.grey if self.memory else None
            start = before is not None and not cut
            flows.append(flow_pool().submit(dis_flow, before, greys[i]) if start else None)
        return flows

    def frame(
        self,
        frame: torch.Tensor,
        disparity: torch.Tensor,
        grey: np.ndarray,
        flow: np.ndarray | None,
    ) -> StereoViews:
        """One frame (batch of 1): grey is its grey view, flow its dis_flow from the frame
        before (None where there is no frame before)."""
        settings = self.backend.settings
        height, width = frame.shape[-2:]
        # 1. The warp
        warp = frame_warp(frame, disparity, settings.fill_sigma)
        right, holes, surface = warp.base, warp.warped.holes, warp.surface
        ok, seen = torch.zeros_like(holes), torch.zeros_like(holes)
        # 2-3. The motion and the carry
        if self.memory is not None:
            motion = full_size_flow(flow, height, width, frame.device)
            values, ok, seen = (x[None] for x in carried(self.memory, warp, motion))
            right = torch.where(ok.unsqueeze(1), values, right)
        # 4. The paint: wide interior runs of what carried nothing; the rest a stop-gap: the
        #    warp's fill, carried pixels counted as known
        #    (one read-back a frame: each waits for the chunk's stream on a GPU)
        rest = holes & ~ok
        min_width = max(settings.fill_min_width, CRACK_WIDTH + 1)
        paint = generation_holes(rest, min_width, border=False)
        counts = [ok.any().long(), rest.any().long(), paint.sum()]
        carried_some, left_some, to_paint = torch.stack(counts).tolist()
        if self.memory is not None:
            if carried_some and left_some:
                right = fill_holes(right, rest, surface, settings.fill_sigma)
            if to_paint < PAINT_MIN_SHARE * height * width:
                paint, to_paint = torch.zeros_like(paint), 0
        right = textured_strips(right, rest & warp.strips)
        cost = 0.0
        if to_paint:
            generated, pixels = self.backend.fill(frame, right, paint, sparse=True)
            cost = pixels / self.backend.working_latent_area(height, width)
            region = HybridPlan(WarpResult(right, paint, surface), right, paint)
            right = hybrid_composite(region, generated, settings.seam)
        # 5. The memory
        self.memory = Memory(
            grey, right[0], surface[0], (~holes | seen)[0], (~holes | ok | paint)[0], warp.strips[0]
        )
        return StereoViews(frame, right, holes, torch.tensor([cost]))


_flow_pool: ThreadPoolExecutor | None = None
_flow_pool_lock = threading.Lock()


def flow_pool() -> ThreadPoolExecutor:
    """The threads every chunk's optical flows run in (DIS on the CPU, one frame each)."""
    global _flow_pool
    with _flow_pool_lock:
        if _flow_pool is None:
            _flow_pool = ThreadPoolExecutor(FLOW_THREADS, thread_name_prefix="stereoconv-flow")
        return _flow_pool
