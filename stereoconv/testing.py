"""For tests and smoke runs, not a product module: tiny random-weight models, written as ordinary
`save_pretrained` folders (scripts/make_tiny_models.py writes them all).

They load through the very same loaders as the real models, so tests and CPU smoke runs
exercise the product's real code paths. Random weights prove shapes, geometry, determinism and
equivalence with reference pipelines, never image quality.
"""

from __future__ import annotations

from pathlib import Path

import torch

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
# Stable Diffusion 1.x's noise schedule (its scheduler_config.json), as the product sanitises
# it (diffusion/components.py): the tiny models and the benchmarks' SD 1.5 share it
SD1_SCHEDULER = dict(
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    clip_sample=False,
    set_alpha_to_one=False,
    steps_offset=1,
)


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


def byte_level_alphabet() -> list[str]:
    """The 256 characters that byte-level BPE (GPT-2, CLIP) uses for the 256 byte values:
    printable Latin-1 bytes stand for themselves, the others are moved past U+00FF."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    chars, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            chars[byte] = chr(byte)
        else:
            chars[byte] = chr(256 + extra)
            extra += 1
    return [chars[b] for b in range(256)]


def make_tiny_tokenizer():
    """A CLIP tokenizer with a generated vocabulary: every byte-level character, alone and as a
    word end, and no merges, so any text tokenizes (one token per character)."""
    from transformers import CLIPTokenizer

    chars = byte_level_alphabet()
    vocab = {tok: i for i, tok in enumerate(chars + [c + "</w>" for c in chars])}
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def make_tiny_stable_diffusion(out: Path, depth: bool = False, seed: int = 0) -> Path:
    """A tiny Stable Diffusion folder (UNet, VAE with the usual 8x downsampling, CLIP text
    encoder and tokenizer, DDIM scheduler) that StableDiffusionPipeline and the product both
    load. depth=True gives the SD 2 depth variant (a fifth UNet input channel) with a tiny DPT
    as its depth estimator."""
    import tempfile

    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        StableDiffusionDepth2ImgPipeline,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, DPTForDepthEstimation, DPTImageProcessor

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=5 if depth else 4,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(16, 32),
        norm_num_groups=8,
        cross_attention_dim=32,
        attention_head_dim=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=(8, 8, 16, 16),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=1,
        norm_num_groups=4,
        sample_size=64,
    )
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = make_tiny_tokenizer()
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                vocab_size=len(tokenizer),
                hidden_size=32,
                intermediate_size=37,
                num_attention_heads=4,
                num_hidden_layers=2,
                max_position_embeddings=77,
                projection_dim=32,
                bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
            )
        )
        scheduler = DDIMScheduler(**SD1_SCHEDULER)
        parts = dict(
            vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler
        )
        if depth:
            dpt_dir = make_tiny_dpt(Path(tmp) / "dpt", seed)
            pipe = StableDiffusionDepth2ImgPipeline(
                **parts,
                depth_estimator=DPTForDepthEstimation.from_pretrained(dpt_dir),
                feature_extractor=DPTImageProcessor.from_pretrained(dpt_dir),
            )
        else:
            pipe = StableDiffusionPipeline(
                **parts, safety_checker=None, feature_extractor=None, requires_safety_checker=False
            )
        pipe.save_pretrained(out)
    return Path(out)


def make_all(out: Path) -> dict[str, Path]:
    """Every tiny model, in subfolders of `out`."""
    out = Path(out)
    return {
        "sd": make_tiny_stable_diffusion(out / "sd"),
        "sd-depth": make_tiny_stable_diffusion(out / "sd-depth", depth=True),
        "depth-anything": make_tiny_depth_anything(out / "depth-anything"),
        "dpt": make_tiny_dpt(out / "dpt"),
    }
