"""The end of a video job: the chunks joined into the output with the source's audio,
subtitles and metadata, and the job's totals."""

from __future__ import annotations

import shutil

from stereoconv.errors import UserError
from stereoconv.jobs.video.job import VideoJob
from stereoconv.jobs.video.records import ChunkRecord, VideoTotals
from stereoconv.media.join import join_chunks
from stereoconv.media.spatial.vexu import SpatialMetadata
from stereoconv.report.stats import flicker_ratio


def damage_note(expected: int, lost: int, repeated: int) -> str | None:
    """One line on what a damaged input cost, or None if nothing was lost or repeated."""
    if not lost and not repeated:
        return None
    parts = []
    if lost:
        parts.append(
            f"{lost} of {expected} frames could not be decoded and are left out (the frames "
            "around them keep their times)"
        )
    if repeated:
        parts.append(f"{repeated} frames repeated the timestamp of another and were dropped")
    return "damaged input: " + "; ".join(parts)


def finish_job(job: VideoJob) -> tuple[list[str], VideoTotals]:
    """Join the chunks into the output and remove the work folder. Returns notes and the
    job's totals."""
    stats = [ChunkRecord.read(job.chunk_stats(c)) for c in job.chunks]
    chunks = [
        (job.chunk_video(c), s.first_pts)
        for c, s in zip(job.chunks, stats, strict=True)
        if s.frames
    ]
    if not chunks:
        raise UserError(f"{job.input}: no frame could be decoded")
    frames = sum(s.frames for s in stats)
    expected = sum(s.expected for s in stats)
    damage = damage_note(expected, expected - frames, job.repeated)
    if damage and job.options.strict:
        raise UserError(
            f"--strict: {damage}; the converted frames are kept: without --strict the same "
            "command writes the output"
        )
    tb = job.info.time_base
    start = float(job.pts[0] * tb)
    trimmed = job.options.end is not None or job.options.max_frames is not None
    end = None
    if trimmed:
        step = job.pts[-1] - job.pts[-2] if len(job.pts) > 1 else 0
        end = float((job.pts[-1] + step) * tb)
    spatial = None
    if job.encoder.layout.encoder == "mv-hevc":  # Apple's players read its stereo from vexu
        cfg = job.config
        spatial = SpatialMetadata.from_settings(cfg.spatial_baseline, cfg.spatial_hfov)
    notes = join_chunks(
        chunks,
        job.input,
        job.output,
        job.encoder.layout,
        start,
        end,
        job.pts[0],
        tb,
        spatial,
        job.encoder.frame_rate,
    )
    if damage:
        notes.append(damage)
    pairs = sum(s.flicker.pairs for s in stats)
    left = sum(s.flicker.left for s in stats) / max(pairs, 1)
    right = sum(s.flicker.right for s in stats) / max(pairs, 1)
    totals = VideoTotals(
        frames,
        expected,
        job.repeated,
        left,
        right,
        flicker_ratio(left, right, undefined=1.0),
        [f.to_json() for s in stats for f in s.frames_stats],
        sum(s.unet_evaluations for s in stats),
    )
    shutil.rmtree(job.workdir, ignore_errors=True)
    return notes, totals
