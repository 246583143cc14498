"""Damaged and hostile files, made from real ones: an H.264 clip with bytes of chosen packets
overwritten, a PNG whose header claims a huge size, Matroska files whose headers claim absurd
sizes or rates; and a converter whose worker process dies on a poisoned picture."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import av
import numpy as np
from PIL import Image

from tests.helpers.clips import numbered_frame, write_clip


def packets(path: Path) -> list[tuple[int, int, int]]:
    """(pts, byte offset, size) of the video packets, in file order."""
    with av.open(str(path)) as container:
        return [(p.pts, p.pos, p.size) for p in container.demux(video=0) if p.size]


def damage_packets(source: Path, path: Path, which: list[int]) -> Path:
    """A copy of `source` with the payload of packets `which` (file order) overwritten by 0xff,
    past each packet's 4-byte length prefix: the container stays readable, the codec data not."""
    data = bytearray(source.read_bytes())
    for _, pos, size in (packets(source)[i] for i in which):
        data[pos + 4 : pos + size] = b"\xff" * (size - 4)
    path.write_bytes(bytes(data))
    return path


def damaged_clip(path: Path, which: list[int], frames: int = 96) -> Path:
    """A real H.264 MP4 of numbered frames (25 fps), damaged in packets `which`."""
    whole = write_clip(
        path.with_name("whole-" + path.name), [numbered_frame(i) for i in range(frames)]
    )
    return damage_packets(whole, path, which)


def ffmpeg_decodable(path: Path) -> list[float]:
    """Times of the frames FFmpeg's decoder gives for a damaged file, decoding packet by packet
    and passing by the packets it rejects (as the ffmpeg command does), on one thread."""
    times = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "SLICE"
        for packet in container.demux(stream):
            try:
                times += [float(f.time) for f in stream.decode(packet)]
            except av.error.FFmpegError:
                continue
    return sorted(times)


def bomb_png(path: Path, width: int = 60000, height: int = 60000) -> Path:
    """A real 1x1 PNG whose IHDR chunk is rewritten to claim width x height (CRC fixed)."""
    buf = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    ihdr = 16  # the 8-byte signature, then IHDR's length and type
    data[ihdr : ihdr + 8] = struct.pack(">II", width, height)
    data[ihdr + 13 : ihdr + 17] = struct.pack(">I", zlib.crc32(bytes(data[ihdr - 4 : ihdr + 13])))
    path.write_bytes(bytes(data))
    return path


def raw_mkv(path: Path, width: int = 256, height: int = 256, rate_ns: int | None = None) -> Path:
    """A real 3-frame 256x256 grey Matroska file whose header is then rewritten to claim
    width x height (up to 65535) and, if given, a frame duration of rate_ns nanoseconds."""
    with av.open(str(path), "w", format="matroska") as out:
        stream = out.add_stream("rawvideo", rate=25)
        stream.width = stream.height = 256
        stream.pix_fmt = "gray"
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(np.full((256, 256), 50 * i, np.uint8), "gray")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    data = bytearray(path.read_bytes())
    for element, value in ((b"\xb0\x82", width), (b"\xba\x82", height)):  # PixelWidth, -Height
        at = data.index(element + (256).to_bytes(2, "big"))
        data[at + 2 : at + 4] = value.to_bytes(2, "big")
    if rate_ns is not None:
        at = data.index(bytes.fromhex("23e383"))  # DefaultDuration
        size = data[at + 3] & 0x0F
        data[at + 4 : at + 4 + size] = rate_ns.to_bytes(size, "big")
    path.write_bytes(bytes(data))
    return path


def dying_factory(config, device):
    """A converter whose process dies on pictures 37 pixels wide (a poisoned input), and once
    on the first batch it sees if config.prompt (unused by the warp backend) names a marker
    file that does not exist yet (a worker lost for another reason)."""
    from stereoconv.converter import StereoConverter

    converter = StereoConverter(config, device)
    real = converter.views
    marker = config.prompt

    def views(frames, disparity):
        if disparity.shape[-1] == 37:
            os._exit(1)
        if marker and not os.path.exists(marker):
            open(marker, "w").close()
            os._exit(1)
        return real(frames, disparity)

    converter.views = views
    return converter


def broken_timestamps_clip(path, frames: int = 48, copy_to: int = 20):
    """An MPEG-TS H.264 clip whose PES packet `copy_to` carries the timestamps of the packet
    before it: a frame that repeats another's time, as muxers with broken clocks write."""
    with av.open(str(path), "w", format="mpegts") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 128, 64, "yuv420p"
        stream.options = {"g": "12"}
        for i in range(frames):
            image = av.VideoFrame.from_ndarray(numbered_frame(i), format="rgb24")
            for packet in stream.encode(image):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    data = bytearray(path.read_bytes())
    starts, i = [], data.find(b"\x00\x00\x01\xe0")  # video PES headers
    while i >= 0:
        starts.append(i)
        i = data.find(b"\x00\x00\x01\xe0", i + 4)
    a, b = starts[copy_to - 1], starts[copy_to]
    length = data[a + 8]  # PES header data length: the PTS (and DTS) fields
    data[b + 9 : b + 9 + length] = data[a + 9 : a + 9 + length]
    path.write_bytes(bytes(data))
    return path
