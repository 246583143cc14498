"""Video in: probing, frame timestamps and streaming decode of a range of frames, with PyAV.

Frames come out as (H, W, 3) RGB arrays, upright (the display matrix of phone videos applied):
uint8 for 8-bit sources, uint16 for sources of more than 8 bits. Memory stays bounded: nothing
holds more than the frames a caller asks for at a time.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from stereoconv.errors import UserError

# Errors FFmpeg raises for files that are not (readable) media.
AV_ERRORS = (av.error.FFmpegError,)


@dataclass(frozen=True)
class ColourTags:
    """The colour description a video stream carries (FFmpeg's enum values)."""

    primaries: int = 2  # 2 = unspecified
    transfer: int = 2
    matrix: int = 2
    range: int = 0  # 0 = unspecified, 1 = limited (tv), 2 = full (pc)

    @property
    def hdr(self) -> bool:
        return self.transfer in (16, 18)  # SMPTE ST 2084 (PQ), ARIB STD-B67 (HLG)


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    width: int  # as displayed, rotation applied
    height: int
    rotation: int  # display rotation, degrees counter-clockwise (0, 90, 180, 270)
    time_base: Fraction
    frame_rate: Fraction | None  # average rate, None if unknown
    duration: float | None  # seconds
    pix_fmt: str
    bit_depth: int
    colour: ColourTags
    codec: str
    audio_codecs: tuple[str, ...] = ()
    subtitle_codecs: tuple[str, ...] = ()
    metadata: dict = field(default_factory=dict)

    @property
    def high_bit_depth(self) -> bool:
        return self.bit_depth > 8


def open_input(path: Path) -> av.container.InputContainer:
    """Open a media file, turning what FFmpeg says about bad files into one clear line."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"input not found: {path}")
    if path.is_dir():
        raise UserError(f"input {path} is a folder; give a video file")
    try:
        return av.open(str(path), metadata_errors="ignore")
    except AV_ERRORS as exc:
        raise UserError(f"cannot read video {path}: {exc.strerror or exc}") from None


def video_stream(container, path: Path):
    if not container.streams.video:
        raise UserError(f"{path} has no video stream")
    return container.streams.video[0]


def _bit_depth(pix_fmt: str | None) -> int:
    if not pix_fmt:
        return 8
    try:
        return max(c.bits for c in av.VideoFormat(pix_fmt).components)
    except (ValueError, AttributeError):
        return 8


def _rotation(container, stream) -> int:
    """Display rotation from the first decodable frame's display matrix (what FFmpeg applies
    when it autorotates), normalised to 0, 90, 180 or 270."""
    container.seek(0)
    try:
        for frame in container.decode(stream):
            return int(round(frame.rotation / 90.0)) % 4 * 90
    except AV_ERRORS:
        return 0
    return 0


def probe(path: Path) -> VideoInfo:
    """What the conversion needs to know about a video file."""
    with open_input(path) as container:
        stream = video_stream(container, path)
        cc = stream.codec_context
        rotation = _rotation(container, stream)
        width, height = cc.width, cc.height
        if rotation in (90, 270):
            width, height = height, width
        if width <= 0 or height <= 0:
            raise UserError(f"{path}: the video stream has no picture size")
        duration = None
        if stream.duration is not None and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        elif container.duration:
            duration = container.duration / av.time_base
        return VideoInfo(
            path=Path(path),
            width=width,
            height=height,
            rotation=rotation,
            time_base=stream.time_base or Fraction(1, 90000),
            frame_rate=stream.average_rate or stream.guessed_rate,
            duration=duration,
            pix_fmt=cc.pix_fmt or "yuv420p",
            bit_depth=_bit_depth(cc.pix_fmt),
            colour=ColourTags(
                int(cc.color_primaries),
                int(cc.color_trc),
                int(cc.colorspace),
                int(cc.color_range),
            ),
            codec=cc.name,
            audio_codecs=tuple(s.codec_context.name for s in container.streams.audio),
            subtitle_codecs=tuple(
                s.codec_context.name for s in container.streams.subtitles if s.codec_context
            ),
            metadata=dict(container.metadata),
        )


MAX_SIDE = 16384  # pixels: more than any camera films, and than HEVC allows
MAX_FRAME_RATE = 1000  # frames per second


def check_header(info: VideoInfo, max_megapixels: float) -> None:
    """Refuse a stream whose header claims a size or rate no real video has, before anything
    is decoded or allocated for it."""
    where = f"{info.path}: its header claims"
    megapixels = info.width * info.height / 1e6
    if max(info.width, info.height) > MAX_SIDE:
        raise UserError(
            f"{where} {info.width}x{info.height} pixels; sides over {MAX_SIDE} are refused"
        )
    if megapixels > max_megapixels:
        raise UserError(
            f"{where} {info.width}x{info.height} ({megapixels:.0f} megapixels), over the limit "
            f"of {max_megapixels:g}: raise --max-megapixels to convert it anyway"
        )
    if info.frame_rate is not None and not 0 < info.frame_rate <= MAX_FRAME_RATE:
        raise UserError(
            f"{where} {float(info.frame_rate):g} frames per second; "
            f"over {MAX_FRAME_RATE} are refused"
        )


def read_timestamps(
    path: Path, start: float | None = None, end: float | None = None, max_frames: int | None = None
) -> tuple[list[int], int]:
    """Presentation timestamps of the video frames in [start, end) seconds, in order and each
    once, read from the packets without decoding, and how many packets repeated a timestamp
    (broken timestamps: only the first frame of each is kept). They define frame indices for
    chunking and resume."""
    with open_input(path) as container:
        stream = video_stream(container, path)
        tb = stream.time_base
        pts = []
        try:
            for packet in container.demux(stream):
                if packet.size == 0 or packet.pts is None:
                    continue
                pts.append(packet.pts)
        except AV_ERRORS:
            pass  # a damaged tail: keep what could be read
    lo = None if start is None else start / tb
    hi = None if end is None else end / tb
    kept = [p for p in pts if (lo is None or p >= lo) and (hi is None or p < hi)]
    unique = sorted(set(kept))
    repeated = len(kept) - len(unique)
    return (unique[:max_frames] if max_frames else unique), repeated


@dataclass(frozen=True)
class RateCap:
    """What --max-fps keeps: the frames (their own timestamps: audio stays in sync), the rate
    the output declares, and a line for the user where the cap is not the asked rate."""

    kept: list[int]
    rate: Fraction | None
    note: str | None = None


def steady_rate(pts: list[int], time_base: Fraction) -> Fraction | None:
    """The rate of timestamps that step evenly (each step within a tick of the mean: a
    container's rounding, 33/34 ms at 29.97 fps in Matroska), else None (variable rate)."""
    if len(pts) < 2:
        return None
    mean = Fraction(pts[-1] - pts[0], len(pts) - 1)
    if mean <= 0 or any(abs(b - a - mean) > 1 for a, b in itertools.pairwise(pts)):
        return None
    return 1 / (mean * time_base)


def cap_frame_rate(
    pts: list[int], time_base: Fraction, max_fps: float | None, frame_rate: Fraction | None
) -> RateCap:
    """The frames to keep so that the rate stays at most max_fps, at a steady cadence: a
    source of steady rate keeps every k-th frame, the least k that brings it under the cap
    (60 fps capped at 30: every other frame; 25 capped at 12: every 3rd, 8.33 fps, said in the
    note), since any other choice repeats a longer gap now and then (a hitch, and a variable
    rate to players). A variable-rate source keeps the first frame of each 1 / max_fps slot.
    frame_rate: the source's declared rate (declared again where nothing is dropped)."""
    steady = steady_rate(pts, time_base)
    if not max_fps or len(pts) < 2:
        return RateCap(list(pts), frame_rate)
    cap = Fraction(max_fps).limit_denominator(1_000_000)
    if steady is not None:
        every = max(1, math.ceil(steady / cap * Fraction(999, 1000)))  # 29.97 under a 30 cap
        rate = steady / every if every > 1 else frame_rate or steady
        note = None
        if every > 1 and abs(rate - cap) > cap / 1000:
            note = (
                f"--max-fps {max_fps:g}: the {float(steady):.4g} fps source keeps a steady "
                f"cadence at {float(rate):.4g} fps (every {ordinal(every)} frame), the nearest "
                "rate under the cap"
            )
            if every > 2:
                faster = float(steady / (every - 1))
                note += f"; --max-fps {faster:.4g} keeps every {ordinal(every - 1)} frame"
        return RateCap(list(pts[::every]), rate, note)
    kept, last_slot = [], None
    for p in pts:
        slot = math.floor((p - pts[0]) * time_base * cap)
        if slot != last_slot:
            kept.append(p)
            last_slot = slot
    declared = Fraction(max_fps).limit_denominator(1001)
    return RateCap(kept, declared if frame_rate is None or frame_rate > declared else frame_rate)


def ordinal(n: int) -> str:
    """2nd, 3rd, 4th, ..."""
    last = 0 if n % 100 in (11, 12, 13) else n % 10
    return f"{n}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(last, 'th') }"


def frame_timestamps(
    path: Path, start: float | None = None, end: float | None = None, max_frames: int | None = None
) -> list[int]:
    """The timestamps of read_timestamps, without the count of repeated ones."""
    return read_timestamps(path, start, end, max_frames)[0]


def to_rgb(frame: av.VideoFrame, high_bit_depth: bool, rotation: int) -> np.ndarray:
    """A decoded frame as upright RGB: uint8, or uint16 for high bit depth sources."""
    rgb = frame.to_ndarray(format="rgb48le" if high_bit_depth else "rgb24")
    if rotation:
        rgb = np.rot90(rgb, k=rotation // 90)  # counter-clockwise, as the display matrix says
    return np.ascontiguousarray(rgb)


def decode_past_errors(container, stream) -> Iterator[av.VideoFrame]:
    """Every frame the decoder gives, packet by packet, as the ffmpeg command decodes: a packet
    the decoder rejects is passed by (it conceals what the frames after it miss); a damaged
    container ends the stream, and the decoder is drained either way."""
    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            break
        except AV_ERRORS:
            break  # the container cannot be read further: a damaged or truncated tail
        try:
            yield from stream.decode(packet)
        except AV_ERRORS:
            continue
    try:
        yield from stream.decode(None)  # drain (a no-op after the demuxer's own flush packet)
    except AV_ERRORS:
        pass


def decode_range(
    path: Path,
    first_pts: int,
    last_pts: int,
    info: VideoInfo,
    convert: Callable[[av.VideoFrame], np.ndarray] | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """(pts, RGB frame, or what `convert` makes of the frame) for every decodable frame with
    first_pts <= pts <= last_pts, in order and each pts once, seeking to the keyframe before
    the range first. Damaged packets are passed by as FFmpeg does; the caller counts the frames
    that never come. Where the seek lands past the range's start (MPEG-TS seeks by bytes and can
    skip a whole GOP), the range is decoded from the start of the file instead."""
    if convert is None:
        convert = functools.partial(
            to_rgb, high_bit_depth=info.high_bit_depth, rotation=info.rotation
        )
    for seek in (True, False):
        frames = _frames_from(path, first_pts if seek else None)
        first = next(frames, None)
        if first is not None and seek and first.pts > first_pts:
            frames.close()
            continue  # landed after the range began: decode from the start
        last = None
        try:
            for frame in itertools.chain([first] if first is not None else [], frames):
                if frame.pts < first_pts:
                    continue
                if frame.pts > last_pts:
                    break
                if last is not None and frame.pts <= last:
                    continue  # a repeated or backward timestamp: its slot is filled already
                last = frame.pts
                yield frame.pts, convert(frame)
        finally:
            frames.close()
        return


def _frames_from(path: Path, seek_pts: int | None) -> Iterator[av.VideoFrame]:
    """Decoded frames with a timestamp, after seeking to the keyframe before `seek_pts`
    (None: from the start)."""
    with open_input(path) as container:
        stream = video_stream(container, path)
        # slice threads only: frame threads lose more frames around a damaged packet, and
        # which ones depends on thread timing (the same file, two runs, other frames)
        stream.thread_type = "SLICE"
        if seek_pts is not None:
            try:
                container.seek(seek_pts, stream=stream, backward=True, any_frame=False)
            except AV_ERRORS:
                container.seek(0)  # a damaged index: decode from the start
        for frame in decode_past_errors(container, stream):
            if frame.pts is not None:
                yield frame
