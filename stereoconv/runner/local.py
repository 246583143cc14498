"""Running the work in this process: a video job's chunks one after the other, and a photo
library's batches."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from stereoconv.converter import StereoConverter
from stereoconv.jobs.photos import BatchMapper, PhotoResult, encode_batch
from stereoconv.jobs.video.chunk import convert_chunk
from stereoconv.jobs.video.finish import finish_job
from stereoconv.jobs.video.job import VideoJob


def convert_video(
    converter: StereoConverter,
    job: VideoJob,
    progress: Callable[[int], None] | None = None,
) -> tuple[list[str], dict]:
    """Convert every chunk that is not done yet, in one process, then join."""
    for chunk in job.chunks:
        if job.is_done(chunk):
            if progress is not None:
                progress(chunk.stop - chunk.first)
            continue
        convert_chunk(job, converter, chunk, progress)
    return finish_job(job)


def local_batches(converter: StereoConverter) -> BatchMapper:
    """A photo-library batch mapper that converts each batch here, with `converter`."""

    def run(batches: Iterator[list], layout: str) -> Iterator[tuple[list, list[PhotoResult]]]:
        for batch in batches:
            yield batch, encode_batch(converter, batch, layout)

    return run
