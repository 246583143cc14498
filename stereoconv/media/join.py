"""Joining a video's encoded chunks with the source's audio, subtitles and metadata into the
final file by remuxing (no re-encode of the video), with the stereo metadata of its layout."""

from __future__ import annotations

import contextlib
import errno
import heapq
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av

from stereoconv.errors import UserError
from stereoconv.fileio import atomic_output
from stereoconv.layouts import Layout
from stereoconv.media.encode import MOV_FLAGS
from stereoconv.media.mp4box import add_st3d, signalled_header
from stereoconv.media.spatial.vexu import SpatialMetadata, add_vexu
from stereoconv.media.video import AV_ERRORS, open_input


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
            times = [
                (p.pts, p.dts) for p in container.demux(stream) if p.size and p.pts is not None
            ]
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


def _source_packets(
    container, stream, start: float, end: float | None, pre_roll: bool = False
) -> Iterator[av.Packet]:
    """Audio or subtitle packets of the source within [start, end) seconds, shifted so that the
    output starts at 0. pre_roll (audio into MP4 / MOV): also the packet before `start` and,
    from the source's beginning, every packet before its time 0 (AAC's priming, hidden by the
    source's edit list), at negative times: the muxer's edit list starts playback at 0, and the
    audio decodes to the source's samples (without them, its first 21 ms differ)."""
    tb = stream.time_base
    lo, hi = start / tb, (None if end is None else end / tb)
    container.seek(int((start - 1) * av.time_base), backward=True)  # a second early: pre-roll
    before: list[av.Packet] = []  # the pre-roll, until the first packet in the range
    for packet in container.demux(stream):
        if packet.size == 0 or packet.pts is None:
            continue
        if packet.pts + (packet.duration or 0) <= lo:
            if pre_roll:
                before = [p for p in before if p.pts < 0 and lo <= 0] + [packet]
            continue
        if hi is not None and packet.pts >= hi:
            break
        for early in (*before, packet):
            yield _shifted(early, int(round(lo)))
        before = []


def _shifted(packet: av.Packet, shift: int) -> av.Packet:
    packet.pts -= shift
    packet.dts = packet.pts if packet.dts is None else packet.dts - shift
    return packet


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
    layout: Layout,
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
        first_chunk = chunks[0][0]
        if not mov and layout.projection is not None:  # Matroska's Projection: from side data
            first_chunk = signalled_header(
                first_chunk, first_chunk.with_suffix(".head.mp4"), layout
            )
        with av.open(str(first_chunk)) as first:
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
        if suffix in (".mkv", ".webm") and layout.matroska is not None:
            video.metadata["stereo_mode"] = layout.matroska
        sources = [_routed(video, _video_packets(chunks, offset_pts, source_tb))]
        src = stack.enter_context(open_input(source))
        for key, value in src.metadata.items():
            if key.lower() not in ("encoder", "major_brand", "minor_version", "compatible_brands"):
                out.metadata[key] = value
        for stream in (*src.streams.audio, *src.streams.subtitles):
            reader = stack.enter_context(open_input(source))
            routed = _source_stream(out, reader, stream, start_seconds, end_seconds, suffix, notes)
            if routed is not None:
                sources.append(routed)
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


def _source_stream(
    out, reader, stream, start: float, end: float | None, suffix: str, notes: list[str]
):
    """The packets of one audio or subtitle stream of the source for the output `out`: copied
    where the container takes the codec, audio re-encoded to AAC where it does not, otherwise
    None (left out); a note for each change."""
    own = reader.streams[stream.index]
    name = stream.codec_context.name if stream.codec_context else "unknown"
    if name in out.supported_codecs:
        copy = out.add_stream_from_template(own)
        copy.metadata.update(stream.metadata)
        pre_roll = stream.type == "audio" and suffix in (".mp4", ".mov", ".m4v")  # edit lists
        return _routed(copy, _source_packets(reader, own, start, end, pre_roll))
    if stream.type == "audio" and "aac" in out.supported_codecs:
        aac = out.add_stream("aac", rate=own.codec_context.sample_rate)
        aac.layout = own.codec_context.layout
        aac.metadata.update(stream.metadata)
        notes.append(f"audio stream {stream.index} ({name}) re-encoded to AAC for {suffix}")
        return _routed(aac, _transcoded_audio(reader, own, aac, start, end))
    notes.append(
        f"{stream.type} stream {stream.index} ({name}) cannot go into "
        f"{suffix or 'this container'}: left out"
    )
    return None


def _routed(target, packets: Iterator[av.Packet]) -> Iterator[av.Packet]:
    """Packets re-labelled for the output stream `target`."""
    for packet in packets:
        packet.stream = target
        yield packet
