"""--report: a comfort and quality report of a `video` or `images` run, as one self-contained HTML
page with plots (PATH) and the same numbers as JSON beside it (PATH with the suffix .json).

The numbers come from the statistics the jobs collect (report.stats, report.summary), the
plots from report.plots, the page from report.html; this module adds what needs files: the
thumbnails, decoded from the outputs, the versions and settings that made them, and the atomic
writes. docs/report.md explains every section.
"""

from __future__ import annotations

import dataclasses
import datetime
import importlib.metadata
import io
import json
import platform
import shlex
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from stereoconv import __version__
from stereoconv.config import StereoConfig
from stereoconv.disparity.comfort import BORDER, VIOLATION_SHARE
from stereoconv.errors import UserError
from stereoconv.fileio import atomic_output
from stereoconv.report.summary import (
    REPORT_VERSION,
    budget_limits,
    photo_row,
    pick_evenly,
    rounded,
    split_shots,
    video_summary,
    violation_sides,
)

THUMBNAILS_PER_SHOT = 6
MAX_THUMBNAILS = 48  # in one report: a long film with many bad shots stays a page, not a film
THUMBNAIL_BOX = (420, 240)  # pixels: a packed side-by-side frame is shown whole, small
PACKAGES = ("torch", "diffusers", "transformers", "av", "numpy", "pillow", "matplotlib")


def report_paths(path: Path) -> tuple[Path, Path]:
    """The HTML page and the JSON file beside it."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        raise UserError(f"--report {path}: give the HTML page's name; the JSON goes beside it")
    if path.is_dir():
        raise UserError(f"--report {path} is a folder; give a file name such as report.html")
    return path, path.with_suffix(".json")


def check_report_path(path: Path, *others: Path) -> None:
    """Refuse a report path before the work starts: a .json name, a folder, or a name that is
    one of the job's own files."""
    html, data = report_paths(path)
    for other in others:
        if Path(other).resolve() in (html.resolve(), data.resolve()):
            raise UserError(f"--report {path} would overwrite {other}; choose another name")


# --- provenance ----------------------------------------------------------------------------------


def versions() -> dict[str, str]:
    import av
    import torch

    out = {"stereoconv": __version__, "python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    out["FFmpeg"] = str(av.ffmpeg_version_info)
    out["torch CUDA"] = torch.version.cuda or "none"
    out["platform"] = platform.platform()
    return out


def command_line(argv: Sequence[str] | None = None) -> str | None:
    """The command as typed, when this process is the `stereoconv` command."""
    argv = sys.argv if argv is None else argv
    if not argv or Path(argv[0]).name not in ("stereoconv", "cli.py", "__main__.py"):
        return None
    return shlex.join(["stereoconv", *argv[1:]])


def provenance(config: StereoConfig, options: Mapping[str, Any], created: str) -> dict:
    return {
        "created": created,
        "command": command_line(),
        "settings": dataclasses.asdict(config),
        "options": {
            k: v if isinstance(v, bool | int | float | None) else str(v) for k, v in options.items()
        },
        "versions": versions(),
    }


def now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


# --- thumbnails ----------------------------------------------------------------------------------


def jpeg(image) -> bytes:
    """A PIL image, shrunk into THUMBNAIL_BOX, as JPEG bytes."""
    image = image.convert("RGB")
    image.thumbnail(THUMBNAIL_BOX)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=82)
    return buffer.getvalue()


def video_thumbnails(video: Path, indices: Iterable[int]) -> dict[int, bytes]:
    """Frames of a video by their position (0: the first frame), decoded with PyAV up to the
    last one asked for."""
    import av

    wanted = set(indices)
    out: dict[int, bytes] = {}
    if not wanted:
        return out
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for n, frame in enumerate(container.decode(stream)):
            if n in wanted:
                out[n] = jpeg(frame.to_image())
            if n >= max(wanted):
                break
    return out


def image_thumbnail(path: Path) -> bytes | None:
    """A photo output as a thumbnail (an MPO's first picture); None if it cannot be read."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return jpeg(image)
    except (OSError, ValueError):
        return None


def thumbnail_frames(shots: Sequence[dict], frames: Sequence[dict]) -> list[dict]:
    """The violating frames to show: up to THUMBNAILS_PER_SHOT per shot, spread over it, at most
    MAX_THUMBNAILS in all."""
    by_index = {f["index"]: f for f in frames}
    chosen: list[dict] = []
    for shot in shots:
        for i in pick_evenly(shot["violation_frames"], THUMBNAILS_PER_SHOT):
            if len(chosen) == MAX_THUMBNAILS:
                return chosen
            f = by_index[i]
            sides = violation_sides(f, VIOLATION_SHARE)
            chosen.append({"frame": i, "time": f["time"], "shot": shot["shot"], "sides": sides})
    return chosen


# --- writing -------------------------------------------------------------------------------------


def write_files(path: Path, html: str, data: dict) -> list[Path]:
    """The page and its JSON, each atomically."""
    html_path, json_path = report_paths(path)
    with atomic_output(html_path) as tmp:
        tmp.write_text(html, encoding="utf-8")
    with atomic_output(json_path) as tmp:
        tmp.write_text(json.dumps(rounded(data), indent=1) + "\n", encoding="utf-8")
    return [html_path, json_path]


def video_plots(frames: Sequence[dict], divergence: float | None, backend: str) -> dict:
    """The four plots of a video report, by title."""
    from stereoconv.report import plots

    times = [f["time"] for f in frames]
    cut_times = [shot[0]["time"] for shot in split_shots(frames)]
    limits = None
    if divergence is not None:
        limits = [budget_limits(divergence, f["convergence"]) for f in frames]
    auto = "violation_without_auto" in frames[0]
    return {
        "parallax over time": plots.parallax_plot(
            times,
            [f["near_pct"] for f in frames],
            [f["far_pct"] for f in frames],
            limits,
            cut_times,
            [f["near_pct_without_auto"] for f in frames] if auto else None,
        ),
        "window violations over time": plots.violations_plot(
            times,
            [max(f["front_left"], f["front_right"]) for f in frames],
            [f["violation"] for f in frames],
            VIOLATION_SHARE,
            cut_times,
            [f["violation_without_auto"] for f in frames] if auto else None,
        ),
        "holes over time": plots.holes_plot(
            times, [f["holes"] or 0.0 for f in frames], cut_times, backend == "diffusion"
        ),
        "flicker terms over time": plots.flicker_plot(
            times,
            [f["change_left"] for f in frames],
            [f["change_right"] for f in frames],
            cut_times,
        ),
    }


def video_report_data(job, totals, notes: Sequence[str]) -> dict:
    """Everything the report says about a video job (a jobs.video VideoJob and its
    VideoTotals), as JSON-ready data."""
    cfg, info = job.config, job.info
    frames = sorted(totals.frames_stats, key=lambda f: f["index"])
    if not frames:
        raise UserError("no per-frame statistics to report (the job ran without collect_stats)")
    given_px = cfg.depth_kind == "disparity-px" and job.depth is not None
    summary = video_summary(frames, cfg.divergence, given_px)
    created = now()
    return {
        "stereoconv_report": REPORT_VERSION,
        "kind": "video",
        "created": created,
        "input": str(job.input),
        "output": str(job.output),
        "depth": None if job.depth is None else str(job.depth),
        "video": {
            "width": info.width,
            "height": info.height,
            "frame_rate": None if info.frame_rate is None else float(info.frame_rate),
            "codec": info.codec,
            "pix_fmt": info.pix_fmt,
            "duration_s": info.duration,
        },
        "budget": {
            "divergence_pct": cfg.divergence,
            "given_px": given_px,  # disparity given in pixels: its range against the budget
            "given_scale": job.given_scale,  # --convergence auto's factor into it
            "convergence": cfg.convergence,
            "auto_convergence": cfg.auto_convergence,
            "border_band_pct": BORDER * 100,
            "violation_share_pct": VIOLATION_SHARE * 100,
        },
        "flicker": {
            "left": totals.flicker_left,
            "right": totals.flicker_right,
            "ratio": totals.flicker_ratio,
        },
        "unet_evaluations_per_frame": (
            totals.unet_evaluations_per_frame if cfg.backend == "diffusion" else None
        ),
        **summary,
        "thumbnails": thumbnail_frames(summary["shots"], frames),
        "decoding": {
            "expected_frames": totals.expected_frames,
            "lost_frames": totals.lost_frames,
            "repeated_frames": totals.repeated_frames,
        },
        "notes": list(notes),
        "provenance": provenance(cfg, dataclasses.asdict(job.options), created),
        "frames": frames,
    }


def write_video_report(path: Path, job, totals, notes: Sequence[str]) -> list[Path]:
    """The report of a finished video job (stereoconv.jobs.video.VideoJob with collect_stats)
    and its totals: PATH (HTML) and PATH.json. Returns the files written."""
    from stereoconv.report.html import render_video

    report_paths(path)  # a bad name fails before any work
    data = video_report_data(job, totals, notes)
    budget = data["budget"]
    band = None if budget["given_px"] else budget["divergence_pct"]  # no plane to draw it at
    plots = video_plots(data["frames"], band, job.config.backend)
    thumbs = video_thumbnails(job.output, [t["frame"] for t in data["thumbnails"]])
    return write_files(path, render_video(data, plots, thumbs), data)


def write_images_report(
    path: Path,
    config: StereoConfig,
    in_dir: Path,
    out_dir: Path,
    library,
    options: Mapping[str, Any],
) -> list[Path]:
    """The report of a photo-library run (stereoconv.jobs.library.Report with its per-photo
    statistics): a row per converted photo, thumbnails of the violating ones."""
    from stereoconv.report.html import render_images
    from stereoconv.report.plots import photos_plot

    report_paths(path)
    rows = [
        photo_row(
            str(source), [str(o) for o in outputs], stats, config.divergence, config.convergence
        )
        for source, outputs, stats in library.stats
    ]
    holes = [r["holes"] for r in rows if r["holes"] is not None]
    created = now()
    data = {
        "stereoconv_report": REPORT_VERSION,
        "kind": "images",
        "created": created,
        "input": str(in_dir),
        "output": str(out_dir),
        "budget": {
            "divergence_pct": config.divergence,
            "convergence": config.convergence,
            "border_band_pct": BORDER * 100,
            "violation_share_pct": VIOLATION_SHARE * 100,
        },
        "counts": {
            "converted": len(library.converted),
            "up_to_date": len(library.up_to_date),
            "failed": len(library.failed),
            "left_alone": len(library.left_alone),
        },
        "overall": {
            "photos": len(rows),
            "near_pct_max": max((r["near_pct"] for r in rows), default=None),
            "far_pct_min": min((r["far_pct"] for r in rows), default=None),
            "violations": [r["source"] for r in rows if r["violation"]],
            "holes_mean": sum(holes) / len(holes) if holes else None,
            "holes_max": max(holes) if holes else None,
        },
        "photos": rows,
        "failed": [{"photo": str(s), "why": why} for s, why in library.failed],
        "provenance": provenance(config, options, created),
    }
    plot = None
    if rows:
        limits = budget_limits(config.divergence, config.convergence)
        plot = photos_plot(
            [r["near_pct"] for r in rows],
            [r["far_pct"] for r in rows],
            [r["violation"] for r in rows],
            limits,
        )
    thumbs: dict[str, bytes] = {}
    for row in [r for r in rows if r["violation"]][:MAX_THUMBNAILS]:
        image = image_thumbnail(Path(out_dir) / row["outputs"][0])
        if image is not None:
            thumbs[row["source"]] = image
    return write_files(path, render_images(data, plot, thumbs), data)
