"""One writer per output: a live run's lock refuses a second run in one line, a dead run's lock
is taken over, and no run touches another live run's work. Real processes hold the locks."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from stereoconv import lock
from stereoconv.cli.main import main
from stereoconv.errors import UserError
from stereoconv.lock import lock_path
from tests.helpers.clips import numbered_frame, write_clip
from tests.helpers.robustness_cases import photo

HOLDER = """
import sys, time
from stereoconv import lock
lock.hold(sys.argv[1], folder=sys.argv[2] == "folder")
print("held", flush=True)
time.sleep(120)
"""


@pytest.fixture
def holder():
    """Start a process that takes the lock of a path (as a run does) and keeps it."""
    started = []

    def start(path: Path, folder: bool = False) -> subprocess.Popen:
        process = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(path), "folder" if folder else "file"],
            stdout=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        assert process.stdout.readline().strip() == "held"
        return process

    yield start
    for process in started:
        process.kill()
        process.wait()


def warp(tiny_depth) -> list[str]:
    return ["--backend", "warp", "--depth-model", str(tiny_depth), "--quiet"]


def one_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("stereoconv: error:"), err
    return err[0]


def test_a_second_run_on_a_live_runs_output_is_refused(tmp_path, capsys, tiny_depth, holder):
    src = write_clip(tmp_path / "clip.mp4", [numbered_frame(i) for i in range(4)])
    out = tmp_path / "out.mp4"
    work = tmp_path / ".out.mp4.stereoconv-work"
    work.mkdir()
    (work / "chunk-000000.json").write_text("{}")  # the live run's work
    live = holder(out)
    for extra in ([], ["--overwrite"]):
        assert main(["video", str(src), str(out), *warp(tiny_depth), *extra]) == 1
        line = one_error(capsys)
        assert f"is being written by another stereoconv run (process {live.pid})" in line
        assert (work / "chunk-000000.json").read_text() == "{}"  # its work untouched
    assert not out.exists()


def test_a_dead_runs_lock_is_taken_over(tmp_path, capsys, tiny_depth):
    src = write_clip(tmp_path / "clip.mp4", [numbered_frame(i) for i in range(4)])
    out = tmp_path / "out.mp4"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    ).stdout.strip()
    lock_path(out).write_text(f"{dead}\n")  # as left by a run killed with SIGKILL
    assert main(["video", str(src), str(out), *warp(tiny_depth)]) == 0
    err = capsys.readouterr().err
    assert f"taking over the lock of process {dead}, which has ended" in err
    assert out.exists() and not lock_path(out).exists()


def test_a_photo_library_has_one_writer(tmp_path, capsys, tiny_depth, holder):
    photos = tmp_path / "photos"
    photos.mkdir()
    photo(photos / "a.png")
    out = tmp_path / "out"
    live = holder(out, folder=True)
    assert main(["images", str(photos), str(out), *warp(tiny_depth)]) == 1
    assert f"(process {live.pid})" in one_error(capsys)
    assert [p.name for p in out.iterdir()] == [".stereoconv-lock"]
    live.kill()
    live.wait()
    assert main(["images", str(photos), str(out), *warp(tiny_depth)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [".stereoconv-manifest.json", "a_LR.png"]


def test_two_runs_started_at_once_one_writes_the_other_says_so(tmp_path, tiny_depth):
    # long enough (72 frames) that the first is still running when the second starts
    src = write_clip(tmp_path / "clip.mp4", [numbered_frame(i) for i in range(72)])
    out = tmp_path / "out.mp4"
    args = [
        sys.executable,
        "-m",
        "stereoconv",
        "video",
        str(src),
        str(out),
        *warp(tiny_depth),
        "--chunk-frames",
        "4",
    ]
    runs = [subprocess.Popen(args, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(r.wait(timeout=300), r.stderr.read(), r.pid) for r in runs]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 1], results
    (_, refused, _), (_, _, winner) = sorted(results, key=lambda r: -r[0])
    lines = refused.strip().splitlines()
    assert len(lines) == 1 and f"another stereoconv run (process {winner})" in lines[0], refused
    assert out.exists() and not lock_path(out).exists()


def test_a_holder_that_has_not_written_its_id_yet_is_named_once_it_has(tmp_path):
    """The holder writes its process id just after it takes the lock; a second run that comes
    in between reads the file again for a moment rather than naming "process unknown"."""
    out = tmp_path / "out.mp4"
    path = lock.lock_path(out)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # taken, nothing written yet
    threading.Timer(0.1, lambda: os.pwrite(fd, b"4242\n", 0)).start()
    try:
        with pytest.raises(UserError, match=r"process 4242\)"):
            lock.hold(out)
    finally:
        os.close(fd)
