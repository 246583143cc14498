"""Running the work in this process: a video job's chunks (several at once in threads where
the CPU is the bottleneck), and a photo library's batches."""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

from stereoconv.converter import StereoConverter
from stereoconv.jobs.photos import BatchMapper, PhotoResult, encode_batch
from stereoconv.jobs.video.chunk import convert_chunk
from stereoconv.jobs.video.finish import finish_job
from stereoconv.jobs.video.job import Chunk, VideoJob
from stereoconv.media.encode import ENCODER_THREADS
from stereoconv.progress import Progress, silent
from stereoconv.tensors import own_stream


def chunks_at_once(converter: StereoConverter) -> int:
    """Chunks one process converts at once. The warp backend on a GPU leaves the CPU's work as
    the bottleneck (colour conversion and x264, at a fixed ENCODER_THREADS per chunk, so that
    chunks encode the same anywhere): as many chunks as the cores have room for. Diffusion
    keeps the GPU busy with one, and its attention processors are state of the one UNet."""
    if converter.config.backend != "warp" or converter.device.type != "cuda":
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(4, (cores or 1) // ENCODER_THREADS))


def convert_video(
    converter: StereoConverter,
    job: VideoJob,
    progress: Progress = silent,
    at_once: int | None = None,
) -> tuple[list[str], dict]:
    """Convert every chunk that is not done yet, in one process, then join. Chunks are
    independent (each warms its depth smoothing up on the frames before it), so `at_once`
    (default: chunks_at_once) of them run in threads; their files are the same either way.
    After an error, chunks not begun are dropped, those running finish, and the error is
    raised: a rerun resumes."""
    todo = []
    for chunk in job.chunks:
        if not job.is_done(chunk):
            todo.append(chunk)
        else:
            progress("frames", chunk.stop - chunk.first, len(job.pts))
    at_once = min(len(todo), at_once or chunks_at_once(converter))
    if at_once <= 1:
        for chunk in todo:
            convert_chunk(job, converter, chunk, progress)
        return finish_job(job)
    if job.depth is None:  # load the models once, before the threads
        _ = converter.depth_estimator
    _ = converter.backend
    with ThreadPoolExecutor(at_once, thread_name_prefix="stereoconv-chunk") as pool:
        futures = [pool.submit(chunk_on_own_stream, job, converter, c, progress) for c in todo]
        try:
            for future in futures:
                future.result()
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    return finish_job(job)


def chunk_on_own_stream(
    job: VideoJob,
    converter: StereoConverter,
    chunk: Chunk,
    progress: Progress,
) -> None:
    """convert_chunk on a CUDA stream of its own, so that chunks in threads do not wait on each
    other's work (at 1080p with the warp backend: 75 -> 116 fps, docs/benchmarks.md)."""
    with own_stream(converter.device):
        convert_chunk(job, converter, chunk, progress)


def local_batches(converter: StereoConverter) -> BatchMapper:
    """A photo-library batch mapper that converts each batch here, with `converter`."""

    def run(batches: Iterator[list], layout: str) -> Iterator[tuple[list, list[PhotoResult]]]:
        for batch in batches:
            yield batch, encode_batch(converter, batch, layout)

    return run
