"""The `stereoconv` command: parse options, build a config, call the library. Nothing else."""

from __future__ import annotations

import errno
import logging
import os
import signal
import sys
import threading
import warnings
from dataclasses import MISSING, fields
from pathlib import Path

import click

from stereoconv import __version__, lock
from stereoconv.config import (
    CHOICES,
    StereoConfig,
    build_config,
    field_names,
    load_preset,
    preset_names,
)
from stereoconv.errors import UserError
from stereoconv.media.encode import CODECS, ENCODER_PRESETS

# settings that only `video` uses, and the ones that read a --depth file
VIDEO_ONLY = ("spatial_baseline", "spatial_hfov")
GIVEN_DEPTH = ("depth_kind", "depth_scale")


def shown_defaults() -> dict[str, object]:
    """What each setting is when neither a preset nor an option says otherwise: the default
    preset over the dataclass defaults."""
    defaults = {f.name: f.default for f in fields(StereoConfig) if f.default is not MISSING}
    try:
        defaults.update(load_preset("default"))
    except UserError:  # a broken install: the dataclass defaults are still true
        pass
    return defaults


def _with_default(help: str, value: object) -> str:
    """The help with the default in click's style (click's own show_default would show the
    None that means "not given")."""
    shown = ("on" if value else "off") if isinstance(value, bool) else str(value)
    return f"{help}  [default: {shown}]" if shown else help


def setting_options(func=None, *, exclude: tuple[str, ...] = ()):
    """One option per StereoConfig field (the same name, dashes for underscores), plus --preset.
    None means "not given": the preset or the default decides; the help shows the default
    preset's value. auto_convergence is spelt `--convergence auto`."""
    if func is None:
        return lambda f: setting_options(f, exclude=exclude)
    types = {"float": float, "int": int, "str": str}
    defaults = shown_defaults()
    skip = {*exclude, "auto_convergence"}
    for f in reversed([f for f in fields(StereoConfig) if f.name not in skip]):
        flag = "--" + f.name.replace("_", "-")
        common = {"help": _with_default(f.metadata["help"], defaults[f.name])}
        if f.name == "convergence":  # a number, or "auto" (sets auto_convergence)
            option = click.option(flag, f.name, metavar="FLOAT|auto", **common)
        elif f.type == "bool":
            option = click.option(f"{flag}/--no-{flag[2:]}", f.name, default=None, **common)
        elif f.name in CHOICES:
            option = click.option(flag, f.name, type=click.Choice(CHOICES[f.name]), **common)
        else:
            option = click.option(flag, f.name, type=types[f.type], **common)
        func = option(func)
    presets = ", ".join(preset_names())
    preset_help = f"Preset ({presets}) or a .toml file; the defaults shown are the default one's."
    return click.option("--preset", help=preset_help)(func)


def config_from(kwargs: dict):
    settings = {k: kwargs.pop(k) for k in field_names() if k in kwargs}
    if settings.get("convergence") == "auto":
        settings["convergence"], settings["auto_convergence"] = None, True
    elif settings.get("convergence") is not None:
        try:
            settings["convergence"] = float(settings["convergence"])
        except ValueError:
            raise UserError(
                f"--convergence must be a number in [0, 1] or auto, not {settings['convergence']!r}"
            ) from None
    return build_config(kwargs.pop("preset"), **settings)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="stereoconv")
def cli() -> None:
    """Turn 2D photos and videos into stereo 3D."""


def job_options(func):
    """Options of a job that are not settings."""
    func = click.option("--overwrite", is_flag=True, help="Replace an existing output.")(func)
    device_help = "cuda, cuda:N, mps or cpu (default: the best available)."
    return click.option("--device", help=device_help)(func)


def make_converter(kwargs: dict, diffusion: bool = False):
    from stereoconv.converter import StereoConverter
    from stereoconv.models import pick_device

    config = config_from(kwargs)
    device = pick_device(kwargs.pop("device"))
    if (diffusion or config.backend == "diffusion") and device.type == "cpu":
        click.echo(
            "stereoconv: note: the diffusion backend on the CPU takes minutes per picture; "
            "--backend warp is fast",
            err=True,
        )
    converter = StereoConverter(config, device)
    converter.notify = lambda text: click.echo(f"stereoconv: {text}", err=True)
    return converter


def report(written: list[Path]) -> None:
    for path in written:
        click.echo(f"wrote {path}")


def names_a_folder(raw: str) -> bool:
    """OUT names a folder (existing, or written with a trailing slash): stereoconv chooses the
    file name in it."""
    return raw.endswith(("/", os.sep)) or Path(raw).is_dir()


def name_tag_option(func):
    return click.option(
        "--name-tag", default="auto", show_default=True,
        help="Stereo tag in the names stereoconv chooses (OUT a folder), which players such as "
        "DeoVR and SKYBOX read: auto (_LR full SBS, _3dh half SBS, _TB, _3dv half TB, "
        "_anaglyph), none, or a tag such as _SBS. A file name you give is kept as given.",
    )(func)  # fmt: skip


@cli.command()
@click.argument("input_path", metavar="IN", type=click.Path(path_type=Path))
@click.argument("output", metavar="OUT", type=click.Path())
@click.option("--depth", type=click.Path(path_type=Path), help="Depth map instead of a model.")
@name_tag_option
@job_options
@setting_options(exclude=VIDEO_ONLY)
def image(input_path: Path, output: str, depth, overwrite, name_tag, **kwargs) -> None:
    """Convert one image IN to a stereo image OUT (a file, or a folder to put IN_LR.jpg ... in)."""
    from stereoconv.jobs.image import convert_image, output_name
    from stereoconv.layout import name_tag as tag_of

    converter = make_converter(kwargs)
    out, tag = Path(output), tag_of(converter.config.layout, name_tag)
    if names_a_folder(output):
        out = out / output_name(input_path, tag)
    report(convert_image(converter, input_path, out, depth=depth, overwrite=overwrite))


@cli.command()
@click.argument("text_prompt", metavar="PROMPT")
@click.argument("output", metavar="OUT", type=click.Path(path_type=Path))
@click.option("--width", type=int, help="Width in pixels (default: the model's size).")
@click.option("--height", type=int, help="Height in pixels (default: the model's size).")
@job_options
@setting_options(exclude=("prompt", *VIDEO_ONLY, *GIVEN_DEPTH))
def text(text_prompt: str, output: Path, width, height, overwrite, **kwargs) -> None:
    """Generate a stereo picture OUT from a text PROMPT (StereoDiffusion, T2SI)."""
    from stereoconv.jobs.generate import text_to_stereo

    converter = make_converter(kwargs, diffusion=True)
    report(text_to_stereo(converter, text_prompt, output, height, width, overwrite))


@cli.command()
@click.argument("args", nargs=-1, metavar="[DEPTH_MAP] PROMPT OUT")
@click.option(
    "--from-image", type=click.Path(path_type=Path), help="Estimate the depth map from a photo."
)
@click.option("--size", type=int, help="Long side in pixels (default: the model's size).")
@job_options
@setting_options(exclude=("prompt", *VIDEO_ONLY, *GIVEN_DEPTH))
def depth(args: tuple[str, ...], from_image, size, overwrite, **kwargs) -> None:
    """Generate a stereo picture OUT from a DEPTH_MAP image (near = bright) and a PROMPT with
    the SD 2 depth model (StereoDiffusion, D2SI); with --from-image, from a photo's depth."""
    from stereoconv.jobs.generate import depth_to_stereo

    expected = 2 if from_image else 3
    if len(args) != expected:
        usage = "PROMPT OUT with --from-image" if from_image else "DEPTH_MAP PROMPT OUT"
        raise UserError(f"depth takes {usage}, got {len(args)} arguments")
    depth_map = None if from_image else Path(args[0])
    prompt, output = args[-2], Path(args[-1])
    converter = make_converter(kwargs, diffusion=True)
    report(depth_to_stereo(converter, prompt, output, depth_map, from_image, size, overwrite))


@cli.command()
@click.argument("input_path", metavar="IN", type=click.Path(path_type=Path))
@click.argument("output", metavar="OUT", type=click.Path())
@click.option(
    "--depth", type=click.Path(path_type=Path), help="Depth video or folder of per-frame maps."
)
@click.option("--save-depth", type=click.Path(path_type=Path), help="Write estimated depth here.")
@click.option("--start", type=float, help="Start time, seconds.")
@click.option("--end", type=float, help="End time, seconds.")
@click.option("--max-frames", type=int, help="Convert at most this many frames.")
@click.option("--codec", type=click.Choice(CODECS), default="libx264", show_default=True,
              help="H.264 or HEVC; H.264 wider than 4096 or 10-bit becomes HEVC.")  # fmt: skip
@click.option("--crf", default=18, show_default=True, help="Encoder quality (lower is better).")
@click.option("--encoder-preset", type=click.Choice(ENCODER_PRESETS), default="medium",
              show_default=True, help="Encoder speed: slower is smaller.")  # fmt: skip
@click.option("--pix-fmt", default="auto", show_default=True,
              help="auto: yuv420p, or yuv420p10le for 10-bit sources.")  # fmt: skip
@click.option("--chunk-frames", default=240, show_default=True,
              help="Frames per chunk (the unit of resume).")  # fmt: skip
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--strict", is_flag=True,
              help="A damaged input (frames lost) is an error: nothing is written.")  # fmt: skip
@click.option("--report", type=click.Path(path_type=Path),
              help="Write a comfort and quality report (HTML, and JSON beside it).")  # fmt: skip
@click.option("--workers", default=1, show_default=True,
              help="Ray workers, one per GPU (or CPU); 1, no --ray-address: no Ray.")  # fmt: skip
@click.option("--ray-address", envvar="RAY_ADDRESS", help="An existing Ray cluster to run on.")
@name_tag_option
@job_options
@setting_options
def video(
    input_path: Path, output: str, depth, save_depth, quiet, overwrite, workers, ray_address,
    report, name_tag, **kwargs,
) -> None:  # fmt: skip
    """Convert a video IN to a stereo video OUT (.mp4, .mov, .mkv, or a folder to put
    IN_LR.mp4 ... in), audio kept."""
    from tqdm import tqdm

    from stereoconv.jobs.video.convergence import plan_convergence
    from stereoconv.jobs.video.job import VideoOptions, prepare_job
    from stereoconv.runner.local import convert_video

    options = VideoOptions(
        codec=kwargs.pop("codec"), crf=kwargs.pop("crf"), preset=kwargs.pop("encoder_preset"),
        pix_fmt=kwargs.pop("pix_fmt"), start=kwargs.pop("start"), end=kwargs.pop("end"),
        max_frames=kwargs.pop("max_frames"), chunk_frames=kwargs.pop("chunk_frames"),
        strict=kwargs.pop("strict"),
    )  # fmt: skip
    device = kwargs.get("device")  # Ray workers pick theirs from the same request
    converter = make_converter(kwargs)
    from stereoconv.jobs.video.job import output_name
    from stereoconv.layout import name_tag as tag_of

    layout = converter.config.layout
    output, tag = Path(output_arg := output), tag_of(layout, name_tag)
    if names_a_folder(output_arg):
        output = output / output_name(input_path, layout, tag)
    if report is not None:  # a bad report name fails before the work, not after it
        from stereoconv.report.write import check_report_path

        check_report_path(report, input_path, output)
    note = lambda text: click.echo(f"stereoconv: {text}", err=True)  # noqa: E731
    job = prepare_job(converter.config, input_path, output, options, depth, save_depth,
                      overwrite, note, collect_stats=report is not None)  # fmt: skip
    if converter.config.auto_convergence:
        note("--convergence auto: measuring the depth at the frame borders, shot by shot")
        job = plan_convergence(job, converter)
    if workers < 1:
        raise UserError(f"--workers must be >= 1, not {workers}")
    with tqdm(total=len(job.pts), unit="frame", disable=quiet, dynamic_ncols=True) as bar:
        if workers == 1 and not ray_address:
            notes, totals = convert_video(converter, job, bar.update)
        else:
            notes, totals = convert_video_on_ray(job, workers, ray_address, bar.update, device)
    for text in notes:
        note(text)
    click.echo(
        f"wrote {job.output} ({totals['frames']} frames; flicker of the right view relative to "
        f"the left: {totals['flicker_ratio']:.2f})"
    )
    if report is not None:
        from stereoconv.report.write import write_video_report

        for path in write_video_report(report, job, totals, notes):
            click.echo(f"wrote {path}")


@cli.command()
@click.argument("input_path", metavar="IN", type=click.Path(path_type=Path))
@click.argument("output", metavar="OUT", type=click.Path(path_type=Path))
@click.option("--start", type=float, help="Start of the range, seconds.")
@click.option("--end", type=float, help="End of the range, seconds.")
@click.option("--frames", default=3, show_default=True, help="Frames, spread over the range.")
@click.option("--divergences", default="2,3,4", show_default=True,
              help="Comma-separated divergences to compare.")  # fmt: skip
@click.option("--convergences", default="0.5,auto", show_default=True,
              help="Comma-separated convergences (numbers or auto) to compare.")  # fmt: skip
@click.option("--cell-width", default=480, show_default=True,
              help="Width of each picture on the sheet, pixels.")  # fmt: skip
@job_options
@setting_options(exclude=("divergence", "convergence", *VIDEO_ONLY, *GIVEN_DEPTH))
def preview(
    input_path: Path, output: Path, start, end, frames, divergences, convergences, cell_width,
    overwrite, **kwargs,
) -> None:  # fmt: skip
    """Before a long job: a contact sheet OUT (.png, .jpg) of a few frames of the video IN,
    each at every divergence and convergence asked (a row per frame, a column per setting)."""
    from stereoconv.jobs.preview import parse_values, preview_video

    divergence_list = parse_values(divergences, "--divergences")
    convergence_list = parse_values(convergences, "--convergences", auto=True)
    converter = make_converter(kwargs)
    report(preview_video(converter, input_path, output, start, end, frames, divergence_list,
                         convergence_list, cell_width, overwrite))  # fmt: skip


def convert_video_on_ray(job, workers: int, address: str | None, progress, device=None):
    """The chunks on Ray actors (one GPU each where the cluster has GPUs), then the join."""
    from stereoconv.jobs.video.finish import finish_job
    from stereoconv.runner.ray import run_chunks, start_actors

    actors = start_actors(job.config, workers, address, job.depth is None, device)
    run_chunks(job, actors, progress)
    return finish_job(job)


# the libraries whose own logging (warnings to developers: "install accelerate", deprecations)
# is kept off a user's terminal, and the environment variables that set it before they load
LIBRARY_LOGGERS = ("accelerate", "diffusers", "huggingface_hub", "transformers", "torch", "ray")
LIBRARY_VERBOSITY = {"TRANSFORMERS_VERBOSITY": "error", "DIFFUSERS_VERBOSITY": "error",
                     "HF_HUB_VERBOSITY": "error", "ACCELERATE_LOG_LEVEL": "ERROR"}  # fmt: skip


def quiet_libraries() -> None:
    """Only stereoconv speaks on stderr: a note, a progress bar, one error line. The libraries'
    warnings are for their developers. `python -W default` (or PYTHONWARNINGS) brings Python's
    warnings back, and the variables above, set by the user, win over these defaults."""
    if not sys.warnoptions:
        warnings.simplefilter("ignore")
    for name, level in LIBRARY_VERBOSITY.items():
        os.environ.setdefault(name, level)
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


def main(argv: list[str] | None = None) -> int:
    """Entry point: user errors become one line on stderr and exit status 1; Ctrl-C and
    SIGTERM stop cleanly (finished chunks kept, temporary files removed) with status 130 and
    143 (128 + the signal, the shells' convention); a full disk is said in one line."""
    quiet_libraries()
    main_thread = threading.current_thread() is threading.main_thread()
    received: list[int] = []

    def stop(signum, frame) -> None:
        received.append(signum)
        raise KeyboardInterrupt  # the same clean stop as Ctrl-C

    previous = signal.signal(signal.SIGTERM, stop) if main_thread else None
    try:
        cli.main(args=argv, prog_name="stereoconv", standalone_mode=False)
    except UserError as exc:
        click.echo(f"stereoconv: error: {exc}", err=True)
        return 1
    except (click.exceptions.Abort, KeyboardInterrupt):  # click turns Ctrl-C into Abort
        click.echo("stereoconv: interrupted; run the same command again to resume", err=True)
        return 128 + signal.SIGTERM if received else 130
    except click.ClickException as exc:
        click.echo(f"stereoconv: error: {exc.format_message()}", err=True)
        return exc.exit_code
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        where = f" writing {exc.filename}" if getattr(exc, "filename", None) else ""
        click.echo(
            f"stereoconv: error: the disk is full{where}; finished work is kept: free some "
            "space and run the same command again",
            err=True,
        )
        return 1
    finally:
        lock.release_all()
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
    return 0


import stereoconv.cli_images  # noqa: E402, F401  (registers `stereoconv images`)
import stereoconv.evaluation.command  # noqa: E402, F401  (registers `stereoconv eval`)
