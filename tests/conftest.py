"""Shared fixtures: tiny models built once per session, real data from installed wheels."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from stereoconv import testing as tiny_models
from tests.helpers.paths import ROOT


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


@pytest.fixture(scope="session")
def tiny_sd(tmp_path_factory):
    """A tiny Stable Diffusion 1.x-style folder (random weights)."""
    return tiny_models.make_tiny_stable_diffusion(tmp_path_factory.mktemp("tiny-sd") / "sd")


@pytest.fixture(scope="session")
def tiny_sd_depth(tmp_path_factory):
    """A tiny SD 2 depth-style folder: a fifth UNet input channel, a tiny DPT beside it."""
    folder = tmp_path_factory.mktemp("tiny-sd-depth") / "sd-depth"
    return tiny_models.make_tiny_stable_diffusion(folder, depth=True)


ORGANISM_ENV = "STEREOCONV_ORGANISM"
ORGANISM_HELP = (
    "the organism (a small trained latent diffusion model, TAESD + a UNet) lives beside the "
    "project in ../shared/organism/model; set {env} to its folder if it is elsewhere"
)


def shared_data(path: Path, what: str) -> Path:
    """Data from ../shared that cannot be committed: a skip with where to get it on a user's
    machine, a failure under CI (CI=true), where it must be present."""
    if not path.exists():
        message = f"{what} not found at {path}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def organism() -> Path:
    """The organism's StableDiffusionPipeline folder (../shared/organism/model or
    $STEREOCONV_ORGANISM)."""
    path = Path(os.environ.get(ORGANISM_ENV) or ROOT.parent / "shared" / "organism" / "model")
    return shared_data(path / "model_index.json", ORGANISM_HELP.format(env=ORGANISM_ENV)).parent


@pytest.fixture(scope="session")
def middlebury2003() -> Path:
    """Middlebury 2001/2003 teddy, tsukuba, venus with real right views (../shared/data)."""
    path = ROOT.parent / "shared" / "data" / "middlebury2003"
    return shared_data(path, "the Middlebury 2003 scenes (see ../shared/data/middlebury2003)")


def pytest_configure(config):
    """Under pytest-xdist, each worker's torch uses its share of the CPUs: two workers that each
    start a thread per CPU slow each other down. Only this process: the subprocesses that tests
    start keep torch's own choice (tests/test_reproducible.py runs them on other CPU sets)."""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers:
        import torch

        torch.set_num_threads(max(1, len(os.sched_getaffinity(0)) // int(workers)))


def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (`make test`: `-n auto --dist loadgroup`), the tests of one Ray
    cluster run in one worker: test_ray.py's module fixture starts a local cluster, and two
    workers would start two of them, each the size of the machine."""
    for item in items:
        if item.path.name == "test_ray.py":
            item.add_marker(pytest.mark.xdist_group("ray"))
