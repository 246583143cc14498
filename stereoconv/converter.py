"""Frames in, two views out: the depth model's estimate, then pixel disparity (planned by
stereoconv.disparity.plan) -> a backend.

Knows nothing of files, videos or progress bars; the jobs in stereoconv.jobs feed it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from stereoconv.backends.views import StereoViews
from stereoconv.backends.warp import WarpBackend
from stereoconv.config import StereoConfig
from stereoconv.disparity.estimate import DepthEstimator, as_float_frames
from stereoconv.errors import UserError
from stereoconv.progress import Progress


def make_backend(config: StereoConfig, device: torch.device, progress: Progress | None = None):
    """The configured backend; `progress` hears the diffusion pipeline's UNet calls."""
    if config.backend == "warp":
        return WarpBackend(views=config.views, fill_sigma=config.fill_sigma)
    from stereoconv.backends.diffusion import DiffusionBackend

    return DiffusionBackend.from_config(config, device, progress)


class StereoConverter:
    """Holds the models of one conversion (loaded once, on first use) and converts batches."""

    def __init__(
        self,
        config: StereoConfig,
        device: torch.device,
        depth_estimator=None,
        backend=None,
        progress: Progress | None = None,
    ):
        """depth_estimator, backend: ready-made models (benchmarks, tests); by default they
        load from the config on first use. progress: hears the diffusion steps of each batch
        (stereoconv.progress)."""
        self.config = config
        self.device = torch.device(device)
        self._depth_estimator = depth_estimator
        self._backend = backend
        self.progress = progress
        self.max_batch: int | None = None  # lowered when the GPU runs out of memory
        self._oom_said = False
        self.notify: Callable[[str], None] = lambda text: None

    @property
    def depth_estimator(self) -> DepthEstimator:
        if self._depth_estimator is None:
            self._depth_estimator = DepthEstimator(self.config.depth_model, device=self.device)
        return self._depth_estimator

    @property
    def backend(self):
        if self._backend is None:
            self._backend = make_backend(self.config, self.device, self.progress)
        return self._backend

    def load_models(self, depth_model: bool = True) -> None:
        """Load the backend's models and, if `depth_model`, the depth model now rather than on
        first use: a model that cannot be had fails before any work is done."""
        _ = self.backend
        if depth_model:
            _ = self.depth_estimator

    def relative_disparity(self, frames: torch.Tensor) -> torch.Tensor:
        """Estimated relative disparity (B, H, W) of uint8 (B, H, W, 3) or float frames."""
        estimate = lambda x: self.depth_estimator(x, batch_size=len(x)).to(self.device)  # noqa: E731
        return self._in_batches(estimate, frames)

    def views(self, frames: torch.Tensor, disparity: torch.Tensor) -> StereoViews:
        """The views, (B, 3, H, W) float in [0, 1], of frames and pixel disparity, with the
        right view's holes."""
        x = as_float_frames(torch.as_tensor(frames)).to(self.device)
        return self._in_batches(self.backend.convert, x, disparity.to(self.device))

    def video_views(self) -> Callable[[torch.Tensor, torch.Tensor, list[bool]], StereoViews]:
        """The views of a video's frames fed in order, batch by batch with their cuts: the
        temporally coherent fill (backends.carry) where the config asks for it, which keeps
        the frame before (take one per chunk); otherwise each frame on its own (views)."""
        if not carried_fill(self.config):
            return lambda frames, disparity, cuts: self.views(frames, disparity)
        from stereoconv.backends.carry import CarryFill

        fill = CarryFill(self.backend)

        def views(frames: torch.Tensor, disparity: torch.Tensor, cuts: list[bool]) -> StereoViews:
            x = as_float_frames(torch.as_tensor(frames)).to(self.device)
            return fill(x, disparity.to(self.device), cuts)

        return views

    def _in_batches(self, fn, *batch: torch.Tensor):
        """fn over the batch in pieces of at most self.max_batch frames. When the GPU runs out
        of memory, the piece size halves (said once) and the work goes on; the results are
        the same, as frames do not depend on their batch."""
        n = batch[0].shape[0]
        size = min(n, self.max_batch or n)
        while True:
            try:
                parts = [fn(*(t[i : i + size] for t in batch)) for i in range(0, n, size)]
                break
            except torch.cuda.OutOfMemoryError:
                if size == 1:
                    raise UserError(
                        "the GPU is out of memory even for one frame: lower --max-side, use "
                        "--backend warp, or free the GPU"
                    ) from None
                size = self.max_batch = max(1, size // 2)
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                if not self._oom_said:
                    self.notify(f"GPU out of memory: going on with batches of {size} frames")
                    self._oom_said = True
        if isinstance(parts[0], tuple):  # a NamedTuple of tensors (or None), part by part
            return type(parts[0])(*(concat(p) for p in zip(*parts, strict=True)))
        return torch.cat(parts)


def concat(parts: tuple) -> torch.Tensor | None:
    """Tensors joined along the batch; None where every part is None."""
    return None if parts[0] is None else torch.cat(parts)


def carried_fill(config: StereoConfig) -> bool:
    """Whether a video's views are the temporally coherent fill (backends.carry): diffusion,
    the hybrid composite and temporal_fill = carry."""
    return (
        config.backend == "diffusion"
        and config.temporal_fill == "carry"
        and config.composite == "hybrid"
    )
