"""Tiny random-weight models, written as ordinary `save_pretrained` folders.

They load through the very same loaders as the real models, so tests and CPU smoke runs
exercise the product's real code paths. Random weights prove shapes, geometry, determinism and
equivalence with reference pipelines, never image quality.
"""

from __future__ import annotations

from pathlib import Path

import torch

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def make_tiny_depth_anything(out: Path, seed: int = 0) -> Path:
    """A tiny Depth Anything (DINOv2 backbone) with its image processor (aspect kept)."""
    from transformers import (
        DepthAnythingConfig,
        DepthAnythingForDepthEstimation,
        Dinov2Config,
        DPTImageProcessor,
    )

    torch.manual_seed(seed)
    backbone = Dinov2Config(
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=64,
        patch_size=14,
        image_size=56,
        reshape_hidden_states=False,
        out_features=["stage1", "stage2", "stage3", "stage4"],
    )
    config = DepthAnythingConfig(
        backbone_config=backbone,
        reassemble_hidden_size=32,
        fusion_hidden_size=16,
        head_hidden_size=8,
        neck_hidden_sizes=[8, 16, 16, 16],
        reassemble_factors=[4, 2, 1, 0.5],
        patch_size=14,
        depth_estimation_type="relative",
    )
    model = DepthAnythingForDepthEstimation(config)
    processor = DPTImageProcessor(
        do_resize=True,
        size={"height": 56, "width": 56},
        keep_aspect_ratio=True,
        ensure_multiple_of=14,
        resample=3,
        do_rescale=True,
        do_normalize=True,
        image_mean=IMAGENET_MEAN,
        image_std=IMAGENET_STD,
        do_pad=False,
    )
    out = Path(out)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def make_tiny_dpt(out: Path, seed: int = 0) -> Path:
    """A tiny DPT (the MiDaS family, as Intel/dpt-hybrid-midas) with a fixed square input."""
    from transformers import DPTConfig, DPTForDepthEstimation, DPTImageProcessor

    torch.manual_seed(seed)
    config = DPTConfig(
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=64,
        image_size=64,
        patch_size=16,
        backbone_out_indices=[0, 1, 2, 3],
        neck_hidden_sizes=[8, 16, 16, 16],
        reassemble_factors=[4, 2, 1, 0.5],
        fusion_hidden_size=16,
        head_in_index=-1,
        is_hybrid=False,
    )
    model = DPTForDepthEstimation(config)
    processor = DPTImageProcessor(
        do_resize=True,
        size={"height": 64, "width": 64},
        keep_aspect_ratio=False,
        ensure_multiple_of=1,
        resample=3,
        do_rescale=True,
        do_normalize=True,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )
    out = Path(out)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out
