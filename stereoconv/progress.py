"""A progress bar for one diffusion picture: minutes on a CPU, so the user sees it move.

It counts the UNet's forward calls (a PyTorch forward hook, so the diffusion code needs no
knowledge of it): inversion, null-text optimisation and the denoising loops alike, each call
about the same work.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from stereoconv.config import StereoConfig


def unet_calls(config: StereoConfig, task: str) -> int:
    """UNet calls of one picture (an upper bound with null-text inversion, which can stop
    early). task: image (image to stereo), text or depth (pipeline.StereoDiffusion)."""
    steps, shift = config.steps, config.shift_step
    if task == "text":  # the left image to the shift step and on, then both views from there
        return 2 * steps - shift
    if task == "depth":
        return steps
    if config.composite == "hybrid":  # both views inverted to t', then the fill from there
        return 2 * (steps - shift)
    run = steps - (shift if config.skip_pre_shift else 0)
    calls = 2 * run  # the inversion, then the stereo loop
    if config.null_text and config.guidance > 1:
        calls += run * (config.null_text_steps + 2)
    return calls


@contextmanager
def unet_progress(unet: torch.nn.Module, total: int, desc: str = "diffusion") -> Iterator:
    """A tqdm bar on stderr over `total` calls of `unet`, while the block runs. Shown only on a
    terminal (tqdm's disable=None): logs and pipes get no carriage-return noise."""
    from tqdm import tqdm

    with tqdm(total=total, desc=desc, unit="step", disable=None, leave=False) as bar:

        def count(*_) -> None:  # a hook that returned a value would replace the UNet's output
            bar.update(1)

        handle = unet.register_forward_hook(count)
        try:
            yield bar
        finally:
            handle.remove()
