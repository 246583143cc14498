"""Depth given from outside: depth maps as files (PNG, .npy, .pfm) for pictures, and for every
frame of a video a depth video or a folder of maps (DepthFrames).

Everything here returns *relative disparity* (near = large, any scale) or, for
`disparity-px` maps, disparity in pixels; stereoconv.disparity.plan does the rest.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F

from stereoconv.config import DEPTH_KINDS
from stereoconv.errors import UserError
from stereoconv.geometry import fill_unknown_disparity
from stereoconv.media.video import VideoInfo, decode_range, frame_timestamps, probe, to_rgb
from stereoconv.tensors import float_on_device

MAP_SUFFIXES = (".png", ".npy", ".pfm", ".tif", ".tiff")


def read_pfm(path: Path) -> np.ndarray:
    """A PFM image (Middlebury's format for disparity) as float32, top row first."""
    with open(path, "rb") as f:
        header = f.readline().strip()
        if header not in (b"Pf", b"PF"):
            raise UserError(f"{path}: not a PFM file (header {header[:8]!r})")
        width, height = (int(v) for v in f.readline().split())
        scale = float(f.readline().strip())
        channels = 3 if header == b"PF" else 1
        data = np.fromfile(f, dtype="<f4" if scale < 0 else ">f4")
    if data.size != width * height * channels:
        raise UserError(f"{path}: PFM data is truncated ({data.size} of {width * height} values)")
    data = data.reshape(height, width, channels)[::-1, :, 0]  # rows are stored bottom to top
    return np.ascontiguousarray(data, dtype=np.float32)


def zero_is_unknown(kind: str, unknown: str = "auto") -> bool | None:
    """Whether a 0 in a depth map means "no value" (--depth-unknown): always with "0" (KITTI or
    Middlebury 2003 ground truth saved as arrays), never with "nan" (only nan and inf are
    unknown). "auto": never in a relative map (near = bright: black is the farthest plane, a
    value like any other); otherwise None, the file's format decides (read_depth_values)."""
    if unknown == "0":
        return True
    if unknown == "nan" or kind == "relative-disparity":
        return False
    return None


def read_depth_values(
    path: Path, zero_unknown: bool | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Raw values of a depth or disparity map file and the mask of known values.

    8/16-bit PNG and other images (the first channel if it has colour), .npy and .pfm. nan and
    inf are always unknown; a 0 is unknown if `zero_unknown`, and where it is None, as the
    format has it: in an image yes (an integer map has no other way to say it), in .npy and
    .pfm no (a float map says unknown with nan or inf, and 0 is a disparity of 0)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"depth map not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".pfm":
        values = read_pfm(path)
        known = np.isfinite(values)
    elif suffix == ".npy":
        try:
            values = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise UserError(f"{path}: cannot read as .npy ({exc})") from None
        while values.ndim > 2 and values.shape[0] == 1:  # (1, H, W), (1, 1, H, W)
            values = values[0]
        if values.ndim == 3 and values.shape[-1] == 1:  # (H, W, 1)
            values = values[..., 0]
        values = values.astype(np.float32)
        if values.ndim != 2:
            raise UserError(f"{path}: expected a 2-D depth map, got shape {values.shape}")
        known = np.isfinite(values)
    else:
        import cv2

        try:
            values = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        except cv2.error:  # OpenCV refuses a header of over 2^30 pixels before decoding
            raise UserError(f"{path}: its header claims too many pixels for a depth map") from None
        if values is None:
            raise UserError(f"{path}: cannot read as an image (PNG, 8 or 16 bit, expected)")
        if values.ndim == 3:
            values = values[..., 0]
        values = values.astype(np.float32)
        known = np.isfinite(values)  # a float TIFF may say unknown with nan
        zero_unknown = True if zero_unknown is None else zero_unknown
    if zero_unknown:
        known &= values != 0
    if not known.any():
        raise UserError(f"{path}: the depth map has no known values")
    return values, known


def depth_from_values(
    values: np.ndarray,
    known: np.ndarray,
    kind: str,
    height: int | None = None,
    width: int | None = None,
    scale: float = 1.0,
    device: torch.device | None = None,
) -> torch.Tensor:
    """Raw depth-map values (H, W), or a stack of maps of one size (B, H, W), and their known
    masks -> (1 or B, height, width) float32 on `device` (the CPU if None): pixel disparity for
    `disparity-px` (scaled with the width if the map is resized), relative disparity
    otherwise; the map's own size if no size is given.

    Values are multiplied by `scale` first (16-bit PNGs often store disparity x 256). Unknown
    values are filled from the background side of each gap before resizing."""
    if kind not in DEPTH_KINDS:
        raise UserError(f"--depth-kind must be one of {', '.join(DEPTH_KINDS)}, not {kind!r}")
    disparity = float_on_device(values, device) * scale
    known_t = torch.from_numpy(np.ascontiguousarray(known, dtype=bool)).to(device)
    if disparity.ndim == 2:
        disparity, known_t = disparity[None], known_t[None]
    if kind == "depth":
        disparity = torch.where(known_t, 1.0 / disparity.clamp_min(1e-6), disparity)
    disparity = fill_unknown_disparity(disparity, known_t)
    map_h, map_w = disparity.shape[-2:]
    height, width = height or map_h, width or map_w
    if (map_h, map_w) != (height, width):
        disparity = F.interpolate(disparity[None], size=(height, width), mode="bilinear")[0]
        if kind == "disparity-px":
            disparity = disparity * (width / map_w)
    return disparity


def depth_batch(
    maps: list[tuple[np.ndarray, np.ndarray]],
    kind: str,
    height: int,
    width: int,
    scale: float,
    device: torch.device,
) -> torch.Tensor:
    """(values, known) of a batch of frames -> (B, height, width) as depth_from_values gives
    each map, computed on `device`: maps of one size in one go (a folder may mix sizes)."""
    if len({values.shape for values, _ in maps}) == 1:
        values, known = np.stack([v for v, _ in maps]), np.stack([k for _, k in maps])
        return depth_from_values(values, known, kind, height, width, scale, device)
    return torch.cat([depth_from_values(v, k, kind, height, width, scale, device) for v, k in maps])


def load_depth_map(
    path: Path,
    kind: str,
    height: int | None = None,
    width: int | None = None,
    scale: float = 1.0,
    unknown: str = "auto",
) -> torch.Tensor:
    """A depth map file (PNG, .npy, .pfm) as depth_from_values gives it; `unknown`: which
    values mean "no value" (zero_is_unknown)."""
    if kind not in DEPTH_KINDS:
        raise UserError(f"--depth-kind must be one of {', '.join(DEPTH_KINDS)}, not {kind!r}")
    values, known = read_depth_values(path, zero_is_unknown(kind, unknown))
    return depth_from_values(values, known, kind, height, width, scale)


# --- depth for every frame of a video ------------------------------------------------------------
#
# Frame i of the depth source goes with frame i of the converted range (by order, not by
# timestamp: depth tools rarely keep the source's timestamps).


class DepthFrames:
    """Random access by frame index to raw depth values and their known masks."""

    def __init__(
        self,
        path: Path,
        offset: int = 0,
        zero_unknown: bool | None = None,
        pts: tuple[int, ...] | None = None,
    ):
        """offset: index in the depth source of the first converted frame (with --start, the
        source is read from the same frame on). zero_unknown: a 0 means no value (measured
        disparity), not the farthest plane (a relative map, near = bright); None: as each
        file's format has it (zero_is_unknown), in a video yes. pts: a depth video's
        timestamps, if already read (reading them demuxes the whole file)."""
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
            self.pts = list(pts) if pts is not None else frame_timestamps(self.path)
            self.count = len(self.pts)
        else:
            raise UserError(f"--depth not found: {path}")

    def __len__(self) -> int:
        return self.count - self.offset

    def stream(self, first: int, stop: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(values, known) for frames first..stop-1 of the converted range, in order, as they
        are read: a video is decoded once from the keyframe before `first`, not again from a
        keyframe for every batch."""
        a, b = first + self.offset, stop + self.offset
        if b > self.count:
            raise UserError(
                f"--depth {self.path} has {self.count} frames, fewer than the video's {b}"
            )
        if self.files is not None:
            for path in self.files[a:b]:
                yield read_depth_values(path, self.zero_unknown)
            return
        count = 0
        convert = functools.partial(map_values, info=self.info)
        for _, values in decode_range(self.path, self.pts[a], self.pts[b - 1], self.info, convert):
            known = values > 0 if self.zero_unknown is not False else np.ones(values.shape, bool)
            count += 1
            yield values, known
        if count != b - a:
            raise UserError(f"--depth {self.path}: frames {a}..{b - 1} could not all be decoded")


def map_values(frame: av.VideoFrame, info: VideoInfo) -> np.ndarray:
    """A depth video's frame as its map's values (H, W), uint8 or uint16: a gray frame as it
    is, a colour one by its first channel as RGB (what a depth map made gray keeps)."""
    gray = {"gray": False, "gray16le": True}.get(frame.format.name)
    if gray is not None and gray == info.high_bit_depth:  # as probed: the scale RGB would give
        values = frame.to_ndarray()  # the same values as RGB's first channel, without swscale
        return np.ascontiguousarray(np.rot90(values, k=info.rotation // 90))
    return np.ascontiguousarray(to_rgb(frame, info.high_bit_depth, info.rotation)[..., 0])
