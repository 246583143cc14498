"""Photos of one size converted together: disparity, views, comfort statistics and the encoded
output files of each. The same function runs in this process and on Ray actors."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict

import numpy as np
import torch

from stereoconv.config import StereoConfig
from stereoconv.converter import StereoConverter
from stereoconv.disparity.plan import DisparityPlan
from stereoconv.jobs.image import to_uint8
from stereoconv.layout import capped_views, pack
from stereoconv.media.images import Photo, encode_photo, encode_stereo_mpo
from stereoconv.report.stats import frame_stats


def encode_outputs(
    left: torch.Tensor,
    right: torch.Tensor,
    layout: str,
    fmt: str,
    photo: Photo,
    cfg: StereoConfig,
) -> list[bytes]:
    """The files of one photo's (1, 3, H, W) views in `layout`, scaled down to the config's
    --max-size: one per output name, in order."""
    hfov = cfg.vr180_hfov
    left, right = capped_views(left, right, layout, cfg.max_size, hfov)
    meta = photo.metadata
    if fmt == "mpo":
        return [encode_stereo_mpo(to_uint8(left[0]), to_uint8(right[0]), meta)]
    if layout == "pair":
        return [encode_photo(to_uint8(v[0]), fmt, meta) for v in (left, right)]
    return [encode_photo(to_uint8(pack(left, right, layout, hfov)[0]), fmt, meta)]


def convert_batch(converter: StereoConverter, photos: list[Photo]) -> list[tuple]:
    """(left, right, stats) of photos of one size, converted together: the views, each
    (1, 3, H, W), and the comfort statistics (stereoconv.report.stats.frame_stats) for --report."""
    frames = torch.from_numpy(np.stack([p.rgb for p in photos]))
    relative = converter.relative_disparity(frames)
    disparity = DisparityPlan.of(converter.config).still(relative)  # each photo its own shot
    views = converter.views(frames, disparity)
    left, right = views.left, views.right
    stats = [asdict(s) for s in frame_stats(disparity, disparity.shape[-1], views.holes)]
    return [(left[i : i + 1], right[i : i + 1], stats[i]) for i in range(len(photos))]


# The output files of one photo, one per output name, and its comfort statistics.
PhotoResult = tuple[list[bytes], dict]


def encode_batch(converter: StereoConverter, batch: list[tuple], layout: str) -> list[PhotoResult]:
    """The output files and statistics of a batch of (task, photo) of one size, converted
    together."""
    views = convert_batch(converter, [photo for _, photo in batch])
    return [
        (encode_outputs(left, right, layout, task.fmt, photo, converter.config), stats)
        for (task, photo), (left, right, stats) in zip(batch, views, strict=True)
    ]


# Maps batches of (task, photo) to (batch, result per photo), in order: here or on Ray actors.
BatchMapper = Callable[[Iterator[list], str], Iterator[tuple[list, list[PhotoResult]]]]
