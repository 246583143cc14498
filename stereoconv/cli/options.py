"""Options made from the config's fields, and the few helpers every command shares.

Each StereoConfig field is an option of the same name (dashes for underscores), each
VideoOptions field one of `video`; their help, choices and defaults come from the dataclasses,
so they are written once. None means "not given": the preset or the default decides. Every
option is checked here or in the dataclasses before a model loads.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path

import click

from stereoconv.config import (
    CHOICES,
    VIDEO_CHOICES,
    VIDEO_FLAGS,
    StereoConfig,
    VideoOptions,
    build_config,
    field_names,
    preset_names,
)
from stereoconv.errors import UserError
from stereoconv.layouts import RECORDS, Layout

# settings that only `video` uses, the ones that read a --depth file, and those of text and
# depth to stereo (generated from noise) that image to stereo has no use for
VIDEO_ONLY = ("spatial_baseline", "spatial_hfov", "temporal_fill")
GIVEN_DEPTH = ("depth_kind", "depth_scale", "depth_unknown")
GENERATION_ONLY = ("text_guidance",)


def pictures(layout: Layout) -> bool:
    """The layouts of still pictures (setting_options' `layouts`)."""
    return not layout.video_only


def one_file(layout: Layout) -> bool:
    """The layouts of one file per picture: a video, a preview sheet."""
    return layout.files == 1


TYPES = {"float": float, "int": int, "str": str, "float | None": float, "int | None": int}


def _with_default(help: str, value: object) -> str:
    """The help with the default in click's style (click's own show_default would show the
    None that means "not given")."""
    shown = ("on" if value else "off") if isinstance(value, bool) else str(value)
    return f"{help}  [default: {shown}]" if shown else help


def _option(f, flag: str, choices: dict, name: str | None = None, default=None):
    """One click option for a dataclass field (its parameter `name`, the field's by default),
    the default shown in the help (the field's, or the command's own `default`); the value None
    means not given."""
    name = name or f.name
    help = f.metadata["help"]
    default = f.default if default is None else default
    if default is not None:
        help = _with_default(help, default)
    if f.type == "bool":
        return click.option(f"{flag}/--no-{flag[2:]}", name, default=None, help=help)
    if f.name in choices:
        return click.option(flag, name, type=click.Choice(choices[f.name]), help=help)
    return click.option(flag, name, type=TYPES[f.type], help=help)


def layout_option(f, layouts: Callable[[Layout], bool]):
    """--layout with the layouts a command makes (`layouts` says which), each in words."""
    offered = [layout for layout in RECORDS if layouts(layout)]
    said = [
        f"{layout.name}: {layout.about}" + (f" ({layout.container})" if layout.container else "")
        for layout in offered
    ]
    help = _with_default(f"{f.metadata['help']}. {'; '.join(said)}", f.default)
    choice = click.Choice([layout.name for layout in offered])
    return click.option("--layout", f.name, type=choice, help=help)


def setting_options(
    func=None,
    *,
    exclude: tuple[str, ...] = (),
    layouts: Callable[[Layout], bool] = lambda layout: True,
    defaults: dict | None = None,
):
    """One option per StereoConfig field, plus --preset; the help shows the default (the
    command's own where `defaults` has one). auto_convergence is spelt `--convergence auto`;
    --layout offers the layouts that `layouts` keeps (those the command can make)."""
    if func is None:
        return lambda f: setting_options(f, exclude=exclude, layouts=layouts, defaults=defaults)
    defaults = defaults or {}
    skip = {*exclude, "auto_convergence"}
    for f in reversed([f for f in fields(StereoConfig) if f.name not in skip]):
        flag = "--" + f.name.replace("_", "-")
        if f.name == "convergence":  # a number, or "auto" (sets auto_convergence)
            help = _with_default(f.metadata["help"], f.default)
            option = click.option(flag, f.name, metavar="FLOAT|auto", help=help)
        elif f.name == "layout":
            option = layout_option(f, layouts)
        else:
            option = _option(f, flag, CHOICES, default=defaults.get(f.name))
        func = option(func)
    presets = ", ".join(preset_names())
    preset_help = f"Preset ({presets}) or a .toml file; the defaults shown are the default one's."
    return click.option("--preset", help=preset_help)(func)


def video_options(func):
    """One option per VideoOptions field (`preset` is --encoder-preset, `strict` a flag)."""
    for f in reversed(fields(VideoOptions)):
        name = VIDEO_FLAGS.get(f.name, f.name)
        flag = "--" + name.replace("_", "-")
        if f.type == "bool":
            option = click.option(flag, name, is_flag=True, help=f.metadata["help"])
        else:
            option = _option(f, flag, VIDEO_CHOICES, name)
        func = option(func)
    return func


def video_options_from(kwargs: dict) -> VideoOptions:
    """The VideoOptions given (popped from kwargs); the dataclass's defaults for the rest."""
    given = {f.name: kwargs.pop(VIDEO_FLAGS.get(f.name, f.name)) for f in fields(VideoOptions)}
    return VideoOptions(**{k: v for k, v in given.items() if v is not None})


def config_from(kwargs: dict) -> StereoConfig:
    """The StereoConfig of the settings given (popped from kwargs) over the preset."""
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


def job_options(func):
    """Options of a job that are not settings."""
    func = click.option("--overwrite", is_flag=True, help="Replace an existing output.")(func)
    device_help = "cuda, cuda:N, mps or cpu (default: the best available)."
    return click.option("--device", help=device_help)(func)


def _check_workers(ctx, param, value: int) -> int:
    if value < 1:
        raise UserError(f"--workers must be >= 1, not {value}")
    return value


# how long --ray-address may take to answer: Ray itself waits for an unreachable cluster for
# many minutes, printing its reconnect warnings
RAY_CONNECT_SECONDS = 5.0


def _check_ray_address(ctx, param, value: str | None) -> str | None:
    """A cluster address Ray takes (host:port, ray://host:port, auto) with something listening
    there, checked before any work; Ray's own wait for an unreachable one is unbounded."""
    if value is None or value in ("auto", "local"):
        return value
    host, _, port = value.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit() or "/" in host:
        raise UserError(f"--ray-address must be host:port, ray://host:port or auto, not {value!r}")
    try:
        socket.create_connection((host.strip("[]"), int(port)), RAY_CONNECT_SECONDS).close()
    except OSError as exc:
        why = exc.strerror or str(exc) or type(exc).__name__
        raise UserError(f"cannot reach a Ray cluster at {value}: {why}") from None
    return value


def ray_options(func):
    """--workers and --ray-address (checked here, before any model loads)."""
    ray_help = "An existing Ray cluster to run on: host:port, ray://host:port or auto."
    func = click.option(
        "--ray-address", envvar="RAY_ADDRESS", callback=_check_ray_address, help=ray_help
    )(func)
    workers_help = "Ray workers, one per GPU (or CPU); 1, no --ray-address: no Ray."
    return click.option(
        "--workers", default=1, show_default=True, callback=_check_workers, help=workers_help
    )(func)


def quiet_option(func):
    return click.option("--quiet", "-q", is_flag=True, help="No progress bar.")(func)


def report_option(func, name: str = "report"):
    help = "Write a comfort and quality report (HTML, and JSON beside it)."
    return click.option("--report", name, type=click.Path(path_type=Path), help=help)(func)


def name_tag_option(func):
    tags = ", ".join(f"{layout.tag} {layout.name}" for layout in RECORDS if layout.tag)
    help = (
        "Stereo tag in the names stereoconv chooses (OUT a folder), which players such as "
        f"DeoVR and SKYBOX read: auto (the layout's: {tags}), none, or a tag such as _SBS. "
        "A file name you give is kept as given."
    )
    return click.option("--name-tag", default="auto", show_default=True, help=help)(func)


def note(text: str) -> None:
    """One line for the user on stderr."""
    click.echo(f"stereoconv: {text}", err=True)


def make_converter(kwargs: dict, diffusion: bool = False, progress=None):
    """The converter of the settings in kwargs (popped), on the device asked or the best one;
    `progress` (stereoconv.progress) hears its diffusion steps."""
    from stereoconv.converter import StereoConverter
    from stereoconv.models import pick_device

    config = config_from(kwargs)
    device = pick_device(kwargs.pop("device"))
    if device.type == "cpu" and diffusion:  # text and depth: diffusion is all they do
        note("note: diffusion on the CPU takes minutes per picture; fewer --steps is faster")
    elif device.type == "cpu" and config.backend == "diffusion":
        note(
            "note: the diffusion backend on the CPU takes minutes per picture; --backend warp "
            "is fast"
        )
    converter = StereoConverter(config, device, progress=progress)
    converter.notify = note
    return converter


def report(written: list[Path]) -> None:
    for path in written:
        click.echo(f"wrote {path}")


def names_a_folder(raw: str) -> bool:
    """OUT names a folder (existing, or written with a trailing slash): stereoconv chooses the
    file name in it."""
    return raw.endswith(("/", os.sep)) or Path(raw).is_dir()
