"""DDIM inversion then reconstruction of the organism's held-out images at each precision
(issue 15, B8): PSNR of the reconstruction against the TAESD round trip, and the null-text
inversion's final loss. Run on a GPU:

    python scripts/organism_precision.py MODEL_DIR HELDOUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from stereoconv.diffusion.components import load_components
from stereoconv.diffusion.inversion import ddim_invert, null_text_inversion
from stereoconv.diffusion.sampler import StereoSchedule, sample_stereo

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def heldout(folder: Path, size: int = 256) -> torch.Tensor:
    images = []
    for path in sorted(folder.glob("*.jpg")):
        im = Image.open(path).convert("RGB")
        w, h = im.size
        s = min(w, h)
        box = ((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)
        im = im.crop(box).resize((size, size), Image.BICUBIC)
        images.append(torch.from_numpy(np.array(im)).permute(2, 0, 1).float() / 255)
    return torch.stack(images)


def psnr(a: torch.Tensor, b: torch.Tensor) -> list[float]:
    mse = ((a - b) ** 2).flatten(1).mean(1)
    return [round(v, 2) for v in (10 * torch.log10(1 / mse)).tolist()]


def measure(model: str, images: torch.Tensor, dtype: torch.dtype) -> str:
    c = load_components(model, images.device, dtype)
    n = images.shape[0]
    cond = c.encode_prompt("").expand(n, -1, -1)

    def unet(z, t, emb=cond):
        inp = c.scheduler.scale_model_input(z, t).to(dtype)
        return c.unet(inp, t, encoder_hidden_states=emb.to(dtype)).sample.float()

    c.scheduler.set_timesteps(50, device=images.device)
    z0 = c.encode_images(images)
    round_trip = c.decode_latents(z0)
    with torch.inference_mode():
        path = ddim_invert(unet, z0, c.scheduler)
        out, _, _ = sample_stereo(
            lambda x, t, i, v: unet(x, t), c.scheduler, path[-1], None, StereoSchedule(None)
        )
    recon = psnr(c.decode_latents(out), round_trip)
    losses: list[float] = []
    null_text_inversion(
        lambda z, t, emb: unet(z, t, emb),
        [z.clone() for z in path],
        cond,
        cond.clone(),
        c.scheduler,
        7.5,
        10,
        callback=lambda info: losses.append(float(info["loss"].max())),
    )
    return (
        f"reconstruction PSNR vs TAESD round trip {recon}; null-text (w 7.5) loss: final "
        f"{losses[-1]:.2e}, largest {max(losses):.2e}, nan {any(np.isnan(losses))}"
    )


def main(model: str, folder: str) -> None:
    images = heldout(Path(folder)).to("cuda")
    for name, dtype in PRECISIONS.items():
        print(f"{name}: {measure(model, images, dtype)}", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:3])
