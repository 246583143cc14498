"""One writer per output: a lock file beside a job's output holds the process id of the run
that writes it.

The lock is an advisory `flock` on that file, so the kernel lets it go when its process ends in
any way (also `kill -9`): a lock left by a dead run is simply taken over. A second live run on
the same output reads the holder's process id from the file and stops with one line, before it
touches the output or the work folder. A command holds its output's lock for as long as it
works on it (`with holding(output): ...`); release_all(), which the command line calls when a
command ends, gives back any lock an interrupted command still holds.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from stereoconv.errors import UserError

_held: dict[Path, int] = {}  # lock file -> its open descriptor, for this process


def lock_path(output: Path, folder: bool = False) -> Path:
    """Beside a file output; inside a folder output (its parent may not be ours to write)."""
    output = Path(output).absolute()
    if folder:
        return output / ".stereoconv-lock"
    return output.with_name(f".{output.name}.stereoconv-lock")


def hold(
    output: Path, notify: Callable[[str], None] = lambda text: None, folder: bool = False
) -> Path:
    """Take the lock of `output` (a file, or a folder of outputs) for this process; taking it
    again is a no-op. Raises UserError naming the live process that holds it."""
    path = lock_path(output, folder)
    if path in _held:
        return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the output folder {path.parent}: {exc.strerror}") from None
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise UserError(f"cannot create the lock file {path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = holder_of(fd)
            os.close(fd)
            raise UserError(
                f"{output} is being written by another stereoconv run (process {holder}); "
                "wait for it to finish or stop it"
            ) from None
        # the file may have been removed by its releasing holder since we opened it
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    previous = os.read(fd, 32).decode(errors="replace").strip()
    if previous and previous != str(os.getpid()):
        notify(f"taking over the lock of process {previous}, which has ended")
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _held[path] = fd
    return path


def holder_of(fd: int) -> str:
    """The process id a held lock file names. Its holder writes it just after taking the lock,
    so an empty file is read again for a moment before it is called unknown."""
    for _ in range(50):
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
        if holder:
            return holder
        time.sleep(0.01)
    return "unknown"


@contextmanager
def holding(
    output: Path, notify: Callable[[str], None] = lambda text: None, folder: bool = False
) -> Iterator[Path]:
    """The lock of `output` held while the block runs (see hold), given back after it."""
    path = hold(output, notify, folder)
    try:
        yield path
    finally:
        release(output, folder)


def release(output: Path, folder: bool = False) -> None:
    """Give back the lock of `output`, if this process holds it."""
    fd = _held.pop(lock_path(output, folder), None)
    if fd is not None:
        try:
            lock_path(output, folder).unlink(missing_ok=True)
        finally:
            os.close(fd)


def release_all() -> None:
    """Give back every lock this process holds: remove the file, then unlock it."""
    while _held:
        path, fd = _held.popitem()
        try:
            path.unlink(missing_ok=True)
        finally:
            os.close(fd)
