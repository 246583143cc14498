"""Depth: a monocular depth model through transformers, and depth maps given as files.

Everything here returns *relative disparity* (near = large, any scale) or, for
`disparity-px` maps, disparity in pixels; geometry.relative_to_pixels does the rest.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from stereoconv.config import DEFAULT_DEPTH_MODEL, DEPTH_KINDS
from stereoconv.errors import UserError
from stereoconv.geometry import fill_unknown_disparity
from stereoconv.models import load_pretrained


class DepthEstimator:
    """A transformers depth model (Depth Anything V2, DPT / MiDaS, any hub id or local folder).

    Call with a batch of RGB frames, (B, H, W, 3) uint8 or (B, 3, H, W) float in [0, 1];
    returns relative disparity (B, H, W) at the frames' resolution, float32.
    Preprocessing runs in torch on the model's device, with the image processor's own settings
    (mean, std, base size, size multiple), keeping the aspect ratio.
    """

    def __init__(self, model: str = DEFAULT_DEPTH_MODEL, device: str = "cpu", dtype=None):
        from transformers import AutoImageProcessor, AutoModelForDepthEstimation

        self.device = torch.device(device)
        self.dtype = dtype or (torch.float16 if self.device.type == "cuda" else torch.float32)
        processor = load_pretrained(AutoImageProcessor, model, "depth model")
        self.model = load_pretrained(
            AutoModelForDepthEstimation, model, "depth model", dtype=self.dtype
        )
        self.model.to(self.device).eval()
        size = getattr(processor, "size", None) or {}
        self.size = (int(size.get("height", 518)), int(size.get("width", 518)))
        # Depth Anything takes any aspect ratio; DPT / MiDaS in transformers wants its fixed
        # square. Either way the prediction is resized back to the frame, so the output keeps
        # the frame's aspect ratio.
        self.keep_aspect_ratio = bool(getattr(processor, "keep_aspect_ratio", False))
        multiple = int(getattr(processor, "ensure_multiple_of", 1) or 1)
        # Models without a stated multiple (DPT hybrid) still need whole ViT patches.
        self.multiple = multiple if multiple > 1 else 32
        mean = getattr(processor, "image_mean", None) or (0.5, 0.5, 0.5)
        std = getattr(processor, "image_std", None) or (0.5, 0.5, 0.5)
        self.mean = torch.tensor(mean, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(std, device=self.device).view(1, 3, 1, 1)
        # Metric models predict depth (near = small); relative ones predict inverse depth.
        self.metric = getattr(self.model.config, "depth_estimation_type", "relative") == "metric"

    def input_size(self, height: int, width: int) -> tuple[int, int]:
        """The model's input size for a frame: the processor's fixed size, or, for models that
        keep the aspect ratio, the short side at the base size and both sides multiples of the
        model's size multiple."""
        if not self.keep_aspect_ratio:
            return self.size
        scale = min(self.size) / min(height, width)
        m = self.multiple
        return (
            max(m, round(height * scale / m) * m),
            max(m, round(width * scale / m) * m),
        )

    def preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        x = as_float_frames(frames).to(self.device)
        size = self.input_size(*x.shape[-2:])
        x = F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=True)
        return ((x.clamp(0, 1) - self.mean) / self.std).to(self.dtype)

    @torch.inference_mode()
    def __call__(self, frames: torch.Tensor | np.ndarray, batch_size: int = 8) -> torch.Tensor:
        frames = torch.as_tensor(frames)
        height, width = frames.shape[1:3] if frames.shape[-1] == 3 else frames.shape[-2:]
        out = []
        for start in range(0, frames.shape[0], batch_size):
            pixel_values = self.preprocess(frames[start : start + batch_size])
            pred = self.model(pixel_values=pixel_values).predicted_depth.float()
            if self.metric:
                pred = 1.0 / pred.clamp_min(1e-6)
            pred = F.interpolate(pred.unsqueeze(1), size=(height, width), mode="bilinear")
            out.append(pred.squeeze(1))
        return torch.cat(out)


def as_float_frames(frames: torch.Tensor) -> torch.Tensor:
    """(B, H, W, 3) uint8 or (B, 3, H, W) float in [0, 1] -> (B, 3, H, W) float32 in [0, 1]."""
    if frames.dtype == torch.uint8:
        return frames.permute(0, 3, 1, 2).float() / 255.0
    return frames.float()


# --- depth maps from files ---------------------------------------------------------------------


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


def zero_is_unknown(kind: str) -> bool:
    """Whether a 0 in an image depth map means "no value": for measured disparity (KITTI,
    Middlebury) and metric depth, yes; in a relative map (near = bright) black is the farthest
    plane, a value like any other."""
    return kind != "relative-disparity"


def read_depth_values(path: Path, zero_unknown: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Raw values of a depth or disparity map file and the mask of known values.

    8/16-bit PNG (the first channel if it has colour; 0 = unknown if `zero_unknown`), .npy and
    .pfm (inf and nan = unknown)."""
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
        known = values > 0 if zero_unknown else np.ones(values.shape, dtype=bool)
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
) -> torch.Tensor:
    """Raw depth-map values (H, W) and their known mask -> (1, height, width) float32: pixel
    disparity for `disparity-px` (scaled with the width if the map is resized), relative
    disparity otherwise; the map's own size if no size is given.

    Values are multiplied by `scale` first (16-bit PNGs often store disparity x 256). Unknown
    values are filled from the background side of each gap before resizing."""
    if kind not in DEPTH_KINDS:
        raise UserError(f"--depth-kind must be one of {', '.join(DEPTH_KINDS)}, not {kind!r}")
    disparity = torch.from_numpy(np.asarray(values, dtype=np.float32))[None] * scale
    known_t = torch.from_numpy(np.asarray(known, dtype=bool))[None]
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


def load_depth_map(
    path: Path,
    kind: str,
    height: int | None = None,
    width: int | None = None,
    scale: float = 1.0,
) -> torch.Tensor:
    """A depth map file (PNG, .npy, .pfm) as depth_from_values gives it."""
    if kind not in DEPTH_KINDS:
        raise UserError(f"--depth-kind must be one of {', '.join(DEPTH_KINDS)}, not {kind!r}")
    values, known = read_depth_values(path, zero_is_unknown(kind))
    return depth_from_values(values, known, kind, height, width, scale)
