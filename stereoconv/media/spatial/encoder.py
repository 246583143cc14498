"""The spatial video encoder: each chunk's two views encoded by two x265 encoders with the same
fixed GOP structure, joined access unit by access unit into one MV-HEVC stream (mvhevc.py), in an
MP4 file with the interface and the atomic, background writing of encode.ChunkEncoder."""

from __future__ import annotations

import io
from collections import deque
from pathlib import Path

import av
import numpy as np

from stereoconv.media.encode import (
    ENCODER_THREADS,
    X265_FRAME_THREADS,
    ChunkEncoderBase,
    EncoderSettings,
    set_colour,
    timed,
)
from stereoconv.media.spatial.hevc import MvHevcError, annexb
from stereoconv.media.spatial.mvhevc import ViewJoiner


def x265_options(settings) -> dict[str, str]:
    """x265 settings that give both views the same GOP structure: no scene-cut keyframes,
    fixed B-frames, closed GOPs, keyframes every two seconds; no encoder-info SEI; the thread
    counts pinned as for every chunk (media/encode.py), so the file is the same on any CPUs."""
    fps = float(settings.frame_rate or 30)
    keyint = max(1, round(2 * fps))
    params = [
        "log-level=0",
        f"keyint={keyint}",
        f"min-keyint={keyint}",
        "scenecut=0",
        "b-adapt=0",
        "bframes=3",
        "open-gop=0",
        "info=0",
        "aud=0",
        "hash=0",
        "repeat-headers=1",
        X265_FRAME_THREADS,
    ]
    return {
        "crf": str(settings.crf),
        "preset": settings.preset,
        "threads": str(ENCODER_THREADS),
        "x265-params": ":".join(params),
    }


class SpatialChunkEncoder(ChunkEncoderBase):
    """Encodes one chunk of stereo frames to a video-only MV-HEVC file (hvc1 with hvcC and
    lhvC). Each frame it is given holds the left view on top of the right one
    (layout.stack_views); the container opens with the first joined access unit."""

    def __init__(self, path: Path, settings: EncoderSettings):
        super().__init__(path, settings)
        self.path = Path(path)
        self.view_height = settings.height // 2
        self._encoders = [self._open_encoder() for _ in range(2)]
        self._pending: tuple[deque, deque] = (deque(), deque())
        self._joiner = ViewJoiner(float(settings.frame_rate or 30))
        self.stream = None

    def _open_encoder(self):
        s = self.settings
        cc = av.CodecContext.create("libx265", "w")
        cc.width, cc.height, cc.pix_fmt = s.width, s.height // 2, "yuv420p"
        cc.time_base = s.time_base
        if s.frame_rate:
            cc.framerate = s.frame_rate
        cc.options = x265_options(s)
        cc.thread_type = "FRAME"
        set_colour(cc, s.colour)
        return cc

    def _encode_frame(self, rgb: np.ndarray, pts: int, fmt: str) -> None:
        h = self.view_height
        for i, view in enumerate((rgb[:h], rgb[h : 2 * h])):
            frame = self.yuv_frame(view, pts, fmt, "yuv420p")
            self._pending[i].extend(self._encoders[i].encode(frame))
        self._mux_ready()

    def _mux_ready(self) -> None:
        left, right = self._pending
        while left and right:
            a, b = left.popleft(), right.popleft()
            if (a.pts, a.dts) != (b.pts, b.dts):
                raise MvHevcError("the two views' encoders went out of step")
            unit = self._joiner.join(bytes(a), bytes(b))
            if self.container is None:
                self._open_container(unit)
            packet = av.Packet(unit)
            packet.pts, packet.dts, packet.time_base = a.pts, a.dts, self.settings.time_base
            packet.is_keyframe = a.is_keyframe
            packet.stream = self.stream
            self.container.mux(packet)

    def _open_container(self, first_unit: bytes) -> None:
        """The output stream, modelled on the first access unit as FFmpeg's raw HEVC demuxer
        sees it, with the joined parameter sets as extradata and the hvc1 tag (parameter sets
        only in the sample entry, as Apple's players want)."""
        headers = annexb(self._joiner.parameter_sets)
        with av.open(io.BytesIO(headers + first_unit), format="hevc") as raw:
            self.container = av.open(str(self._tmp), "w", format="mp4")
            stream = self.container.add_stream_from_template(raw.streams.video[0])
        stream.codec_context.extradata = headers
        stream.codec_tag = "hvc1"
        stream.disposition = av.stream.Disposition.multilayer
        stream.time_base = self.settings.time_base
        set_colour(stream.codec_context, self.settings.colour)
        self.stream = stream

    def _flush(self) -> None:
        """Both encoders flushed, their last access units joined."""
        for i, encoder in enumerate(self._encoders):
            self._pending[i].extend(timed(encoder.encode(None), "libx265", self.frames))
        self._mux_ready()
        if self._pending[0] or self._pending[1]:
            raise MvHevcError("the two views' encoders returned different numbers of frames")
