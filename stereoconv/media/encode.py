"""Video out: encoding chunks of frames (joining them into the final file: join.py).

Each chunk is its own encoder run, so it starts with a keyframe and its GOPs are closed: chunks
made at different times, or by different workers, join into one valid stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from stereoconv.fileio import atomic_output
from stereoconv.layouts import Layout
from stereoconv.media.framepacking import sei_nal, with_sei
from stereoconv.media.video import AV_ERRORS, ColourTags
from stereoconv.overlap import Background

H264_MAX_WIDTH = 4096  # level 5.2; wider H.264 does not play on most hardware decoders
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
    layout: Layout  # its H.264 frame-packing SEI type, if any, goes into the stream

    @property
    def high_bit_depth(self) -> bool:
        return high_bit_depth(self.pix_fmt)


def high_bit_depth(pix_fmt: str) -> bool:
    """More than 8 bits a sample (config.PIX_FMTS: 10 or 12)."""
    return "10" in pix_fmt or "12" in pix_fmt


def legal_size(height: int, width: int) -> tuple[int, int]:
    """4:2:0 video needs even sides: the size the packed frame is padded to."""
    return height + height % 2, width + width % 2


def choose_codec(requested: str, width: int, pix_fmt: str, asked: bool) -> tuple[str, str | None]:
    """The codec to use and, if it differs from the request, the one-line reason. asked: the
    pixel format is --pix-fmt's (else the source's bit depth chose it)."""
    if requested == "libx264" and width > H264_MAX_WIDTH:
        return "libx265", (
            f"{width} pixels is wider than H.264 allows ({H264_MAX_WIDTH}): encoding HEVC "
            "(libx265) instead; use --layout half-sbs to keep H.264"
        )
    if requested == "libx264" and high_bit_depth(pix_fmt):
        why = f"--pix-fmt {pix_fmt} is more than 8-bit" if asked else "10-bit source"
        return "libx265", f"{why}: encoding HEVC (libx265) to keep the bit depth"
    return requested, None


# Encoder threads, fixed: x264's and x265's output depends on their thread count, which by
# default follows the CPUs the process may use (taskset, cgroups, a Ray worker's node), so the
# same command would give other frames elsewhere, and a resumed or distributed job would splice
# chunks that do not match.
ENCODER_THREADS = 4
# x265's own frame threads (its wavefront threads leave the output alone): every HEVC encoder
# of the product passes this, the spatial video's two views included
X265_FRAME_THREADS = f"frame-threads={ENCODER_THREADS // 2}"


# x265 (as FFmpeg 8.1's libx265 calls it) computes a packet's decode time from its B-frame
# delay, which it learns only from the third frame on: the packets of a stream of one or two
# frames carry uninitialised decode times, garbage about once in two tries (the MP4 muxer:
# "pts/dts pair unsupported"; the spatial encoder: its two views out of step). Such a stream is
# not reordered: its decode times are its presentation times, as x265 gives them when that
# memory happens to hold zero.
X265_UNTIMED_FRAMES = 2


def timed(packets: list[av.Packet], codec: str, frames: int) -> list[av.Packet]:
    """The flushed packets of an encoder given `frames` frames, their decode times set where
    x265 leaves them unset (X265_UNTIMED_FRAMES)."""
    if codec == "libx265" and frames <= X265_UNTIMED_FRAMES:
        for packet in packets:
            packet.dts = packet.pts
    return packets


def _codec_options(settings: EncoderSettings) -> dict[str, str]:
    options = {"crf": str(settings.crf), "preset": settings.preset}
    options["threads"] = str(ENCODER_THREADS)
    if settings.codec == "libx265":  # (the frame-packing SEI: ChunkEncoder, framepacking.py)
        # no profile: x265 takes the one of its input (Main 10 for yuv420p10le, RExt for 4:2:2,
        # 4:4:4 and 12-bit, which a fixed main10 would refuse)
        options["x265-params"] = f"log-level=0:{X265_FRAME_THREADS}"
    return options


class ChunkEncoderBase:
    """What every chunk encoder shares: the chunk's file appears under its name only once the
    chunk is complete (atomic_output); RGB batches are converted and encoded behind the caller,
    in their own thread; a chunk without frames leaves an empty file (done, passed by when
    joining). Subclasses open `container` and encode one frame at a time (`_encode_frame`),
    and flush their encoders (`_flush`)."""

    def __init__(self, path: Path, settings: EncoderSettings):
        self.settings = settings
        self._atomic = atomic_output(Path(path))
        self._tmp = self._atomic.__enter__()
        self.container = None
        self.frames = 0
        # colour conversion and encoding run behind the caller, in their own thread
        self._writer = Background(self._encode)

    def write(self, frames: np.ndarray, pts: list[int]) -> None:
        """frames of the encoder's size: (B, H, W, 3) uint8 or uint16 RGB, or (B, H * 3 // 2, W)
        uint8 yuv420p already in the stream's colours (jobs/video/frames.to_i420_array). Returns
        at once; the batch is encoded in the background."""
        self._writer.submit((frames, pts))

    def _encode(self, batch: tuple[np.ndarray, list[int]]) -> None:
        frames, pts = batch
        if frames.ndim == 3:
            fmt = "yuv420p"
        else:
            fmt = "rgb48le" if frames.dtype == np.uint16 else "rgb24"
        for picture, t in zip(frames, pts, strict=True):
            self._encode_frame(picture, t, fmt)
            self.frames += 1

    def yuv_frame(self, picture: np.ndarray, pts: int, fmt: str, pix_fmt: str) -> av.VideoFrame:
        """A picture in `fmt` as a frame of the encoder's pixel format and colour tags (RGB is
        converted by swscale; yuv420p, converted on the device, is taken as it is)."""
        s = self.settings
        frame = frame_from_array(picture, fmt)
        if fmt != pix_fmt:
            matrix = s.colour.matrix if s.colour.matrix != 2 else None
            frame = frame.reformat(
                format=pix_fmt, dst_colorspace=matrix, dst_color_range=s.colour.range or None
            )
        frame.pts, frame.time_base = pts, s.time_base
        return frame

    def _encode_frame(self, rgb: np.ndarray, pts: int, fmt: str) -> None:
        raise NotImplementedError

    def _flush(self) -> None:
        raise NotImplementedError

    def close(self) -> int:
        """Flush the encoder and put the file in place; returns the number of frames."""
        self._writer.close()
        self._flush()
        if self.container is not None:
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
        if self.container is not None:
            try:
                self.container.close()
            except AV_ERRORS:
                pass
        self._atomic.__exit__(RuntimeError, RuntimeError("aborted"), None)


def frame_from_array(picture: np.ndarray, fmt: str) -> av.VideoFrame:
    """A new frame holding `picture`, laid out as PyAV's arrays are: yuv420p (H * 3 // 2, W) as
    I420 (even sides), rgb24 / rgb48le (H, W, 3). Copied plane by plane with numpy: PyAV's
    from_ndarray copies row by row holding the GIL, 2.1 against 0.3 ms a 3840x1080 yuv420p frame
    on the development machine, and the chunks' encoder threads share one GIL."""
    want = (np.uint16, 3) if fmt == "rgb48le" else (np.uint8, 2 if fmt == "yuv420p" else 3)
    if (picture.dtype, picture.ndim) != want or (fmt == "yuv420p" and picture.shape[0] % 3):
        kind = f"{np.dtype(want[0]).name}, {want[1]}-D"
        raise ValueError(f"{fmt} frames are {kind} arrays, not {picture.dtype} {picture.shape}")
    if fmt == "yuv420p":
        height, width = picture.shape[0] * 2 // 3, picture.shape[1]
        flat, luma = picture.reshape(-1), width * height
        planes = [
            flat[:luma].reshape(height, width),
            flat[luma : luma * 5 // 4].reshape(height // 2, width // 2),
            flat[luma * 5 // 4 :].reshape(height // 2, width // 2),
        ]
    else:
        height, width = picture.shape[:2]
        packed = np.ascontiguousarray(picture, dtype="<u2" if fmt == "rgb48le" else np.uint8)
        planes = [packed.view(np.uint8).reshape(height, -1)]
    frame = av.VideoFrame(width, height, fmt)
    for plane, rows in zip(frame.planes, planes, strict=True):
        buffer = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)
        buffer[: rows.shape[0], : rows.shape[1]] = rows
    return frame


def set_colour(cc, colour: ColourTags) -> None:
    """The colour description of a codec context."""
    cc.color_primaries, cc.color_trc = colour.primaries, colour.transfer
    cc.colorspace, cc.color_range = colour.matrix, colour.range


class ChunkEncoder(ChunkEncoderBase):
    """Encodes one chunk of packed stereo frames to a video-only MP4 file (H.264 or HEVC)."""

    def __init__(self, path: Path, settings: EncoderSettings):
        super().__init__(path, settings)
        self.container = av.open(str(self._tmp), "w", format="mp4")
        stream = self.container.add_stream(
            settings.codec, rate=settings.frame_rate or 30, options=_codec_options(settings)
        )
        stream.width, stream.height = settings.width, settings.height
        stream.pix_fmt = settings.pix_fmt
        stream.time_base = settings.time_base
        cc = stream.codec_context
        cc.time_base = settings.time_base
        cc.thread_type = "FRAME"  # x264 / x265 frame threads; PyAV's default, slices, is slower
        set_colour(cc, settings.colour)
        self.stream = stream

    def _encode_frame(self, rgb: np.ndarray, pts: int, fmt: str) -> None:
        frame = self.yuv_frame(rgb, pts, fmt, self.settings.pix_fmt)
        self.container.mux(self._signalled(self.stream.encode(frame)))

    def _flush(self) -> None:
        flushed = timed(self.stream.encode(), self.settings.codec, self.frames)
        self.container.mux(self._signalled(flushed))

    def _signalled(self, packets: list[av.Packet]) -> list[av.Packet]:
        """The packets with the layout's frame-packing SEI in each keyframe (H.264 and HEVC
        alike), for players that read only the bitstream."""
        if self.settings.layout.frame_packing is None:
            return packets
        hevc = self.settings.codec == "libx265"
        nal = sei_nal(self.settings.layout, hevc)
        out = []
        for packet in packets:
            if packet.is_keyframe:
                signalled = av.Packet(with_sei(bytes(packet), nal, hevc))
                signalled.pts, signalled.dts = packet.pts, packet.dts
                signalled.time_base, signalled.duration = packet.time_base, packet.duration
                signalled.is_keyframe, signalled.stream = True, packet.stream
                packet = signalled
            out.append(packet)
        return out
