"""Stable Diffusion components: loading by hub id or folder, prompts, and the VAE."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from stereoconv.models import load_pretrained

DEFAULT_SD_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"
DEFAULT_DEPTH2IMG_MODEL = "stabilityai/stable-diffusion-2-depth"


def pick_dtype(device: torch.device, precision: str = "auto") -> torch.dtype:
    """bf16 on CUDA cards that have it (fp16 otherwise) and on request; float32 on the CPU."""
    if precision == "fp32" or (precision == "auto" and device.type == "cpu"):
        return torch.float32
    if precision == "fp16":
        return torch.float16
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


@dataclass
class SDComponents:
    """The parts of a Stable Diffusion 1.x / 2.x model that StereoDiffusion uses."""

    unet: torch.nn.Module
    vae: torch.nn.Module
    text_encoder: torch.nn.Module
    tokenizer: object
    scheduler: object  # a DDIMScheduler
    _prompt_cache: dict = field(default_factory=dict, repr=False)

    @property
    def device(self) -> torch.device:
        return self.unet.device

    @property
    def dtype(self) -> torch.dtype:
        return self.unet.dtype

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def depth_conditioned(self) -> bool:
        """SD 2 depth: the UNet takes the latent plus one depth channel."""
        return self.unet.config.in_channels == self.vae.config.latent_channels + 1

    @property
    def default_size(self) -> int:
        return self.unet.config.sample_size * self.vae_scale_factor

    @torch.inference_mode()
    def encode_prompt(self, prompt: str) -> torch.Tensor:
        """(1, tokens, dim) text embedding of one prompt, as StableDiffusionPipeline makes it;
        cached, since a video asks for the same prompt every batch."""
        if prompt not in self._prompt_cache:
            ids = self.tokenizer(
                prompt,
                padding="max_length",
                max_length=self.tokenizer.model_max_length,
                truncation=True,
                return_tensors="pt",
            ).input_ids.to(self.device)
            mask = None
            if getattr(self.text_encoder.config, "use_attention_mask", False):
                mask = (ids != self.tokenizer.pad_token_id).long()
            embeds = self.text_encoder(ids, attention_mask=mask)[0]
            self._prompt_cache[prompt] = embeds.to(self.dtype)
        return self._prompt_cache[prompt]

    @torch.inference_mode()
    def encode_images(self, images: torch.Tensor, batch_size: int = 8) -> torch.Tensor:
        """(N, 3, H, W) in [0, 1] -> scaled latents (N, 4, H/8, W/8), float32. The posterior
        mean, not a sample: inversion wants the image's own latent, deterministically."""
        out = []
        for chunk in images.split(batch_size):
            x = (chunk.to(self.device, self.vae.dtype) * 2 - 1).contiguous()
            out.append(self.vae.encode(x).latent_dist.mean.float())
        return torch.cat(out) * self.vae.config.scaling_factor

    @torch.inference_mode()
    def decode_latents(self, latents: torch.Tensor, batch_size: int = 8) -> torch.Tensor:
        """Scaled latents -> images (N, 3, H, W) in [0, 1], float32."""
        out = []
        for chunk in latents.split(batch_size):
            z = (chunk / self.vae.config.scaling_factor).to(self.device, self.vae.dtype)
            out.append(self.vae.decode(z).sample.float())
        return (torch.cat(out) / 2 + 0.5).clamp(0, 1)


def load_components(
    name: str, device: torch.device, dtype: torch.dtype = torch.float32
) -> SDComponents:
    """A diffusers Stable Diffusion folder or hub id, its scheduler as DDIM (eta 0)."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    what = "diffusion model"
    unet = load_pretrained(UNet2DConditionModel, name, what, subfolder="unet", torch_dtype=dtype)
    vae = load_pretrained(AutoencoderKL, name, what, subfolder="vae", torch_dtype=dtype)
    text_encoder = load_pretrained(CLIPTextModel, name, what, subfolder="text_encoder", dtype=dtype)
    tokenizer = load_pretrained(CLIPTokenizer, name, what, subfolder="tokenizer")
    scheduler = load_pretrained(DDIMScheduler, name, what, subfolder="scheduler")
    for module in (unet, vae, text_encoder):
        module.to(device).eval().requires_grad_(False)
    return SDComponents(unet, vae, text_encoder, tokenizer, scheduler)
