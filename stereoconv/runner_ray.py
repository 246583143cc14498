"""The Ray driver of the commands: a video's chunks, or a photo library's batches, on Ray actors
(stereoconv.runner starts them); what `--workers N` or `--ray-address` asks for."""

from __future__ import annotations

from collections.abc import Callable


def convert_video_on_ray(
    job, workers: int, address: str | None, progress: Callable[[int], None], device=None
):
    """The chunks on Ray actors (one GPU each where the cluster has GPUs), then the join."""
    from stereoconv.jobs.video import finish_job
    from stereoconv.runner import run_chunks, start_actors

    actors = start_actors(job.config, workers, address, job.depth is None, device)
    run_chunks(job, actors, progress)
    return finish_job(job)


def photo_mapper(config, workers: int, address: str | None, device=None):
    """A batch mapper for stereoconv.jobs.library.convert_library that runs on Ray actors."""
    from stereoconv.runner import ray_photo_batches, start_actors

    actors = start_actors(config, workers, address, device=device)
    return ray_photo_batches(actors)
