"""The warp backend's kernel alone (warp_view + fill_holes, what WarpBackend.synthesise runs per
right view) at 1080p: frames per second on the device, on Motorcycle's views and measured
disparity resized to the size asked (disparity scaled with the width), a batch at a time; a
synthetic scene of the same kind where scikit-image is not installed.

    python scripts/bench_warp_kernel.py --device cuda --out warp-kernel.json

No model, no decode, no encode: the figure the issue-28 target (>= 200 frames / s on the GPU at
1080p) is about. Run it from any checkout: it times whatever stereoconv is on the path.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from stereoconv.backends.warp import WarpBackend
from stereoconv.geometry import fill_unknown_disparity


def synthetic_scene(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A stand-in for Motorcycle where scikit-image is absent: 741 x 500 smooth random texture,
    a slanted background (disparity 7-20 px) and a few near blocks (35-60 px) with some
    unknown pixels, so that the warp meets depth edges, holes and cracks as on a real scene."""
    rng = np.random.default_rng(seed)
    h, w = 500, 741
    texture = smooth_texture(rng.random((h // 8, w // 8, 3)), h, w)
    disparity = np.tile(np.linspace(7, 20, w, dtype=np.float32), (h, 1))
    for _ in range(6):
        y, x = rng.integers(0, h - 120), rng.integers(0, w - 160)
        disparity[y : y + rng.integers(40, 120), x : x + rng.integers(30, 160)] = rng.uniform(
            35, 60
        )
    disparity[rng.random((h, w)) < 0.02] = np.nan
    return (texture * 255).astype(np.uint8), disparity


def smooth_texture(small: np.ndarray, h: int, w: int) -> np.ndarray:
    t = torch.from_numpy(small).permute(2, 0, 1)[None].float()
    return F.interpolate(t, size=(h, w), mode="bicubic")[0].permute(1, 2, 0).clamp(0, 1).numpy()


def scene_batch(width: int, height: int, batch: int, device: torch.device):
    """(frames (B, 3, H, W) in [0, 1], disparity (B, H, W) px, the scene's name) from
    Motorcycle (or the synthetic stand-in), resized."""
    try:
        from skimage import data

        left, _, disparity = data.stereo_motorcycle()
        name = "Motorcycle (scikit-image)"
    except ImportError:
        left, disparity = synthetic_scene()
        name = "synthetic (scikit-image absent)"
    d = torch.from_numpy(np.where(np.isfinite(disparity), disparity, np.nan).astype(np.float32))
    d = fill_unknown_disparity(d[None], torch.isfinite(d[None]))
    frame = torch.from_numpy(np.ascontiguousarray(left)).permute(2, 0, 1)[None].float() / 255
    frame = F.interpolate(frame, size=(height, width), mode="bilinear", align_corners=False)
    d = F.interpolate(d[None], size=(height, width), mode="nearest")[0] * (width / left.shape[1])
    frames = frame.expand(batch, -1, -1, -1).contiguous().to(device)
    return frames, d.expand(batch, -1, -1).contiguous().to(device), name


def time_kernel(frames, disparity, repeats: int, device: torch.device) -> list[float]:
    """Seconds per batch of each repeat, after one warm-up batch."""
    backend = WarpBackend(views="right", fill_sigma=3.0)
    sync = torch.cuda.synchronize if device.type == "cuda" else lambda: None
    with torch.inference_mode():
        backend.synthesise(frames, disparity)
        sync()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            backend.synthesise(frames, disparity)
            sync()
            times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, help="torch's CPU threads (default: torch's)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    width, height = (int(n) for n in args.size.split("x"))
    device = torch.device(args.device)
    frames, disparity, scene = scene_batch(width, height, args.batch, device)
    times = time_kernel(frames, disparity, args.repeats, device)
    median = float(np.median(times))
    report = {
        "date": datetime.date.today().isoformat(),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "cores": len(os.sched_getaffinity(0)),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "command": "python scripts/bench_warp_kernel.py " + " ".join(sys.argv[1:]),
        "scene": scene,
        "size": f"{width}x{height}",
        "batch": args.batch,
        "seconds_per_batch": [round(t, 4) for t in times],
        "ms_per_frame": round(median / args.batch * 1000, 2),
        "frames_per_second": round(args.batch / median, 1),
    }
    print(json.dumps(report, indent=1))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
