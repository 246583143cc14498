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
from stereoconv.layout import arrange
from stereoconv.layouts import Layout, layout_of
from stereoconv.media.images import Photo, encode_photo, encode_stereo_mpo
from stereoconv.report.stats import frame_stats


def encode_outputs(
    left: torch.Tensor,
    right: torch.Tensor,
    layout: Layout,
    fmt: str,
    photo: Photo,
    cfg: StereoConfig,
) -> list[bytes]:
    """The files of one photo's (1, 3, H, W) views in `layout`, scaled down to the config's
    --max-size: one per output name, in order (an MPO holds the two pictures of pair)."""
    pictures = [to_uint8(p[0]) for p in arrange(left, right, layout, cfg.max_size, cfg.vr180_hfov)]
    meta = photo.metadata
    if fmt == "mpo":
        return [encode_stereo_mpo(*pictures, meta)]
    return [encode_photo(picture, fmt, meta) for picture in pictures]


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
    record = layout_of(layout)
    return [
        (encode_outputs(left, right, record, task.fmt, photo, converter.config), stats)
        for (task, photo), (left, right, stats) in zip(batch, views, strict=True)
    ]


# Maps batches of (task, photo) to (batch, result per photo), in order: here or on Ray actors.
BatchMapper = Callable[[Iterator[list], str], Iterator[tuple[list, list[PhotoResult]]]]
