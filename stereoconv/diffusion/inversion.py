"""DDIM inversion and null-text inversion (Mokady et al. 2023), batched over frames.

Notation: z_t latent at timestep t, abar_t the cumulative product of alphas (the paper writes
alpha), eps the predicted noise. Inversion walks the DDIM schedule backwards, from the clean
latent z_0 to z_T (paper eq. 9, with the factor on the noise term that eq. 9 drops).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

# model(latents, t) -> model output (eps, v or x0 per the scheduler's prediction_type)
ModelFn = Callable[[torch.Tensor, int], torch.Tensor]


def alpha_bar(scheduler, t: int) -> torch.Tensor:
    """abar_t of a DDIM scheduler; before the first timestep, its final value (as DDIM does)."""
    return scheduler.alphas_cumprod[t] if t >= 0 else scheduler.final_alpha_cumprod


def previous_timestep(scheduler, t: int) -> int:
    """The timestep one inference step less noisy than t (negative past the start)."""
    return t - scheduler.config.num_train_timesteps // scheduler.num_inference_steps


def to_eps_and_x0(
    output: torch.Tensor, sample: torch.Tensor, abar: torch.Tensor, prediction_type: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """(eps, x0) from a model output of any prediction type."""
    if prediction_type == "epsilon":
        return output, (sample - (1 - abar).sqrt() * output) / abar.sqrt()
    if prediction_type == "v_prediction":
        return abar.sqrt() * output + (1 - abar).sqrt() * sample, (
            abar.sqrt() * sample - (1 - abar).sqrt() * output
        )
    if prediction_type == "sample":
        return (sample - abar.sqrt() * output) / (1 - abar).sqrt(), output
    raise ValueError(f"unknown prediction type {prediction_type!r}")


def ddim_inversion_step(
    output: torch.Tensor,
    sample: torch.Tensor,
    abar_from: torch.Tensor,
    abar_to: torch.Tensor,
    prediction_type: str = "epsilon",
) -> torch.Tensor:
    """One inversion step z_s -> z_t (s < t): z_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps."""
    eps, x0 = to_eps_and_x0(output, sample, abar_from, prediction_type)
    return abar_to.sqrt() * x0 + (1 - abar_to).sqrt() * eps


def ddim_invert(
    model: ModelFn, latents: torch.Tensor, scheduler, start: int = 0
) -> list[torch.Tensor]:
    """The DDIM inversion trajectory of clean latents, the scheduler's timesteps already set.

    Returns [z_0, z_t1, ..., z_T]: entry k + 1 is the latent at the noise level of
    timesteps[-1 - k], so the last entry starts the denoising loop and entry -1 - i is the
    latent the loop should hold before its step i. As in diffusers' DDIMInverseScheduler, the
    model is evaluated at the target timestep on the current latent.
    start > 0 stops the inversion at the noise level of loop step `start` (the last entry is
    the latent to hold before that step), for a loop that begins there.
    """
    prediction_type = scheduler.config.prediction_type
    trajectory = [latents]
    z = latents
    ascending = scheduler.timesteps.flip(0).tolist()
    for t in ascending[: len(ascending) - start]:
        abar_from = alpha_bar(scheduler, previous_timestep(scheduler, t)).to(z)
        abar_to = alpha_bar(scheduler, t).to(z)
        z = ddim_inversion_step(model(z, t), z, abar_from, abar_to, prediction_type)
        trajectory.append(z)
    return trajectory


def ddim_step(
    output: torch.Tensor, sample: torch.Tensor, scheduler, t: int, prediction_type: str
) -> torch.Tensor:
    """A differentiable deterministic DDIM step z_t -> z_prev (eta 0), for the optimisation."""
    abar_t = alpha_bar(scheduler, t).to(sample)
    abar_prev = alpha_bar(scheduler, previous_timestep(scheduler, t)).to(sample)
    eps, x0 = to_eps_and_x0(output, sample, abar_t, prediction_type)
    return abar_prev.sqrt() * x0 + (1 - abar_prev).sqrt() * eps


def null_text_inversion(
    unet_fn: Callable[[torch.Tensor, int, torch.Tensor], torch.Tensor],
    trajectory: list[torch.Tensor],
    cond: torch.Tensor,
    uncond: torch.Tensor,
    scheduler,
    guidance: float,
    inner_steps: int = 10,
    callback: Callable[[dict], None] | None = None,
    start: int = 0,
) -> list[torch.Tensor | None]:
    """Null-text inversion: per denoising step, optimise each frame's unconditional embedding
    so that the guided DDIM step lands on the inversion trajectory (the pivot).

    unet_fn(latents, t, embeddings) -> model output. cond, uncond: (N, tokens, dim).
    The reference settings: `inner_steps` Adam steps, lr 1e-2 * (1 - i / 100), stop when the
    loss falls under 1e-5 + i * 2e-5. Each frame is its own problem: its own embedding, Adam
    state and early stop, so frames optimised together give what they give one by one.
    Returns one (N, tokens, dim) unconditional embedding per denoising step (None before
    `start`, for a loop that begins there; the trajectory then ends at that step's level).
    """
    prediction_type = scheduler.config.prediction_type
    n = cond.shape[0]
    z = trajectory[-1]
    embeddings = uncond.detach().float().clone()
    out: list[torch.Tensor | None] = [None] * start
    for i, t in enumerate(scheduler.timesteps.tolist()):
        if i < start:
            continue
        target = trajectory[-2 - (i - start)]
        with torch.no_grad():
            out_cond = unet_fn(z, t, cond).float()
        m = torch.zeros_like(embeddings)
        v = torch.zeros_like(embeddings)
        active = torch.ones(n, dtype=torch.bool, device=z.device)
        lr, threshold = 1e-2 * (1.0 - i / 100.0), 1e-5 + i * 2e-5
        for k in range(1, inner_steps + 1):
            emb = embeddings.clone().requires_grad_(True)
            out_uncond = unet_fn(z, t, emb.to(cond.dtype)).float()
            guided = out_uncond + guidance * (out_cond - out_uncond)
            z_prev = ddim_step(guided, z, scheduler, t, prediction_type)
            loss = ((z_prev - target) ** 2).flatten(1).mean(1)  # per frame
            (grad,) = torch.autograd.grad(loss.sum(), emb)
            # as the reference: take the step, then stop once the loss was under the threshold
            embeddings = adam_update(embeddings, grad, m, v, k, lr, active)
            if callback is not None:
                callback({"step": i, "inner": k, "loss": loss.detach()})
            active &= loss.detach() >= threshold
            if not active.any():
                break
        out.append(embeddings.detach().to(cond.dtype))
        with torch.no_grad():
            out_uncond = unet_fn(z, t, out[-1]).float()
            guided = out_uncond + guidance * (out_cond - out_uncond)
            z = ddim_step(guided, z, scheduler, t, prediction_type)
    return out


def adam_update(
    x: torch.Tensor,
    grad: torch.Tensor,
    m: torch.Tensor,
    v: torch.Tensor,
    k: int,
    lr: float,
    active: torch.Tensor,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
) -> torch.Tensor:
    """torch.optim.Adam's update, applied only to the active frames (m, v updated in place)."""
    keep = active.view(-1, *([1] * (x.dim() - 1)))
    b1, b2 = betas
    m.copy_(torch.where(keep, b1 * m + (1 - b1) * grad, m))
    v.copy_(torch.where(keep, b2 * v + (1 - b2) * grad * grad, v))
    step = lr * (m / (1 - b1**k)) / ((v / (1 - b2**k)).sqrt() + eps)
    return torch.where(keep, x - step, x)


def noised_trajectory(
    latents: torch.Tensor, noise: torch.Tensor, scheduler, start: int = 0
) -> list[torch.Tensor]:
    """The forward-noised counterpart of ddim_invert's trajectory, at no model cost: entry k + 1
    is sqrt(abar) z_0 + sqrt(1 - abar) eps at the noise level of timesteps[-1 - k], one `noise`
    eps for every level (so the path is smooth in t), indexed exactly like ddim_invert's."""
    trajectory = [latents]
    ascending = scheduler.timesteps.flip(0).tolist()
    for t in ascending[: len(ascending) - start]:
        abar = alpha_bar(scheduler, t).to(latents)
        trajectory.append(abar.sqrt() * latents + (1 - abar).sqrt() * noise)
    return trajectory
