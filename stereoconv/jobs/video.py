"""Convert a video: frames stream through depth and a backend in batches, are encoded in chunks
of consecutive frames kept in a work folder beside the output, and are joined with the source's
audio, subtitles and metadata at the end.

A chunk is the unit of work and of resume: its file appears only once it is complete, so a
killed job, run again with the same command, converts only the chunks that are missing. The
temporal state a frame depends on (scene cuts, smoothed depth range) is rebuilt from the
WINDOW frames before each chunk, so chunks converted in any order, by any worker, give the same
frames as one pass.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from stereoconv import __version__, lock
from stereoconv.config import StereoConfig, check_ranges, setting
from stereoconv.converter import StereoConverter
from stereoconv.disparity.maps import DepthFrames, depth_from_values, zero_is_unknown
from stereoconv.disparity.plan import DisparityPlan, ShotTracker
from stereoconv.disparity.shots import WINDOW, thumbnails
from stereoconv.errors import UserError
from stereoconv.fileio import atomic_output
from stereoconv.layout import pack, packed_size, stack_views
from stereoconv.media.encode import (
    CODECS,
    ChunkEncoder,
    EncoderSettings,
    choose_codec,
    join_chunks,
    legal_size,
)
from stereoconv.media.mvhevc import SpatialChunkEncoder
from stereoconv.media.vexu import SpatialMetadata
from stereoconv.media.video import (
    VideoInfo,
    check_header,
    decode_range,
    frame_timestamps,
    probe,
    read_timestamps,
)
from stereoconv.report.stats import flicker_ratio, frame_change, frame_stats
from stereoconv.runner.threads import prefetch

CONTAINERS = (".mp4", ".mov", ".m4v", ".mkv")


@dataclass(frozen=True)
class VideoOptions:
    """Options of a video job besides the conversion settings; each is the CLI option of the
    same name."""

    codec: str = "libx264"  # libx264 | libx265
    crf: int = setting(18, "encoder quality", min=0, max=51)
    preset: str = "medium"
    pix_fmt: str = "auto"  # auto: yuv420p, or yuv420p10le for sources of more than 8 bits
    start: float | None = setting(None, "seconds", min=0, max=1e7)
    end: float | None = setting(None, "seconds", above=0, max=1e7)
    max_frames: int | None = setting(None, "frames", min=1, max=10**9)
    chunk_frames: int = setting(240, "frames per chunk", min=1, max=100_000)
    strict: bool = False  # a damaged input (frames lost or repeated) is an error

    def __post_init__(self) -> None:
        if self.codec not in CODECS:
            raise UserError(f"--codec must be one of {', '.join(CODECS)}, not {self.codec!r}")
        check_ranges(self)
        if self.end is not None and self.end <= (self.start or 0):
            raise UserError(f"--end ({self.end}) must be after --start ({self.start or 0})")


@dataclass(frozen=True)
class Chunk:
    index: int
    first: int  # index of its first frame in the converted range
    stop: int  # one past its last frame

    @property
    def name(self) -> str:
        return f"chunk-{self.index:06d}"


def plan_chunks(frames: int, chunk_frames: int) -> list[Chunk]:
    return [
        Chunk(i, first, min(first + chunk_frames, frames))
        for i, first in enumerate(range(0, frames, chunk_frames))
    ]


@dataclass(frozen=True)
class VideoJob:
    """Everything needed to convert any chunk of one video: plain data, cheap to send to a
    worker process."""

    input: Path
    output: Path
    config: StereoConfig
    options: VideoOptions
    info: VideoInfo
    pts: tuple[int, ...]  # presentation timestamps of the frames to convert
    encoder: EncoderSettings
    depth: Path | None  # depth video or folder, if given
    depth_offset: int  # its frame matching the first converted frame
    save_depth: Path | None
    workdir: Path
    # per frame, from --convergence auto: the screen plane (normalised depth), or for disparity
    # given in pixels the disparity put on the screen plane (pixels, subtracted)
    convergence_plan: tuple[float, ...] | None = None
    collect_stats: bool = False  # per-frame comfort statistics, for --report
    repeated: int = 0  # packets whose timestamp another one had (broken timestamps): dropped

    @property
    def chunks(self) -> list[Chunk]:
        return plan_chunks(len(self.pts), self.options.chunk_frames)

    def chunk_video(self, chunk: Chunk) -> Path:
        return self.workdir / f"{chunk.name}.mp4"

    def chunk_stats(self, chunk: Chunk) -> Path:
        return self.workdir / f"{chunk.name}.json"

    def is_done(self, chunk: Chunk) -> bool:
        return self.chunk_stats(chunk).is_file() and self.chunk_video(chunk).is_file()

    def fingerprint(self) -> str:
        """What makes finished chunks reusable: the same input file, range, settings and
        depth source."""
        stat = self.input.stat()
        data = {
            "input": [str(self.input.resolve()), stat.st_size, stat.st_mtime_ns],
            "config": dataclasses.asdict(self.config),
            # --strict decides only whether a damaged input is joined: the chunks are the same
            "options": {k: v for k, v in dataclasses.asdict(self.options).items() if k != "strict"},
            "frames": [len(self.pts), self.pts[0], self.pts[-1]],
            "depth": str(self.depth) if self.depth else None,
            "stats": self.collect_stats,
            "version": __version__,
        }
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def output_name(input_path: Path, layout: str, tag: str) -> str:
    """The output's name when OUT is a folder: the input's name with the stereo tag, in the
    input's container if it is one we write (.mov for spatial video, .mp4 otherwise)."""
    suffix = input_path.suffix.lower()
    if layout == "spatial":
        suffix = ".mov"
    elif suffix not in CONTAINERS:
        suffix = ".mp4"
    return f"{input_path.stem}{tag}{suffix}"


def prepare_job(
    config: StereoConfig,
    input_path: Path,
    output: Path,
    options: VideoOptions,
    depth: Path | None = None,
    save_depth: Path | None = None,
    overwrite: bool = False,
    notify: Callable[[str], None] = print,
    collect_stats: bool = False,
) -> VideoJob:
    """Validate everything, read the frame timestamps and set up (or reopen) the work folder."""
    input_path, output = Path(input_path), Path(output)
    if config.layout == "pair":
        raise UserError("--layout pair makes two files per picture; for video use sbs or tb")
    if config.layout == "spatial" and output.suffix.lower() != ".mov":
        raise UserError("--layout spatial writes Apple spatial video: name the output .mov")
    if output.suffix.lower() not in CONTAINERS:
        raise UserError(
            f"unsupported output container {output.suffix or '(none)'!r}: "
            f"use {', '.join(CONTAINERS)}"
        )
    if output.exists() and output.resolve() == input_path.resolve():
        raise UserError(f"output {output} is the input file; choose another name")
    info = probe(input_path)
    check_header(info, config.max_megapixels)
    if output.exists() and not overwrite:
        raise UserError(f"output {output} exists; pass --overwrite to replace it")
    pts, repeated = read_timestamps(input_path, options.start, options.end, options.max_frames)
    if not pts:
        raise UserError(f"{input_path}: no video frames in the asked range")
    whole = options.start is None and options.end is None and options.max_frames is None
    if whole and info.duration and info.frame_rate:
        promised = round(info.duration * info.frame_rate)
        if len(pts) < 0.95 * promised - 1:
            notify(
                f"{input_path} looks truncated: {len(pts)} frames where its header promises "
                f"about {promised}; converting the frames that are there"
            )
    depth_offset = 0
    if depth is not None and options.start:
        depth_offset = len(frame_timestamps(input_path, 0, options.start))
    pix_fmt = options.pix_fmt
    if pix_fmt == "auto":
        pix_fmt = "yuv420p10le" if info.high_bit_depth else "yuv420p"
    height, width = legal_size(*packed_size(info.height, info.width, config.layout))
    if config.layout == "spatial":  # MV-HEVC Multiview Main: 8-bit 4:2:0 HEVC (media/mvhevc.py)
        if pix_fmt != "yuv420p":
            notify(f"spatial video is 8-bit 4:2:0 HEVC (Multiview Main): yuv420p, not {pix_fmt}")
        pix_fmt, codec = "yuv420p", "libx265"
    else:
        codec, why = choose_codec(options.codec, width, "10" in pix_fmt)
        if why:
            notify(why)
    encoder = EncoderSettings(
        codec, options.crf, options.preset, pix_fmt, width, height, info.time_base,
        info.frame_rate, info.colour, config.layout,
    )  # fmt: skip
    workdir = output.with_name(f".{output.name}.stereoconv-work")
    job = VideoJob(
        input_path, output, config, options, info, tuple(pts), encoder, depth, depth_offset,
        save_depth, workdir, collect_stats=collect_stats, repeated=repeated,
    )  # fmt: skip
    if depth is not None and len(DepthFrames(depth, depth_offset)) < len(pts):
        raise UserError(f"--depth {depth} has fewer frames than the {len(pts)} to convert")
    lock.hold(output, notify)  # before the work folder: never touch a live run's work
    open_workdir(job, overwrite, notify)
    return job


def open_workdir(job: VideoJob, overwrite: bool, notify: Callable[[str], None]) -> None:
    """Create the work folder, or reuse it if it belongs to the same job (resume)."""
    marker = job.workdir / "job.json"
    fingerprint = job.fingerprint()
    if job.workdir.exists():
        try:
            same = json.loads(marker.read_text()).get("fingerprint") == fingerprint
        except (OSError, ValueError):
            same = False
        if same:
            done = sum(job.is_done(c) for c in job.chunks)
            if done:
                notify(f"resuming: {done} of {len(job.chunks)} chunks already converted")
            return
        if not overwrite:
            raise UserError(
                f"{job.workdir} holds unfinished work of another job (other input or settings); "
                "pass --overwrite to discard it"
            )
        shutil.rmtree(job.workdir)
    job.workdir.mkdir(parents=True)
    with atomic_output(marker) as tmp:
        tmp.write_text(json.dumps({"fingerprint": fingerprint, "output": str(job.output)}))


# --- one chunk --------------------------------------------------------------------------------


def batched(items: Iterable, size: int) -> Iterator[list]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def to_array(frames: torch.Tensor, height: int, width: int, high_bit_depth: bool) -> np.ndarray:
    """(B, 3, h, w) float in [0, 1] -> (B, height, width, 3) uint8 / uint16, edge-padded to the
    encoder's even size."""
    h, w = frames.shape[-2:]
    if (h, w) != (height, width):
        frames = F.pad(frames, (0, width - w, 0, height - h), mode="replicate")
    peak = 65535.0 if high_bit_depth else 255.0
    # to integers on the device: a quarter (8-bit) of the bytes cross to the host
    out = (frames.clamp(0, 1) * peak).round().permute(0, 2, 3, 1)
    if high_bit_depth:  # torch has no uint16 on every device: int32 there, uint16 here
        return out.to(torch.int32).cpu().numpy().astype(np.uint16)
    return out.to(torch.uint8).cpu().numpy()


def save_depth_maps(folder: Path, indices: list[int], relative: torch.Tensor) -> None:
    """Estimated relative disparity as 16-bit PNGs, min-max per frame (near = bright)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i, rel in zip(indices, relative, strict=True):
        lo, hi = rel.min(), rel.max()
        values = ((rel - lo) / (hi - lo).clamp_min(1e-12) * 65535).round().cpu().numpy()
        with atomic_output(folder / f"frame-{i:06d}.png") as tmp:
            Image.fromarray(values.astype(np.uint16)).save(tmp, format="PNG")


def depth_batches(
    job: VideoJob, converter: StereoConverter, first: int, stop: int
) -> Iterator[tuple[list[int], list[int], torch.Tensor, torch.Tensor, bool]]:
    """Frames first..stop-1 in batches, decoded ahead in a thread: (frame indices, their pts,
    frames (B, 3, H, W) in [0, 1] on the device, their depth, whether the depth was given).
    The depth is the --depth maps as --depth-kind reads them, or the model's estimate."""
    cfg, device = converter.config, converter.device
    index_of = {p: i for i, p in enumerate(job.pts[first:stop], start=first)}
    frames = decode_range(job.input, job.pts[first], job.pts[stop - 1], job.info)
    frames = prefetch(frames, ahead=2 * cfg.batch_size)  # decode while the GPU works
    depth_frames = None
    if job.depth:
        depth_frames = DepthFrames(job.depth, job.depth_offset, zero_is_unknown(cfg.depth_kind))
    peak = 65535.0 if job.info.high_bit_depth else 255.0
    decodable = ((index_of[p], p, f) for p, f in frames if p in index_of)
    for batch in batched(decodable, cfg.batch_size):
        indices = [i for i, _, _ in batch]
        rgb = torch.from_numpy(np.stack([f for _, _, f in batch]).astype(np.float32))
        x = (rgb.to(device) / peak).permute(0, 3, 1, 2)
        if depth_frames is None:
            yield indices, [p for _, p, _ in batch], x, converter.relative_disparity(x), False
            continue
        maps = depth_frames.read(indices[0], indices[-1] + 1)
        given = torch.cat([
            depth_from_values(v, k, cfg.depth_kind, job.info.height, job.info.width,
                              cfg.depth_scale) for v, k in maps
        ]).to(device)  # fmt: skip
        yield indices, [p for _, p, _ in batch], x, given, True


def convert_chunk(
    job: VideoJob,
    converter: StereoConverter,
    chunk: Chunk,
    on_frames: Callable[[int], None] | None = None,
) -> dict:
    """Convert one chunk to its file in the work folder; returns its statistics."""
    cfg, device, enc = converter.config, converter.device, job.encoder
    warm = max(0, chunk.first - WINDOW)
    plan = DisparityPlan.of(cfg, given=job.depth is not None)
    shots = ShotTracker(plan)
    flicker = {"left": 0.0, "right": 0.0, "pairs": 0}
    last_views, first_pts = None, None
    frames_stats: list[dict] = []
    encoder = (SpatialChunkEncoder if enc.layout == "spatial" else ChunkEncoder)(
        job.chunk_video(chunk), enc
    )
    try:
        for indices, pts_batch, x, relative, given in depth_batches(
            job, converter, warm, chunk.stop
        ):
            smoothed, cuts = shots.update(x, relative)
            keep = [j for j, i in enumerate(indices) if i >= chunk.first]
            if not keep:
                continue
            lo_hi = torch.tensor([smoothed[j] for j in keep], device=device)
            convergence = None
            if job.convergence_plan is not None:
                planes = [job.convergence_plan[indices[j]] for j in keep]
                convergence = torch.tensor(planes, device=device)
            disparity = plan.pixels(relative[keep], lo_hi[:, 0], lo_hi[:, 1], convergence)
            if job.save_depth is not None and not given:
                save_depth_maps(job.save_depth, [indices[j] for j in keep], relative[keep])
            left, right = converter.views(x[keep], disparity)
            views = torch.stack([thumbnails(left, 256), thumbnails(right, 256)], dim=1)
            if last_views is not None:
                views_all = torch.cat([last_views[None], views])
            else:
                views_all = views
            per_frame = frame_change(views_all[:-1], views_all[1:], 2)
            steps = per_frame.sum(0)
            flicker["left"] += steps[0].item()
            flicker["right"] += steps[1].item()
            flicker["pairs"] += views_all.shape[0] - 1
            if job.collect_stats:
                changes = [None] * (len(keep) - per_frame.shape[0]) + per_frame.tolist()
                measured = frame_stats(disparity, job.info.width)
                if job.convergence_plan is not None:  # what the configured plane would give
                    fixed = plan.without_auto(disparity, convergence, job.info.width)
                    fixed = frame_stats(fixed, job.info.width, holes=False)
                    for stat, other in zip(measured, fixed, strict=True):
                        stat["violation_without_auto"] = other["violation"]
                        stat["near_pct_without_auto"] = other["near_pct"]
                for j, change, stat in zip(keep, changes, measured, strict=True):
                    stat.update(
                        index=indices[j],
                        time=float((pts_batch[j] - job.pts[0]) * job.info.time_base),
                        cut=cuts[j],
                        convergence=(
                            job.convergence_plan[indices[j]]
                            if job.convergence_plan
                            else cfg.convergence
                        ),  # fmt: skip
                        change_left=None if change is None else change[0],
                        change_right=None if change is None else change[1],
                    )
                    frames_stats.append(stat)
            last_views = views[-1]
            if cfg.layout == "spatial":  # both views whole, for the MV-HEVC encoder
                packed = stack_views(left, right)
            else:
                packed = pack(left, right, cfg.layout)
            pts = [pts_batch[j] for j in keep]
            first_pts = pts[0] if first_pts is None else first_pts
            encoder.write(to_array(packed, enc.height, enc.width, enc.high_bit_depth), pts)
            if on_frames is not None:
                on_frames(len(keep))
        count = encoder.close()
    except BaseException:
        encoder.abort()
        raise
    stats = {
        "frames": count,
        "expected": chunk.stop - chunk.first,
        "first_pts": first_pts,
        "flicker": flicker,
        "frames_stats": frames_stats,
    }
    with atomic_output(job.chunk_stats(chunk)) as tmp:
        tmp.write_text(json.dumps(stats))
    return stats


def plan_convergence(job: VideoJob, converter: StereoConverter) -> VideoJob:
    """--convergence auto: a first pass over the depth of every frame finds, per shot, the
    screen plane that keeps the border bands behind it (at least the configured convergence;
    for disparity given in pixels, the least shift of it that does); the plan is part of the
    job, so every chunk and every worker uses the same one."""
    plan = DisparityPlan.of(converter.config, given=job.depth is not None)
    shots = ShotTracker(plan)
    nearness, cuts, decoded = [], [], []
    for indices, _, x, relative, _ in depth_batches(job, converter, 0, len(job.pts)):
        smoothed, batch_cuts = shots.update(x, relative)
        decoded += indices
        cuts += batch_cuts
        for r, (lo, hi) in zip(relative, smoothed, strict=True):
            nearness.append(plan.nearness(r, lo, hi))
    planes, default = plan.shot_planes(nearness, cuts)
    per_frame = dict(zip(decoded, planes, strict=True))
    plan = [per_frame.get(i, default) for i in range(len(job.pts))]
    return dataclasses.replace(job, convergence_plan=tuple(plan))


# --- the whole job --------------------------------------------------------------------------


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


def finish_job(job: VideoJob) -> tuple[list[str], dict]:
    """Join the chunks into the output and remove the work folder. Returns notes and totals
    (frames, flicker of each view and their ratio)."""
    stats = [json.loads(job.chunk_stats(c).read_text()) for c in job.chunks]
    chunks = [
        (job.chunk_video(c), s["first_pts"])
        for c, s in zip(job.chunks, stats, strict=True)
        if s["frames"]
    ]
    if not chunks:
        raise UserError(f"{job.input}: no frame could be decoded")
    frames = sum(s["frames"] for s in stats)
    expected = sum(s["expected"] for s in stats)
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
    if job.config.layout == "spatial":
        cfg = job.config
        spatial = SpatialMetadata.from_settings(cfg.spatial_baseline, cfg.spatial_hfov)
    notes = join_chunks(
        chunks,
        job.input,
        job.output,
        job.config.layout,
        start,
        end,
        job.pts[0],
        tb,
        spatial,
        job.info.frame_rate,
    )
    if damage:
        notes.append(damage)
    pairs = sum(s["flicker"]["pairs"] for s in stats)
    left = sum(s["flicker"]["left"] for s in stats) / max(pairs, 1)
    right = sum(s["flicker"]["right"] for s in stats) / max(pairs, 1)
    totals = {
        "frames": frames,
        "expected_frames": expected,
        "lost_frames": expected - frames,
        "repeated_frames": job.repeated,
        "flicker_left": left,
        "flicker_right": right,
        "flicker_ratio": flicker_ratio(left, right, undefined=1.0),
        "frames_stats": [f for s in stats for f in s.get("frames_stats", [])],
    }
    shutil.rmtree(job.workdir, ignore_errors=True)
    lock.release(job.output)
    return notes, totals


def convert_video(
    converter: StereoConverter,
    job: VideoJob,
    progress: Callable[[int], None] | None = None,
) -> tuple[list[str], dict]:
    """Convert every chunk that is not done yet, in one process, then join."""
    for chunk in job.chunks:
        if job.is_done(chunk):
            if progress is not None:
                progress(chunk.stop - chunk.first)
            continue
        convert_chunk(job, converter, chunk, progress)
    return finish_job(job)
