"""Every bad or awkward input of tests/helpers/robustness_cases.py, interruptions with real signals,
GPU out-of-memory and a full disk."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from stereoconv.cli.main import main
from tests.helpers.clips import decode_all, numbered_frame, write_clip
from tests.helpers.hostile import bomb_png, broken_timestamps_clip, damaged_clip, raw_mkv
from tests.helpers.paths import ROOT
from tests.helpers.robustness_cases import CASES, markdown, photo


def make_input(name: str, folder: Path) -> Path:
    path = folder / name
    if path.exists():
        return path
    builders = {
        "empty.png": lambda p: p.write_bytes(b""),
        "empty.mp4": lambda p: p.write_bytes(b""),
        "text.png": lambda p: p.write_text("not a picture"),
        "text.mp4": lambda p: p.write_text("not a video"),
        "one.png": lambda p: photo(p, (1, 1)),
        "deep.png": lambda p: photo(p, mode="I;16"),
        "cmyk.jpg": lambda p: photo(p, mode="CMYK"),
        "alpha.png": lambda p: photo(p, mode="RGBA"),
        "grey.png": lambda p: photo(p, mode="L"),
        "odd.png": lambda p: photo(p, (481, 853)),
        "photo.png": photo,
        "other.png": photo,
        "typo.toml": lambda p: p.write_text('backend = "warp"\ndivergance = 3.0\n'),
        "clip.mp4": lambda p: write_clip(p, [numbered_frame(i) for i in range(6)]),
        "other.mp4": lambda p: write_clip(p, [numbered_frame(i) for i in range(2)]),
        "cut.mkv": lambda p: p.write_bytes(
            write_clip(folder / "whole.mkv", [numbered_frame(i) for i in range(30)]).read_bytes()[
                :9000
            ]
        ),
        "audio.m4a": audio_only,
        "photos": lambda p: (p.mkdir(), photo(p / "a.png")),
        "bomb.png": bomb_png,
        "big.png": lambda p: bomb_png(p, 12000, 12000),
        "damaged.mp4": lambda p: damaged_clip(p, [40]),
        "damaged-tail.mp4": lambda p: damaged_clip(p, [94, 95]),
        "damaged-key.mp4": lambda p: damaged_clip(p, [0]),
        "repeated-time.ts": broken_timestamps_clip,
        "huge.mkv": lambda p: raw_mkv(p, 16000, 16000),
        "wide.mkv": lambda p: raw_mkv(p, 65000, 2),
        "giant.mkv": lambda p: raw_mkv(p, 60000, 60000),
        "fast.mkv": lambda p: raw_mkv(p, rate_ns=1),
        "bomb-photos": lambda p: (p.mkdir(), photo(p / "a.png"), bomb_png(p / "b.png")),
    }
    builders[name](path)
    return path


def audio_only(path: Path) -> None:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=48000)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), "flt", "mono")
        frame.sample_rate, frame.pts, frame.time_base = 48000, 0, Fraction(1, 48000)
        out.mux(stream.encode(frame))
        out.mux(stream.encode())


def tree_digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_matrix(case, tmp_path, capsys, tiny_depth, tiny_sd):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (tmp_path / "empty-model").mkdir()
    out = tmp_path / "result" / "out"
    argv = []
    for arg in case.argv:
        if arg.startswith("{in:"):
            arg = str(make_input(arg[4:-1], inputs))
        arg = arg.replace("{out}", str(out)).replace("{dir}", str(tmp_path))
        arg = arg.replace("{tiny_sd}", str(tiny_sd)).replace("{tiny_depth}", str(tiny_depth))
        argv.append(arg)
    if case.command in ("image", "images", "video") and "--depth-model" not in argv:
        argv += ["--depth-model", str(tiny_depth)]
    if case.command in ("images", "video"):
        argv.append("--quiet")
    before = tree_digest(inputs)
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert tree_digest(inputs) == before  # inputs never change
    written = list((tmp_path / "result").glob("out*")) if (tmp_path / "result").exists() else []
    if case.outcome == "error":
        errors = [line for line in err if line.startswith("stereoconv: error:")]
        assert code != 0 and len(errors) == 1 and case.behaviour in errors[0], err
        assert not [line for line in err if "Traceback" in line]
        assert not written  # nothing under the final output name
    else:
        assert code == 0, err
        assert written


def test_the_robustness_page_is_generated_from_the_table():
    page = (ROOT / "docs" / "robustness.md").read_text()
    assert page == markdown(), "run: python -m tests.helpers.robustness_cases > docs/robustness.md"
    assert len(CASES) >= 20
    assert {c.command for c in CASES} == {"image", "images", "video", "text", "depth", "eval"}


# --- interruptions ----------------------------------------------------------------------------


def default_sigint() -> None:
    """Ctrl-C's default action in a child, as a shell gives its foreground jobs: a process
    that ignores SIGINT (a pytest-xdist worker) passes that on, and Python then installs no
    KeyboardInterrupt handler."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "stereoconv", *args]


def wait_for(predicate, timeout: float = 120.0) -> None:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise TimeoutError("the job did not get far enough")
        time.sleep(0.05)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_stops_video_and_the_rerun_finishes(tmp_path, tiny_depth, signum):
    src = write_clip(tmp_path / "clip.mp4", [numbered_frame(i) for i in range(60)])
    common = [
        "--backend",
        "warp",
        "--depth-model",
        str(tiny_depth),
        "--chunk-frames",
        "6",
        "--quiet",
    ]
    reference = tmp_path / "reference.mp4"
    subprocess.run(cli("video", str(src), str(reference), *common), check=True)
    out = tmp_path / "out.mp4"
    work = tmp_path / ".out.mp4.stereoconv-work"
    job = subprocess.Popen(
        cli("video", str(src), str(out), *common),
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,
    )
    wait_for(lambda: len(list(work.glob("chunk-*.json"))) >= 2)
    job.send_signal(signum)
    _, err = job.communicate(timeout=120)
    status = {signal.SIGINT: 130, signal.SIGTERM: 143}[signum]  # 128 + the signal, as shells
    assert job.returncode == status and "run the same command again to resume" in err
    assert not out.exists()
    kept = sorted(p.name for p in work.glob("chunk-*.json"))
    assert 2 <= len(kept) < 10 and not list(work.glob(".*partial*"))
    rerun = subprocess.run(
        cli("video", str(src), str(out), *common), capture_output=True, text=True
    )
    assert rerun.returncode == 0, rerun.stderr
    assert f"resuming: {len(kept)} of 10 chunks" in rerun.stderr
    a, b = decode_all(out)[0], decode_all(reference)[0]
    assert len(a) == len(b) == 60 and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_sigterm_stops_a_photo_library_and_the_rerun_finishes(tmp_path, tiny_depth):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(40):
        photo(photos / f"p{i:02d}.png", (120, 160 + 8 * (i % 5)))
    common = ["--backend", "warp", "--depth-model", str(tiny_depth), "--batch-size", "1", "-q"]
    subprocess.run(cli("images", str(photos), str(tmp_path / "reference"), *common), check=True)
    out = tmp_path / "out"
    job = subprocess.Popen(
        cli("images", str(photos), str(out), *common), stderr=subprocess.PIPE, text=True
    )
    wait_for(lambda: out.exists() and len(list(out.glob("p*.png"))) >= 3)
    job.send_signal(signal.SIGTERM)
    _, err = job.communicate(timeout=120)
    assert job.returncode == 143, err
    done = len(list(out.glob("p*.png")))
    assert done < 40 and not list(out.glob(".*partial*"))
    rerun = subprocess.run(
        cli("images", str(photos), str(out), *common), capture_output=True, text=True
    )
    assert rerun.returncode == 0, rerun.stderr
    assert tree_digest(out).keys() == tree_digest(tmp_path / "reference").keys()
    for name, digest in tree_digest(out).items():
        if not name.startswith("."):
            assert digest == tree_digest(tmp_path / "reference")[name]


# --- resource limits ---------------------------------------------------------------------------


def test_out_of_memory_halves_the_batch(tmp_path, capsys, tiny_depth, monkeypatch):
    from stereoconv.backends.warp import WarpBackend

    src = write_clip(tmp_path / "clip.mp4", [numbered_frame(i) for i in range(24)])
    common = ["--backend", "warp", "--depth-model", str(tiny_depth), "--batch-size", "8", "--quiet"]
    assert main(["video", str(src), str(tmp_path / "reference.mp4"), *common]) == 0
    capsys.readouterr()
    real = WarpBackend.convert  # what the converter calls
    seen = []

    def small_gpu(self, frames, disparity):
        seen.append(frames.shape[0])
        if frames.shape[0] > 2:  # as a GPU with room for two frames at a time
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(self, frames, disparity)

    monkeypatch.setattr(WarpBackend, "convert", small_gpu)
    assert main(["video", str(src), str(tmp_path / "out.mp4"), *common]) == 0
    err = capsys.readouterr().err
    assert err.count("GPU out of memory: going on with batches of") == 1
    assert seen[:3] == [8, 4, 2] and max(seen[3:]) == 2  # halved once, then kept small
    a, b = decode_all(tmp_path / "out.mp4")[0], decode_all(tmp_path / "reference.mp4")[0]
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))

    monkeypatch.setattr(
        WarpBackend,
        "convert",
        lambda self, f, d: (_ for _ in ()).throw(torch.cuda.OutOfMemoryError("out of memory")),
    )
    code = main(["video", str(src), str(tmp_path / "none.mp4"), *common])
    lines = [x for x in capsys.readouterr().err.splitlines() if "error" in x]
    assert code == 1 and len(lines) == 1 and "out of memory even for one frame" in lines[0]


def mount_tmpfs(folder: Path, size: str) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True
    )
    return result.returncode == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_disk_full_stops_cleanly_and_resumes(tmp_path, capsys, tiny_depth):
    src = write_clip(tmp_path / "clip.mp4", [numbered_frame(i, 128, 256) for i in range(48)])
    disk = tmp_path / "disk"
    assert mount_tmpfs(disk, "160k"), "could not mount a tmpfs"
    try:
        args = [
            "video",
            str(src),
            str(disk / "out.mp4"),
            "--backend",
            "warp",
            "--depth-model",
            str(tiny_depth),
            "--chunk-frames",
            "8",
            "--crf",
            "0",
            "--quiet",
        ]
        code = main(args)
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 1 and len(err) == 1 and "the disk is full" in err[0], err
        work = disk / ".out.mp4.stereoconv-work"
        kept = len(list(work.glob("chunk-*.json")))
        assert not (disk / "out.mp4").exists() and not list(work.glob(".*partial*"))
        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)  # space freed
        assert main(args) == 0
        assert f"resuming: {kept} of 6 chunks" in capsys.readouterr().err
        assert len(decode_all(disk / "out.mp4")[0]) == 48
    finally:
        subprocess.run(["umount", str(disk)], check=False)
