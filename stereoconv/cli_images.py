"""`stereoconv images IN_DIR OUT_DIR`: convert a photo library (stereoconv.jobs.library).

It uses cli.py's option helpers and adds itself to the `stereoconv` group when imported; cli.py
imports this module at its end, after the helpers, so either module may be imported first.
"""

from __future__ import annotations

from pathlib import Path

import click

from stereoconv.cli import (
    GIVEN_DEPTH,
    VIDEO_ONLY,
    cli,
    job_options,
    make_converter,
    name_tag_option,
    setting_options,
)
from stereoconv.errors import UserError

# stereoconv.jobs.library.FORMATS, spelt out so that `--help` need not import torch
FORMAT_CHOICES = ("same", "jpeg", "png", "webp", "tiff", "heic", "mpo")


@click.command("images")
@click.argument("in_dir", metavar="IN_DIR", type=click.Path(path_type=Path))
@click.argument("out_dir", metavar="OUT_DIR", type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMAT_CHOICES),
    default="same",
    show_default=True,
    help="Output format; same keeps each photo's (HEIC becomes JPEG); mpo: stereo JPEG pairs.",
)
@click.option("--skip-errors", is_flag=True, help="Go on past bad photos; list them at the end.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary.")
@click.option("--workers", default=1, show_default=True,
              help="Ray workers, one per GPU (or CPU); 1, no --ray-address: no Ray.")  # fmt: skip
@click.option("--ray-address", envvar="RAY_ADDRESS", help="An existing Ray cluster to run on.")
@click.option("--report", "report_path", type=click.Path(path_type=Path),
              help="Write a comfort and quality report (HTML, and JSON beside it).")  # fmt: skip
@name_tag_option
@job_options
@setting_options(exclude=(*VIDEO_ONLY, *GIVEN_DEPTH))
def images(
    in_dir: Path, out_dir: Path, fmt: str, skip_errors, quiet, overwrite, workers, ray_address,
    report_path, name_tag, **kwargs,
) -> None:  # fmt: skip
    """Convert every photo under IN_DIR (JPEG, PNG, WebP, TIFF, HEIC) to stereo under OUT_DIR,
    keeping relative paths, EXIF and colour profiles. Photos already converted with the same
    settings are skipped; outputs made otherwise are left alone unless --overwrite."""
    from stereoconv.jobs.library import SHOWN_PATHS, convert_library
    from stereoconv.layout import name_tag as tag_of

    if fmt == "mpo":  # an MPO holds the two views: the pair layout, in one file
        if kwargs["layout"] not in (None, "pair"):
            raise UserError(f"--format mpo holds both views; drop --layout {kwargs['layout']}")
        kwargs["layout"] = "pair"
    if report_path is not None:
        from stereoconv.report.write import check_report_path

        check_report_path(report_path, in_dir, out_dir)
    device = kwargs.get("device")  # Ray workers pick theirs from the same request
    converter = make_converter(kwargs)
    mapper = None
    if workers < 1:
        raise UserError(f"--workers must be >= 1, not {workers}")
    if workers > 1 or ray_address:
        from stereoconv.runner.ray import ray_photo_batches, start_actors

        actors = start_actors(converter.config, workers, ray_address, device=device)
        mapper = ray_photo_batches(actors)
    tag = tag_of(converter.config.layout, name_tag)
    report = convert_library(converter, in_dir, out_dir, fmt, overwrite, skip_errors, quiet, mapper,
                             tag)  # fmt: skip

    def note(text: str) -> None:
        click.echo(f"stereoconv: {text}", err=True)

    if report_path is not None:
        from stereoconv.report.write import write_images_report

        options = {"format": fmt, "in_dir": in_dir, "out_dir": out_dir, "overwrite": overwrite,
                   "skip_errors": skip_errors}  # fmt: skip
        for path in write_images_report(report_path, converter.config, in_dir, out_dir, report,
                                        options):  # fmt: skip
            click.echo(f"wrote {path}")

    for output, why in report.left_alone[:SHOWN_PATHS]:
        note(f"left alone: {out_dir / output} ({why})")
    if len(report.left_alone) > SHOWN_PATHS:
        note(f"left alone: ... and {len(report.left_alone) - SHOWN_PATHS} more")
    for _, why in report.failed:
        note(f"failed: {why}")
    # a run that ends in an error says its summary once, in the error line
    if report.left_alone:
        raise UserError(f"{report.summary()}; --overwrite replaces them")
    if report.failed:
        raise UserError(f"{report.summary()} (listed above)")
    if not quiet:
        note(report.summary())


cli.add_command(images)
