"""The warp `video` job's stages one at a time, on the machine it runs on: where a 1080p full-SBS
frame's time goes (decode, the host-device copies, RGB to YUV, x264), alone and with several
chunks at once, so that the end-to-end figure of bench_video.py can be explained.

    python scripts/bench_warp_parts.py --image im0.png --out parts.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_video import make_clip  # noqa: E402

from stereoconv.jobs.video.frames import to_array, to_i420_array  # noqa: E402
from stereoconv.layouts import layout_of  # noqa: E402
from stereoconv.media.encode import EncoderSettings, _codec_options  # noqa: E402
from stereoconv.media.video import ColourTags, decode_range, probe  # noqa: E402


def rate(count: int, seconds: float) -> float:
    return round(count / seconds, 1)


def at_once(work, copies: int) -> float:
    """Frames per second of `copies` runs of work() (each returns its frame count) in threads."""
    start = time.perf_counter()
    with ThreadPoolExecutor(copies) as pool:
        frames = sum(pool.map(lambda _: work(), range(copies)))
    return rate(frames, time.perf_counter() - start)


def decode_fps(clip: Path, copies: int) -> float:
    info = probe(clip)

    def work() -> int:
        return sum(1 for _ in decode_range(clip, 0, 10**9, info))

    return at_once(work, copies)


def sbs_frames(clip: Path, count: int) -> np.ndarray:
    """(count, H, 2W, 3) uint8: each decoded frame beside itself shifted 8 px (a stand-in right
    view with the x264 cost of real content)."""
    info = probe(clip)
    frames = [f for _, f in decode_range(clip, 0, 10**9, info)][:count]
    return np.stack([np.concatenate([f, np.roll(f, 8, axis=1)], axis=1) for f in frames])


def swscale_fps(rgb: np.ndarray, copies: int) -> float:
    def work() -> int:
        for frame in rgb:
            av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(format="yuv420p")
        return len(rgb)

    return at_once(work, copies)


def x264_fps(frames: list[av.VideoFrame], preset: str, copies: int, work_dir: Path) -> float:
    h, w = frames[0].height, frames[0].width
    sbs = layout_of("sbs")
    settings = EncoderSettings(
        "libx264", 18, preset, "yuv420p", w, h, Fraction(1, 24), Fraction(24), ColourTags(), sbs
    )

    def work() -> int:
        path = work_dir / f"x264-{preset}-{os.getpid()}-{time.perf_counter_ns()}.mp4"
        with av.open(str(path), "w") as out:
            stream = out.add_stream("libx264", rate=24, options=_codec_options(settings))
            stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
            stream.codec_context.thread_type = "FRAME"
            for i, frame in enumerate(frames):
                frame.pts = i
                out.mux(stream.encode(frame))
            out.mux(stream.encode())
        path.unlink()
        return len(frames)

    return at_once(work, copies)


def copies_ms(rgb: np.ndarray, device: torch.device, batch: int = 8) -> dict:
    """ms per frame of the host-device copies, as the job makes them, at batch `batch`."""
    host = rgb[:batch, :, : rgb.shape[2] // 2]  # the source frames
    sync = torch.cuda.synchronize if device.type == "cuda" else lambda: None
    packed = torch.from_numpy(rgb[:batch]).to(device).permute(0, 3, 1, 2).float() / 255
    h, w = packed.shape[-2:]
    steps = {
        "upload_float_on_host": lambda: torch.from_numpy(host.astype(np.float32)).to(device),
        "upload_uint8": lambda: torch.from_numpy(host).to(device).float(),
        "download_rgb24": lambda: to_array(packed, h, w, False),
        "download_i420": lambda: to_i420_array(packed, h, w, ColourTags(matrix=1, range=1)),
    }
    result = {}
    for name, step in steps.items():
        step()
        sync()
        start = time.perf_counter()
        for _ in range(5):
            step()
        sync()
        result[name] = round((time.perf_counter() - start) / 5 / batch * 1000, 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench-parts"))
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--frames", type=int, default=96)
    parser.add_argument("--presets", default="medium,faster,veryfast,superfast")
    parser.add_argument("--copies", default="1,4,8", help="runs at once")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    width, height = (int(n) for n in args.size.split("x"))
    copies = [int(n) for n in args.copies.split(",")]
    clip = make_clip(args.image, args.work / f"src{height}p.mp4", args.frames, width, height)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    rgb = sbs_frames(clip, args.frames)
    i420 = [av.VideoFrame.from_ndarray(f, format="rgb24").reformat(format="yuv420p") for f in rgb]
    report = {
        "date": datetime.date.today().isoformat(),
        "card": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "cores": len(os.sched_getaffinity(0)),
        "command": "python scripts/bench_warp_parts.py " + " ".join(sys.argv[1:]),
        "packed_size": f"{rgb.shape[2]}x{rgb.shape[1]}",
        "ms_per_frame_copies": copies_ms(rgb, device),
        "fps": {},
    }
    for n in copies:
        report["fps"][f"decode_{height}p_x{n}"] = decode_fps(clip, n)
        report["fps"][f"swscale_rgb_to_yuv420p_x{n}"] = swscale_fps(rgb, n)
        for preset in args.presets.split(","):
            report["fps"][f"x264_{preset}_x{n}"] = x264_fps(i420, preset, n, args.work)
        print(json.dumps(report, indent=1), flush=True)
    args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
