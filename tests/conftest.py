"""Shared fixtures: tiny models built once per session, real data from installed wheels."""

from __future__ import annotations

import numpy as np
import pytest

from stereoconv import tiny_models


@pytest.fixture(scope="session")
def tiny_depth(tmp_path_factory):
    """A tiny Depth Anything folder, built by the suite and loaded like a real model."""
    return tiny_models.make_tiny_depth_anything(tmp_path_factory.mktemp("tiny-depth"))


@pytest.fixture(scope="session")
def tiny_dpt(tmp_path_factory):
    return tiny_models.make_tiny_dpt(tmp_path_factory.mktemp("tiny-dpt"))


@pytest.fixture(scope="session")
def motorcycle():
    """Middlebury 2014 Motorcycle (Scharstein et al., GCPR 2014), bundled with scikit-image:
    left, right (uint8 RGB) and the left view's ground-truth disparity (inf = unknown)."""
    from skimage import data

    left, right, disparity = data.stereo_motorcycle()
    return np.ascontiguousarray(left), np.ascontiguousarray(right), disparity


def write_pfm(path, array: np.ndarray) -> None:
    """A single-channel little-endian PFM, rows bottom to top as the format wants."""
    with open(path, "wb") as f:
        f.write(b"Pf\n%d %d\n-1\n" % (array.shape[1], array.shape[0]))
        f.write(np.ascontiguousarray(array[::-1]).astype("<f4").tobytes())


@pytest.fixture(scope="session")
def tiny_sd(tmp_path_factory):
    """A tiny Stable Diffusion 1.x-style folder (random weights)."""
    return tiny_models.make_tiny_stable_diffusion(tmp_path_factory.mktemp("tiny-sd") / "sd")


@pytest.fixture(scope="session")
def tiny_sd_depth(tmp_path_factory):
    """A tiny SD 2 depth-style folder: a fifth UNet input channel, a tiny DPT beside it."""
    folder = tmp_path_factory.mktemp("tiny-sd-depth") / "sd-depth"
    return tiny_models.make_tiny_stable_diffusion(folder, depth=True)
