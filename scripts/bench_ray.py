"""Throughput of the diffusion backend through the whole `video` job: in-process on one GPU,
through Ray on one GPU, and through Ray on every GPU of the machine.

    PYTHONPATH=$PWD/scripts:$PYTHONPATH python scripts/bench_ray.py --out ray.json

Stable Diffusion 1.5 and Depth Anything V2 Small with random weights (configs in bench_gpu.py),
a 512x512 clip made here, the benchmark settings (the default preset), the same frames per
batch and frames per chunk everywhere. Model loading and CUDA warm-up are outside the timings:
each setup first converts one warm-up chunk.
"""

from __future__ import annotations

import argparse
import datetime
import json
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch

from stereoconv.config import StereoConfig, build_config
from stereoconv.converter import StereoConverter
from stereoconv.jobs.video.finish import finish_job
from stereoconv.jobs.video.job import VideoOptions, open_workdir, prepare_job
from stereoconv.runner.local import convert_video


def random_sd15_converter(config: StereoConfig, device: torch.device) -> StereoConverter:
    """The product's converter on random-weight SD 1.5 and Depth Anything V2 Small."""
    from bench_gpu import build_depth, build_sd15

    from stereoconv.backends.diffusion import DiffusionBackend

    backend = DiffusionBackend.of(build_sd15(device, torch.bfloat16), config)
    return StereoConverter(config, device, build_depth(device, torch.float16), backend)


def tiny_converter(config: StereoConfig, device: torch.device) -> StereoConverter:
    """--smoke: the tiny test models on the CPU, to check this script without a GPU."""
    from stereoconv import testing as tiny_models
    from stereoconv.backends.diffusion import DiffusionBackend
    from stereoconv.diffusion.components import load_components
    from stereoconv.disparity.estimate import DepthEstimator

    folder = Path(tempfile.mkdtemp())
    sd = tiny_models.make_tiny_stable_diffusion(folder / "sd")
    da = tiny_models.make_tiny_depth_anything(folder / "da")
    backend = DiffusionBackend.of(load_components(str(sd), device), config)
    return StereoConverter(config, device, DepthEstimator(str(da), "cpu"), backend)


def make_clip(path: Path, frames: int, size: int = 512) -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=24, options={"preset": "ultrafast"})
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        y, x = np.mgrid[0:size, 0:size]
        for i in range(frames):
            img = np.stack([(x + 3 * i) % 256, (y + i) % 256, (x * y // 64) % 256], -1)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(img.astype(np.uint8))))
        out.mux(stream.encode())
    return path


def new_job(config, clip, out: Path, chunk: int, max_frames=None):
    options = VideoOptions(chunk_frames=chunk, max_frames=max_frames)
    job = prepare_job(config, clip, out, options, overwrite=True, notify=lambda t: None)
    open_workdir(job, True, lambda t: None)
    return job


def timed(fn) -> float:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def main() -> None:
    import ray

    from stereoconv.runner.ray import make_actors, run_chunks

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--chunk", type=int, default=16)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--smoke", action="store_true", help="tiny models, 2 CPU workers")
    args = parser.parse_args()
    gpus = 2 if args.smoke else torch.cuda.device_count()
    factory = tiny_converter if args.smoke else random_sd15_converter
    device = torch.device("cpu" if args.smoke else "cuda:0")
    tmp = Path(tempfile.mkdtemp())
    clip = make_clip(tmp / "clip.mp4", args.frames, 64 if args.smoke else 512)
    config = build_config(backend="diffusion", batch_size=args.batch, steps=5 if args.smoke else 50)
    rows = {}

    def record(name: str, seconds: float) -> None:
        rows[name] = {"seconds": seconds, "fps": args.frames / seconds}
        print(f"{name:28s} {seconds:7.1f} s  {args.frames / seconds:6.2f} frames/s", flush=True)

    # 1. in-process, one GPU
    converter = factory(config, device)
    convert_video(converter, new_job(config, clip, tmp / "warm.mp4", args.chunk, args.chunk))
    job = new_job(config, clip, tmp / "local.mp4", args.chunk)
    record("in-process, 1 GPU", timed(lambda: convert_video(converter, job)))
    converter = None  # free the first GPU for an actor
    torch.cuda.empty_cache()

    # 2. Ray, one actor per GPU
    if args.smoke:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    else:
        ray.init(num_gpus=gpus, include_dashboard=False, log_to_driver=False)
    for n in sorted({1, gpus}):
        actors = make_actors(config, n, use_gpus=not args.smoke, factory=factory)
        warm = new_job(config, clip, tmp / f"warm{n}.mp4", args.chunk, args.chunk * n)
        run_chunks(warm, actors)
        job = new_job(config, clip, tmp / f"ray{n}.mp4", args.chunk)

        def run(job=job, actors=actors):
            run_chunks(job, actors)
            finish_job(job)

        record(f"Ray, {n} GPU{'s' if n > 1 else ''}", timed(run))
        for actor in actors:
            ray.kill(actor)
    base = rows["in-process, 1 GPU"]["fps"]
    for row in rows.values():
        row["vs_in_process"] = row["fps"] / base
    report = {
        "date": datetime.date.today().isoformat(),
        "card": "cpu (smoke)" if args.smoke else torch.cuda.get_device_name(0),
        "gpus": gpus,
        "frames": args.frames,
        "frames_per_chunk": args.chunk,
        "frames_per_batch": args.batch,
        "size": "64x64" if args.smoke else "512x512",
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    for name, row in rows.items():
        print(f"{name:28s} {row['vs_in_process']:.2f}x in-process")


if __name__ == "__main__":
    main()
