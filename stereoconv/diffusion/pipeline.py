"""Image, text and depth to stereo: StereoDiffusion on one set of Stable Diffusion components.

Each entry point reads as the algorithm: condition, starting latent, the stereo loop, decode.
Images here are (N, 3, H, W) float in [0, 1] with H and W multiples of 8 (the backend pads);
disparity is in image pixels, (N, H, W).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from stereoconv.diffusion.attention import StereoStep, stereo_attention
from stereoconv.diffusion.components import SDComponents
from stereoconv.diffusion.inversion import ddim_invert, noised_trajectory, null_text_inversion
from stereoconv.diffusion.sampler import StereoSchedule, sample_fill, sample_stereo
from stereoconv.diffusion.settings import DiffusionSettings
from stereoconv.geometry import background_side_columns, disparity_to_latent, forward_warp
from stereoconv.progress import Progress


@dataclass
class StereoOutput:
    left: torch.Tensor | None  # (N, 3, H, W) decoded left view; None if not asked for
    right: torch.Tensor  # (N, 3, H, W) decoded right view
    disparity: torch.Tensor  # (N, H, W) the image-pixel disparity that drove the shift
    holes: torch.Tensor  # (N, h, w) latent pixels the shift left uncovered


def depth_condition(
    depth: torch.Tensor,
    latent_size: tuple[int, int],
    low: torch.Tensor | None = None,
    high: torch.Tensor | None = None,
) -> torch.Tensor:
    """The SD 2 depth UNet's extra input channel, as StableDiffusionDepth2ImgPipeline's
    prepare_depth_map makes it: bicubic to the latent size, then min-max to [-1, 1].
    low, high (N,): the normalisation range, if not this map's own (the right view keeps the
    left's). depth: (N, H, W), near = large."""
    small = F.interpolate(depth.unsqueeze(1).float(), size=latent_size, mode="bicubic")
    if low is None or high is None:
        low, high = small.amin(dim=(1, 2, 3)), small.amax(dim=(1, 2, 3))
    low, high = low.view(-1, 1, 1, 1), high.view(-1, 1, 1, 1)
    # a flat map (one plane) has no range: it is all far (-1), not 0 / 0
    return 2.0 * (small - low) / (high - low).clamp_min(1e-6) - 1.0


def warp_depth_to_right(depth: torch.Tensor, disparity: torch.Tensor) -> torch.Tensor:
    """The depth map as the right eye sees it: forward-warped by its own disparity, holes taking
    the background's depth."""
    warped = forward_warp(depth.unsqueeze(1), disparity)
    src = background_side_columns(~warped.holes, warped.disparity)
    return warped.image.squeeze(1).gather(-1, src)


class StereoDiffusion:
    """StereoDiffusion with its own settings (steps, shift step, SPSMD, deblur, attention,
    null-text inversion, guidance, prompt, seed).

    `progress`, if given, hears ("diffusion", 1, UNet calls planned) after every UNet call of
    an entry point (stereoconv.progress); `latent_pixels` counts the latent pixels the UNet
    evaluated (guidance branches included), the measure of work the video job reports."""

    def __init__(
        self,
        components: SDComponents,
        settings: DiffusionSettings,
        progress: Progress | None = None,
    ):
        self.components = components
        self.settings = settings
        self.schedule = settings.schedule
        self.progress = progress
        self.latent_pixels = 0
        self._calls = self._planned = 0

    # --- the model call -----------------------------------------------------------------------

    def plan_calls(self, planned: int) -> None:
        """An entry point starts: it will call the UNet about `planned` times (an upper bound
        with null-text inversion, which may stop early)."""
        self._calls, self._planned = 0, planned

    def predict(
        self,
        x: torch.Tensor,
        t: int,
        views: int,
        cond: torch.Tensor,
        uncond: torch.Tensor | None,
        extra: torch.Tensor | None = None,
        step: int | None = None,
    ) -> torch.Tensor:
        """Guided model output for a batch laid out (view, frame). cond, uncond: per frame
        (N, tokens, dim); uncond None means no guidance batch. extra: channels appended to the
        UNet input (the depth condition), per (view, frame). step: the loop index, for the
        stereo attention of two views; None outside the loop (inversion)."""
        c, s = self.components, self.settings
        frames = x.shape[0] // views
        inp = c.scheduler.scale_model_input(x, t)
        if extra is not None:
            inp = torch.cat([inp, extra.to(inp)], dim=1)
        emb = cond.repeat(views, 1, 1)
        if uncond is not None:
            inp = torch.cat([inp, inp])
            emb = torch.cat([uncond.repeat(views, 1, 1), emb])
        # one view or no step: nothing stereo to do (the UNet may carry diffusers' processors)
        kwargs = None
        if views == 2 and step is not None:
            kwargs = {"stereo": StereoStep.at(step, s.shift_step, s.attention, frames)}
        out = c.unet(
            inp.to(c.dtype), t, encoder_hidden_states=emb.to(c.dtype), cross_attention_kwargs=kwargs
        ).sample.float()
        self._count(inp)
        if uncond is None:
            return out
        out_uncond, out_cond = out.chunk(2)
        return out_uncond + s.guidance * (out_cond - out_uncond)

    def _count(self, inp: torch.Tensor) -> None:
        self.latent_pixels += inp.shape[0] * inp.shape[-2] * inp.shape[-1]
        self._calls += 1
        if self.progress is not None:
            self.progress("diffusion", 1, max(self._calls, self._planned))

    def prompt_embeddings(self, prompt: str, n: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        c = self.components
        cond = c.encode_prompt(prompt).expand(n, -1, -1)
        uncond = c.encode_prompt("").expand(n, -1, -1) if self.settings.guidance > 1 else None
        return cond, uncond

    def shared_noise(self, shape: torch.Size, stream: int) -> torch.Tensor:
        """One seeded draw (seed + stream) shared by every row of `shape`, so a frame's result
        does not depend on its place in the batch, and a static shot stays static."""
        g = torch.Generator("cpu").manual_seed(self.settings.seed + stream)
        noise = torch.randn((1, *shape[1:]), generator=g)
        return noise.expand(shape).to(self.components.device)

    def deblur_noise(self, shape: torch.Size) -> torch.Tensor:
        """The deblur noise, on its own stream (seed + 1): with the seed of the initial noise,
        text and depth to stereo would refill the holes with the very noise the left view grew
        from, and the holes would regrow the left view."""
        return self.shared_noise(shape, 1)

    # --- image to stereo (the main job) -------------------------------------------------------

    def image_to_stereo(
        self,
        images: torch.Tensor,
        disparity: torch.Tensor,
        callback: Callable | None = None,
        decode_left: bool = True,
    ) -> StereoOutput:
        """Invert the images into the latent trajectory, then run the stereo loop.
        decode_left=False skips decoding the left latent (the hybrid composite keeps the
        original frame as the left view)."""
        c, cfg = self.components, self.settings
        n = images.shape[0]
        c.scheduler.set_timesteps(cfg.steps, device=c.device)
        # 1. Condition and latents
        cond, uncond = self.prompt_embeddings(cfg.prompt, n)
        latents = c.encode_images(images, cfg.batch_size)
        d_latent = disparity_to_latent(disparity, c.vae_scale_factor)
        # skip_pre_shift: start the loop at t' from the inversion's latent there, instead of
        # denoising z_T back down to it (fewer UNet calls; the result changes slightly)
        start = cfg.shift_step if cfg.skip_pre_shift else 0
        null_text = cfg.null_text and uncond is not None
        # the inversion and the loop; null-text adds its inner steps and two guided calls
        run = cfg.steps - start
        self.plan_calls(run * (2 + (cfg.null_text_steps + 2) * null_text))
        with stereo_attention(c.unet):
            # 2. DDIM inversion with the conditional branch at w = 1 (the pivot)
            with torch.inference_mode():
                trajectory = ddim_invert(
                    lambda z, t: self.predict(z, t, 1, cond, None),
                    latents,
                    c.scheduler,
                    start,
                )
            # 3. Optional null-text inversion: per-step unconditional embeddings for w > 1
            uncond_at = lambda i: uncond  # noqa: E731
            if null_text:
                embeddings = null_text_inversion(
                    lambda z, t, emb: self.predict(z, t, 1, emb, None),
                    [z.clone() for z in trajectory],
                    cond,
                    uncond,
                    c.scheduler,
                    cfg.guidance,
                    cfg.null_text_steps,
                    start=start,
                )
                uncond_at = embeddings.__getitem__
            # 4. The stereo loop from z_T
            with torch.inference_mode():
                left, right, mask = sample_stereo(
                    lambda x, t, i, v: self.predict(x, t, v, cond, uncond_at(i), step=i),
                    c.scheduler,
                    trajectory[-1],
                    d_latent,
                    self.schedule,
                    start=start,
                    noise=self.deblur_noise(latents.shape) if cfg.deblur else None,
                    callback=callback,
                )
                return StereoOutput(
                    c.decode_latents(left, cfg.batch_size) if decode_left else None,
                    c.decode_latents(right, cfg.batch_size),
                    disparity,
                    ~mask,
                )

    # --- the hybrid composite's fill (the product's own) ----------------------------------------

    def fill_right(
        self,
        images: torch.Tensor,
        warped: torch.Tensor,
        known: torch.Tensor,
        callback: Callable | None = None,
    ) -> torch.Tensor:
        """The right view generated where the left view cannot see. images: the left frames;
        warped: their sub-pixel warp to the right eye, holes filled from the background; known
        (N, h, w): latent pixels whose every image pixel the warp sees. Both views are inverted
        (to t' only), then the holes are denoised beside the left view (sample_fill). Returns
        the decoded right view, (N, 3, H, W)."""
        c, cfg = self.components, self.settings
        n = images.shape[0]
        c.scheduler.set_timesteps(cfg.steps, device=c.device)
        cond, uncond = self.prompt_embeddings(cfg.prompt, n)
        start = cfg.shift_step
        # without stereo attention the left view cannot change the right one: leave it out
        stereo = cfg.attention != "off"
        self.plan_calls((cfg.steps - start) * (1 + (cfg.fill_start == "invert")))
        with torch.inference_mode(), stereo_attention(c.unet):
            # 1. Both views (or the right one) to t': DDIM inversion, or forward noise
            views = torch.cat([images, warped]) if stereo else warped
            latents = c.encode_images(views, cfg.batch_size)
            if cfg.fill_start == "noise":
                eps = self.shared_noise(latents.shape, 2)  # its own stream
                path = noised_trajectory(latents, eps, c.scheduler, start)
            else:
                emb = cond.repeat(latents.shape[0] // n, 1, 1)
                path = ddim_invert(
                    lambda z, t: self.predict(z, t, 1, emb, None), latents, c.scheduler, start
                )
            # 2. The holes denoised beside the left view, the rest held to the paths
            right = sample_fill(
                lambda x, t, i, v: self.predict(x, t, v, cond, uncond, step=i),
                c.scheduler,
                [z[:n] for z in path] if stereo else None,
                [z[-n:] for z in path],
                known,
                start,
                noise=self.deblur_noise(latents[-n:].shape) if cfg.deblur else None,
                callback=callback,
            )
            return c.decode_latents(right, cfg.batch_size)

    # --- text to stereo -----------------------------------------------------------------------

    def initial_noise(self, height: int, width: int) -> torch.Tensor:
        c = self.components
        f = c.vae_scale_factor
        shape = (1, c.vae.config.latent_channels, height // f, width // f)
        g = torch.Generator("cpu").manual_seed(self.settings.seed)
        noise = torch.randn(shape, generator=g, dtype=c.dtype).to(c.device)
        return noise.float() * c.scheduler.init_noise_sigma

    @torch.inference_mode()
    def text_to_stereo(
        self,
        prompt: str,
        height: int,
        width: int,
        disparity_of: Callable[[torch.Tensor], torch.Tensor],
        callback: Callable | None = None,
    ) -> StereoOutput:
        """Generate the left image, estimate its disparity (`disparity_of`: image -> pixel
        disparity), then continue the same trajectory from the shift step with both views.
        The first pass keeps its latent at the shift step, which is exactly what replaying
        the same seed would give, so the steps before t' run once."""
        c, cfg = self.components, self.settings
        c.scheduler.set_timesteps(cfg.steps, device=c.device)
        cond, uncond = self.prompt_embeddings(prompt, 1)
        model = lambda x, t, i, v: self.predict(x, t, v, cond, uncond, step=i)  # noqa: E731
        mono = StereoSchedule(None)
        self.plan_calls(2 * cfg.steps - cfg.shift_step)
        with stereo_attention(c.unet):
            # 1. The left image alone: up to the shift step, then on to the end
            at_shift, _, _ = sample_stereo(
                model,
                c.scheduler,
                self.initial_noise(height, width),
                None,
                mono,
                stop=cfg.shift_step,
            )
            mono_end, _, _ = sample_stereo(
                model, c.scheduler, at_shift, None, mono, start=cfg.shift_step
            )
            # 2. Its disparity
            disparity = disparity_of(c.decode_latents(mono_end)).to(c.device)
            d_latent = disparity_to_latent(disparity, c.vae_scale_factor)
            # 3. From the shift step again, with the right view
            left, right, mask = sample_stereo(
                model,
                c.scheduler,
                at_shift,
                d_latent,
                self.schedule,
                start=cfg.shift_step,
                noise=self.deblur_noise(at_shift.shape) if cfg.deblur else None,
                callback=callback,
            )
        return StereoOutput(c.decode_latents(left), c.decode_latents(right), disparity, ~mask)

    # --- depth to stereo ----------------------------------------------------------------------

    @torch.inference_mode()
    def depth_to_stereo(
        self,
        depth: torch.Tensor,
        disparity: torch.Tensor,
        prompt: str,
        callback: Callable | None = None,
    ) -> StereoOutput:
        """The SD 2 depth model from noise, conditioned on the depth map (near = large) for the
        left view and on the same map warped to the right eye for the right view."""
        c, cfg = self.components, self.settings
        if not c.depth_conditioned:
            raise ValueError("depth to stereo needs a depth-conditioned model (SD 2 depth)")
        c.scheduler.set_timesteps(cfg.steps, device=c.device)
        height, width = depth.shape[-2:]
        latent_size = (height // c.vae_scale_factor, width // c.vae_scale_factor)
        small = F.interpolate(depth.unsqueeze(1).float(), size=latent_size, mode="bicubic")
        low, high = small.amin(dim=(1, 2, 3)), small.amax(dim=(1, 2, 3))
        cond_left = depth_condition(depth, latent_size, low, high)
        right_depth = warp_depth_to_right(depth.float(), disparity.float())
        cond_right = depth_condition(right_depth, latent_size, low, high)
        cond, uncond = self.prompt_embeddings(prompt, 1)
        self.plan_calls(cfg.steps)

        def model(x, t, i, views):
            extra = cond_left if views == 1 else torch.cat([cond_left, cond_right])
            return self.predict(x, t, views, cond, uncond, extra, step=i)

        d_latent = disparity_to_latent(disparity, c.vae_scale_factor)
        noise = self.initial_noise(height, width)
        with stereo_attention(c.unet):
            left, right, mask = sample_stereo(
                model,
                c.scheduler,
                noise,
                d_latent,
                self.schedule,
                noise=self.deblur_noise(noise.shape) if cfg.deblur else None,
                callback=callback,
            )
        return StereoOutput(c.decode_latents(left), c.decode_latents(right), disparity, ~mask)
