"""What the shot pass (--shots transnet, the default) costs a warp `video` job: the whole command
with --shots threshold (no pass) and with --shots transnet, alternated, and the pass alone split
into its decode at 48x27 and its network.

    python scripts/bench_shots.py --image MOTORCYCLE/im0.png --size 1920x1080 --frames 2400 \
        --out shots-cost.json [--input real.mp4] [-- extra video options]

The clip is bench_video's pan across the picture (24 fps) with the scene's own disparity as a
lossless gray video (`--depth`, disparity-px), the warp job of docs/benchmarks.md; --input
converts another video instead, with the default depth model unless a --depth is in the extra
options. Each command runs in this process (bench_video.run_cli) after a warm-up on the first
48 frames.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_video import make_clip, run_cli, sync  # noqa: E402


def pass_parts(clip: Path, work: Path, device: torch.device, chunk_frames: int) -> dict:
    """The pass alone: seconds for the whole pass (ShotPass, its segments where the chunks
    begin), for its decode to 48x27 alone (the same segments in threads), and for the network
    alone over every frame."""
    from stereoconv.config import VideoOptions, build_config
    from stereoconv.disparity import transnet
    from stereoconv.jobs.video import shots
    from stereoconv.jobs.video.job import prepare_job
    from stereoconv.overlap import available_cores, ordered_map

    config = build_config(backend="warp")
    options = VideoOptions(shots="threshold", chunk_frames=chunk_frames)  # prepare only
    job = prepare_job(config, clip, work / "parts.mp4", options, overwrite=True, notify=print)
    transnet.load_network(device)
    starts = [c.first for c in job.chunks]
    start = time.perf_counter()
    whole = shots.ShotPass(job.input, job.pts, job.info, starts, device, work / "shots.json")
    whole.join()
    pass_seconds = time.perf_counter() - start
    n = len(job.pts)
    ranges = [
        (max(0, w.start * transnet.STEP - transnet.CONTEXT), shots.window_end(w.stop - 1, n) + 1)
        for w in shots.segments(n, starts)
    ]

    def decode(part: tuple[int, int]) -> list:
        return list(shots.decoded_thumbnails(job.input, job.pts, job.info, *part))

    start = time.perf_counter()
    parts = list(ordered_map(decode, ranges, available_cores()))
    decoded = time.perf_counter() - start
    frames = [t for _, t in sorted(dict(x for part in parts for x in part).items())]
    sync()
    start = time.perf_counter()
    probabilities = transnet.transition_probabilities(iter(frames), device)
    sync()
    network = time.perf_counter() - start
    return {
        "frames": n,
        "segments": len(ranges),
        "pass_alone_s": round(pass_seconds, 3),
        "decode_48x27_s": round(decoded, 3),
        "decode_fps": round(n / decoded, 1),
        "network_s": round(network, 3),
        "network_fps": round(n / network, 1),
        "cuts": len(transnet.cut_frames(probabilities)),
    }


class ChunkWaits:
    """Seconds the chunks spend waiting for the pass's cuts (ShotPass.cuts_between), summed
    over the chunks and the longest single wait, while installed."""

    def __init__(self) -> None:
        from stereoconv.jobs.video import shots

        self.shots, self.real = shots, shots.ShotPass.cuts_between
        self.waits: list[float] = []

    def __enter__(self):
        real, waits = self.real, self.waits

        def timed(pass_, first: int, stop: int):
            start = time.perf_counter()
            try:
                return real(pass_, first, stop)
            finally:
                if not threading.current_thread().name.startswith("stereoconv-shots"):
                    waits.append(time.perf_counter() - start)  # not the pass's own, at its end

        self.shots.ShotPass.cuts_between = timed
        return self

    def __exit__(self, *exc) -> None:
        self.shots.ShotPass.cuts_between = self.real


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, help="the scene the clip pans over")
    parser.add_argument("--input", type=Path, help="a video to convert instead of the pan")
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--frames", type=int, default=2400)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench-shots"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("extra", nargs="*", help="more `video` options, after --")
    args = parser.parse_args()
    command = "python scripts/bench_shots.py " + " ".join(sys.argv[1:])  # run_cli replaces argv
    args.work.mkdir(parents=True, exist_ok=True)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    width, height = (int(n) for n in args.size.split("x"))
    base = ["--backend", "warp", "--overwrite", "--quiet", *args.extra]
    if args.input is not None:
        clip, what = args.input, str(args.input)
    else:
        name = f"pan{height}p{args.frames}"
        clip = make_clip(args.image, args.work / f"{name}.mp4", args.frames, width, height)
        depth = make_clip(
            args.image.with_name("disp0.pfm"),
            args.work / f"{name}-disparity.mkv",
            args.frames,
            width,
            height,
            gray=True,
        )
        base += ["--depth", str(depth), "--depth-kind", "disparity-px", "--depth-scale", "0.25"]
        what = f"{width}x{height}, 24 fps, {args.frames} frames, a pan across {args.image.name}"
    out = str(args.work / "out.mp4")
    run_cli(["video", str(clip), out, *base, "--max-frames", "48"])  # warm-up: CUDA, models
    runs: dict[str, list[float]] = {"threshold": [], "transnet": []}
    waits: list[dict] = []
    for _ in range(args.rounds):
        for shots in runs:
            with ChunkWaits() as waited:
                seconds = run_cli(["video", str(clip), out, *base, "--shots", shots])
            runs[shots].append(round(seconds, 2))
            if shots == "transnet":
                asked = waited.waits[:-1]  # the last: the summary line's, after the chunks
                waits.append({"sum_s": round(sum(asked), 3), "max_s": round(max(asked), 3)})
    best = {shots: min(seconds) for shots, seconds in runs.items()}
    report = {
        "date": datetime.date.today().isoformat(),
        "card": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "torch": torch.__version__,
        "command": command,
        "clip": what,
        "video_seconds": runs,
        "added_pct": round(100 * (best["transnet"] / best["threshold"] - 1), 1),
        "chunks_waiting_for_cuts": waits,
        "pass": pass_parts(Path(clip), args.work, device, chunk_frames(base)),
    }
    print(json.dumps(report, indent=1))
    args.out.write_text(json.dumps(report, indent=1))


def chunk_frames(options: list[str]) -> int:
    """--chunk-frames among the job's options, or the product's default."""
    from stereoconv.config import VideoOptions

    if "--chunk-frames" in options:
        return int(options[options.index("--chunk-frames") + 1])
    return VideoOptions().chunk_frames


if __name__ == "__main__":
    main()
