"""One chunk of a video job, from decoded frames to its encoded file and statistics."""

from __future__ import annotations

import torch

from stereoconv.backends.views import StereoViews
from stereoconv.converter import StereoConverter
from stereoconv.disparity.plan import DisparityPlan, ShotTracker
from stereoconv.jobs.video.frames import (
    DepthBatch,
    depth_batches,
    save_depth_maps,
    to_array,
    to_i420_array,
)
from stereoconv.jobs.video.job import Chunk, VideoJob
from stereoconv.jobs.video.records import ChunkRecord, FrameRecord, ViewChanges
from stereoconv.layout import arrange
from stereoconv.media.encode import ChunkEncoder
from stereoconv.media.spatial.encoder import SpatialChunkEncoder
from stereoconv.progress import Progress, silent
from stereoconv.report.stats import frame_stats


def convert_chunk(
    job: VideoJob,
    converter: StereoConverter,
    chunk: Chunk,
    progress: Progress = silent,
) -> ChunkRecord:
    """Convert one chunk to its file in the work folder; returns its statistics, also written
    beside it (a resumed job reads them back). `progress` hears ("frames", n, the job's frames)
    after each batch."""
    cfg, device = converter.config, converter.device
    plan = DisparityPlan.of(cfg, given=job.depth is not None, given_scale=job.given_scale)
    shots, changes = ShotTracker(plan, job.cuts, chunk.read_from), ViewChanges()
    views_of = converter.video_views()  # the chunk's own: a coherent fill keeps its frames
    frames_stats: list[FrameRecord] = []
    first_pts, evaluations = None, 0.0
    encoder = open_encoder(job, chunk)
    try:
        # 0. Decode from up to WINDOW frames before the chunk: the state of its first frame
        for batch in depth_batches(job, converter, chunk.read_from, chunk.stop):
            # 1. Scene cuts and the smoothed depth range, frames before the chunk included
            smoothed, cuts = shots.update(batch.frames, batch.relative, batch.indices)
            keep = [j for j, i in enumerate(batch.indices) if i >= chunk.first]
            if not keep:
                continue
            batch, cuts = batch.take(keep), [cuts[j] for j in keep]
            # 2. Pixel disparity at each frame's screen plane
            lo_hi = torch.tensor([smoothed[j] for j in keep], device=device)
            convergence = planned_convergence(job, batch.indices, device)
            disparity = plan.pixels(batch.relative, lo_hi[:, 0], lo_hi[:, 1], convergence)
            # 3. --save-depth: the estimated depth as 16-bit PNGs
            if job.save_depth is not None and not batch.given:
                save_depth_maps(job.save_depth, batch.indices, batch.relative)
            # 4. The two views
            views = views_of(batch.frames, disparity, cuts)
            left, right = views.left, views.right
            cost = views.unet_evaluations
            evaluations += 0.0 if cost is None else float(cost.sum())
            # 5. Flicker: each view's change from the frame before
            per_frame = changes.add(left, right)
            # 6. Per-frame statistics (--report)
            if job.collect_stats:
                frames_stats += frame_records(
                    job, plan, batch, cuts, disparity, views, convergence, per_frame
                )
            # 7. Pack the views and encode them
            first_pts = batch.pts[0] if first_pts is None else first_pts
            encoder.write(packed_frames(left, right, job), batch.pts)
            progress("frames", len(batch.indices), len(job.pts))
        count = encoder.close()
    except BaseException:
        encoder.abort()
        raise
    # 8. The chunk's statistics, atomically beside its video
    record = ChunkRecord(
        count, chunk.stop - chunk.first, first_pts, changes.sums, frames_stats, evaluations
    )
    record.write(job.chunk_stats(chunk))
    return record


def open_encoder(job: VideoJob, chunk: Chunk):
    """The chunk's encoder, the layout's kind: MV-HEVC (spatial video) or packed frames."""
    mv_hevc = job.encoder.layout.encoder == "mv-hevc"
    return (SpatialChunkEncoder if mv_hevc else ChunkEncoder)(job.chunk_video(chunk), job.encoder)


def planned_convergence(
    job: VideoJob, indices: list[int], device: torch.device
) -> torch.Tensor | None:
    """The screen plane of each frame (B,) from --convergence auto's plan; None without it."""
    if job.convergence_plan is None:
        return None
    return torch.tensor([job.convergence_plan[i] for i in indices], device=device)


def frame_records(
    job: VideoJob,
    plan: DisparityPlan,
    batch: DepthBatch,
    cuts: list[bool],
    disparity: torch.Tensor,
    views: StereoViews,
    convergence: torch.Tensor | None,
    per_frame: torch.Tensor,
) -> list[FrameRecord]:
    """The statistics of a batch's frames: the parallax of their disparity and, with
    --convergence auto, of what the configured screen plane would give; the share of the
    backend's holes and the UNet work of each; where they are; their flicker terms (the
    chunk's first frame has none)."""
    width, n = job.info.width, len(batch.indices)
    measured = frame_stats(disparity, width, views.holes)
    costs = [None] * n if views.unet_evaluations is None else views.unet_evaluations.tolist()
    fixed: list = [None] * n
    if convergence is not None:
        fixed = frame_stats(plan.without_auto(disparity, convergence, width), width)
    changes = [None] * (n - per_frame.shape[0]) + per_frame.tolist()
    records = []
    for i, pts, cut, stat, other, change, cost in zip(
        batch.indices, batch.pts, cuts, measured, fixed, changes, costs, strict=True
    ):
        records.append(
            FrameRecord(
                stat,
                index=i,
                time=float((pts - job.pts[0]) * job.info.time_base),
                cut=cut,
                convergence=job.convergence_plan[i] if job.convergence_plan else plan.convergence,
                change_left=None if change is None else change[0],
                change_right=None if change is None else change[1],
                violation_without_auto=None if other is None else other.violation,
                near_pct_without_auto=None if other is None else other.near_pct,
                unet_evaluations=cost,
            )
        )
    return records


def packed_frames(left: torch.Tensor, right: torch.Tensor, job: VideoJob):
    """The views as the encoder takes them: packed in the layout (both whole for the MV-HEVC
    encoder of spatial video), integers of the encoder's size and bit depth; 8-bit 4:2:0 packed
    frames are converted to it here, on the device."""
    enc, cfg = job.encoder, job.config
    (packed,) = arrange(left, right, enc.layout, cfg.max_size, cfg.vr180_hfov)
    if enc.pix_fmt == "yuv420p" and enc.layout.encoder == "packed":
        return to_i420_array(packed, enc.height, enc.width, enc.colour)
    return to_array(packed, enc.height, enc.width, enc.high_bit_depth)
