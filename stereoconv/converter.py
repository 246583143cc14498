"""Frames in, two views out: disparity (estimated or given) -> pixels -> a backend.

Knows nothing of files, videos or progress bars; the jobs in stereoconv.jobs feed it.
"""

from __future__ import annotations

import torch

from stereoconv.backends.warp import WarpBackend
from stereoconv.config import StereoConfig
from stereoconv.depth import DepthEstimator, as_float_frames
from stereoconv.geometry import relative_to_pixels, robust_range


def make_backend(config: StereoConfig, device: torch.device):
    if config.backend == "warp":
        return WarpBackend(views=config.views, fill_sigma=config.fill_sigma)
    from stereoconv.backends.diffusion import DiffusionBackend

    return DiffusionBackend.from_config(config, device)


class StereoConverter:
    """Holds the models of one conversion (loaded once, on first use) and converts batches."""

    def __init__(
        self, config: StereoConfig, device: torch.device, depth_estimator=None, backend=None
    ):
        """depth_estimator, backend: ready-made models (benchmarks, tests); by default they
        load from the config on first use."""
        self.config = config
        self.device = torch.device(device)
        self._depth_estimator = depth_estimator
        self._backend = backend

    @property
    def depth_estimator(self) -> DepthEstimator:
        if self._depth_estimator is None:
            self._depth_estimator = DepthEstimator(self.config.depth_model, device=self.device)
        return self._depth_estimator

    @property
    def backend(self):
        if self._backend is None:
            self._backend = make_backend(self.config, self.device)
        return self._backend

    def relative_disparity(self, frames: torch.Tensor) -> torch.Tensor:
        """Estimated relative disparity (B, H, W) of uint8 (B, H, W, 3) or float frames."""
        return self.depth_estimator(frames, batch_size=self.config.batch_size).to(self.device)

    def pixel_disparity(
        self,
        relative: torch.Tensor,
        low: torch.Tensor | None = None,
        high: torch.Tensor | None = None,
        convergence: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Relative disparity -> pixels with the configured divergence and convergence; the
        normalisation range is this batch's percentiles unless given (video smooths it), the
        convergence the configured one unless given per frame (--convergence auto)."""
        if low is None or high is None:
            cfg = self.config
            low, high = robust_range(relative, cfg.depth_low_pct, cfg.depth_high_pct)
        width = relative.shape[-1]
        if convergence is None:
            convergence = self.config.convergence
        return relative_to_pixels(relative, width, self.config.divergence, convergence, low, high)

    def views(
        self, frames: torch.Tensor, disparity: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(left, right) views, (B, 3, H, W) float in [0, 1], of frames and pixel disparity."""
        x = as_float_frames(torch.as_tensor(frames)).to(self.device)
        return self.backend(x, disparity.to(self.device))
