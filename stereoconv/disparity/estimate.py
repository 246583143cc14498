"""Depth estimation: a monocular depth model through transformers, for frames of any size.

It returns *relative disparity* (near = large, any scale); stereoconv.disparity.plan maps it
to pixels.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from stereoconv.config import DEFAULT_DEPTH_MODEL
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
