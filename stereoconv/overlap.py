"""Overlapping the stages of a video job: decoding runs ahead in a thread while the GPU works,
and encoding runs behind in another. PyAV releases the GIL inside FFmpeg, so the threads run
in parallel with the main one."""

from __future__ import annotations

import os
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar


def available_cores() -> int:
    """The CPU cores this process may run on (taskset, cgroups, a Ray worker's node)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, cores or 1)


T = TypeVar("T")
R = TypeVar("R")
_DONE = object()


class _Failure:
    def __init__(self, error: BaseException):
        self.error = error


def prefetch(items: Iterator[T], ahead: int = 2) -> Iterator[T]:
    """Yield the items of `items`, produced in a background thread up to `ahead` in advance.
    An exception in the producer is raised here; stopping early stops the producer."""
    slots: queue.Queue = queue.Queue(maxsize=ahead)
    stop = threading.Event()

    def put(value) -> bool:
        while not stop.is_set():
            try:
                slots.put(value, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put(_Failure(exc))

    thread = threading.Thread(target=produce, name="stereoconv-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = slots.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join()


class Background:
    """Runs `work(item)` for submitted items in one thread, in order, at most `behind` queued.
    close() waits for the last one and raises the first error the thread met."""

    def __init__(self, work: Callable[[object], None], behind: int = 2):
        self._work = work
        self._items: queue.Queue = queue.Queue(maxsize=behind)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="stereoconv-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._items.get()
            if item is _DONE:
                return
            if self._error is None:
                try:
                    self._work(item)
                except BaseException as exc:
                    self._error = exc

    def submit(self, item) -> None:
        if self._error is not None:
            raise self._error
        self._items.put(item)

    def close(self) -> None:
        self._items.put(_DONE)
        self._thread.join()
        if self._error is not None:
            raise self._error


def ordered_map(work: Callable[[T], R], items: Iterable[T], workers: int) -> Iterator[R]:
    """work(item) for each item, `workers` at a time in threads, yielded in the items' order;
    at most 2 * workers results are held. An error is raised here, and the items not begun are
    dropped."""
    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="stereoconv-map") as pool:
        pending: deque = deque()
        try:
            for item in items:
                pending.append(pool.submit(work, item))
                if len(pending) >= 2 * workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()
