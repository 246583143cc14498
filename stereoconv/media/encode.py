"""Video out: encoding chunks of frames, and joining them with the source's audio, subtitles and
metadata into the final file by remuxing (no re-encode).

Each chunk is its own encoder run, so it starts with a keyframe and its GOPs are closed: chunks
made at different times, or by different workers, join into one valid stream.
"""

from __future__ import annotations

import contextlib
import errno
import heapq
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from stereoconv.errors import UserError
from stereoconv.fileio import atomic_output
from stereoconv.media.mp4box import add_st3d
from stereoconv.media.vexu import SpatialMetadata, add_vexu
from stereoconv.media.video import AV_ERRORS, ColourTags, open_input
from stereoconv.runner.threads import Background

CODECS = ("libx264", "libx265")
# x264's and x265's speed presets, fastest first
ENCODER_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow",
                   "slower", "veryslow", "placebo")  # fmt: skip
H264_MAX_WIDTH = 4096  # level 5.2; wider H.264 does not play on most hardware decoders
MATROSKA_STEREO_MODE = {"sbs": "left_right", "half-sbs": "left_right", "tb": "top_bottom",
                        "half-tb": "top_bottom", "sbs-rl": "right_left"}  # fmt: skip
# sbs-rl has no st3d mode and no x264 frame-packing SEI (both say left first): Matroska only
H264_FRAME_PACKING = {"sbs": 3, "half-sbs": 3, "tb": 4, "half-tb": 4}  # SEI frame_packing_type
# use_metadata_tags: the source's container tags are kept; faststart: moov before mdat
MOV_FLAGS = "use_metadata_tags+faststart"


@dataclass(frozen=True)
class EncoderSettings:
    codec: str  # libx264 | libx265
    crf: int
    preset: str
    pix_fmt: str  # yuv420p, yuv420p10le, ...
    width: int
    height: int
    time_base: Fraction
    frame_rate: Fraction | None
    colour: ColourTags
    layout: str

    @property
    def high_bit_depth(self) -> bool:
        return "10" in self.pix_fmt or "12" in self.pix_fmt


def legal_size(height: int, width: int) -> tuple[int, int]:
    """4:2:0 video needs even sides: the size the packed frame is padded to."""
    return height + height % 2, width + width % 2


def choose_codec(requested: str, width: int, high_bit_depth: bool) -> tuple[str, str | None]:
    """The codec to use and, if it differs from the request, the one-line reason."""
    if requested == "libx264" and width > H264_MAX_WIDTH:
        return "libx265", (
            f"{width} pixels is wider than H.264 allows ({H264_MAX_WIDTH}): encoding HEVC "
            "(libx265) instead; use --layout half-sbs to keep H.264"
        )
    if requested == "libx264" and high_bit_depth:
        return "libx265", "10-bit source: encoding HEVC Main 10 (libx265) to keep its bit depth"
    return requested, None


# Encoder threads, fixed: x264's and x265's output depends on their thread count, which by
# default follows the CPUs the process may use (taskset, cgroups, a Ray worker's node), so the
# same command would give other frames elsewhere, and a resumed or distributed job would splice
# chunks that do not match.
ENCODER_THREADS = 4


def _codec_options(settings: EncoderSettings) -> dict[str, str]:
    options = {"crf": str(settings.crf), "preset": settings.preset}
    options["threads"] = str(ENCODER_THREADS)
    if settings.codec == "libx264":
        params = []
        packing = H264_FRAME_PACKING.get(settings.layout)
        if packing is not None:
            params.append(f"frame-packing={packing}")
        if params:
            options["x264-params"] = ":".join(params)
    else:
        options["x265-params"] = f"log-level=0:frame-threads={ENCODER_THREADS // 2}"
        if settings.high_bit_depth:
            options["profile"] = "main10"
    return options


class ChunkEncoder:
    """Encodes one chunk of packed stereo frames to a video-only file, atomically: the file
    appears under its name only once the chunk is complete."""

    def __init__(self, path: Path, settings: EncoderSettings):
        self.settings = settings
        self._atomic = atomic_output(Path(path))
        tmp = self._tmp = self._atomic.__enter__()
        self.container = av.open(str(tmp), "w", format="mp4")
        stream = self.container.add_stream(
            settings.codec, rate=settings.frame_rate or 30, options=_codec_options(settings)
        )
        stream.width, stream.height, stream.pix_fmt = (
            settings.width,
            settings.height,
            settings.pix_fmt,
        )
        stream.time_base = settings.time_base
        cc = stream.codec_context
        cc.time_base = settings.time_base
        cc.thread_type = "FRAME"  # x264 / x265 frame threads; PyAV's default, slices, is slower
        colour = settings.colour
        cc.color_primaries, cc.color_trc = colour.primaries, colour.transfer
        cc.colorspace, cc.color_range = colour.matrix, colour.range
        self.stream = stream
        self.frames = 0
        # colour conversion and encoding run behind the caller, in their own thread
        self._writer = Background(self._encode)

    def write(self, frames: np.ndarray, pts: list[int]) -> None:
        """frames: (B, H, W, 3) uint8 or uint16 RGB, already of the encoder's size. Returns at
        once; the batch is encoded in the background."""
        self._writer.submit((frames, pts))

    def _encode(self, batch: tuple[np.ndarray, list[int]]) -> None:
        frames, pts = batch
        s = self.settings
        fmt = "rgb48le" if frames.dtype == np.uint16 else "rgb24"
        matrix = s.colour.matrix if s.colour.matrix != 2 else None
        for rgb, t in zip(frames, pts, strict=True):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format=fmt)
            frame = frame.reformat(
                format=s.pix_fmt, dst_colorspace=matrix, dst_color_range=s.colour.range or None
            )
            frame.pts, frame.time_base = t, s.time_base
            self.container.mux(self.stream.encode(frame))
            self.frames += 1

    def close(self) -> int:
        """Flush the encoder and put the file in place; returns the number of frames."""
        self._writer.close()
        self.container.mux(self.stream.encode())
        self.container.close()
        if not self._tmp.exists():  # no frame of the chunk could be decoded: an empty file
            self._tmp.write_bytes(b"")  # marks it done (the join passes it by)
        self._atomic.__exit__(None, None, None)
        return self.frames

    def abort(self) -> None:
        try:
            self._writer.close()
        except BaseException:  # noqa: BLE001  the error that made us abort is already on its way
            pass
        try:
            self.container.close()
        except AV_ERRORS:
            pass
        self._atomic.__exit__(RuntimeError, RuntimeError("aborted"), None)


# --- joining ---------------------------------------------------------------------------------


def _packets(path: Path, stream_index: int = 0) -> Iterator[av.Packet]:
    with av.open(str(path)) as container:
        stream = container.streams[stream_index]
        for packet in container.demux(stream):
            if packet.size == 0:  # the demuxer's flush packet
                continue
            yield packet


def _video_packets(
    chunks: list[tuple[Path, int]], offset_pts: int, source_tb: Fraction
) -> Iterator[av.Packet]:
    """The chunks' packets in order, shifted to start at 0, decode timestamps kept increasing
    across chunk borders. Each chunk comes with the pts its first frame must have: the MP4
    muxer may move a chunk's timestamps by a few ticks (its edit list), which this undoes.
    first_pts and offset_pts are in the source's time base."""
    last_dts = step = None
    for chunk, first_pts in chunks:
        with av.open(str(chunk)) as container:
            stream = container.streams.video[0]
            times = [(p.pts, p.dts) for p in container.demux(stream)
                     if p.size and p.pts is not None]  # fmt: skip
            chunk_tb = stream.time_base
        shift = round((first_pts - offset_pts) * source_tb / chunk_tb) - min(t for t, _ in times)
        # A chunk that reorders fewer frames than the one before (a short last chunk without
        # B-frames) starts its decode times later: lower them to follow on, or the gap becomes
        # a long sample in the MP4 index and a wrong average frame rate. Lower is always valid.
        dts_shift, first_dts = shift, times[0][1]
        if last_dts is not None and step and first_dts is not None:
            dts_shift = min(shift, last_dts + step - first_dts)
        for packet in _packets(chunk):
            packet.pts += shift
            packet.dts = packet.pts if packet.dts is None else packet.dts + dts_shift
            if last_dts is not None and packet.dts <= last_dts:
                packet.dts = last_dts + 1
            if last_dts is not None:
                step = packet.dts - last_dts
            last_dts = packet.dts
            yield packet


def _source_packets(container, stream, start: float, end: float | None) -> Iterator[av.Packet]:
    """Audio or subtitle packets of the source within [start, end) seconds, shifted so that the
    output starts at 0."""
    tb = stream.time_base
    lo, hi = start / tb, (None if end is None else end / tb)
    container.seek(int(start * av.time_base), backward=True)
    for packet in container.demux(stream):
        if packet.size == 0 or packet.pts is None:
            continue
        if packet.pts + (packet.duration or 0) <= lo:
            continue
        if hi is not None and packet.pts >= hi:
            break
        shift = int(round(lo))
        packet.pts -= shift
        packet.dts = packet.pts if packet.dts is None else packet.dts - shift
        yield packet


def _merge_by_time(streams: list[Iterator[av.Packet]]) -> Iterator[av.Packet]:
    """Interleave packet streams by decode time, so the muxer never buffers a whole stream."""

    def keyed(i, it):
        for n, p in enumerate(it):
            yield (float(p.dts * p.time_base), i, n, p)

    for _, _, _, packet in heapq.merge(*(keyed(i, s) for i, s in enumerate(streams))):
        yield packet


def _transcoded_audio(
    container, stream, target, start: float, end: float | None
) -> Iterator[av.Packet]:
    """Decode an audio stream within [start, end) seconds and encode it with `target` (AAC),
    timestamps from 0."""
    container.seek(int(start * av.time_base), backward=True)
    rate = target.codec_context.sample_rate
    for frame in container.decode(stream):
        if frame.time is None or frame.time + frame.samples / frame.sample_rate <= start:
            continue
        if end is not None and frame.time >= end:
            break
        frame.pts = int(round((frame.time - start) * rate))
        frame.time_base = Fraction(1, rate)
        yield from target.encode(frame)
    yield from target.encode(None)


def join_chunks(
    chunks: list[tuple[Path, int]],
    source: Path,
    output: Path,
    layout: str,
    start_seconds: float,
    end_seconds: float | None,
    offset_pts: int,
    source_tb: Fraction,
    spatial: SpatialMetadata | None = None,
    frame_rate: Fraction | None = None,
) -> list[str]:
    """Remux the encoded chunks with the source's audio and subtitle streams and container
    metadata into `output` (atomically); chunks are (file, pts of its first frame). Audio the
    container cannot take is re-encoded to AAC;
    such subtitles are left out. Returns one note per stream that was changed or left out.
    `spatial`: the chunks are MV-HEVC (--layout spatial); Apple's vexu / hfov are added.
    `frame_rate`: the source's average rate, declared on the output stream (Matroska's
    DefaultDuration is the time base without it: 12800 fps to ffprobe).
    MP4 / MOV files start with their index (moov before mdat, "fast start"), so that players
    streaming them from a server can begin before the whole file has arrived."""
    notes: list[str] = []
    suffix = output.suffix.lower()
    mov = suffix in (".mp4", ".mov", ".m4v")
    with atomic_output(output) as tmp, contextlib.ExitStack() as stack:
        out = stack.enter_context(
            av.open(str(tmp), "w", options={"movflags": MOV_FLAGS} if mov else {})
        )
        with av.open(str(chunks[0][0])) as first:
            template = first.streams.video[0]
            video = out.add_stream_from_template(template)
            video.time_base = template.time_base
            rate = frame_rate or template.average_rate
        if rate:  # the chunks' own declared rate is their time base's reciprocal
            video.codec_context.framerate = rate
        if mov and template.codec_context.name == "hevc":
            # hvc1 (parameter sets in the sample entry only), not FFmpeg's default hev1: Apple's
            # players play only hvc1; the chunks' encoders keep parameter sets out of the frames
            video.codec_tag = "hvc1"
        if spatial is not None:  # MV-HEVC: parameter sets in hvcC + lhvC only, both layers
            video.disposition = av.stream.Disposition.multilayer
        if suffix in (".mkv", ".webm") and layout in MATROSKA_STEREO_MODE:
            video.metadata["stereo_mode"] = MATROSKA_STEREO_MODE[layout]
        sources = [_routed(video, _video_packets(chunks, offset_pts, source_tb))]
        src = stack.enter_context(open_input(source))
        for key, value in src.metadata.items():
            if key.lower() not in ("encoder", "major_brand", "minor_version", "compatible_brands"):
                out.metadata[key] = value
        for stream in (*src.streams.audio, *src.streams.subtitles):
            reader = stack.enter_context(open_input(source))
            own = reader.streams[stream.index]
            name = stream.codec_context.name if stream.codec_context else "unknown"
            if name in out.supported_codecs:
                copy = out.add_stream_from_template(own)
                copy.metadata.update(stream.metadata)
                packets = _source_packets(reader, own, start_seconds, end_seconds)
                sources.append(_routed(copy, packets))
            elif stream.type == "audio" and "aac" in out.supported_codecs:
                aac = out.add_stream("aac", rate=own.codec_context.sample_rate)
                aac.layout = own.codec_context.layout
                aac.metadata.update(stream.metadata)
                notes.append(f"audio stream {stream.index} ({name}) re-encoded to AAC for {suffix}")
                packets = _transcoded_audio(reader, own, aac, start_seconds, end_seconds)
                sources.append(_routed(aac, packets))
            else:
                notes.append(f"{stream.type} stream {stream.index} ({name}) cannot go into "
                             f"{suffix or 'this container'}: left out")  # fmt: skip
        try:
            for packet in _merge_by_time(sources):
                out.mux(packet)
            out.close()
        except AV_ERRORS as exc:
            if getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT):
                raise  # a full disk: the command's own message, and the work is kept
            raise UserError(f"cannot write {output}: {exc}") from None
        if mov:
            add_st3d(tmp, layout)
        if spatial is not None:
            add_vexu(tmp, spatial)
    return notes


def _routed(target, packets: Iterator[av.Packet]) -> Iterator[av.Packet]:
    """Packets re-labelled for the output stream `target`."""
    for packet in packets:
        packet.stream = target
        yield packet
