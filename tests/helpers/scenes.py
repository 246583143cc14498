"""Stereo scenes as the tests read them: PFM disparity files, the Middlebury 2001/2003 scenes
from ../shared, and the classic baseline (integer z-buffered warp + Telea) with its scores."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from stereoconv.evaluation.classical import warp_telea
from stereoconv.geometry import fill_unknown_disparity, forward_warp
from tests.helpers.paths import SHARED

MIDDLEBURY = SHARED / "data" / "middlebury2003"


def write_pfm(path, array: np.ndarray) -> None:
    """A single-channel little-endian PFM, rows bottom to top as the format wants."""
    with open(path, "wb") as f:
        f.write(b"Pf\n%d %d\n-1\n" % (array.shape[1], array.shape[0]))
        f.write(np.ascontiguousarray(array[::-1]).astype("<f4").tobytes())


def middlebury(scene: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """left, right (uint8 RGB) and the left view's disparity in pixels (inf = unknown)."""
    folder = MIDDLEBURY / scene
    if not folder.is_dir():
        reason = (
            f"{folder} is absent: the Middlebury 2001/2003 scenes (teddy, tsukuba, venus) live in "
            "shared/data/middlebury2003 beside the repository (see its README.md for the source)"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    scale = float((folder / "info.txt").read_text().split()[0])
    left = np.asarray(Image.open(folder / "imL.png").convert("RGB"))
    right = np.asarray(Image.open(folder / "imR.png").convert("RGB"))
    # convert("L"): tsukuba's ground truth is a palette image whose indices are not disparities.
    raw = np.asarray(Image.open(folder / "groundtruth.png").convert("L")).astype(np.float32)
    disparity = np.where(raw > 0, raw / scale, np.inf).astype(np.float32)
    return left, right, disparity


def filled(disparity: np.ndarray) -> torch.Tensor:
    d = torch.from_numpy(disparity)[None]
    return fill_unknown_disparity(d, torch.isfinite(d))


def baseline_right_view(left: np.ndarray, disparity: np.ndarray) -> np.ndarray:
    """The classic: the same unknown-value filling, an integer z-buffered forward warp, and
    OpenCV's Telea inpainting (radius 3) of the holes."""
    return warp_telea(left, filled(disparity)[0].numpy())


def scores(reference, image, mask=None):
    if mask is not None:
        return peak_signal_noise_ratio(reference[mask], image[mask]), None
    return (
        peak_signal_noise_ratio(reference, image),
        structural_similarity(reference, image, channel_axis=2),
    )


def against_baseline(name: str, left, right, disparity, ours) -> tuple[float, float, float, float]:
    """(baseline PSNR, SSIM, ours PSNR, SSIM) of the right view against the real one, printed
    with both methods' PSNR in the holes of the disparity's warp."""
    base = baseline_right_view(left, disparity)
    base_psnr, base_ssim = scores(right, base)
    our_psnr, our_ssim = scores(right, ours)
    holes = forward_warp(torch.zeros(1, 1, *disparity.shape), filled(disparity)).holes[0].numpy()
    base_holes, our_holes = scores(right, base, holes)[0], scores(right, ours, holes)[0]
    print(
        f"\n{name} right view: baseline {base_psnr:.3f} dB / SSIM {base_ssim:.4f}, "
        f"warp backend {our_psnr:.3f} dB / SSIM {our_ssim:.4f}; holes {holes.mean():.1%}: "
        f"baseline {base_holes:.3f} dB, ours {our_holes:.3f} dB"
    )
    return base_psnr, base_ssim, our_psnr, our_ssim
