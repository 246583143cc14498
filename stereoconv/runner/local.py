"""Running the work in this process: a video job's chunks and a photo library's batches, several
at once in threads where the CPU is the bottleneck. A Ray actor (runner/ray.py) converts its
chunks and batches in this module's way too (AtOnce)."""

from __future__ import annotations

import collections
import math
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor

from stereoconv.converter import StereoConverter, carried_fill
from stereoconv.jobs.photos import BatchMapper, PhotoResult, encode_batch
from stereoconv.jobs.video.chunk import convert_chunk
from stereoconv.jobs.video.finish import finish_job
from stereoconv.jobs.video.job import Chunk, VideoJob
from stereoconv.jobs.video.shots import Shots
from stereoconv.media.encode import ENCODER_THREADS
from stereoconv.overlap import available_cores
from stereoconv.progress import Progress, silent
from stereoconv.tensors import own_stream

MAX_AT_ONCE = 4  # the most the cores give room for (a last round: up to twice, filling_rounds)
# the least GPU memory on which a warp job converts more chunks at once than the cores hold to
# fill its last round: the cards its chunks were measured on have 80 GiB and more
FILLING_CARD_GIB = 40


def chunks_at_once(
    converter: StereoConverter, photos: bool = False, chunks: int | None = None
) -> int:
    """Chunks (or photo batches) one process converts at once. On a GPU, where the CPU's work
    is the bottleneck, as many as the cores have room for: the warp backend (colour conversion
    and x264, at a fixed ENCODER_THREADS per chunk, so that chunks encode the same anywhere),
    and a video's carried fill (temporal_fill = carry), which paints few frames (their UNet
    calls take turns, DiffusionBackend.fill) and runs each frame's warp, optical flow and
    carry one after the other. Otherwise diffusion keeps the GPU busy with one, and its
    attention processors are state of the one UNet. photos: for a photo library's batches,
    which the per-frame diffusion converts, never carried. chunks: how many a job has to
    convert, so that the warp backend's last round leaves few places idle (filling_rounds;
    the carried fill's chunks hold more GPU memory each, so no more of them than fit the
    cores)."""
    if converter.device.type != "cuda" or not (
        converter.config.backend == "warp" or (not photos and carried_fill(converter.config))
    ):
        return 1
    most = max(1, min(MAX_AT_ONCE, available_cores() // ENCODER_THREADS))
    if chunks is None or converter.config.backend != "warp":  # the carry's memory: not more
        return most
    if card_gib(converter.device) < FILLING_CARD_GIB:  # no room measured for more chunks
        return most
    return filling_rounds(chunks, most)


def card_gib(device) -> float:
    """The GPU's memory, GiB."""
    import torch

    return torch.cuda.get_device_properties(device).total_memory / 2**30


def filling_rounds(chunks: int, most: int) -> int:
    """How many of a job's `chunks` to convert at once where `most` fit: up to twice as many
    where that leaves fewer places idle over the job's rounds (5 chunks: 5 at once, not 4 and
    then 1 alone while three places wait: the 1080p footage job's chunk threads were idle a
    third of the time so, docs/benchmarks.md), the fewest of those that do. On the GPU hosts
    measured, 8 warp chunks at once converted as many frames a second as 4 at x264 `veryfast`
    and more at `medium` (5-13 % fewer at the lightest presets). The frames do not depend on it."""
    if most <= 1 or chunks <= most:
        return most
    counts = range(most, min(2 * most, chunks) + 1)
    return min(counts, key=lambda n: (math.ceil(chunks / n) * n, n))


class AtOnce:
    """Chunks (or photo batches) of one converter, converted in threads: at most `n` at once
    (default: chunks_at_once), each on a CUDA stream of its own, the models loaded once before
    the first. The local runner's threads and a Ray actor's threads both go through run()."""

    def __init__(
        self,
        converter: StereoConverter,
        n: int | None = None,
        photos: bool = False,
        chunks: int | None = None,
    ):
        self.converter = converter
        self.n = n or chunks_at_once(converter, photos, chunks)
        self._free = threading.BoundedSemaphore(self.n)
        self._loading = threading.Lock()

    def load_models(self, depth_model: bool = True) -> None:
        """Load the models now, once: they load lazily, and threads must not load them twice.
        depth_model: also the depth model (not needed when the job's depth is given)."""
        with self._loading:
            self.converter.load_models(depth_model)

    def run(self, work: Callable, *args, depth_model: bool = True):
        """work(*args) once one of the n places is free, on a CUDA stream of its own (at 1080p
        with the warp backend: 75 -> 116 fps against one shared stream, docs/benchmarks.md)."""
        self.load_models(depth_model)
        with self._free, own_stream(self.converter.device):
            return work(*args)


def convert_video(
    converter: StereoConverter,
    job: VideoJob,
    progress: Progress = silent,
    at_once: int | None = None,
    shots: Shots | None = None,
) -> tuple[list[str], dict]:
    """Convert every chunk that is not done yet, in one process, then join. Chunks are
    independent (each warms its depth smoothing up on the frames before it), so `at_once`
    (default: chunks_at_once) of them run in threads; their files are the same either way.
    shots: the cuts, read by the chunks as they come to their frames, where the job does not
    hold them. After an error, chunks not begun are dropped, those running
    finish, and the error is raised: a rerun resumes."""
    todo = []
    for chunk in job.chunks:
        if not job.is_done(chunk):
            todo.append(chunk)
        else:
            progress("frames", chunk.stop - chunk.first, len(job.pts))
    places = AtOnce(converter, at_once, chunks=len(todo))

    failed = threading.Event()  # after an error, a chunk not begun yet converts nothing

    def convert(chunk: Chunk) -> None:  # convert_chunk looked up here: tests and scripts wrap it
        chunk_job = job if shots is None else shots.job_reading(job)
        if failed.is_set():
            return
        places.run(
            convert_chunk, chunk_job, converter, chunk, progress, depth_model=job.depth is None
        )

    if min(len(todo), places.n) <= 1:
        for chunk in todo:
            convert(chunk)
        return finished(job, shots)
    places.load_models(job.depth is None)  # before the threads
    with ThreadPoolExecutor(
        min(len(todo), places.n), thread_name_prefix="stereoconv-chunk"
    ) as pool:
        futures = [pool.submit(convert, c) for c in todo]
        try:
            for future in futures:
                future.result()
        except BaseException:
            failed.set()
            for future in futures:
                future.cancel()
            if shots is not None:
                shots.stop()  # chunks waiting for their cuts give up
            raise
    return finished(job, shots)


def finished(job: VideoJob, shots: Shots | None) -> tuple[list[str], dict]:
    """The job joined (finish_job), once the shot pass, if any, has kept its cuts: finish_job
    removes the work folder, which a later write of the cuts would make again."""
    if shots is not None:
        shots.settle()
    return finish_job(job)


def local_batches(converter: StereoConverter, at_once: int | None = None) -> BatchMapper:
    """A photo-library batch mapper that converts the batches here, with `converter`, as
    chunks are: `at_once` (default: chunks_at_once) in threads, each on its own stream; the
    results come in the batches' order."""
    places = AtOnce(converter, at_once, photos=True)

    def run(batches: Iterator[list], layout: str) -> Iterator[tuple[list, list[PhotoResult]]]:
        if places.n <= 1:
            for batch in batches:
                yield batch, encode_batch(converter, batch, layout)
            return

        def convert(batch: list) -> tuple[list, list[PhotoResult]]:
            return batch, places.run(encode_batch, converter, batch, layout)

        places.load_models()  # before the threads
        yield from in_order_at_once(convert, batches, places.n)

    return run


def in_order_at_once(work: Callable, items: Iterable, n: int) -> Iterator:
    """work(item) of each item, in the items' order, n at once in threads; an item is taken
    only when a thread is free for it (memory stays flat). Stopping early, or an error, waits
    for the n running and drops the rest."""
    with ThreadPoolExecutor(n, thread_name_prefix="stereoconv-batch") as pool:
        running: collections.deque = collections.deque()
        try:
            for item in items:
                if len(running) == n:
                    yield running.popleft().result()
                running.append(pool.submit(work, item))
            while running:
                yield running.popleft().result()
        finally:
            for future in running:
                future.cancel()
