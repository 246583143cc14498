"""How a scene is presented to the methods: the `paper` protocol (the reference code's
preprocessing, for comparability with the published table) and `calibrated` (the real geometry).

- paper: centre crop to a square, resize to 512 x 512 (PIL bicubic, as the reference code's
  load_512), disparity min-max normalised to [0, 1] and scaled by s = 8 % of the width, so
  0 ... 40.96 pixels whatever the scene's real disparity was. The ground-truth right view gets
  the same crop and resize, so the "ground-truth disparity" no longer matches it exactly: this
  is the paper's setting, kept only to compare with its numbers.
- calibrated: native resolution, no crop, ground-truth disparity in pixels as measured. An
  estimated disparity is fitted to the ground truth by least squares (scale and offset, as
  relative depth models leave both open); without ground truth it is mapped with the
  configured divergence and convergence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from stereoconv.config import StereoConfig
from stereoconv.disparity.plan import relative_to_pixels, robust_range
from stereoconv.errors import UserError
from stereoconv.evaluation.datasets import Scene
from stereoconv.geometry import fill_unknown_disparity

PROTOCOLS = ("calibrated", "paper")
DISPARITY_SOURCES = ("gt", "estimated")
PAPER_SIZE = 512
PAPER_DISPARITY_PCT = 8.0  # the reference code's s: largest disparity, % of the width


@dataclass
class Prepared:
    """A scene as the protocol presents it: views (H, W, 3) uint8, ground truth in pixels."""

    name: str
    left: np.ndarray
    right: np.ndarray
    disparity: np.ndarray | None  # (H, W) float32 pixels, unknown values filled; None: no GT
    known: np.ndarray | None  # (H, W) bool, where the ground truth was measured


def check_protocol(protocol: str, source: str) -> None:
    if protocol not in PROTOCOLS:
        raise UserError(f"--protocol must be one of {', '.join(PROTOCOLS)}, not {protocol!r}")
    if source not in DISPARITY_SOURCES:
        choices = ", ".join(DISPARITY_SOURCES)
        raise UserError(f"--disparity must be one of {choices}, not {source!r}")


def filled_disparity(disparity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unknown (NaN, inf) values filled from the background side of each gap, as a disocclusion
    shows background; returns (filled, known)."""
    d = torch.from_numpy(np.array(disparity, dtype=np.float32))[None]
    known = torch.isfinite(d)
    if not known.any():
        raise UserError("the ground-truth disparity has no known values")
    return fill_unknown_disparity(d, known)[0].numpy(), known[0].numpy()


def centre_square(array: np.ndarray) -> np.ndarray:
    """The centred square of an (H, W, ...) array, as the reference code's load_512 crops."""
    h, w = array.shape[:2]
    if h < w:
        offset = (w - h) // 2
        return array[:, offset : offset + h]
    offset = (h - w) // 2
    return array[offset : offset + w]


def resize_image(rgb: np.ndarray, size: int) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb).resize((size, size), Image.Resampling.BICUBIC))


def resize_map(values: np.ndarray, size: int, resample=Image.Resampling.BILINEAR) -> np.ndarray:
    image = Image.fromarray(np.ascontiguousarray(values, dtype=np.float32), mode="F")
    return np.asarray(image.resize((size, size), resample), dtype=np.float32)


def min_max_pixels(relative: np.ndarray, width: int) -> np.ndarray:
    """The reference code's disparity: min-max normalised, times s % of the width."""
    low, high = float(relative.min()), float(relative.max())
    normalised = (relative - low) / (high - low) if high - low > 1e-12 else relative * 0
    return (normalised * PAPER_DISPARITY_PCT / 100.0 * width).astype(np.float32)


def prepare(scene: Scene, protocol: str, size: int = PAPER_SIZE) -> Prepared:
    """The scene's views and ground truth under `protocol`."""
    disparity = known = None
    if scene.disparity is not None:
        disparity, known = filled_disparity(scene.disparity)
    if protocol == "calibrated":
        return Prepared(scene.name, scene.left, scene.right, disparity, known)
    left = resize_image(centre_square(scene.left), size)
    right = resize_image(centre_square(scene.right), size)
    if disparity is not None:
        disparity = min_max_pixels(resize_map(centre_square(disparity), size), size)
        known = (
            resize_map(centre_square(known.astype(np.float32)), size, Image.Resampling.NEAREST)
            > 0.5
        )
    return Prepared(scene.name, left, right, disparity, known)


def fit_affine(relative: np.ndarray, target: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """a * relative + b closest to target on the masked pixels (least squares)."""
    x, y = relative[mask].astype(np.float64), target[mask].astype(np.float64)
    a, b = np.linalg.lstsq(np.stack([x, np.ones_like(x)], 1), y, rcond=None)[0]
    return (a * relative + b).astype(np.float32)


def estimated_pixels(
    relative: np.ndarray, prepared: Prepared, protocol: str, config: StereoConfig
) -> np.ndarray:
    """A depth model's relative disparity (near = large) of the prepared left view -> pixels."""
    width = relative.shape[-1]
    if protocol == "paper":
        return min_max_pixels(relative, width)
    if prepared.disparity is not None:
        return fit_affine(relative, prepared.disparity, prepared.known)
    rel = torch.from_numpy(relative)[None]
    low, high = robust_range(rel, config.depth_low_pct, config.depth_high_pct)
    pixels = relative_to_pixels(rel, width, config.divergence, config.convergence, low, high)
    return pixels[0].numpy()
