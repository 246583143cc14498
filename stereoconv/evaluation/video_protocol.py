"""The video protocol of `stereoconv eval video:...`: clips with ground truth (evaluation.clips)
converted by each method through the real `video` job, scored frame by frame against the real
right views, and the motion-compensated temporal change inside the holes.

A method is a name and the `video` options it changes (VIDEO_METHODS; on the command line also
`NAME=OPTIONS`). Every job runs as `python -m stereoconv video LEFT OUT --depth DISPARITY`, in a
process of its own, with the eval's settings, then the method's options, then PROTOCOL_ARGS:
the disparity as given in pixels, and an encoding that barely matters (4:4:4, lossless x264;
only the RGB -> YUV -> RGB rounding is left, at most 2 levels).

Metrics of frame t (holes H_t: the pixels the z-buffered warp of the ground-truth disparity of
frame t leaves uncovered, evaluation.harness.hole_mask; visible: the rest):
- PSNR and LPIPS (evaluation.metrics) of the right view on H_t and on the visible pixels.
- temporal change in the holes: the mean absolute difference (8-bit levels, over the three
  channels) between the right view at t and the right view at t-1 warped by the clip's known
  motion (bilinear), over the pixels p of H_t whose source q = M_t^-1 p lies inside frame t-1
  (0 <= q <= size - 1) and was a hole there (H_(t-1) at the nearest pixel to q). Frames after a
  cut and the first have none. A clip's value pools the compared pixels of all its frames; the
  same number for the real right view is the floor (0 for pans; for a zoom, the resampling;
  for the static shot, its sensor noise).
"""

from __future__ import annotations

import json
import math
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from stereoconv.errors import UserError
from stereoconv.evaluation import metrics
from stereoconv.evaluation.clips import (
    DEPTH_SCALE,
    Clip,
    ClipSpec,
    clip_json,
    read_video,
    write_clip,
)
from stereoconv.evaluation.harness import hole_mask

# name -> the `video` options of that method, over the eval's own settings
VIDEO_METHODS: dict[str, tuple[str, ...]] = {
    "warp": ("--backend", "warp"),
    # the default preset: the hybrid, its holes carried from frame to frame (backends/carry.py)
    "default": ("--backend", "diffusion"),
    # the hybrid painted frame by frame over the whole frame (the video default until issue 27)
    "per-frame": ("--backend", "diffusion", "--temporal-fill", "off"),
}
# last on every command line, so that no method changes what is measured
PROTOCOL_ARGS = (
    "--depth-kind",
    "disparity-px",
    "--depth-scale",
    str(DEPTH_SCALE),
    "--layout",
    "sbs",
    "--views",
    "right",
    "--crf",
    "0",
    "--pix-fmt",
    "yuv444p",
    "--encoder-preset",
    "ultrafast",
    "--quiet",
    "--overwrite",
)
# per-frame numbers a job's report JSON may carry, shown as columns when present
REPORT_FRAME_KEYS = ("unet_evaluations",)
METHOD_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class VideoMethod:
    name: str
    args: tuple[str, ...]


def parse_video_methods(text: str) -> list[VideoMethod]:
    """Comma-separated names of VIDEO_METHODS, or NAME=OPTIONS (`video` options, as a shell
    would split them) for a method not listed."""
    found: list[VideoMethod] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, given, args = item.partition("=")
        name = name.strip()
        if not METHOD_NAME.match(name):
            raise UserError(f"bad method name {name!r}: letters, digits, '.', '_' and '-' only")
        if given:
            try:
                method = VideoMethod(name, tuple(shlex.split(args)))
            except ValueError as exc:
                raise UserError(f"method {name}: cannot split its options ({exc})") from None
        elif name in VIDEO_METHODS:
            method = VideoMethod(name, VIDEO_METHODS[name])
        else:
            raise UserError(
                f"unknown video method {name!r}: use {', '.join(VIDEO_METHODS)} or "
                "NAME=OPTIONS (e.g. 'narrow=--fill-min-width 8')"
            )
        if any(m.name == name for m in found):
            raise UserError(f"method {name} is named twice")
        found.append(method)
    if not found:
        raise UserError("--methods names no method")
    return found


def settings_args(given: dict) -> list[str]:
    """The eval's given settings (option name -> value; None: not given) as `video` options."""
    args: list[str] = []
    for key, value in given.items():
        if value is None:
            continue
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            args.append(flag if value else f"--no-{flag[2:]}")
        else:
            args += [flag, str(value)]
    return args


# --- running a method --------------------------------------------------------------------------


@dataclass
class MethodRun:
    right: np.ndarray  # (N, H, W, 3) uint8, the right views as decoded from the job's output
    seconds: float  # the job's wall time, start-up included
    report_frames: list[dict]  # the job's per-frame report records
    reused: bool = False


def job_command(
    files: dict[str, Path], output: Path, method: VideoMethod, common: list[str]
) -> list[str]:
    report = output.with_name(f"{output.stem}-report.html")
    return [
        sys.executable,
        "-m",
        "stereoconv",
        "video",
        str(files["left"]),
        str(output),
        "--depth",
        str(files["disparity"]),
        "--report",
        str(report),
        *common,
        *method.args,
        *PROTOCOL_ARGS,
    ]


def right_views(output: Path, frames: int, height: int, width: int) -> np.ndarray:
    """The right halves of the job's side-by-side frames."""
    packed = read_video(output)
    if packed.shape[:3] != (frames, height, 2 * width):
        raise UserError(
            f"{output}: expected {frames} side-by-side frames of {2 * width} x {height}, got "
            f"{packed.shape[0]} of {packed.shape[2]} x {packed.shape[1]}"
        )
    return np.ascontiguousarray(packed[:, :, width:])


def report_frames(output: Path) -> list[dict]:
    path = output.with_name(f"{output.stem}-report.json")
    if not path.is_file():
        return []
    return sorted(json.loads(path.read_text()).get("frames", []), key=lambda f: f["index"])


def run_method(
    clip: Clip,
    files: dict[str, Path],
    folder: Path,
    method: VideoMethod,
    common: list[str],
    reuse: bool = False,
) -> MethodRun:
    """Convert the clip with the method through `stereoconv video`; with `reuse`, an output
    made before by the same command on the same clip is read instead."""
    output = folder / f"{method.name}.mkv"
    command = job_command(files, output, method, common)
    record_path = folder / f"{method.name}.command.json"
    record = {"command": command[1:], "clip": clip_json(clip)}  # the interpreter may differ
    n, h, w = clip.left.shape[:3]
    if reuse and output.is_file() and record_path.is_file():
        before = json.loads(record_path.read_text())
        if {k: before.get(k) for k in record} == json.loads(json.dumps(record)):
            seconds = before["seconds"]
            return MethodRun(right_views(output, n, h, w), seconds, report_frames(output), True)
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        why = lines[-1] if lines else f"exit status {done.returncode}"
        raise UserError(f"method {method.name} on clip {clip.name}: the video job failed: {why}")
    record_path.write_text(json.dumps({**record, "seconds": seconds}, indent=1) + "\n")
    return MethodRun(right_views(output, n, h, w), seconds, report_frames(output))


# --- metrics -----------------------------------------------------------------------------------


def clip_holes(clip: Clip) -> np.ndarray:
    """(N, H, W) bool: each frame's holes, from its ground-truth disparity."""
    return np.stack([hole_mask(d) for d in clip.disparity])


def source_points(motion: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Where each pixel of frame t was in frame t-1: (x, y) float32 maps, (H, W) each."""
    inverse = np.linalg.inv(np.vstack([motion, [0.0, 0.0, 1.0]]))
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    map_x = inverse[0, 0] * xs + inverse[0, 1] * ys + inverse[0, 2]
    map_y = inverse[1, 0] * xs + inverse[1, 1] * ys + inverse[1, 2]
    return map_x.astype(np.float32), map_y.astype(np.float32)


def temporal_change(
    views: np.ndarray, holes: np.ndarray, motion: list[np.ndarray | None]
) -> list[tuple[float, int]]:
    """Per frame: (the mean absolute change in the holes from the motion-compensated frame
    before, 8-bit levels; the number of pixels compared). (nan, 0) where nothing is compared:
    the first frame, a cut, holes that were not holes before."""
    n, h, w = holes.shape
    found = [(math.nan, 0)]
    for t in range(1, n):
        if motion[t] is None:
            found.append((math.nan, 0))
            continue
        map_x, map_y = source_points(motion[t], h, w)
        inside = (map_x >= 0) & (map_x <= w - 1) & (map_y >= 0) & (map_y <= h - 1)
        near_x = np.clip(np.rint(map_x), 0, w - 1).astype(np.int64)
        near_y = np.clip(np.rint(map_y), 0, h - 1).astype(np.int64)
        compared = holes[t] & inside & holes[t - 1][near_y, near_x]
        if not compared.any():
            found.append((math.nan, 0))
            continue
        before = cv2.remap(views[t - 1].astype(np.float32), map_x, map_y, cv2.INTER_LINEAR)
        change = np.abs(views[t].astype(np.float32) - before).mean(axis=2)[compared]
        found.append((float(change.mean()), int(compared.sum())))
    return found


def pooled(per_frame: Iterable[tuple[float, int]]) -> float:
    """The mean over every compared pixel of a clip."""
    pairs = [(v, c) for v, c in per_frame if c]
    total = sum(c for _, c in pairs)
    return sum(v * c for v, c in pairs) / total if total else math.nan


def frame_scores(
    real: np.ndarray, view: np.ndarray, holes: np.ndarray, lpips: bool, device: str
) -> dict[str, float]:
    scores = {
        "psnr_holes": metrics.psnr(real, view, holes) if holes.any() else math.nan,
        "psnr_visible": metrics.psnr(real, view, ~holes),
    }
    if lpips:
        scores["lpips_holes"] = metrics.lpips(real, view, holes, device=device)
        scores["lpips_visible"] = metrics.lpips(real, view, ~holes, device=device)
    return scores


def score_run(
    clip: Clip, holes: np.ndarray, run: MethodRun, lpips: bool, device: str
) -> list[dict[str, float]]:
    """Every metric of every frame of one method's right views."""
    change = temporal_change(run.right, holes, clip.motion)
    frames = []
    for t in range(clip.left.shape[0]):
        scores = frame_scores(clip.right[t], run.right[t], holes[t], lpips, device)
        scores["temporal_holes"], scores["temporal_pixels"] = change[t]
        record = run.report_frames[t] if t < len(run.report_frames) else {}
        scores.update({k: record[k] for k in REPORT_FRAME_KEYS if record.get(k) is not None})
        frames.append(scores)
    return frames


# --- the whole protocol ------------------------------------------------------------------------


@dataclass
class ClipResult:
    """One clip's views and scores, handed to the report when the clip is done."""

    clip: Clip
    holes: np.ndarray  # (N, H, W) bool
    views: dict[str, np.ndarray]  # method name -> right views (N, H, W, 3) uint8
    frames: dict[str, list[dict[str, float]]]  # method name -> per-frame scores
    floor: list[tuple[float, int]]  # the real right view's temporal change per frame
    seconds: dict[str, float]  # method name -> the job's wall time
    reused: dict[str, bool] = field(default_factory=dict)


@dataclass
class VideoResults:
    spec: ClipSpec
    methods: list[VideoMethod]
    common: list[str]
    lpips: bool
    clips: dict[str, dict] = field(default_factory=dict)  # clip name -> its JSON-ready record


def clip_summary(result: ClipResult) -> dict:
    """Per method: the mean over frames of each metric, the pooled temporal change, the time."""
    n = result.clip.left.shape[0]
    methods = {}
    for name, frames in result.frames.items():
        keys = [k for k in frames[0] if k not in ("temporal_holes", "temporal_pixels")]
        mean = {k: nanmean([f.get(k, math.nan) for f in frames]) for k in keys}
        mean["temporal_holes"] = pooled((f["temporal_holes"], f["temporal_pixels"]) for f in frames)
        mean["seconds_per_frame"] = result.seconds[name] / n
        methods[name] = {
            "mean": mean,
            "seconds": result.seconds[name],
            "reused": result.reused.get(name, False),
            "frames": frames,
        }
    holes = result.holes.reshape(n, -1).mean(axis=1)
    return {
        **clip_json(result.clip),
        "hole_fraction": [float(v) for v in holes],
        "real_right": {
            "temporal_holes": pooled(result.floor),
            "frames": [{"temporal_holes": v, "temporal_pixels": c} for v, c in result.floor],
        },
        "methods": methods,
    }


def nanmean(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan


def evaluate_clips(
    clips: list[Clip],
    methods: list[VideoMethod],
    common: list[str],
    out: Path,
    lpips: bool = True,
    device: str = "cpu",
    reuse: bool = False,
    on_clip: Callable[[ClipResult, VideoResults], None] | None = None,
    progress: Callable[[Iterable], Iterable] = lambda it: it,
) -> VideoResults:
    """Write every clip under out/clips/NAME/, convert it with every method, score it."""
    results = VideoResults(clips[0].spec, methods, common, lpips)
    for clip in progress(clips):
        folder = out / "clips" / clip.name
        files = write_clip(clip, folder)
        holes = clip_holes(clip)
        result = ClipResult(
            clip, holes, {}, {}, temporal_change(clip.right, holes, clip.motion), {}
        )
        for method in methods:
            run = run_method(clip, files, folder, method, common, reuse)
            result.views[method.name] = run.right
            result.frames[method.name] = score_run(clip, holes, run, lpips, device)
            result.seconds[method.name] = run.seconds
            result.reused[method.name] = run.reused
        results.clips[clip.name] = clip_summary(result)
        if on_clip is not None:
            on_clip(result, results)
    return results
