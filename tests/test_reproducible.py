"""The same command gives the same frames: run twice on different CPU sets (real processes), and
killed with SIGKILL mid-job then resumed, against one uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.clips import decode_all, numbered_frame, texture, write_clip

CPUS = sorted(os.sched_getaffinity(0))


def moving_clip(path: Path, frames: int = 96) -> Path:
    """A textured pan with the frame number on top: motion the encoder has to work on."""
    ground = texture(64, 128 + frames, 3).astype(np.uint8)
    pictures = []
    for i in range(frames):
        f = np.ascontiguousarray(ground[:, i : i + 128])
        f[:16] = numbered_frame(i, 16, 128)
        pictures.append(f)
    return write_clip(path, pictures)


def run(args: list[str], cpus: list[int] | None = None, **kwargs) -> subprocess.Popen:
    """`python -m stereoconv ARGS` in a new process, limited to `cpus` if given."""
    limit = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    return subprocess.Popen(
        [sys.executable, "-m", "stereoconv", *args],
        preexec_fn=limit,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def finish(job: subprocess.Popen) -> None:
    _, err = job.communicate(timeout=300)
    assert job.returncode == 0, err


def assert_same_frames(a: Path, b: Path, count: int) -> None:
    fa, fb = decode_all(a)[0], decode_all(b)[0]
    assert len(fa) == len(fb) == count
    worst = max(
        int(np.abs(x.astype(int) - y.astype(int)).max()) for x, y in zip(fa, fb, strict=True)
    )
    assert worst == 0, f"frames differ by up to {worst} levels"


def common(tiny_depth) -> list[str]:
    return [
        "--backend",
        "warp",
        "--depth-model",
        str(tiny_depth),
        "--chunk-frames",
        "24",
        "--quiet",
    ]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return moving_clip(tmp_path_factory.mktemp("repro") / "pan.mp4")


@pytest.fixture(scope="module")
def reference(clip, tiny_depth):
    """One uninterrupted run on every CPU this process may use."""
    out = clip.with_name("reference.mp4")
    finish(run(["video", str(clip), str(out), *common(tiny_depth)]))
    return out


@pytest.mark.skipif(len(CPUS) < 2, reason="needs two CPUs to run on two different CPU sets")
def test_the_same_command_on_one_cpu_gives_the_same_frames(clip, reference, tmp_path, tiny_depth):
    # the encoder's and torch's thread counts follow the CPUs a process may use: they must
    # not change the frames (before the fix, x264's did: up to 44 levels)
    finish(run(["video", str(clip), str(tmp_path / "one.mp4"), *common(tiny_depth)], CPUS[:1]))
    assert_same_frames(tmp_path / "one.mp4", reference, 96)


def test_killed_with_sigkill_and_resumed_gives_the_uninterrupted_frames(
    clip, reference, tmp_path, tiny_depth
):
    out, work = tmp_path / "out.mp4", tmp_path / ".out.mp4.stereoconv-work"
    job = run(["video", str(clip), str(out), *common(tiny_depth)])
    start = time.monotonic()
    while len(list(work.glob("chunk-*.json"))) < 2:
        assert job.poll() is None and time.monotonic() - start < 120, "the job ended early"
        time.sleep(0.02)
    job.send_signal(signal.SIGKILL)  # no clean-up at all: partial files and the lock stay
    job.communicate(timeout=60)
    assert not out.exists()
    kept = len(list(work.glob("chunk-*.json")))
    assert 2 <= kept < 4
    rerun = run(["video", str(clip), str(out), *common(tiny_depth)])
    _, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    assert f"resuming: {kept} of 4 chunks" in err
    assert_same_frames(out, reference, 96)
    assert not work.exists()
