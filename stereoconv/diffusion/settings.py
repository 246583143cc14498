"""The settings StereoDiffusion itself reads: one frozen record, built from the product's config
the way disparity.plan.DisparityPlan is, so that the pipeline never sees the other 30 settings
of a conversion (layouts, depth, encoders)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from stereoconv.config import StereoConfig
from stereoconv.diffusion.sampler import StereoSchedule


@dataclass(frozen=True)
class DiffusionSettings:
    """StereoDiffusion's knobs (paper Sec. 3; each is the config field of the same name)."""

    steps: int = 25  # DDIM steps
    shift_fraction: float = 0.2  # the shift step t' as a fraction of the steps
    spsmd_every: int = 10  # SPSMD copy every k steps after t'; 0: off
    deblur: bool = False  # fill the shifted latent's holes with noise (eq. 8)
    attention: str = "uni"  # stereo self-attention: uni | bi | off
    null_text: bool = False  # null-text inversion
    null_text_steps: int = 10  # its inner optimisation steps per timestep
    guidance: float = 1.0  # classifier-free guidance; <= 1: no unconditional batch
    prompt: str = ""  # the text condition of image to stereo
    seed: int = 0  # the seed of every noise draw
    batch_size: int = 8  # images per VAE call
    skip_pre_shift: bool = False  # image to stereo: start at t' from the inversion
    fill_start: str = "invert"  # the hybrid fill: how both views reach t' (invert | noise)

    @classmethod
    def of(cls, config: StereoConfig, **overrides) -> DiffusionSettings:
        """The diffusion settings of a config, with `overrides` (e.g. text and depth to stereo
        take guidance=config.text_guidance)."""
        names = [f.name for f in dataclasses.fields(cls)]
        return cls(**{name: getattr(config, name) for name in names} | overrides)

    @property
    def shift_step(self) -> int:
        """The loop index of the shift step t'."""
        return min(self.steps - 1, max(0, round(self.shift_fraction * self.steps)))

    @property
    def schedule(self) -> StereoSchedule:
        """When the stereo operations happen: the shift, the SPSMD copies, deblur."""
        return StereoSchedule(self.shift_step, self.spsmd_every, self.deblur)
