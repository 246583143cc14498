"""A photo library's batches on Ray actors (runner/ray.py's ChunkWorker, which converts them as
the local runner does): in the batches' order, memory flat on the driver, a batch whose worker
died retried photo by photo, and a photo that kills its worker twice reported and passed by.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator

from stereoconv.config import StereoConfig
from stereoconv.errors import UserError
from stereoconv.runner.ray import in_flight_limits, start_actors


def ray_photo_batches(actors: list):
    """A photo-library batch mapper over the actors, each holding at most its
    in_flight_limits batches, so memory stays flat on the driver; results come in the
    batches' order. A batch whose worker died (after Ray restarted it) is retried photo by
    photo, each photo alone on a worker (nothing else converting there: the batches beside
    it may have been the cause); a photo whose worker dies then too is poisoned: it is
    reported and the rest go on."""
    import ray
    from ray.exceptions import RayActorError

    def run(batches: Iterator[list], layout: str):
        limit = dict(zip(actors, in_flight_limits(actors, photos=True), strict=True))
        live = [a for a in actors if limit[a]]
        if not live:
            raise UserError("every Ray worker died; see the Ray logs")
        in_flight: collections.deque = collections.deque()  # (batch, actor, ref), in order

        def load(actor) -> int:
            return sum(1 for _, a, _ in in_flight if a is actor)

        def submit(batch: list) -> None:
            actor = max(live, key=lambda a: limit[a] - load(a))
            ref = actor.encode_photos.options(max_task_retries=0).remote(batch, layout)
            in_flight.append((batch, actor, ref))

        def died(actor) -> None:
            if actor in live and not alive(actor):
                live.remove(actor)
            if not live:
                raise UserError("every Ray worker died; see the Ray logs")

        def idle_worker():
            """A live worker with nothing in flight, waiting for one if need be."""
            while True:
                busy = {a for _, a, ref in in_flight if not ray.wait([ref], timeout=0)[0]}
                idle = [a for a in live if a not in busy]
                if not idle:
                    ray.wait([ref for _, a, ref in in_flight if a in busy], num_returns=1)
                elif alive(idle[0]):  # not gone for good before the photo was sent
                    return idle[0]
                else:
                    died(idle[0])

        def alone(one: list) -> list:
            """The result of a one-photo batch converted on a worker with nothing else in
            flight, or the UserError of a poisoned photo."""
            actor = idle_worker()
            try:
                return ray.get(actor.encode_photos.options(max_task_retries=0).remote(one, layout))
            except RayActorError:
                died(actor)
            source = one[0][0].source
            why = f"{source}: the worker process converting it died (twice); see the Ray logs"
            return [UserError(why)]

        def collect() -> Iterator[tuple[list, list]]:
            batch, actor, ref = in_flight.popleft()
            try:
                result = ray.get(ref)
            except RayActorError:
                died(actor)
                for one in batch:
                    yield [one], alone([one])
                return
            yield batch, result

        for batch in batches:
            while sum(limit[a] - load(a) for a in live) <= 0:
                yield from collect()
            submit(batch)
        while in_flight:
            yield from collect()

    return run


def alive(actor) -> bool:
    """Whether an actor answers (Ray may have restarted it), or is gone for good."""
    import ray
    from ray.exceptions import RayActorError

    try:
        ray.get(actor.pid.remote())
        return True
    except RayActorError:
        return False


def photo_mapper(config: StereoConfig, workers: int, address: str | None, device=None):
    """A batch mapper for stereoconv.jobs.library.convert_library that runs on Ray actors."""
    actors = start_actors(config, workers, address, device=device)
    return ray_photo_batches(actors)
