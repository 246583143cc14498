"""`stereoconv image`, `images`, `video` and `preview`: convert photos and videos. Each command
checks its options, builds the config and calls the library; nothing else."""

from __future__ import annotations

from pathlib import Path

import click

from stereoconv.cli.bars import Bars
from stereoconv.cli.options import (
    GENERATION_ONLY,
    GIVEN_DEPTH,
    VIDEO_ONLY,
    job_options,
    make_converter,
    name_tag_option,
    names_a_folder,
    note,
    one_file,
    pictures,
    quiet_option,
    ray_options,
    report,
    report_option,
    setting_options,
    video_options,
    video_options_from,
)
from stereoconv.errors import UserError

# stereoconv.jobs.library.FORMATS, spelt out so that `--help` need not import torch
FORMAT_CHOICES = ("same", "jpeg", "png", "webp", "tiff", "heic", "mpo")
PATH = click.Path(path_type=Path)
PREVIEW_BACKEND = "warp"  # a preview before a long job is quick


@click.command()
@click.argument("input_path", metavar="IN", type=PATH)
@click.argument("output", metavar="OUT", type=click.Path())
@click.option("--depth", type=PATH, help="Depth map instead of a model.")
@quiet_option
@name_tag_option
@job_options
@setting_options(exclude=(*VIDEO_ONLY, *GENERATION_ONLY), layouts=pictures)
def image(input_path: Path, output: str, depth, quiet, overwrite, name_tag, **kwargs) -> None:
    """Convert one image IN to a stereo image OUT (a file, or a folder to put IN_LR.jpg ... in)."""
    from stereoconv.jobs.image import convert_image, picture_output_name
    from stereoconv.layouts import layout_of
    from stereoconv.layouts import name_tag as tag_of

    with Bars(quiet) as bars:
        converter = make_converter(kwargs, progress=bars)
        out, tag = Path(output), tag_of(layout_of(converter.config.layout), name_tag)
        if names_a_folder(output):
            out = out / picture_output_name(input_path, tag)
        written = convert_image(converter, input_path, out, depth=depth, overwrite=overwrite)
    report(written)


@click.command("images")
@click.argument("in_dir", metavar="IN_DIR", type=PATH)
@click.argument("out_dir", metavar="OUT_DIR", type=PATH)
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
@ray_options
@report_option
@name_tag_option
@job_options
@setting_options(exclude=(*VIDEO_ONLY, *GIVEN_DEPTH, *GENERATION_ONLY), layouts=pictures)
def images(
    in_dir: Path,
    out_dir: Path,
    fmt: str,
    skip_errors,
    quiet,
    overwrite,
    workers,
    ray_address,
    report,
    name_tag,
    **kwargs,
) -> None:
    """Convert every photo under IN_DIR (JPEG, PNG, WebP, TIFF, HEIC) to stereo under OUT_DIR,
    keeping relative paths, EXIF and colour profiles. Photos already converted with the same
    settings are skipped; outputs made otherwise are left alone unless --overwrite."""
    from stereoconv.jobs.library import convert_library
    from stereoconv.layouts import layout_of
    from stereoconv.layouts import name_tag as tag_of

    if fmt == "mpo":  # an MPO holds the two views: the pair layout, in one file
        if kwargs["layout"] not in (None, "pair"):
            raise UserError(f"--format mpo holds both views; drop --layout {kwargs['layout']}")
        kwargs["layout"] = "pair"
    if report is not None:
        from stereoconv.report.write import check_report_path

        check_report_path(report, in_dir, out_dir)
    device = kwargs.get("device")  # Ray workers pick theirs from the same request
    converter = make_converter(kwargs)
    if workers > 1 or ray_address:
        from stereoconv.runner.ray_photos import photo_mapper

        mapper = photo_mapper(converter.config, workers, ray_address, device)
    else:
        from stereoconv.runner.local import local_batches

        mapper = local_batches(converter)
    tag = tag_of(layout_of(converter.config.layout), name_tag)
    with Bars(quiet, stages=("checking", "photos")) as bars:
        outcome = convert_library(
            converter, in_dir, out_dir, mapper, fmt, overwrite, skip_errors, tag, bars
        )
    if report is not None:
        from stereoconv.report.write import write_images_report

        options = {
            "format": fmt,
            "in_dir": in_dir,
            "out_dir": out_dir,
            "overwrite": overwrite,
            "skip_errors": skip_errors,
        }
        written = write_images_report(report, converter.config, in_dir, out_dir, outcome, options)
        for path in written:
            click.echo(f"wrote {path}")
    library_summary(outcome, out_dir, quiet)


def say_nothing(text: str) -> None:
    """A notify that says nothing (--quiet)."""


def library_summary(outcome, out_dir: Path, quiet: bool) -> None:
    """What was left alone or failed, one line each (the first few), and the summary: once, in
    the error line when the run ends in one."""
    from stereoconv.jobs.library import SHOWN_PATHS

    for output, why in outcome.left_alone[:SHOWN_PATHS]:
        note(f"left alone: {out_dir / output} ({why})")
    if len(outcome.left_alone) > SHOWN_PATHS:
        note(f"left alone: ... and {len(outcome.left_alone) - SHOWN_PATHS} more")
    for _, why in outcome.failed:
        note(f"failed: {why}")
    if outcome.left_alone:
        raise UserError(f"{outcome.summary()}; --overwrite replaces them")
    if outcome.failed:
        raise UserError(f"{outcome.summary()} (listed above)")
    if not quiet:
        note(outcome.summary())


@click.command()
@click.argument("input_path", metavar="IN", type=PATH)
@click.argument("output", metavar="OUT", type=click.Path())
@click.option("--depth", type=PATH, help="Depth video or folder of per-frame maps.")
@click.option("--save-depth", type=PATH, help="Write estimated depth here.")
@video_options
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no shot-pass line.")
@report_option
@ray_options
@name_tag_option
@job_options
@setting_options(exclude=GENERATION_ONLY, layouts=one_file)
def video(
    input_path: Path,
    output: str,
    depth,
    save_depth,
    quiet,
    overwrite,
    workers,
    ray_address,
    report,
    name_tag,
    **kwargs,
) -> None:
    """Convert a video IN to a stereo video OUT (.mp4, .mov, .mkv, or a folder to put
    IN_LR.mp4 ... in), audio kept."""
    from stereoconv import lock
    from stereoconv.jobs.video.job import (
        frames_text,
        prepare_job,
        video_output_name,
        work_folder,
    )
    from stereoconv.jobs.video.shots import early_pass, planned_shots
    from stereoconv.layouts import layout_of
    from stereoconv.layouts import name_tag as tag_of

    options = video_options_from(kwargs)
    device = kwargs.get("device")  # Ray workers pick theirs from the same request
    converter = make_converter(kwargs)
    layout = layout_of(converter.config.layout)
    out, tag = Path(output), tag_of(layout, name_tag)
    if names_a_folder(output):
        out = out / video_output_name(input_path, layout, tag)
    if report is not None:  # a bad report name fails before the work, not after it
        from stereoconv.report.write import check_report_path

        check_report_path(report, input_path, out)
    job = prepare_job(
        converter.config,
        input_path,
        out,
        options,
        depth,
        save_depth,
        overwrite,
        note,
        collect_stats=report is not None,
    )
    # the shot pass reads the input only: begun while the models load
    with early_pass(job, converter.device) as shot_pass:
        if workers == 1 and not ray_address:  # here: every model found before any work (on
            converter.load_models(job.depth is None)  # Ray, each worker loads its own)
        # one writer per output: held before the work folder, so a live run's work is never
        # touched; the cuts are stored in the work folder, and the pass's line is progress
        with (
            lock.holding(job.output, note),
            work_folder(job, overwrite, note),
            Bars(quiet, stages=("convergence", "frames")) as bars,
            planned_shots(
                job, converter.device, say_nothing if quiet else note, shot_pass
            ) as shots,
        ):
            job, notes, totals = run_video_job(
                job, converter, workers, ray_address, device, bars, shots
            )
    for text in notes:
        note(text)
    work = ""
    if converter.config.backend == "diffusion":
        work = f"; UNet image-evaluations per frame: {totals.unet_evaluations_per_frame:.1f}"
    click.echo(
        f"wrote {job.output} ({frames_text(totals.frames)}; flicker of the right view relative to "
        f"the left: {totals.flicker_ratio:.2f}{work})"
    )
    if report is not None:
        from stereoconv.report.write import write_video_report

        for path in write_video_report(report, job, totals, notes):
            click.echo(f"wrote {path}")


def run_video_job(job, converter, workers: int, ray_address, device, bars: Bars, shots):
    """--convergence auto's first pass, every chunk here or on Ray, the join: (the job with
    its plan, notes, totals). shots: the job's cuts as the chunks ask for them."""
    from stereoconv.jobs.video.convergence import plan_convergence
    from stereoconv.runner.local import convert_video

    if converter.config.auto_convergence:
        job = shots.job_for(job)  # every cut: the screen plane is planned shot by shot
        note("--convergence auto: measuring the depth at the frame borders, shot by shot")
        job = plan_convergence(job, converter, bars, note)
    if workers == 1 and not ray_address:
        return job, *convert_video(converter, job, bars, shots=shots)
    from stereoconv.runner.ray import convert_video_on_ray

    return job, *convert_video_on_ray(job, workers, ray_address, bars, device, shots=shots)


@click.command()
@click.argument("input_path", metavar="IN", type=PATH)
@click.argument("output", metavar="OUT", type=PATH)
@click.option("--start", type=float, help="Start of the range, seconds.")
@click.option("--end", type=float, help="End of the range, seconds.")
@click.option("--frames", default=3, show_default=True, help="Frames, spread over the range.")
@click.option(
    "--divergences",
    default="2,3,4",
    show_default=True,
    help="Comma-separated divergences to compare.",
)
@click.option(
    "--convergences",
    default="0.5,auto",
    show_default=True,
    help="Comma-separated convergences (numbers or auto) to compare.",
)
@click.option(
    "--cell-width",
    default=480,
    show_default=True,
    help="Width of each picture on the sheet, pixels.",
)
@click.option("--depth", type=PATH, help="Depth video or folder of per-frame maps.")
@job_options
@setting_options(
    exclude=("divergence", "convergence", "max_size", *VIDEO_ONLY, *GENERATION_ONLY),
    layouts=lambda layout: one_file(layout) and pictures(layout),
    defaults={"backend": PREVIEW_BACKEND},
)
def preview(
    input_path: Path,
    output: Path,
    start,
    end,
    frames,
    divergences,
    convergences,
    cell_width,
    depth,
    overwrite,
    **kwargs,
) -> None:
    """Before a long job: a contact sheet OUT (.png, .jpg) of a few frames of the video IN,
    each at every divergence and convergence asked (a row per frame, a column per setting),
    with the warp backend unless --backend (or the preset) says diffusion."""
    from stereoconv.config import load_preset
    from stereoconv.jobs.preview import parse_values, preview_video

    divergence_list = parse_values(divergences, "--divergences", "divergence")
    convergence_list = parse_values(convergences, "--convergences", "convergence", auto=True)
    if kwargs["backend"] is None:  # fast: at the divergences it compares, warp shows the depth
        kwargs["backend"] = load_preset(kwargs["preset"] or "default").get("backend")
        kwargs["backend"] = kwargs["backend"] or PREVIEW_BACKEND
    converter = make_converter(kwargs)
    report(
        preview_video(
            converter,
            input_path,
            output,
            start,
            end,
            frames,
            divergence_list,
            convergence_list,
            cell_width,
            overwrite,
            depth,
        )
    )
