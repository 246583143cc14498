"""Where the carried fill's per-frame time goes on the machine it runs on (issue 27's `fast`
target): 720p real footage through the carry alone (no decode, no encode), each step of
CarryFill.frame timed with the device synchronised around it, then the whole carry with no
extra synchronisation in 1, 2, 4, ... threads at once (one chunk each, each on its own CUDA
stream, as runner.local runs them), so that launch and synchronisation costs and the GIL show
apart from the UNet. (fill_holes is also counted inside frame_warp; dis_flow runs in the flow
threads beside the rest, so "the rest" can be negative.)

    python scripts/profile_carry.py --footage bikes.mp4 --frames 64 --preset fast --vae TAESD
"""

from __future__ import annotations

import argparse
import collections
import functools
import sys
import threading
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_video import build_depth, footage_clip, save_sd15  # noqa: E402
from profile_threads import ThreadCpu  # noqa: E402

import stereoconv.backends.carry as carry  # noqa: E402
from stereoconv.config import build_config  # noqa: E402
from stereoconv.converter import StereoConverter  # noqa: E402
from stereoconv.disparity.plan import DisparityPlan  # noqa: E402
from stereoconv.tensors import own_stream  # noqa: E402

# the names CarryFill.frame calls, timed one by one
STEPS = (
    "frame_warp",
    "greys_for_flow",
    "dis_flow",  # in the flow threads, beside the rest
    "full_size_flow",
    "carried",
    "fill_holes",
    "generation_holes",
    "hybrid_composite",
)


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def decode(clip: Path, device: torch.device) -> torch.Tensor:
    """(N, 3, H, W) float frames in [0, 1] on `device`."""
    import av

    with av.open(str(clip)) as container:
        arrays = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    x = torch.stack([torch.from_numpy(a) for a in arrays]).to(device)
    return x.permute(0, 3, 1, 2).float() / 255


def timed_steps(totals: collections.Counter) -> dict:
    """Wrap carry's STEPS (and the backend's fill) with synchronised timers; the originals."""
    originals = {name: getattr(carry, name) for name in STEPS}

    def timer(name, fn):
        @functools.wraps(fn)
        def wrapped(*args, **kwargs):
            sync()
            start = time.perf_counter()
            out = fn(*args, **kwargs)
            sync()
            totals[name] += time.perf_counter() - start
            return out

        return wrapped

    for name, fn in originals.items():
        setattr(carry, name, timer(name, fn))
    return originals


def run_chunk(backend, frames, disparity, batch: int) -> None:
    fill = carry.CarryFill(backend)
    for start in range(0, len(frames), batch):
        cuts = [start + i == 0 for i in range(min(batch, len(frames) - start))]
        fill(frames[start : start + batch], disparity[start : start + batch], cuts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--footage", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench-video"))
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--preset", default="default")
    parser.add_argument("--vae", help="e.g. a TAESD folder (the fast preset's hub id is offline)")
    parser.add_argument("--threads", default="1,2,4,8", help="chunks at once to time")
    parser.add_argument("--cv2-threads", type=int, help="OpenCV's threads (default: its own)")
    parser.add_argument(
        "--smoke", action="store_true", help="tiny models, the CPU: checks the script"
    )
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if args.cv2_threads:
        import cv2

        cv2.setNumThreads(args.cv2_threads)
    width, height = (int(n) for n in args.size.split("x"))
    args.work.mkdir(parents=True, exist_ok=True)
    if args.smoke:
        from stereoconv import testing

        sd = testing.make_tiny_stable_diffusion(args.work / "sd-tiny")
        depth = str(testing.make_tiny_depth_anything(args.work / "da-tiny"))
        width, height = 128, 72
    else:
        sd = save_sd15(args.work / "sd15-random")
        build_depth(device, torch.float16)  # saves its folder
        depth = "/tmp/bench-dav2-small"
    clip = footage_clip(
        args.footage, args.work / f"carry{height}p{args.frames}.mp4", args.frames, width, height
    )
    options = {"model": str(sd), "depth_model": depth}
    if args.vae:
        options["vae"] = args.vae
    config = build_config(args.preset, **options)
    converter = StereoConverter(config, device)
    converter.load_models()
    frames = decode(clip, device)
    with torch.no_grad():
        relative = torch.cat(
            [converter.relative_disparity(frames[i : i + 8]) for i in range(0, len(frames), 8)]
        )
        plan = DisparityPlan.of(config)
        low, high = plan.range(relative)
        disparity = plan.pixels(relative, low, high)
        backend = converter.backend
        batch = config.batch_size
        run_chunk(backend, frames[:batch], disparity[:batch], batch)  # warm-up
        totals: collections.Counter = collections.Counter()
        originals = timed_steps(totals)
        sync()
        start = time.perf_counter()
        run_chunk(backend, frames, disparity, batch)
        sync()
        whole = time.perf_counter() - start
        for name, fn in originals.items():
            setattr(carry, name, fn)
        n = len(frames)
        print(f"one chunk, synchronised around each step: {1000 * whole / n:.1f} ms / frame")
        for name, seconds in totals.most_common():
            print(f"  {name:20s} {1000 * seconds / n:7.1f} ms / frame")
        print(f"  {'(the rest)':20s} {1000 * (whole - sum(totals.values())) / n:7.1f} ms / frame")
        if device.type == "cuda":  # where the host waits for the device, line by line
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                torch.cuda.set_sync_debug_mode("warn")
                run_chunk(backend, frames, disparity, batch)
                torch.cuda.set_sync_debug_mode("default")
            places = collections.Counter(
                f"{Path(w.filename).name}:{w.lineno}"
                for w in caught
                if "synchron" in str(w.message)
            )
            print(f"synchronisations: {sum(places.values()) / n:.1f} a frame")
            for place, count in places.most_common(20):
                print(f"  {place:32s} {count / n:5.2f} a frame")
        for k in (int(t) for t in args.threads.split(",")):

            def work():
                with torch.no_grad(), own_stream(device):
                    run_chunk(backend, frames, disparity, batch)

            seconds, busy, delay = in_threads(work, k)
            print(
                f"{k} chunks at once: "
                f"{1000 * seconds / (k * n):.1f} ms / frame ({k * n / seconds:.1f} frames / s); "
                f"cores busy by thread: {busy}; GIL probe delay mean {1e3 * delay:.2f} ms",
                flush=True,
            )


def in_threads(work, k: int) -> tuple[float, dict[str, float], float]:
    """work() in k threads at once: the wall seconds, the cores each kind of thread kept busy,
    and the mean delay of a 1 ms sleep in a probe thread beside them (a contended GIL)."""
    threads = [threading.Thread(target=work, name="chunk") for _ in range(k)]
    cpu, delays, stop = ThreadCpu(), [], threading.Event()

    def probe() -> None:
        while not stop.is_set():
            start = time.perf_counter()
            time.sleep(0.001)
            delays.append(time.perf_counter() - start - 0.001)
            if len(delays) % 100 == 0:
                cpu.sample()

    cpu.sample()
    before = dict(cpu.seconds)  # CPU time of the threads already there, taken off at the end
    prober = threading.Thread(target=probe, daemon=True, name="probe")
    sync()
    start = time.perf_counter()
    for t in [*threads, prober]:
        t.start()
    for t in threads:
        t.join()
    sync()
    seconds = time.perf_counter() - start
    stop.set()
    prober.join()
    cpu.sample()
    cpu.seconds = {tid: v - before.get(tid, 0.0) for tid, v in cpu.seconds.items()}
    busy = {name: round(v / seconds, 2) for name, v in cpu.by_kind().items() if v > 0.05}
    return seconds, busy, sum(delays) / max(1, len(delays))


if __name__ == "__main__":
    main()
