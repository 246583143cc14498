"""Atomic output: write under a temporary name beside the target, then rename it into place,
so that a crash or Ctrl-C never leaves a half-written file under the final name."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

from stereoconv.errors import UserError


@contextlib.contextmanager
def stops_deferred() -> Iterator[None]:
    """Ctrl-C and SIGTERM wait until the block is done (their handlers run after it): for a
    file and its record that must be kept together. Only the main thread, where Python runs
    signal handlers, needs it; elsewhere the block just runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    stops = (signal.SIGINT, signal.SIGTERM)
    previous = {s: signal.signal(s, lambda signum, frame: received.append(signum)) for s in stops}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        for s in received:
            if callable(previous[s]):
                previous[s](s, None)  # e.g. KeyboardInterrupt, or the CLI's stop on SIGTERM
            elif previous[s] == signal.SIG_DFL:
                signal.raise_signal(s)


def temporary_sibling(final: Path) -> Path:
    """A temporary name next to `final` that keeps its suffix (encoders pick formats by it)."""
    return final.with_name(f".{final.stem}.partial-{os.getpid()}{final.suffix}")


@contextlib.contextmanager
def atomic_output(final: Path) -> Iterator[Path]:
    """Yields a temporary path to write; on success it replaces `final`, on error it is removed."""
    final = Path(final)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the output folder {final.parent}: {exc.strerror}") from None
    if not os.access(final.parent, os.W_OK):
        raise UserError(f"output folder is not writable: {final.parent}")
    tmp = temporary_sibling(final)
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def check_output(input_path: Path, output: Path, overwrite: bool) -> None:
    """Refuse an output that is the input, or that exists without --overwrite."""
    if Path(output).resolve() == Path(input_path).resolve():
        raise UserError(f"output {output} is the input file; choose another name")
    if Path(output).exists() and not overwrite:
        raise UserError(f"output {output} exists; pass --overwrite to replace it")
    if Path(output).is_dir():
        raise UserError(f"output {output} is a folder; give a file name")
