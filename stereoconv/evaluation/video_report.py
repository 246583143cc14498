"""The video protocol's report: results.md (means over the clips, per clip, per frame),
results.json (every number, per frame), and per clip a strip of consecutive right views cropped
around one hole, for the real right view and each method (clips/NAME.png)."""

from __future__ import annotations

import json
import math
import shlex
from pathlib import Path

import cv2
import numpy as np

from stereoconv.evaluation.video_protocol import (
    PROTOCOL_ARGS,
    ClipResult,
    VideoResults,
    nanmean,
    pooled,
)

# (key, label, higher is better, decimals)
COLUMNS = (
    ("psnr_holes", "PSNR holes", True, 2),
    ("lpips_holes", "LPIPS holes", False, 4),
    ("psnr_visible", "PSNR visible", True, 2),
    ("lpips_visible", "LPIPS visible", False, 4),
    ("temporal_holes", "temporal change holes", False, 2),
)
EXTRA_COLUMNS = (
    ("seconds_per_frame", "s / frame", False, 1),
    ("unet_evaluations", "UNet evaluations / frame", False, 2),
)
ARROWS = {True: "↑", False: "↓"}


def _fmt(value: float | None, decimals: int) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    return f"{value:.{decimals}f}"


def _clean(obj):
    """JSON has neither NaN (nothing to score) nor inf (identical images): null."""
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def columns(results: VideoResults) -> list[tuple[str, str, bool, int]]:
    """The metric columns of this run: LPIPS if scored, UNet evaluations if a job reported them."""
    found = [c for c in COLUMNS if results.lpips or not c[0].startswith("lpips")]
    seen = {
        k
        for clip in results.clips.values()
        for m in clip["methods"].values()
        for k in m["mean"]
        if not math.isnan(m["mean"][k])
    }
    return found + [c for c in EXTRA_COLUMNS if c[0] in seen]


def method_means(results: VideoResults) -> dict[str, dict[str, float]]:
    """method -> metric -> the mean over the clips of each clip's value."""
    out = {}
    for method in results.methods:
        per_clip = [c["methods"][method.name]["mean"] for c in results.clips.values()]
        keys = {k for m in per_clip for k in m}
        out[method.name] = {k: nanmean([m.get(k, math.nan) for m in per_clip]) for k in keys}
    return out


def command_line(results: VideoResults, method) -> str:
    return shlex.join(
        [
            "stereoconv",
            "video",
            "LEFT",
            "OUT",
            "--depth",
            "DISPARITY",
            *results.common,
            *method.args,
            *PROTOCOL_ARGS,
        ]
    )


def markdown(results: VideoResults) -> str:
    spec, clips = results.spec, results.clips
    cols = columns(results)
    means = method_means(results)
    floor = nanmean([c["real_right"]["temporal_holes"] for c in clips.values()])
    holes = nanmean([float(np.mean(c["hole_fraction"])) for c in clips.values()])
    header = ["method"] + [f"{label} {ARROWS[hb]}" for _, label, hb, _ in cols]
    lines = [
        f"# Video protocol: {len(clips)} clip{'s' if len(clips) != 1 else ''} of "
        f"{spec.width} x {spec.height}, {spec.frames} frames",
        "",
        "Each method converts each clip through `stereoconv video` (the command lines are at the "
        "end); its right views are scored against the real ones. *holes*: the pixels the "
        "z-buffered warp of the ground-truth disparity leaves uncovered in that frame "
        f"({holes:.1%} of the pixels on average); *visible*: the rest. PSNR and LPIPS: mean over "
        "the frames. *temporal change holes*: mean absolute difference (8-bit levels) between "
        "the right view at t and the right view at t-1 moved by the clip's known motion, over "
        "the hole pixels of frame t that were holes at t-1 too (all compared pixels of a clip "
        "pooled); the real right view's is the floor. s / frame: the job's wall time, start-up "
        "included, over the frames (indicative).",
        "",
        "## Mean over the clips",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        "| real right view | "
        + " | ".join(_fmt(floor, 2) if k == "temporal_holes" else "" for k, *_ in cols)
        + " |",
    ]
    for method in results.methods:
        row = [f"`{method.name}`"] + [_fmt(means[method.name].get(k), d) for k, _, _, d in cols]
        lines.append("| " + " | ".join(row) + " |")
    header = ["clip", "method"] + [f"{label} {ARROWS[hb]}" for _, label, hb, _ in cols]
    lines += ["", "## Per clip", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, clip in clips.items():
        real = clip["real_right"]["temporal_holes"]
        lines.append(
            f"| {name} | real right view | "
            + " | ".join(_fmt(real, 2) if k == "temporal_holes" else "" for k, *_ in cols)
            + " |"
        )
        for method in results.methods:
            mean = clip["methods"][method.name]["mean"]
            row = [name, f"`{method.name}`"] + [_fmt(mean.get(k), d) for k, _, _, d in cols]
            lines.append("| " + " | ".join(row) + " |")
    lines += ["", "## Methods", ""]
    for method in results.methods:
        lines.append(f"- `{method.name}`: `{command_line(results, method)}`")
    lines += ["", "## Per frame", ""]
    for name, clip in clips.items():
        lines += per_frame_table(name, clip, results)
    return "\n".join(lines) + "\n"


def per_frame_table(name: str, clip: dict, results: VideoResults) -> list[str]:
    header = ["frame", "holes", "compared px", "real right Δt"]
    for method in results.methods:
        header += [f"{method.name} PSNR holes", f"{method.name} Δt"]
    lines = [f"### {name}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for t, fraction in enumerate(clip["hole_fraction"]):
        real = clip["real_right"]["frames"][t]
        row = [
            str(t),
            f"{fraction:.1%}",
            str(real["temporal_pixels"]),
            _fmt(real["temporal_holes"], 2),
        ]
        for method in results.methods:
            f = clip["methods"][method.name]["frames"][t]
            row += [_fmt(f["psnr_holes"], 2), _fmt(f["temporal_holes"], 2)]
        lines.append("| " + " | ".join(row) + " |")
    return lines + [""]


def to_json(results: VideoResults, settings: dict | None = None) -> dict:
    metric_info = {k: {"label": label, "higher_is_better": hb} for k, label, hb, _ in COLUMNS}
    return _clean(
        {
            "protocol": "video",
            "spec": vars(results.spec),
            "encoding": list(PROTOCOL_ARGS),
            "common_args": results.common,
            "metrics": metric_info,
            "methods": {
                m.name: {"args": list(m.args), "mean": method_means(results)[m.name]}
                for m in results.methods
            },
            "clips": results.clips,
            "settings": settings or {},
        }
    )


def write_results(results: VideoResults, out: Path, settings: dict | None = None) -> list[Path]:
    from stereoconv.evaluation.tables import write_text

    md, js = Path(out) / "results.md", Path(out) / "results.json"
    write_text(md, markdown(results))
    write_text(js, json.dumps(to_json(results, settings), indent=1) + "\n")
    return [md, js]


# --- the strip of one clip ---------------------------------------------------------------------

FONT, FONT_SCALE = cv2.FONT_HERSHEY_SIMPLEX, 0.4
LABEL_WIDTH, GAP = 110, 2


def hole_centre(holes: np.ndarray, wide: int = 9) -> tuple[float, float]:
    """A pixel near the centre of the largest hole that holds a 5 x `wide` block (the kind the
    hybrid generates), else of the largest hole; holes away from the frame's sides first."""
    h, w = holes.shape
    mask = holes.astype(np.uint8)
    opened = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((5, wide), np.uint8))
    for inner_only in (True, False):
        for candidate in (opened, mask):
            count, labels, stats, centroids = cv2.connectedComponentsWithStats(candidate, 8)
            left, width = stats[:, cv2.CC_STAT_LEFT], stats[:, cv2.CC_STAT_WIDTH]
            parts = [
                (stats[i, cv2.CC_STAT_AREA], i)
                for i in range(1, count)
                if not inner_only or (left[i] > 0 and left[i] + width[i] < w)
            ]
            if parts:
                i = max(parts)[1]
                ys, xs = np.nonzero(labels == i)
                k = np.argmin((xs - centroids[i][0]) ** 2 + (ys - centroids[i][1]) ** 2)
                return float(xs[k]), float(ys[k])
    return (w - 1) / 2, (h - 1) / 2


def tracked_centres(result: ClipResult) -> list[tuple[float, float]]:
    """A hole's centre in every frame: found in the middle frame of each shot, carried to the
    shot's other frames by the clip's motion, so that the crop follows the content."""
    motion, n = result.clip.motion, len(result.clip.motion)
    starts = result.clip.cuts + [n]
    centres: list = [None] * n
    for first, stop in zip(starts[:-1], starts[1:], strict=True):
        middle = (first + stop - 1) // 2
        centres[middle] = hole_centre(result.holes[middle])
        for t in range(middle + 1, stop):
            x, y = centres[t - 1]
            centres[t] = tuple(motion[t] @ np.array([x, y, 1.0]))
        for t in range(middle - 1, first - 1, -1):
            inverse = np.linalg.inv(np.vstack([motion[t + 1], [0, 0, 1]]))
            centres[t] = tuple((inverse @ np.array([*centres[t + 1], 1.0]))[:2])
    return centres


def crop(image: np.ndarray, centre: tuple[float, float], size: int) -> np.ndarray:
    h, w = image.shape[:2]
    size = min(size, h, w)
    x = int(np.clip(round(centre[0]) - size // 2, 0, w - size))
    y = int(np.clip(round(centre[1]) - size // 2, 0, h - size))
    return image[y : y + size, x : x + size]


def label_tile(text: str, height: int, width: int = LABEL_WIDTH) -> np.ndarray:
    tile = np.full((height, width, 3), 255, np.uint8)
    lines = text.split("\n")
    for i, line in enumerate(lines):
        y = height // 2 - 7 * (len(lines) - 1) + 14 * i + 4
        cv2.putText(tile, line, (4, y), FONT, FONT_SCALE, (0, 0, 0), 1, cv2.LINE_AA)
    return tile


def strip_frames(result: ClipResult, count: int) -> list[int]:
    """`count` consecutive frames: around the cut of a cut clip, the middle ones otherwise."""
    n = result.clip.left.shape[0]
    count = min(count, n)
    cuts = [t for t in result.clip.cuts if t > 0]
    centre = cuts[0] if cuts else n // 2
    first = int(np.clip(centre - count // 2, 0, n - count))
    return list(range(first, first + count))


def clip_strip(result: ClipResult, frames: int = 8, size: int = 96) -> np.ndarray:
    """Rows: the holes (magenta on the real right view), the real right view, each method's
    right view; columns: consecutive frames, each cropped around one hole that the crop
    follows; the method rows are labelled with the clip's temporal change in the holes."""
    chosen = strip_frames(result, frames)
    centres = tracked_centres(result)
    clip = result.clip
    holes_shown = clip.right.copy()
    holes_shown[result.holes] = (255, 0, 255)
    floor = pooled(result.floor)
    rows = [("holes", holes_shown), (f"real right\nchange {_fmt(floor, 2)}", clip.right)]
    for name, views in result.views.items():
        per_frame = result.frames[name]
        change = pooled((f["temporal_holes"], f["temporal_pixels"]) for f in per_frame)
        rows.append((f"{name}\nchange {_fmt(change, 2)}", views))
    tiles = []
    header = [label_tile("frame", 16)]
    for t in chosen:
        top = np.full((16, min(size, *clip.size), 3), 255, np.uint8)
        cv2.putText(top, str(t), (4, 12), FONT, FONT_SCALE, (0, 0, 0), 1, cv2.LINE_AA)
        header.append(top)
    tiles.append(join(header))
    for label, views in rows:
        crops = [crop(views[t], centres[t], size) for t in chosen]
        tiles.append(join([label_tile(label, crops[0].shape[0]), *crops]))
    return stack(tiles)


def stack(rows: list[np.ndarray]) -> np.ndarray:
    gap = np.full((GAP, rows[0].shape[1], 3), 255, np.uint8)
    return np.concatenate(sum(([r, gap] for r in rows), [])[:-1])


def join(tiles: list[np.ndarray]) -> np.ndarray:
    gap = np.full((tiles[0].shape[0], GAP, 3), 255, np.uint8)
    return np.concatenate(sum(([t, gap] for t in tiles), [])[:-1], axis=1)
