"""Running a video job's chunks on Ray actors: one per GPU (or CPU workers), on this machine or
an existing cluster.

The worker is a plain class that loads its models once and converts whole chunks, several at
once in threads as the local runner does (runner.local.AtOnce: the same number, each on a CUDA
stream of its own); Ray only places it and moves chunks and results. Inputs are read by every
worker from the same path (shared storage); encoded chunks come back through the driver, which
keeps them atomically in the work folder, so resume works exactly as in a single-process run.
If an actor dies, Ray restarts it and retries its chunks. A photo library's batches go to the
same actors: runner/ray_photos.py.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

from stereoconv.config import StereoConfig
from stereoconv.converter import StereoConverter
from stereoconv.errors import UserError
from stereoconv.fileio import atomic_output
from stereoconv.jobs.photos import encode_batch
from stereoconv.jobs.video.chunk import convert_chunk
from stereoconv.jobs.video.job import Chunk, VideoJob
from stereoconv.jobs.video.records import ChunkRecord
from stereoconv.jobs.video.shots import Shots
from stereoconv.overlap import available_cores
from stereoconv.progress import Progress, silent
from stereoconv.runner.local import MAX_AT_ONCE, AtOnce

ConverterFactory = Callable[[StereoConfig, torch.device], StereoConverter]
# Chunks (or photo batches) the driver sends an actor beyond those it converts at once: one
# waits there, so a place that frees is filled at once.
WAITING_PER_WORKER = 1


def default_factory(config: StereoConfig, device: torch.device) -> StereoConverter:
    return StereoConverter(config, device)


def worker_device(requested: str | None, cuda: bool, mps: bool = False) -> torch.device:
    """A worker's device for the --device the user asked for: a GPU actor sees only the GPU
    Ray gave it, as cuda:0, so any cuda:N means that one; without --device, the best there is."""
    if requested is None:
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    kind = requested.split(":")[0]
    if (kind == "cuda" and not cuda) or (kind == "mps" and not mps):
        raise UserError(f"--device {requested}: a Ray worker has no {kind.upper()} device")
    return torch.device(kind)


class ChunkWorker:
    """Converts chunks of a video job (or batches of photos), `at_once` at a time (default: as
    many as the local runner would, runner.local.chunks_at_once), in the threads of the Ray
    actor; holds the models. Usable without Ray."""

    def __init__(
        self,
        config: StereoConfig,
        factory: ConverterFactory | None = None,
        cpu_threads: int | None = None,
        device: str | None = None,
        at_once: int | None = None,
    ):
        device = worker_device(device, torch.cuda.is_available(), torch.backends.mps.is_available())
        if cpu_threads and device.type == "cpu":
            # CPU kernels sum in an order that depends on the thread count: the driver's count
            # makes a worker's frames bit-identical to a single-process run's
            torch.set_num_threads(cpu_threads)
        elif device.type != "cpu":
            # Ray starts an actor with OMP_NUM_THREADS=1: the CPU work beside a GPU's (resizes,
            # conversions) gets the node's cores, as in a local run (Ray's diffusion job ran at
            # 0.69x local on one GPU before this and the carry's flow resize on the GPU, 0.91x
            # after, docs/distributed.md; each alone not measured)
            torch.set_num_threads(available_cores())
        self.converter = (factory or default_factory)(config, device)
        self.asked_at_once = at_once
        self.places = AtOnce(self.converter, at_once)
        self.photo_places = AtOnce(self.converter, at_once, photos=True)

    def pid(self) -> int:
        return os.getpid()

    def device(self) -> str:
        return str(self.converter.device)

    def at_once(self, photos: bool = False) -> int:
        """How many chunks (or, `photos`, photo batches) this worker converts at once."""
        return (self.photo_places if photos else self.places).n

    def plan(self, chunks: int) -> int:
        """Before a job's chunks: about `chunks` of them will come here, so convert as many at
        once as fill their rounds, as the local runner does (runner.local.chunks_at_once);
        returns how many. Not while chunks are converting: one job at a time."""
        self.places = AtOnce(self.converter, self.asked_at_once, chunks=chunks)
        return self.places.n

    def ready(self, depth_model: bool = True) -> bool:
        """Load the models now (they load lazily), so failures show up before any chunk and
        timings do not include loading. depth_model: also the depth model (not needed when
        the job's depth is given)."""
        self.places.load_models(depth_model)
        return True

    def encode_photos(self, batch: list[tuple], layout: str) -> list[tuple[list[bytes], dict]]:
        """A photo-library batch: per photo its output files, encoded here, written by the
        driver, and its comfort statistics."""
        return self.photo_places.run(encode_batch, self.converter, batch, layout)

    def convert(self, job: VideoJob, chunk: Chunk) -> tuple[bytes, ChunkRecord]:
        """The encoded chunk file's bytes and its statistics."""
        return self.places.run(self._convert, job, chunk, depth_model=job.depth is None)

    def _convert(self, job: VideoJob, chunk: Chunk) -> tuple[bytes, ChunkRecord]:
        with tempfile.TemporaryDirectory(prefix="stereoconv-chunk-") as tmp:
            local = dataclasses.replace(job, workdir=Path(tmp), save_depth=None)
            stats = convert_chunk(local, self.converter, chunk)
            return local.chunk_video(chunk).read_bytes(), stats


def with_absolute_model_paths(config: StereoConfig) -> StereoConfig:
    """Model folders given as relative paths, made absolute for workers in other folders."""
    changes = {
        name: str(Path(getattr(config, name)).resolve())
        for name in ("model", "depth_model")
        if getattr(config, name) and Path(getattr(config, name)).exists()
    }
    return dataclasses.replace(config, **changes)


def keep_chunk(job: VideoJob, chunk: Chunk, data: bytes, stats: ChunkRecord) -> None:
    """Store a chunk that came back from a worker, atomically, as convert_chunk would have."""
    with atomic_output(job.chunk_video(chunk)) as tmp:
        tmp.write_bytes(data)
    stats.write(job.chunk_stats(chunk))


def start_ray(address: str | None, workers: int) -> None:
    import ray

    if ray.is_initialized():
        return
    try:
        if address:
            ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
        else:
            cpus = max(workers, os.cpu_count() or 1)
            ray.init(
                num_cpus=cpus,
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.ERROR,
            )
    except ConnectionError as exc:
        raise UserError(f"cannot reach the Ray cluster at {address}: {exc}") from None


def cluster_gpus() -> int:
    import ray

    return int(ray.cluster_resources().get("GPU", 0))


def start_actors(
    config: StereoConfig,
    workers: int,
    address: str | None,
    depth_model: bool = True,
    device: str | None = None,
) -> list:
    """Join (or start) the Ray cluster and start the workers: one GPU each where the cluster
    has GPUs (unless --device cpu), CPU workers otherwise."""
    if workers < 1:
        raise UserError(f"--workers must be >= 1, not {workers}")
    start_ray(address, workers)
    gpus = 0 if device == "cpu" else cluster_gpus()
    if 0 < gpus < workers:
        raise UserError(f"--workers {workers}: the Ray cluster has only {gpus} GPUs")
    # workers do not share our working folder
    config = with_absolute_model_paths(config)
    return make_actors(config, workers, gpus > 0, None, depth_model, device)


def make_actors(
    config: StereoConfig,
    workers: int,
    use_gpus: bool,
    factory: ConverterFactory | None = None,
    depth_model: bool = True,
    device: str | None = None,
    at_once: int | None = None,
) -> list:
    """Actors, one GPU each (or one CPU), with their models loaded, on `device` (--device),
    each converting `at_once` chunks at once (default: the local runner's choice, made on the
    actor's node). Ray restarts an actor whose process dies and retries the chunks it was
    converting."""
    import ray
    from ray.exceptions import RayActorError

    # threads for the chunks it converts (up to twice MAX_AT_ONCE where a job's last round is
    # filled: ChunkWorker.plan), those waiting, and a call such as pid() beside them
    threads = (at_once or 2 * MAX_AT_ONCE) + WAITING_PER_WORKER + 1
    remote = ray.remote(ChunkWorker).options(
        num_gpus=1 if use_gpus else 0,
        num_cpus=1,
        max_restarts=3,
        max_task_retries=3,
        max_concurrency=threads,
    )
    cpu_threads = torch.get_num_threads()
    actors = [remote.remote(config, factory, cpu_threads, device, at_once) for _ in range(workers)]
    try:
        ray.get([a.ready.remote(depth_model) for a in actors])
    except RayActorError as exc:  # a worker could not start: say why in one line
        cause = exc.__cause__ or getattr(exc, "cause", None) or exc
        raise UserError(f"the Ray workers could not start: {str(cause).splitlines()[-1]}") from None
    return actors


def in_flight_limits(actors: list, photos: bool = False) -> list[int]:
    """How many chunks (photo batches: `photos`) the driver keeps in flight on each actor:
    those it converts at once and WAITING_PER_WORKER more (0 for an actor gone for good)."""
    import ray
    from ray.exceptions import RayActorError

    limits = []
    for actor in actors:
        try:
            limits.append(ray.get(actor.at_once.remote(photos)) + WAITING_PER_WORKER)
        except RayActorError:
            limits.append(0)
    return limits


def planned(actors: list, chunks: int) -> None:
    """Tell each actor about how many chunks of the job it will convert (ChunkWorker.plan);
    an actor gone for good is left to in_flight_limits."""
    import ray
    from ray.exceptions import RayActorError

    for actor in actors:
        try:
            ray.get(actor.plan.remote(chunks))
        except RayActorError:
            pass


def run_chunks(
    job: VideoJob,
    actors: list,
    progress: Progress = silent,
    on_chunk: Callable[[Chunk], None] | None = None,
    shots: Shots | None = None,
) -> list[Chunk]:
    """Convert the job's missing chunks on the actors, each holding at most its
    in_flight_limits (memory stays flat, and a fast actor is never idle while a slow one
    queues), keeping each result as it arrives. A chunk whose actor is gone for good goes to
    another. Returns the chunks converted."""
    import ray
    from ray.exceptions import RayActorError

    todo = [c for c in job.chunks if not job.is_done(c)]
    progress("frames", sum(c.stop - c.first for c in job.chunks if job.is_done(c)), len(job.pts))
    planned(actors, math.ceil(len(todo) / max(len(actors), 1)))
    limit = in_flight_limits(actors)
    live = [i for i in range(len(actors)) if limit[i]]
    load = dict.fromkeys(live, 0)
    pending: dict = {}
    done: list[Chunk] = []
    while todo or pending:
        while todo and live and max(limit[i] - load[i] for i in live) > 0:
            worker = max(live, key=lambda i: limit[i] - load[i])
            chunk = todo.pop(0)
            chunk_job = job if shots is None else shots.job_for(job, chunk)
            pending[actors[worker].convert.remote(chunk_job, chunk)] = (chunk, worker)
            load[worker] += 1
        if not pending:
            raise UserError("every Ray worker failed; see the Ray logs")
        (ref,), _ = ray.wait(list(pending), num_returns=1)
        chunk, worker = pending.pop(ref)
        load[worker] -= 1
        try:
            data, stats = ray.get(ref)
        except RayActorError:
            live = [i for i in live if i != worker]  # out of restarts: give its chunk to others
            todo.insert(0, chunk)
            continue
        keep_chunk(job, chunk, data, stats)
        done.append(chunk)
        progress("frames", chunk.stop - chunk.first, len(job.pts))
        if on_chunk is not None:
            on_chunk(chunk)
    return done


# --- what the commands call: `--workers N` or `--ray-address` ---------------------------------


def convert_video_on_ray(
    job: VideoJob,
    workers: int,
    address: str | None,
    progress: Progress = silent,
    device=None,
    shots: Shots | None = None,
):
    """The chunks on Ray actors (one GPU each where the cluster has GPUs), then the join.
    shots: the cuts as the chunks are sent (each with those of the frames it reads)."""
    from stereoconv.jobs.video.finish import finish_job

    actors = start_actors(job.config, workers, address, job.depth is None, device)
    run_chunks(job, actors, progress, shots=shots)
    if shots is not None:
        shots.settle()  # its cuts kept before finish_job removes the work folder
    return finish_job(job)
