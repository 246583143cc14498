"""Typed statistics of a video job: one record per frame (for --report) and one per chunk, which
is the chunk's JSON file beside its video. A resumed job reads these files back, so their keys
and layout stay as they are."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from stereoconv.disparity.shots import thumbnails
from stereoconv.fileio import atomic_output
from stereoconv.report.stats import Parallax, frame_change

PARALLAX_KEYS = tuple(f.name for f in dataclasses.fields(Parallax))


@dataclass(frozen=True)
class FrameRecord:
    """One converted frame: what its disparity asks of the eyes, where it is, and its flicker
    terms (None for the first frame of a job)."""

    parallax: Parallax
    index: int  # in the converted range
    time: float  # seconds from the first converted frame
    cut: bool  # a shot starts here
    convergence: float  # its screen plane (pixels subtracted, for disparity given in pixels)
    change_left: float | None
    change_right: float | None
    # --convergence auto: what the configured screen plane would have given
    violation_without_auto: bool | None = None
    near_pct_without_auto: float | None = None
    # the diffusion backend: UNet image-evaluations it cost (backends.views.StereoViews)
    unet_evaluations: float | None = None

    def to_json(self) -> dict:
        out = dataclasses.asdict(self.parallax)
        if self.violation_without_auto is not None:
            out["violation_without_auto"] = self.violation_without_auto
            out["near_pct_without_auto"] = self.near_pct_without_auto
        out.update(
            index=self.index,
            time=self.time,
            cut=self.cut,
            convergence=self.convergence,
            change_left=self.change_left,
            change_right=self.change_right,
        )
        if self.unet_evaluations is not None:
            out["unet_evaluations"] = self.unet_evaluations
        return out

    @classmethod
    def from_json(cls, data: dict) -> FrameRecord:
        rest = {k: v for k, v in data.items() if k not in PARALLAX_KEYS}
        return cls(Parallax(**{k: data[k] for k in PARALLAX_KEYS}), **rest)


@dataclass
class Flicker:
    """Sums of the flicker terms of a chunk: each view's change from frame to frame (its
    256-pixel grey thumbnail), over `pairs` consecutive pairs of frames."""

    left: float = 0.0
    right: float = 0.0
    pairs: int = 0


class ViewChanges:
    """The flicker terms of a chunk's frames, batch by batch."""

    def __init__(self):
        self.sums = Flicker()
        self.last: torch.Tensor | None = None  # the thumbnails of the last frame's views

    def add(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        """Each frame's change (n, 2) of the left and right view from the frame before; one row
        fewer than frames for the chunk's first batch."""
        views = torch.stack([thumbnails(left, 256), thumbnails(right, 256)], dim=1)
        if self.last is not None:
            views_all = torch.cat([self.last[None], views])
        else:
            views_all = views
        per_frame = frame_change(views_all[:-1], views_all[1:], 2)
        left, right = per_frame.sum(0).tolist()  # one read back from the device
        self.sums.left += left
        self.sums.right += right
        self.sums.pairs += views_all.shape[0] - 1
        self.last = views[-1]
        return per_frame


@dataclass
class ChunkRecord:
    """A converted chunk: frames written and expected, the first one's timestamp (None if none
    could be decoded), the flicker sums and, with --report, a record per frame."""

    frames: int
    expected: int
    first_pts: int | None
    flicker: Flicker
    frames_stats: list[FrameRecord] = field(default_factory=list)
    unet_evaluations: float = 0.0  # of all its frames (StereoViews.unet_evaluations)

    def to_json(self) -> str:
        return json.dumps(
            {
                "frames": self.frames,
                "expected": self.expected,
                "first_pts": self.first_pts,
                "flicker": dataclasses.asdict(self.flicker),
                "frames_stats": [f.to_json() for f in self.frames_stats],
                "unet_evaluations": self.unet_evaluations,
            }
        )

    def write(self, path: Path) -> None:
        with atomic_output(path) as tmp:
            tmp.write_text(self.to_json())

    @classmethod
    def read(cls, path: Path) -> ChunkRecord:
        data = json.loads(Path(path).read_text())
        frames = [FrameRecord.from_json(f) for f in data.get("frames_stats", [])]
        flicker = Flicker(**data["flicker"])
        evaluations = data.get("unet_evaluations", 0.0)
        return cls(
            data["frames"], data["expected"], data["first_pts"], flicker, frames, evaluations
        )


@dataclass(frozen=True)
class VideoTotals:
    """What a finished video job measured, over all its chunks."""

    frames: int  # converted
    expected_frames: int  # the input's frames in the range
    repeated_frames: int  # packets whose timestamp another had: dropped
    flicker_left: float  # mean change of each view from the frame before
    flicker_right: float
    flicker_ratio: float  # right / left: 1.0 means the synthesised eye changes as the input
    frames_stats: list[dict]  # FrameRecord.to_json() of every frame, for --report
    unet_evaluations: float = 0.0  # UNet image-evaluations of all frames (diffusion backend)

    @property
    def lost_frames(self) -> int:
        """Frames of the range that could not be decoded."""
        return self.expected_frames - self.frames

    @property
    def unet_evaluations_per_frame(self) -> float:
        return self.unet_evaluations / max(self.frames, 1)
