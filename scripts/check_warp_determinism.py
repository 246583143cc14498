"""Whether the warp gives the same pixels run to run on a GPU: the warp backend's right view of
a noise-like disparity (what a random-weight depth model gives: many surfaces land on one
target), five times, with the sums of the z-buffer in fixed point (geometry.scatter_sums, the
product's way on a GPU) and in plain float atomics (the way before). Needs only torch.

    python scripts/check_warp_determinism.py [--size 1280x720] [--batch 8]
"""

from __future__ import annotations

import argparse
import time
from unittest import mock

import torch

import stereoconv.geometry as geometry
from stereoconv.backends.warp import WarpBackend


def runs(frames: torch.Tensor, disparity: torch.Tensor, count: int = 5):
    """The right views of `count` runs, and the fastest run's ms a frame."""
    backend = WarpBackend(views="right", fill_sigma=3.0)
    outs, seconds = [], []
    for _ in range(count):
        if frames.is_cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        outs.append(backend(frames, disparity)[1])
        if frames.is_cuda:
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
    return outs, 1000 * min(seconds) / len(frames)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    width, height = (int(n) for n in args.size.split("x"))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    g = torch.Generator().manual_seed(0)
    frames = torch.rand(args.batch, 3, height, width, generator=g).to(device)
    disparity = (torch.rand(args.batch, height, width, generator=g) * 40).to(device)
    plain = geometry.scatter_sums

    def float_atomics(index, values, n, fixed=None):
        return plain(index, values, n, fixed=False)

    runs(frames, disparity, 1)  # warm-up
    for name, patch in (("fixed point", None), ("plain float sums", float_atomics)):
        with mock.patch.object(geometry, "scatter_sums", patch or plain):
            outs, ms = runs(frames, disparity)
        differ = [int((o != outs[0]).any(1).sum()) for o in outs[1:]]
        print(
            f"{device.type}, {name}: pixels differing from the first run: {differ}; "
            f"{ms:.2f} ms a frame (the warp backend's right view, fastest of 5)",
            flush=True,
        )


if __name__ == "__main__":
    main()
