"""Frames in and out of a chunk: decoded ahead in a thread, in batches with their depth (the
model's estimate or the --depth maps), and the packed views back to the encoder's arrays."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from stereoconv.config import StereoConfig
from stereoconv.converter import StereoConverter
from stereoconv.disparity.maps import DepthFrames, depth_batch, zero_is_unknown
from stereoconv.fileio import atomic_output
from stereoconv.jobs.video.job import VideoJob
from stereoconv.media.video import ColourTags, decode_range
from stereoconv.media.yuv import rgb_to_i420
from stereoconv.overlap import prefetch
from stereoconv.tensors import float_on_device


@dataclass(frozen=True)
class DepthBatch:
    """Consecutive frames of the converted range with their depth."""

    indices: list[int]  # frame indices in the converted range
    pts: list[int]  # their presentation timestamps
    frames: torch.Tensor  # (B, 3, H, W) in [0, 1], on the device
    relative: torch.Tensor  # (B, H, W): relative disparity, or pixels if given so
    given: bool  # the depth came from --depth

    def take(self, keep: list[int]) -> DepthBatch:
        """The frames at positions `keep` of the batch."""
        if len(keep) == len(self.indices):
            return self  # no copy: the common case
        return DepthBatch(
            [self.indices[j] for j in keep],
            [self.pts[j] for j in keep],
            self.frames[keep],
            self.relative[keep],
            self.given,
        )


def batched(items: Iterable, size: int) -> Iterator[list]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def padded(frames: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(B, C, h, w) edge-padded right and below to height x width (the encoder's even size)."""
    h, w = frames.shape[-2:]
    if (h, w) == (height, width):
        return frames
    return F.pad(frames, (0, width - w, 0, height - h), mode="replicate")


def to_array(frames: torch.Tensor, height: int, width: int, high_bit_depth: bool) -> np.ndarray:
    """(B, 3, h, w) float in [0, 1] -> (B, height, width, 3) uint8 / uint16, edge-padded to the
    encoder's even size."""
    frames = padded(frames, height, width)
    peak = 65535.0 if high_bit_depth else 255.0
    # to integers on the device: a quarter (8-bit) of the bytes cross to the host
    out = (frames.clamp(0, 1) * peak).round().permute(0, 2, 3, 1)
    if high_bit_depth:  # torch has no uint16 on every device: int32 there, uint16 here
        return out.to(torch.int32).cpu().numpy().astype(np.uint16)
    return out.to(torch.uint8).cpu().numpy()


def to_i420_array(frames: torch.Tensor, height: int, width: int, colour: ColourTags) -> np.ndarray:
    """(B, 3, h, w) float in [0, 1] -> (B, height * 3 // 2, width) uint8 Y'CbCr 4:2:0 (I420, as
    PyAV's yuv420p arrays), edge-padded to the encoder's even size and converted on the device
    with the stream's colour tags: half the bytes of RGB cross to the host, and no swscale."""
    frames = padded(frames, height, width)
    return rgb_to_i420(frames, colour.matrix, colour.range == 2).cpu().numpy()


def save_depth_maps(folder: Path, indices: list[int], relative: torch.Tensor) -> None:
    """Estimated relative disparity as 16-bit PNGs, min-max per frame (near = bright)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i, rel in zip(indices, relative, strict=True):
        lo, hi = rel.min(), rel.max()
        values = ((rel - lo) / (hi - lo).clamp_min(1e-12) * 65535).round().cpu().numpy()
        with atomic_output(folder / f"frame-{i:06d}.png") as tmp:
            Image.fromarray(values.astype(np.uint16)).save(tmp, format="PNG")


def depth_batches(
    job: VideoJob, converter: StereoConverter, first: int, stop: int
) -> Iterator[DepthBatch]:
    """Frames first..stop-1 in batches with their depth: the --depth maps as --depth-kind reads
    them, or the model's estimate. Frames and maps are decoded ahead, in a thread."""
    cfg, device = converter.config, converter.device
    peak = 65535.0 if job.info.high_bit_depth else 255.0
    h, w = job.info.height, job.info.width
    # decoded ahead in a thread, while the GPU works
    for indices, pts, rgb, maps in prefetch(host_batches(job, cfg, first, stop)):
        x = (float_on_device(rgb, device) / peak).permute(0, 3, 1, 2)
        if maps is None:
            yield DepthBatch(indices, pts, x, converter.relative_disparity(x), False)
        else:
            # on the device: at 1080p, filling the maps' gaps on the host was the job's bound
            given = depth_batch(maps, cfg.depth_kind, h, w, cfg.depth_scale, device)
            yield DepthBatch(indices, pts, x, given, True)


def map_of(maps: Iterator[tuple[int, tuple]], source: int) -> tuple:
    """The map of depth frame `source` from a stream of (frame, map) in order, those before it
    passed by (frames --max-fps dropped, or the input could not decode)."""
    for index, item in maps:
        if index == source:
            return item
    raise AssertionError(f"depth frame {source} is not in the stream")  # stream() checks counts


def host_batches(
    job: VideoJob, cfg: StereoConfig, first: int, stop: int
) -> Iterator[tuple[list[int], list[int], np.ndarray, list[tuple[np.ndarray, np.ndarray]] | None]]:
    """(indices, timestamps, RGB frames (B, H, W, 3), the --depth maps' (values, known) or
    None) of frames first..stop-1, batch by batch, decoded on the host."""
    index_of = {p: i for i, p in enumerate(job.pts[first:stop], start=first)}
    frames = decode_range(job.input, job.pts[first], job.pts[stop - 1], job.info)
    maps = None
    if job.depth:
        zero_unknown = zero_is_unknown(cfg.depth_kind, cfg.depth_unknown)
        depth_frames = DepthFrames(job.depth, job.depth_offset, zero_unknown, job.depth_pts)
        # the depth source is at the input's rate: with --max-fps, the kept frames' maps
        start, end = job.depth_frame(first), job.depth_frame(stop - 1) + 1
        maps = enumerate(depth_frames.stream(start, end), start=start)
    decodable = ((index_of[p], p, f) for p, f in frames if p in index_of)
    for batch in batched(decodable, cfg.batch_size):
        indices, pts = [i for i, _, _ in batch], [p for _, p, _ in batch]
        rgb = np.stack([f for _, _, f in batch])
        if maps is None:
            yield indices, pts, rgb, None
            continue
        yield indices, pts, rgb, [map_of(maps, job.depth_frame(i)) for i in indices]
