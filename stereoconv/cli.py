"""The `stereoconv` command: parse options, build a config, call the library. Nothing else."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from stereoconv import __version__
from stereoconv.config import build_config, field_names, preset_names
from stereoconv.errors import UserError


def setting_options(func):
    """Options that map 1:1 to StereoConfig fields; None means "from the preset"."""
    options = [
        click.option("--preset", help=f"Preset ({', '.join(preset_names())}) or a .toml file."),
        click.option("--backend", help="warp (fast) or diffusion (StereoDiffusion inpainting)."),
        click.option("--layout", help="sbs, half-sbs, tb, half-tb, anaglyph or pair."),
        click.option("--divergence", type=float, help="Depth range, % of one view's width."),
        click.option("--convergence", type=float, help="Screen plane: 0 farthest .. 1 nearest."),
        click.option("--views", help="right: input is the left eye; both: split the shift."),
        click.option("--depth-model", help="Depth model: hub id or local folder."),
        click.option(
            "--depth-kind", help="--depth holds disparity-px, relative-disparity or depth."
        ),
        click.option(
            "--depth-scale", type=float, help="Multiply --depth values (KITTI PNG: 1/256)."
        ),
        click.option("--fill-sigma", type=float, help="Warp backend: hole smoothing, pixels."),
        click.option("--batch-size", type=int, help="Frames per model batch."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def config_from(kwargs: dict):
    settings = {k: kwargs.pop(k) for k in field_names() if k in kwargs}
    return build_config(kwargs.pop("preset"), **settings)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="stereoconv")
def cli() -> None:
    """Turn 2D photos and videos into stereo 3D."""


@cli.command()
@click.argument("input_path", metavar="IN", type=click.Path(path_type=Path))
@click.argument("output", metavar="OUT", type=click.Path(path_type=Path))
@click.option("--depth", type=click.Path(path_type=Path), help="Depth map instead of a model.")
@click.option("--device", help="cuda, cuda:N, mps or cpu (default: the best available).")
@click.option("--overwrite", is_flag=True, help="Replace an existing output.")
@setting_options
def image(input_path: Path, output: Path, depth, device, overwrite, **kwargs) -> None:
    """Convert one image IN to a stereo image OUT."""
    from stereoconv.converter import StereoConverter
    from stereoconv.jobs.image import convert_image
    from stereoconv.models import pick_device

    config = config_from(kwargs)
    converter = StereoConverter(config, pick_device(device))
    written = convert_image(converter, input_path, output, depth=depth, overwrite=overwrite)
    for path in written:
        click.echo(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    """Entry point: user errors become one line on stderr and exit status 1."""
    try:
        cli.main(args=argv, prog_name="stereoconv", standalone_mode=False)
    except UserError as exc:
        click.echo(f"stereoconv: error: {exc}", err=True)
        return 1
    except click.exceptions.Abort:
        click.echo("stereoconv: interrupted", err=True)
        return 130
    except click.ClickException as exc:
        click.echo(f"stereoconv: error: {exc.format_message()}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("stereoconv: interrupted", err=True)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
