"""Stable Diffusion components: loading by hub id or folder, prompts, and the VAE."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from stereoconv.errors import UserError
from stereoconv.models import DiffusersConfig, load_pretrained


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
        """Image pixels per latent pixel: 8 for SD's AutoencoderKL and for TAESD."""
        config = self.vae.config
        if "upsampling_scaling_factor" in config:  # AutoencoderTiny
            return config.upsampling_scaling_factor ** (len(config.block_out_channels) - 1)
        return 2 ** (len(config.block_out_channels) - 1)

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
        mean where the VAE has one (AutoencoderKL), not a sample: inversion wants the image's
        own latent, deterministically; `.latents` where it has none (AutoencoderTiny)."""
        out = []
        for chunk in images.split(batch_size):
            x = (chunk.to(self.device, self.vae.dtype) * 2 - 1).contiguous()
            encoded = self.vae.encode(x)
            if hasattr(encoded, "latent_dist"):
                out.append(encoded.latent_dist.mean.float())
            else:
                out.append(encoded.latents.float())
        return latents_to_model(torch.cat(out), self.vae.config)

    @torch.inference_mode()
    def decode_latents(self, latents: torch.Tensor, batch_size: int = 8) -> torch.Tensor:
        """Scaled latents -> images (N, 3, H, W) in [0, 1], float32."""
        out = []
        for chunk in latents_to_vae(latents, self.vae.config).split(batch_size):
            out.append(self.vae.decode(chunk.to(self.device, self.vae.dtype)).sample.float())
        return (torch.cat(out) / 2 + 0.5).clamp(0, 1)


def latents_to_model(z: torch.Tensor, config) -> torch.Tensor:
    """The VAE's latents -> the diffusion model's: (z - shift) * scale, as diffusers does."""
    shift = config.get("shift_factor") or 0.0
    return (z - shift) * config.scaling_factor


def latents_to_vae(z: torch.Tensor, config) -> torch.Tensor:
    shift = config.get("shift_factor") or 0.0
    return z / config.scaling_factor + shift


VAE_CLASSES = ("AutoencoderKL", "AutoencoderTiny")


def load_vae(name: str, dtype: torch.dtype, subfolder: str | None = None):
    """Any autoencoder diffusers offers for SD's latent space, by the class its folder names
    (AutoencoderKL for SD, AutoencoderTiny for TAESD); weights checked strictly."""
    import diffusers

    what = "diffusion model" if subfolder else "VAE"
    kwargs = {"subfolder": subfolder} if subfolder else {}
    class_name = load_pretrained(DiffusersConfig, name, what, **kwargs).get("_class_name", "")
    if class_name not in VAE_CLASSES:
        where = f"{name!r}" + (f" ({subfolder})" if subfolder else "")
        raise UserError(
            f"VAE {where} is a {class_name or 'model of no named class'}, not one of "
            f"{', '.join(VAE_CLASSES)}"
        )
    return load_pretrained(getattr(diffusers, class_name), name, what, torch_dtype=dtype, **kwargs)


def sanitised_scheduler(scheduler):
    """DDIM as StableDiffusionPipeline runs it: older and community configs lack these keys, and
    their defaults would clip x0 in the loop (not in the inversion) and shift the timesteps."""
    from diffusers import DDIMScheduler

    config = dict(scheduler.config)
    config.update(clip_sample=False, steps_offset=1)
    return DDIMScheduler.from_config(config)


def load_components(
    name: str, device: torch.device, dtype: torch.dtype = torch.float32, vae: str = ""
) -> SDComponents:
    """A diffusers Stable Diffusion folder or hub id, its scheduler as DDIM (eta 0). `vae`: a
    hub id or folder of another VAE for the same latent space (e.g. TAESD), '' for the model's."""
    from diffusers import DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    what = "diffusion model"
    unet = load_pretrained(UNet2DConditionModel, name, what, subfolder="unet", torch_dtype=dtype)
    autoencoder = load_vae(vae, dtype) if vae else load_vae(name, dtype, subfolder="vae")
    text_encoder = load_pretrained(CLIPTextModel, name, what, subfolder="text_encoder", dtype=dtype)
    tokenizer = load_pretrained(CLIPTokenizer, name, what, subfolder="tokenizer")
    scheduler = load_pretrained(DDIMScheduler, name, what, subfolder="scheduler")
    latent = autoencoder.config.latent_channels
    if unet.config.in_channels not in (latent, latent + 1):
        raise UserError(
            f"VAE {vae or name!r} makes {latent}-channel latents; the UNet of {name!r} takes "
            f"{unet.config.in_channels}"
        )
    for module in (unet, autoencoder, text_encoder):
        module.to(device).eval().requires_grad_(False)
    return SDComponents(unet, autoencoder, text_encoder, tokenizer, sanitised_scheduler(scheduler))
