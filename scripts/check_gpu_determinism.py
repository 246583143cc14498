"""Whether the default diffusion video job gives the same frames run to run on the GPU: the same
`stereoconv video` twice, each in a process of its own, on real footage at 720p with SD 1.5 and
Depth Anything V2 Small's architectures (random weights), frames compared losslessly; and the
depth model alone, three times on the same batch, with cuDNN's deterministic algorithms off and
on (its speed both ways).

    python scripts/check_gpu_determinism.py bikes.mp4 [--cases CASE,...] [--depth-alone]

CASE: model, smooth, warp-model, perframe-model (main(), cases).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_gpu import build_depth  # noqa: E402
from bench_video import footage_clip, save_sd15, smooth_depth  # noqa: E402

WORK = Path("/tmp/determinism")
DEPTH_MODEL = "/tmp/bench-dav2-small"  # bench_gpu.build_depth's folder


def frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def differing(a: list[np.ndarray], b: list[np.ndarray]) -> list[tuple[int, int, int]]:
    """(frame, largest difference, pixels that differ) of the frames that differ."""
    return [
        (i, int(np.abs(x.astype(int) - y).max()), int((x != y).any(-1).sum()))
        for i, (x, y) in enumerate(zip(a, b, strict=True))
        if not np.array_equal(x, y)
    ]


def depth_model_alone() -> None:
    from stereoconv.disparity.estimate import DepthEstimator

    device = torch.device("cuda")
    x = torch.rand(8, 3, 720, 1280, generator=torch.Generator().manual_seed(0)).to(device)
    for deterministic in (False, True):
        torch.backends.cudnn.deterministic = deterministic
        model = DepthEstimator(DEPTH_MODEL, device=device)
        outs = [model(x, batch_size=8) for _ in range(3)]
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(10):
            model(x, batch_size=8)
        torch.cuda.synchronize()
        ms = (time.perf_counter() - start) / 10 / 8 * 1000
        same = all(torch.equal(outs[0], o) for o in outs[1:])
        print(f"depth model alone, cudnn.deterministic={deterministic}: three runs the same: "
              f"{same}; {ms:.2f} ms a frame (batches of 8, 720p)", flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("footage", type=Path)
    parser.add_argument("--cases", default="model,smooth")
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--depth-alone", action="store_true", help="also the depth model alone")
    args = parser.parse_args()
    WORK.mkdir(exist_ok=True)
    sd = str(save_sd15(WORK / "sd15-random"))
    build_depth(torch.device("cpu"), torch.float32)
    if args.depth_alone:
        depth_model_alone()
    clip = footage_clip(args.footage, WORK / "f720.mp4", args.frames, 1280, 720)
    smooth = smooth_depth(clip, WORK / "f720-depth.mkv")
    cases = {
        "model": ["--depth-model", DEPTH_MODEL],
        "smooth": ["--depth", str(smooth), "--depth-kind", "relative-disparity"],
        "warp-model": ["--backend", "warp", "--depth-model", DEPTH_MODEL],
        "perframe-model": ["--temporal-fill", "off", "--depth-model", DEPTH_MODEL],
    }
    for case in args.cases.split(","):
        outputs = []
        for k in range(2):
            out = WORK / f"{case}-{k}.mp4"
            command = [sys.executable, "-m", "stereoconv", "video", str(clip), str(out)]
            command += ["--model", sd, *cases[case], "--crf", "0", "--overwrite", "--quiet"]
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(done.stderr[-2000:])
            outputs.append(frames(out))
        diff = differing(*outputs)
        print(f"{case}: {len(outputs[0])} frames, {len(diff)} differ (frame, largest, pixels): "
              f"{diff[:8]}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
