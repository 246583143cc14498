"""`stereoconv eval DATASET_DIR`: run a method set on a stereo dataset and write the report
(stereoconv.evaluation). `stereoconv eval video:...`: the video protocol (clips with ground
truth through the real `video` job, evaluation.video_protocol)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import click

from stereoconv.cli.options import config_from, job_options, quiet_option, setting_options
from stereoconv.errors import UserError

CLIP_KINDS = ("pan-right", "pan-left", "zoom", "static", "cut")  # evaluation.clips, without numpy

# what eval has no use for: it scores the right view itself (no layout, no output size), from
# the dataset's disparity or the depth model's, with image-to-stereo's guidance
NOT_SETTINGS_HERE = (
    "backend",
    "layout",
    "views",
    "depth_kind",
    "depth_scale",
    "depth_unknown",
    "max_size",
    "vr180_hfov",
    "spatial_baseline",
    "spatial_hfov",
    "text_guidance",
)
# stereoconv.evaluation.protocols' PROTOCOLS and DISPARITY_SOURCES, spelt out so that `--help`
# need not import torch
PROTOCOLS = ("calibrated", "paper")
DISPARITY_SOURCES = ("gt", "estimated")


@click.command("eval")
@click.argument("dataset", metavar="DATASET_DIR|video:SCENES")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("eval-results"),
    show_default=True,
    help="Folder for results.md, results.json and scenes/*.png (video:...: clips/, strips/).",
)
@click.option(
    "--protocol",
    type=click.Choice(PROTOCOLS),
    default="calibrated",
    show_default=True,
    help="calibrated (native size, disparity in pixels) or paper (512x512 crop, s = 8 %).",
)
@click.option(
    "--disparity",
    "source",
    type=click.Choice(DISPARITY_SOURCES),
    default="gt",
    show_default=True,
    help="gt (the dataset's ground truth) or estimated (the depth model).",
)
@click.option(
    "--methods",
    help="Comma-separated: leave-blank, stretch, telea, warp, diffusion[:attention=uni|bi|off"
    ":spsmd=on|off:deblur=on|off:composite=hybrid|pure]; sets: classical, table2, ablation, all "
    "(default: classical,warp). video:...: warp, default, or NAME='VIDEO OPTIONS' (default: warp).",
)
@click.option(
    "--scenes",
    help="Comma-separated scene names to keep (default: all); video:...: clip names (teddy-zoom).",
)
@click.option("--limit", type=int, help="Only the first N scenes (video:...: clips).")
@click.option(
    "--paper-size", type=int, default=512, show_default=True, help="Side of the paper protocol."
)
@click.option("--lpips/--no-lpips", default=True, help="Score LPIPS (needs its weights).")
@click.option("--figures/--no-figures", default=True, help="Write a picture per scene.")
@click.option(
    "--clips",
    "clip_kinds",
    default=",".join(CLIP_KINDS),
    show_default=True,
    help="video:... only: the kinds of clip made of each scene.",
)
@click.option(
    "--clip-size", default="320x240", show_default=True, help="video:... only: WIDTHxHEIGHT."
)
@click.option(
    "--clip-frames", type=int, default=12, show_default=True, help="video:... only: frames a clip."
)
@click.option(
    "--pan-step", type=int, default=2, show_default=True, help="video:... only: pixels a frame."
)
@click.option(
    "--reuse-outputs",
    is_flag=True,
    help="video:... only: read a method's video left in --out by the same command on the same "
    "clip instead of converting again.",
)
@quiet_option
@job_options
@setting_options(exclude=NOT_SETTINGS_HERE)
def eval_command(
    dataset: str,
    out: Path,
    protocol: str,
    source: str,
    methods: str,
    scenes,
    limit,
    paper_size: int,
    lpips: bool,
    figures: bool,
    clip_kinds: str,
    clip_size: str,
    clip_frames: int,
    pan_step: int,
    reuse_outputs: bool,
    quiet: bool,
    overwrite: bool,
    **kwargs,
) -> None:
    """Evaluate right-view synthesis on DATASET_DIR (Middlebury 2014, KITTI 2015, a folder with
    left/ right/ disparity/, or skimage:motorcycle) against its real right views; or, with
    video:SCENES (video:standard, video:all, video:teddy,venus), convert clips with ground truth
    through the video job and score them frame by frame and over time."""
    if dataset.startswith("video:"):
        if protocol != "calibrated" or source != "gt":
            raise UserError("video:... clips use the real geometry: no --protocol or --disparity")
        video = VideoRun(clip_kinds, clip_size, clip_frames, pan_step, reuse_outputs)
        only = [s.strip() for s in scenes.split(",") if s.strip()] if scenes else ()
        run_video_protocol(
            dataset, out, methods, only, limit, lpips, figures, video, overwrite, kwargs
        )
        return
    methods = methods or "classical,warp"
    from stereoconv.evaluation.datasets import open_dataset
    from stereoconv.evaluation.methods import parse_methods
    from stereoconv.evaluation.protocols import check_protocol
    from stereoconv.models import pick_device

    # 1. Check everything before any work
    config = config_from(kwargs)
    device = pick_device(kwargs.pop("device"))
    check_protocol(protocol, source)
    if limit is not None and limit < 1:
        raise UserError(f"--limit must be >= 1, not {limit}")
    if paper_size < 64 or paper_size % 8:
        raise UserError(f"--paper-size must be a multiple of 8, at least 64, not {paper_size}")
    method_list = parse_methods(methods, config)
    only = [s.strip() for s in scenes.split(",") if s.strip()] if scenes else ()
    data = open_dataset(dataset, only, limit)
    for name in ("results.md", "results.json"):
        if (out / name).exists() and not overwrite:
            raise UserError(f"{out / name} exists; pass --overwrite to replace it")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a folder")
    uses_diffusion = any(m.family == "diffusion" for m in method_list)
    if uses_diffusion and device.type == "cpu":
        click.echo("stereoconv: note: diffusion on the CPU takes minutes per scene", err=True)
    run_evaluation(
        config,
        device,
        data,
        dataset,
        out,
        protocol,
        source,
        method_list,
        paper_size,
        lpips,
        figures,
        quiet,
    )


def run_evaluation(
    config,
    device,
    data,
    dataset: str,
    out: Path,
    protocol: str,
    source: str,
    method_list,
    paper_size: int,
    lpips: bool,
    figures: bool,
    quiet: bool = False,
) -> None:
    """Steps 2 and 3 of `eval`: the models (loaded on first use), the run and the report."""
    import torch

    from stereoconv.cli.bars import iterate
    from stereoconv.config import to_dict
    from stereoconv.evaluation.harness import evaluate, standard_metrics
    from stereoconv.evaluation.methods import MethodRunner
    from stereoconv.evaluation.tables import safe_name, scene_figure, write_png, write_report

    # 2. Models, loaded on first use
    runner = MethodRunner(config, device)
    estimate = None
    if source == "estimated":
        from stereoconv.converter import StereoConverter

        converter = StereoConverter(config, device)

        def estimate(rgb):
            return converter.relative_disparity(torch.tensor(rgb)[None])[0].cpu().numpy()

    metric_list = standard_metrics(lpips=lpips, device=str(device))
    written: list[Path] = []

    def on_scene(result) -> None:
        if figures:
            path = out / "scenes" / f"{safe_name(result.prepared.name)}.png"
            write_png(path, scene_figure(result))
            written.append(path)

    # 3. Run and report
    results = evaluate(
        data,
        protocol,
        source,
        method_list,
        runner,
        metric_list,
        estimate=estimate,
        paper_size=paper_size,
        on_scene=on_scene,
        progress=lambda scenes: iterate(scenes, "scenes", quiet),
    )
    settings = {
        **to_dict(config),
        "dataset_path": dataset,
        "paper_size": paper_size,
        "device": str(device),
        "torch": torch.__version__,
    }
    written += write_report(results, out, settings)
    for path in written:
        click.echo(f"wrote {path}")


@dataclass(frozen=True)
class VideoRun:
    """The video protocol's own options."""

    kinds: str
    size: str
    frames: int
    pan_step: int
    reuse: bool


def clip_plans(dataset: str, video: VideoRun, only, limit: int | None):
    """The clips' size and motion, and the clips `eval video:...` asked for (checked)."""
    from stereoconv.evaluation.clips import ClipSpec, plan_clips

    size = video.size.lower().split("x")
    if len(size) != 2 or not all(v.isdigit() for v in size):
        raise UserError(f"--clip-size must be WIDTHxHEIGHT, such as 320x240, not {video.size!r}")
    spec = ClipSpec(int(size[0]), int(size[1]), video.frames, video.pan_step)
    kinds = tuple(k.strip() for k in video.kinds.split(",") if k.strip())
    plans = plan_clips(dataset, kinds)
    if only:
        unknown = sorted(set(only) - {p.name for p in plans})
        if unknown:
            raise UserError(f"no clip {', '.join(unknown)} in {dataset}")
        plans = [p for p in plans if p.name in only]
    if limit is not None:
        if limit < 1:
            raise UserError(f"--limit must be >= 1, not {limit}")
        plans = plans[:limit]
    return spec, plans


def run_video_protocol(
    dataset: str,
    out: Path,
    methods: str | None,
    only,
    limit: int | None,
    lpips: bool,
    figures: bool,
    video: VideoRun,
    overwrite: bool,
    kwargs: dict,
) -> None:
    """`eval video:...`: every check first, then the clips, each method's jobs, the report."""
    import datetime

    import torch
    from tqdm import tqdm

    from stereoconv.config import to_dict
    from stereoconv.evaluation.clips import Stills
    from stereoconv.evaluation.tables import safe_name, write_png
    from stereoconv.evaluation.video_protocol import (
        evaluate_clips,
        parse_video_methods,
        settings_args,
    )
    from stereoconv.evaluation.video_report import clip_strip, write_results
    from stereoconv.models import pick_device

    # 1. Check everything before any work
    given = {k: v for k, v in kwargs.items() if v is not None}
    config = config_from(dict(kwargs))  # the settings are checked here, not in every job
    device = pick_device(kwargs.get("device"))
    method_list = parse_video_methods(methods or "warp")
    spec, plans = clip_plans(dataset, video, only, limit)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a folder")
    for name in ("results.md", "results.json"):
        if (out / name).exists() and not overwrite:
            raise UserError(f"{out / name} exists; pass --overwrite to replace it")
    stills = Stills()
    clips = [stills.clip(plan, spec) for plan in plans]  # a scene too small fails here

    # 2. Run and report, the report rewritten after each clip
    settings = {
        **to_dict(config),
        "dataset": dataset,
        "device": str(device),
        "torch": torch.__version__,
        "date": datetime.date.today().isoformat(),
    }
    written: list[Path] = []

    def on_clip(result, results) -> None:
        if figures:
            path = out / "strips" / f"{safe_name(result.clip.name)}.png"
            write_png(path, clip_strip(result))
            written.append(path)
        write_results(results, out, settings)

    results = evaluate_clips(
        clips,
        method_list,
        settings_args(given),
        out,
        lpips=lpips,
        device=str(device),
        reuse=video.reuse,
        on_clip=on_clip,
        progress=lambda it: tqdm(it, desc="clips", unit="clip", leave=False),
    )
    written += write_results(results, out, settings)
    for path in written:
        click.echo(f"wrote {path}")
