"""Depth for every frame of a video, given from outside: a depth video or a folder of maps.

Frame i of the depth source goes with frame i of the converted range (by order, not by
timestamp: depth tools rarely keep the source's timestamps).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stereoconv.depth import read_depth_values
from stereoconv.errors import UserError
from stereoconv.media.video import decode_range, frame_timestamps, probe

MAP_SUFFIXES = (".png", ".npy", ".pfm", ".tif", ".tiff")


class DepthFrames:
    """Random access by frame index to raw depth values and their known masks."""

    def __init__(self, path: Path, offset: int = 0, zero_unknown: bool = True):
        """offset: index in the depth source of the first converted frame (with --start, the
        source is read from the same frame on). zero_unknown: a 0 means no value (measured
        disparity), not the farthest plane (a relative map, near = bright)."""
        self.path = Path(path)
        self.offset = offset
        self.zero_unknown = zero_unknown
        if self.path.is_dir():
            self.files = sorted(p for p in self.path.iterdir() if p.suffix.lower() in MAP_SUFFIXES)
            if not self.files:
                raise UserError(f"--depth folder {path} holds no depth maps (PNG, NPY, PFM)")
            self.count = len(self.files)
        elif self.path.is_file():
            self.files = None
            self.info = probe(self.path)
            self.pts = frame_timestamps(self.path)
            self.count = len(self.pts)
        else:
            raise UserError(f"--depth not found: {path}")

    def __len__(self) -> int:
        return self.count - self.offset

    def read(self, first: int, stop: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """(values, known) for frames first..stop-1 of the converted range."""
        a, b = first + self.offset, stop + self.offset
        if b > self.count:
            raise UserError(
                f"--depth {self.path} has {self.count} frames, fewer than the video's {b}"
            )
        if self.files is not None:
            return [read_depth_values(p, self.zero_unknown) for p in self.files[a:b]]
        out = []
        for _, rgb in decode_range(self.path, self.pts[a], self.pts[b - 1], self.info):
            values = rgb[..., 0].astype(np.float32)
            known = values > 0 if self.zero_unknown else np.ones(values.shape, dtype=bool)
            out.append((values, known))
        if len(out) != b - a:
            raise UserError(f"--depth {self.path}: frames {a}..{b - 1} could not all be decoded")
        return out
