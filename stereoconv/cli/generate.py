"""`stereoconv text` and `depth`: generate a stereo picture from a prompt, or from a depth map
and a prompt (StereoDiffusion's T2SI and D2SI)."""

from __future__ import annotations

from pathlib import Path

import click

from stereoconv.cli.bars import Bars
from stereoconv.cli.options import (
    GIVEN_DEPTH,
    VIDEO_ONLY,
    job_options,
    make_converter,
    pictures,
    quiet_option,
    report,
    setting_options,
)
from stereoconv.errors import UserError

# image-to-stereo settings that text and depth to stereo have no use for (they generate both
# views at the size asked for, from noise, with no working image to crop or invert, and guide
# with --text-guidance; the generated left view is kept)
NOT_HERE = (
    "prompt",
    "backend",
    "views",
    "guidance",
    "null_text",
    "null_text_steps",
    "skip_pre_shift",
    "max_side",
    "fill_margin",
    "fill_start",
    *VIDEO_ONLY,
    *GIVEN_DEPTH,
)


@click.command()
@click.argument("text_prompt", metavar="PROMPT")
@click.argument("output", metavar="OUT", type=click.Path(path_type=Path))
@click.option("--width", type=int, help="Width in pixels (default: the model's size).")
@click.option("--height", type=int, help="Height in pixels (default: the model's size).")
@quiet_option
@job_options
@setting_options(exclude=NOT_HERE, layouts=pictures)
def text(text_prompt: str, output: Path, width, height, quiet, overwrite, **kwargs) -> None:
    """Generate a stereo picture OUT from a text PROMPT (StereoDiffusion, T2SI)."""
    from stereoconv.jobs.generate import text_to_stereo

    with Bars(quiet) as bars:
        converter = make_converter(kwargs, diffusion=True, progress=bars)
        written = text_to_stereo(converter, text_prompt, output, height, width, overwrite)
    report(written)


@click.command()
@click.argument("args", nargs=-1, metavar="[DEPTH_MAP] PROMPT OUT")
@click.option(
    "--from-image", type=click.Path(path_type=Path), help="Estimate the depth map from a photo."
)
@click.option("--size", type=int, help="Long side in pixels (default: the model's size).")
@quiet_option
@job_options
@setting_options(exclude=NOT_HERE, layouts=pictures)
def depth(args: tuple[str, ...], from_image, size, quiet, overwrite, **kwargs) -> None:
    """Generate a stereo picture OUT from a DEPTH_MAP image (near = bright) and a PROMPT with
    the SD 2 depth model (StereoDiffusion, D2SI); with --from-image, from a photo's depth."""
    from stereoconv.jobs.generate import depth_to_stereo

    expected = 2 if from_image else 3
    if len(args) != expected:
        usage = "PROMPT OUT with --from-image" if from_image else "DEPTH_MAP PROMPT OUT"
        raise UserError(f"depth takes {usage}, got {len(args)} arguments")
    depth_map = None if from_image else Path(args[0])
    prompt, output = args[-2], Path(args[-1])
    with Bars(quiet) as bars:
        converter = make_converter(kwargs, diffusion=True, progress=bars)
        written = depth_to_stereo(converter, prompt, output, depth_map, from_image, size, overwrite)
    report(written)
