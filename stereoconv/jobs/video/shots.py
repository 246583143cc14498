"""--shots transnet: a pass over the whole converted range finds where the shots start. The
trained detector judges each frame from the frames around it, so it runs once over everything,
not per chunk: the cuts are part of the job (every chunk and every Ray worker reads the same
ones) and are kept in the work folder (a resumed job reads them back instead of running the pass
again).

The pass runs in a thread beside the chunks (ShotPass): a chunk waits only until the cuts before
its last frame are decided, which are the whole pass's (transnet.decided_cuts). Run before the
chunks, it held the GPU and the encoder idle for its whole decode (+17 % on a 1080p warp job,
docs/benchmarks.md). It decodes the frames straight to the network's 48x27 (PyAV's swscale), in
segments decoded at once in threads, and runs the network on the job's device.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import json
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import torch

from stereoconv.disparity import transnet
from stereoconv.fileio import atomic_output
from stereoconv.jobs.video.job import VideoJob
from stereoconv.media.video import VideoInfo, decode_range
from stereoconv.overlap import available_cores, ordered_map

SHOTS_FILE = "shots.json"  # in the work folder
MAX_SEGMENT = 1000  # frames a decoding thread takes at a time (their thumbnails are held)


def read_cuts(path: Path, frames: int) -> list[int] | None:
    """The cuts a previous run of the same job stored, or None (none stored, or unreadable)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if data.get("frames") != frames or not isinstance(data.get("cuts"), list):
        return None
    return [int(i) for i in data["cuts"]]


def write_cuts(path: Path, frames: int, cuts: list[int]) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps({"frames": frames, "cuts": cuts}))


class ShotPass:
    """The trained detector over frames `pts` of the file, in a thread of its own from the
    start; cuts_before tells the cuts before a frame as soon as they are decided. When the pass
    is complete its cuts are written to `stored` (a resumed job reads them back). stop() ends it
    early and writes nothing."""

    def __init__(
        self, path: Path, pts: tuple[int, ...], info: VideoInfo, segment: int, device, stored: Path
    ):
        self.frames = len(pts)
        self.seconds: float | None = None  # how long the complete pass took
        self.not_stored: str | None = None  # why the complete pass's cuts were not stored
        self._decoded: list[int] = []  # frame numbers of the frames read, in order
        # each read frame's probability, the first _judged of them known: filled in place, so a
        # chunk's question reads a view rather than joining every window's again
        self._probabilities = np.zeros(len(pts), np.float32)
        self._judged = 0
        self._complete, self._ended = False, False
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._changed = threading.Condition()
        args = (path, pts, info, segment, device, stored)
        self._thread = threading.Thread(target=self._run, args=args, name="stereoconv-shots")
        self._thread.start()

    def _run(self, path, pts, info, segment, device, stored: Path) -> None:
        started = time.perf_counter()
        try:
            frames = self._thumbnails(path, pts, info, segment)
            for part in transnet.window_probabilities(frames, device):
                with self._changed:
                    self._probabilities[self._judged : self._judged + len(part)] = part
                    self._judged += len(part)
                    self._changed.notify_all()
            if self._stop.is_set():  # stopped decoders end short: the frames are not all there
                raise _Stopped
            with self._changed:
                self._complete = True
            self.seconds = time.perf_counter() - started
            try:
                write_cuts(stored, self.frames, list(self.cuts_before(self.frames)))
            except OSError as exc:  # the cuts stand; only a resumed job's shortcut is lost
                self.not_stored = f"the cuts could not be kept in {stored} ({exc})"
        except _Stopped:
            pass
        except BaseException as exc:  # raised in the chunks that wait for the cuts
            self._error = exc
        finally:
            with self._changed:
                self._ended = True
                self._changed.notify_all()

    def _thumbnails(self, path, pts, info, segment) -> Iterator[np.ndarray]:
        """The thumbnails in order, each frame's number kept; stop() ends them."""
        source = thumbnails(path, pts, info, segment, self._stop)  # a stop ends the segments too
        try:
            for index, thumb in source:
                if self._stop.is_set():
                    raise _Stopped
                self._decoded.append(index)
                yield thumb
        finally:
            source.close()  # segments not begun are dropped

    def cuts_before(self, stop: int) -> tuple[int, ...]:
        """The frames before frame `stop` that start a shot (the first decodable frame, and
        each the detector puts after a transition), waiting until they are decided."""
        with self._changed:
            while True:
                if self._error is not None:
                    raise self._error
                cuts = self._decided(stop)
                if cuts is not None:
                    return cuts
                if self._ended:
                    raise RuntimeError("the shot pass was stopped")
                self._changed.wait()

    def _decided(self, stop: int) -> tuple[int, ...] | None:
        """cuts_before(stop) from what the pass has judged so far, or None (held: _changed)."""
        judged = self._judged  # frames passed by undecodable are not among them
        before = bisect.bisect_left(self._decoded, stop, 0, judged)  # judged ones before `stop`
        if before == judged and not self._complete:
            return None  # a frame still to come may come before `stop`
        found = transnet.decided_cuts(self._probabilities[:judged], before, self._complete)
        if found is None:
            return None
        starts = self._decoded[:1] + [self._decoded[c] for c in found]
        return tuple(f for f in starts if f < stop)

    def stop(self) -> None:
        """End the pass (at its next frame) and wait for its thread."""
        self._stop.set()
        self._thread.join()

    def join(self) -> None:
        """Wait for the pass to end (complete, or failed: raised here)."""
        self._thread.join()
        if self._error is not None:
            raise self._error


class _Stopped(Exception):
    """ShotPass.stop() was called."""


@dataclass(frozen=True)
class Shots:
    """A video job's cuts as chunks ask for them: known before the job starts (`cuts`: read back
    from the work folder, --shots none; None for --shots threshold, which the chunks decide
    frame by frame), or coming from a pass beside the chunks (`pass_`)."""

    cuts: tuple[int, ...] | None
    pass_: ShotPass | None = None

    def stop(self) -> None:
        """Stop the pass, if any (the job failed): chunks waiting for cuts then raise."""
        if self.pass_ is not None:
            self.pass_.stop()

    def job_for(self, job: VideoJob, stop: int | None = None) -> VideoJob:
        """The job with its cuts before frame `stop` (all of them by default): what a chunk
        that ends there reads (it looks at no frame after), waiting for the pass if need be."""
        if self.pass_ is None:
            return dataclasses.replace(job, cuts=self.cuts)
        stop = len(job.pts) if stop is None else stop
        return dataclasses.replace(job, cuts=self.pass_.cuts_before(stop))


@contextmanager
def planned_shots(
    job: VideoJob, device: torch.device, notify: Callable[[str], None]
) -> Iterator[Shots]:
    """The job's cuts for the block: by the trained detector in a pass beside the block's work,
    or read back from the work folder where a previous run of the job found them; only the
    first frame for --shots none; none planned for --shots threshold. A complete pass is said
    in one line at the block's end; an error in the block stops the pass."""
    if job.options.shots == "threshold":
        yield Shots(None)
        return
    if job.options.shots == "none":
        yield Shots((0,))
        return
    stored = job.workdir / SHOTS_FILE
    cuts = read_cuts(stored, len(job.pts))
    if cuts is not None:
        yield Shots(tuple(cuts))
        return
    pass_ = ShotPass(job.input, job.pts, job.info, job.options.chunk_frames, device, stored)
    try:
        yield Shots(None, pass_)
        pass_.join()
    except BaseException:
        pass_.stop()
        raise
    notify(
        f"shots: {len(pass_.cuts_before(pass_.frames))} in {pass_.frames} frames (TransNetV2, "
        f"a pass of {pass_.seconds:.1f} s beside the chunks)"
    )
    if pass_.not_stored:
        notify(f"{pass_.not_stored}: a resumed job would run the pass again")


def thumbnails(
    path: Path,
    pts: tuple[int, ...],
    info: VideoInfo,
    segment: int,
    stop: threading.Event | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """(frame number, (27, 48, 3) uint8 RGB) of every decodable frame of the range, in order;
    segments of it are decoded at once in threads (PyAV releases the GIL). `stop`, once set,
    ends every segment's decoding at its next frame (the frames then are not all there)."""
    workers = available_cores()
    size = min(MAX_SEGMENT, max(segment, math.ceil(len(pts) / workers)))
    segments = [(first, min(first + size, len(pts))) for first in range(0, len(pts), size)]
    work = functools.partial(segment_thumbnails, path, pts, info, stop=stop)
    for part in ordered_map(work, segments, min(workers, len(segments))):
        yield from part


def segment_thumbnails(
    path: Path,
    pts: tuple[int, ...],
    info: VideoInfo,
    segment: tuple[int, int],
    stop: threading.Event | None = None,
) -> list[tuple[int, np.ndarray]]:
    """(frame number, thumbnail) of the decodable frames first..stop-1 (fewer once `stop` is
    set)."""
    first, last = segment
    index_of = {p: i for i, p in enumerate(pts[first:last], start=first)}
    convert = functools.partial(thumbnail, rotation=info.rotation)
    out = []
    for p, thumb in decode_range(path, pts[first], pts[last - 1], info, convert):
        if stop is not None and stop.is_set():
            break
        if p in index_of:
            out.append((index_of[p], thumb))
    return out


def thumbnail(frame: av.VideoFrame, rotation: int) -> np.ndarray:
    """A decoded frame as the network's input: upright, 48x27 RGB, averaged by area."""
    width, height = transnet.WIDTH, transnet.HEIGHT
    if rotation in (90, 270):  # stored sideways: turned upright below
        width, height = height, width
    rgb = frame.to_ndarray(width=width, height=height, format="rgb24", interpolation="AREA")
    if rotation:
        rgb = np.rot90(rgb, k=rotation // 90)  # counter-clockwise, as media.video.to_rgb
    return np.ascontiguousarray(rgb)
