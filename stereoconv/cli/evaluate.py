"""`stereoconv eval DATASET_DIR`: run a method set on a stereo dataset and write the report
(stereoconv.evaluation)."""

from __future__ import annotations

from pathlib import Path

import click

from stereoconv.cli.options import config_from, job_options, quiet_option, setting_options
from stereoconv.errors import UserError

# what eval has no use for: it scores the right view itself (no layout, no output size), from
# the dataset's disparity or the depth model's, with image-to-stereo's guidance
NOT_SETTINGS_HERE = (
    "backend",
    "layout",
    "views",
    "depth_kind",
    "depth_scale",
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
@click.argument("dataset", metavar="DATASET_DIR")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("eval-results"),
    show_default=True,
    help="Folder for results.md, results.json and scenes/*.png.",
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
    default="classical,warp",
    show_default=True,
    help="Comma-separated: leave-blank, stretch, telea, warp, diffusion[:attention=uni|bi|off"
    ":spsmd=on|off:deblur=on|off:composite=hybrid|pure]; sets: classical, table2, ablation, all.",
)
@click.option("--scenes", help="Comma-separated scene names to keep (default: all).")
@click.option("--limit", type=int, help="Only the first N scenes.")
@click.option(
    "--paper-size", type=int, default=512, show_default=True, help="Side of the paper protocol."
)
@click.option("--lpips/--no-lpips", default=True, help="Score LPIPS (needs its weights).")
@click.option("--figures/--no-figures", default=True, help="Write a picture per scene.")
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
    quiet: bool,
    overwrite: bool,
    **kwargs,
) -> None:
    """Evaluate right-view synthesis on DATASET_DIR (Middlebury 2014 or 2001/2003, KITTI 2015, a
    folder with left/ right/ disparity/, a stereo video pair, or skimage:motorcycle) against its
    real right views."""
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
