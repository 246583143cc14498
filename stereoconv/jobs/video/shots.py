"""--shots transnet: a pass over the whole converted range finds where the shots start. The
trained detector judges each frame from the frames around it (transnet: windows at fixed frame
numbers), so it runs once over the range, not per chunk: the cuts are part of the job (every
chunk and every Ray worker reads the same ones) and are kept in the work folder (a resumed job
reads them back instead of running the pass again).

The pass runs in threads beside the chunks (ShotPass). Its segments begin where the chunks
begin and are judged several at once, each window as soon as its frames are decoded, and a cut
depends only on the frames around it (transnet.cuts_between): so a chunk converted here reads
its cuts batch by batch and waits only until those of the frames it has come to are decided (a
Ray worker gets those of its chunk's frames before it starts). Waiting for every cut before its
end, each chunk waited for most of the pass (+11 % on a 1080p warp job, docs/benchmarks.md); run
before the chunks, the pass held the GPU and the encoder idle for its whole decode (+17 %). It
decodes the frames straight to the network's 48x27 (PyAV's swscale) and runs the network on the
job's device. `stereoconv video` starts it before the models load (early_pass): it only reads
the input.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import torch

from stereoconv.disparity import transnet
from stereoconv.disparity.shots import WINDOW as WARM_UP  # frames a chunk reads first
from stereoconv.errors import UserError
from stereoconv.fileio import atomic_output
from stereoconv.jobs.video.job import Chunk, VideoJob, holds_its_work
from stereoconv.media.video import VideoInfo, decode_range
from stereoconv.overlap import available_cores, ordered_map

SHOTS_FILE = "shots.json"  # in the work folder
# the frames a segment decides, at most and (unless the range is shorter) at least: a multiple
# of transnet.STEP; it decodes 50 more around them, and from the keyframe before its first
MAX_SEGMENT, MIN_SEGMENT = 1000, 200


def read_cuts(path: Path, frames: int) -> list[int] | None:
    """The cuts a previous run of the same job stored, or None (none stored, or unreadable)."""
    try:
        data = json.loads(path.read_text())
        if data["frames"] != frames:
            return None
        return [int(i) for i in data["cuts"]]
    except (OSError, ValueError, TypeError, KeyError):  # none, or not what write_cuts writes
        return None


def write_cuts(path: Path, frames: int, cuts: list[int]) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps({"frames": frames, "cuts": cuts}))


class ShotPass:
    """The trained detector over frames `pts` of the file, in threads of its own from the
    start; cuts_between tells the cuts of a range of frames as soon as they are decided. The
    windows are judged segment by segment, several segments at once (as many as the cores),
    each beginning where a chunk of the job begins (`starts`), so the first cuts of a chunk
    whose segment is under way come after a short decode. When the pass is complete its cuts
    are written to `stored`, or to where keep_in says once it does (a resumed job reads them
    back). stop() ends it early and writes nothing."""

    def __init__(
        self,
        path: Path,
        pts: tuple[int, ...],
        info: VideoInfo,
        starts: Sequence[int],
        device: torch.device,
        stored: Path | None = None,
    ):
        self.frames = len(pts)
        self.seconds: float | None = None  # how long the complete pass took
        self.not_stored: str | None = None  # why the complete pass's cuts were not stored
        # each frame's probability, filled in place window by window in any order
        self._probabilities = np.zeros(self.frames, np.float32)
        self._known = np.zeros(self.frames, bool)
        self._ended = False
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self._stored, self._kept = stored, False
        args = (path, pts, info, segments(self.frames, starts), device)
        self._thread = threading.Thread(target=self._run, args=args, name="stereoconv-shots")
        self._thread.start()

    def _run(self, path, pts, info, parts: list[range], device) -> None:
        started = time.perf_counter()
        try:
            # loaded while the first frames decode (a chunk's first wait is both), and once
            with ThreadPoolExecutor(1, thread_name_prefix="stereoconv-shots-load") as loading:
                network = loading.submit(transnet.load_network, device)
                work = functools.partial(self._segment, path, pts, info, network, device)
                for _ in ordered_map(work, parts, min(available_cores(), len(parts))):
                    pass
            if self._stop.is_set():  # stopped segments end short: the windows are not all there
                raise _Stopped
            with self._changed:
                self.seconds = time.perf_counter() - started
            self._keep()
        except _Stopped:
            pass
        except BaseException as exc:  # raised in the chunks that wait for the cuts
            self._error = self._error or exc
            self._stop.set()  # the other segments end too
        finally:
            with self._changed:
                self._ended = True
                self._changed.notify_all()

    def keep_in(self, stored: Path) -> None:
        """Write the complete pass's cuts to `stored`: now if the pass is complete, else when it
        is (a pass started before its job's work folder was ready)."""
        with self._changed:
            self._stored = stored
        self._keep()

    def _keep(self) -> None:
        """Write the cuts, once, if the pass is complete and has a place to keep them."""
        with self._changed:
            if self.seconds is None or self._stored is None or self._kept:
                return
            self._kept, stored = True, self._stored
        try:
            write_cuts(stored, self.frames, list(self.cuts_between(0, self.frames)))
        except (OSError, UserError) as exc:  # the cuts stand; only a resume's shortcut is lost
            self.not_stored = f"the cuts could not be kept in {stored} ({exc})"

    def _segment(self, path, pts, info, network, device, windows: range) -> None:
        """Judge windows `windows`, each as soon as its frames are decoded. An error is
        handed to the chunks at once and ends the other segments."""
        try:
            self._judge_segment(path, pts, info, network, device, windows)
        except BaseException as exc:
            with self._changed:
                self._error = self._error or exc
                self._stop.set()
                self._changed.notify_all()
            raise

    def _judge_segment(self, path, pts, info, network, device, windows: range) -> None:
        n = self.frames
        first = max(0, windows.start * transnet.STEP - transnet.CONTEXT)
        stop = window_end(windows.stop - 1, n) + 1
        held: dict[int, np.ndarray] = {}
        todo = iter(windows)
        k = next(todo, None)
        for index, thumb in decoded_thumbnails(path, pts, info, first, stop, self._stop):
            held[index] = thumb
            while k is not None and index >= window_end(k, n):
                self._judge(k, held, network, device)
                k = next(todo, None)
        if self._stop.is_set():
            return
        while k is not None:  # the last windows, and those whose last frames did not decode
            self._judge(k, held, network, device)
            k = next(todo, None)

    def _judge(self, k: int, held: dict, network: Future, device) -> None:
        """Window k's probabilities, from the frames decoded; its frames before it are let go."""
        n = self.frames
        window = window_input(held, transnet.window_frames(k, n - 1))
        decided = range(k * transnet.STEP, min(n, (k + 1) * transnet.STEP))
        if window is None:  # not one of its frames decoded: no transition seen there
            found = np.zeros(len(decided), np.float32)
        else:
            found = transnet.judge(network.result(), window, device)[: len(decided)]
        for index in [i for i in held if i < (k + 1) * transnet.STEP - transnet.CONTEXT]:
            del held[index]  # read by no later window
        with self._changed:
            self._probabilities[decided.start : decided.stop] = found
            self._known[decided.start : decided.stop] = True
            self._changed.notify_all()

    def cuts_between(self, first: int, stop: int) -> tuple[int, ...]:
        """The frames first ... stop - 1 that start a shot (frame 0, and each the detector puts
        after a transition), waiting until they are decided."""
        with self._changed:
            while True:
                if self._error is not None:
                    raise self._error
                found = transnet.cuts_between(self._probabilities, self._known, first, stop)
                if found is not None:
                    return tuple(([0] if first <= 0 < stop else []) + found)
                if self._ended:
                    raise RuntimeError("the shot pass was stopped")
                self._changed.wait()

    def stop(self) -> None:
        """End the pass (at its next frame) and wait for its thread."""
        self._stop.set()
        self._thread.join()

    def join(self) -> None:
        """Wait for the pass to end (complete, or failed: raised here)."""
        self._thread.join()
        if self._error is not None:
            raise self._error


def segments(frames: int, starts: Sequence[int]) -> list[range]:
    """The pass's segments, as ranges of window numbers: one begins at the window of each
    chunk's first frame less the frames its depth smoothing warms up on (and the one before
    them, where a run that ends a cut may begin), unless that is closer than MIN_SEGMENT
    frames to the one before (short chunks share a segment: each decodes its context and
    the run-up from a keyframe), and none holds more than MAX_SEGMENT frames. Which thread
    judges a window does not change its result."""
    windows = math.ceil(frames / transnet.STEP)
    begins = {max(0, s - WARM_UP - 1) // transnet.STEP for s in starts if 0 <= s < frames}
    begins |= set(range(0, windows, MAX_SEGMENT // transnet.STEP))
    kept: list[int] = []
    for begin in sorted(begins):
        if not kept or begin - kept[-1] >= MIN_SEGMENT // transnet.STEP:
            kept.append(begin)
    return [range(a, b) for a, b in itertools.pairwise(kept + [windows])]


def window_end(k: int, frames: int) -> int:
    """The last frame window k reads (the video's last where it runs past it)."""
    return min(frames - 1, k * transnet.STEP - transnet.CONTEXT + transnet.WINDOW - 1)


def window_input(held: dict[int, np.ndarray], numbers: np.ndarray) -> np.ndarray | None:
    """A window's frames (transnet.WINDOW, 27, 48, 3) by their frame numbers; a frame that did not
    decode takes the one before it in the window (the first ones: the first that did), so a
    window depends on its own frames only. None when none of them decoded."""
    there = [int(i) for i in numbers if int(i) in held]
    if not there:
        return None
    out, last = [], held[there[0]]
    for i in map(int, numbers):
        last = held.get(i, last)
        out.append(last)
    return np.stack(out)


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

    def settle(self) -> None:
        """Wait for the pass, if any, to end and keep its cuts: before the work folder is
        removed at the job's end (a write after it would make the folder again)."""
        if self.pass_ is not None:
            self.pass_.join()

    def job_for(self, job: VideoJob, chunk: Chunk | None = None) -> VideoJob:
        """The job with the cuts of the frames a chunk reads (Chunk.read_from to its end),
        or all of them (no chunk), waiting for the pass if need be: what a Ray worker is sent,
        and what --convergence auto plans with."""
        if self.pass_ is None:
            return dataclasses.replace(job, cuts=self.cuts)
        first, stop = (0, len(job.pts)) if chunk is None else (chunk.read_from, chunk.stop)
        return dataclasses.replace(job, cuts=self.pass_.cuts_between(first, stop))

    def job_reading(self, job: VideoJob) -> VideoJob:
        """The job for chunks converted in this process: they read their cuts from the pass
        batch by batch, so a chunk waits only for those of the frames it has come to."""
        if self.pass_ is None:
            return dataclasses.replace(job, cuts=self.cuts)
        return dataclasses.replace(job, cuts=self.pass_.cuts_between)


def job_pass(job: VideoJob, device: torch.device) -> ShotPass:
    """The pass over the job's frames, its segments where the job's chunks begin, started."""
    return ShotPass(job.input, job.pts, job.info, [c.first for c in job.chunks], device)


@contextmanager
def early_pass(job: VideoJob, device: torch.device) -> Iterator[ShotPass | None]:
    """The trained detector's pass of the job for the block, started now, before its models
    load and its work folder opens (it only reads the input: the chunks' first cuts come
    sooner), for planned_shots to take over; an error in the block stops it. None where the job
    needs no pass: --shots threshold or none, or cuts a previous run of this job kept in its
    work folder."""
    needed = job.options.shots not in ("threshold", "none")
    kept = holds_its_work(job) and read_cuts(job.workdir / SHOTS_FILE, len(job.pts)) is not None
    if not needed or kept:
        yield None
        return
    pass_ = job_pass(job, device)
    try:
        yield pass_
    except BaseException:
        pass_.stop()  # at once if planned_shots had it
        raise


@contextmanager
def planned_shots(
    job: VideoJob,
    device: torch.device,
    notify: Callable[[str], None],
    started: ShotPass | None = None,
) -> Iterator[Shots]:
    """The job's cuts for the block: by the trained detector in a pass beside the block's work
    (`started` by early_pass, or started here), or read back from the work folder where a
    previous run of the job found them; only the first frame for --shots none; none planned for
    --shots threshold. A complete pass is said in one line at the block's end; an error in the
    block stops the pass."""
    if job.options.shots in ("threshold", "none"):
        if started is not None:  # early_pass starts none for these
            started.stop()
        yield Shots(None if job.options.shots == "threshold" else (0,))
        return
    stored = job.workdir / SHOTS_FILE
    cuts = read_cuts(stored, len(job.pts))
    if cuts is not None:
        if started is not None:
            started.stop()
        yield Shots(tuple(cuts))
        return
    pass_ = started or job_pass(job, device)
    pass_.keep_in(stored)
    try:
        yield Shots(None, pass_)
        pass_.join()
    except BaseException:
        pass_.stop()
        raise
    notify(
        f"shots: {len(pass_.cuts_between(0, pass_.frames))} in {pass_.frames} frames "
        f"(TransNetV2, a pass of {pass_.seconds:.1f} s beside the chunks)"
    )
    if pass_.not_stored:
        notify(f"{pass_.not_stored}: a resumed job would run the pass again")


def decoded_thumbnails(
    path: Path,
    pts: tuple[int, ...],
    info: VideoInfo,
    first: int,
    stop: int,
    halt: threading.Event | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """(frame number, (27, 48, 3) uint8 RGB) of the frames first ... stop - 1 that decode, in
    order, as they decode; `halt`, once set, ends them at the next frame."""
    index_of = {p: i for i, p in enumerate(pts[first:stop], start=first)}
    convert = functools.partial(thumbnail, rotation=info.rotation)
    for p, thumb in decode_range(path, pts[first], pts[stop - 1], info, convert):
        if halt is not None and halt.is_set():
            return
        if p in index_of:
            yield index_of[p], thumb


def thumbnail(frame: av.VideoFrame, rotation: int) -> np.ndarray:
    """A decoded frame as the network's input: upright, 48x27 RGB, averaged by area."""
    width, height = transnet.WIDTH, transnet.HEIGHT
    if rotation in (90, 270):  # stored sideways: turned upright below
        width, height = height, width
    rgb = frame.to_ndarray(width=width, height=height, format="rgb24", interpolation="AREA")
    if rotation:
        rgb = np.rot90(rgb, k=rotation // 90)  # counter-clockwise, as media.video.to_rgb
    return np.ascontiguousarray(rgb)
