"""The report: a markdown table (mean, worst and best over the scenes per metric, as the paper
reports), a JSON file with the same numbers per method and per scene, and one picture per scene
(left view, real right view, the holes, and each method's right view with its error map)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from stereoconv.evaluation.harness import Results, SceneResult
from stereoconv.fileio import atomic_output

ERROR_SCALE = 96  # a mean absolute error (0-255 levels) this large or more is drawn at full heat


def summarise(values: list[float], higher_is_better: bool) -> dict[str, float | None]:
    """Mean, best and worst of one metric over the scenes, NaN (an empty hole mask) left out."""
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return {"mean": None, "best": None, "worst": None, "scenes": 0}
    best, worst = (max, min) if higher_is_better else (min, max)
    return {
        "mean": float(np.mean(finite)),
        "best": best(finite),
        "worst": worst(finite),
        "scenes": len(finite),
    }


def summary(results: Results) -> dict[str, dict[str, dict]]:
    """method name -> metric name -> {mean, best, worst, scenes}."""
    out = {}
    for method in results.methods:
        per_scene = results.scores.get(method.name, {})
        out[method.name] = {
            m.name: summarise([s[m.name] for s in per_scene.values()], m.higher_is_better)
            for m in results.metrics
        }
    return out


def _json_number(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None  # NaN (nothing to score) or inf (identical images): JSON has neither
    return value


def _clean(obj):
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_clean(v) for v in obj]
    return _json_number(obj)


def to_json(results: Results, settings: dict | None = None) -> dict:
    totals = summary(results)
    methods = {}
    for method in results.methods:
        methods[method.name] = {
            "family": method.family,
            "attention": method.attention,
            "spsmd": method.spsmd,
            "deblur": method.deblur,
            "composite": method.composite,
            "summary": totals[method.name],
            "scenes": results.scores.get(method.name, {}),
        }
    metric_info = {
        m.name: {"label": m.label, "higher_is_better": m.higher_is_better} for m in results.metrics
    }
    return _clean(
        {
            "dataset": results.dataset,
            "protocol": results.protocol,
            "disparity": results.disparity,
            "metrics": metric_info,
            "methods": methods,
            "scene_info": results.scene_meta,
            "temporal": results.temporal,
            "settings": settings or {},
        }
    )


def _cell(stats: dict, decimals: int, bold: bool) -> str:
    if stats["mean"] is None:
        return "n/a"
    mean = f"{stats['mean']:.{decimals}f}"
    mean = f"**{mean}**" if bold else mean
    if stats["scenes"] < 2:
        return mean
    return f"{mean} [{stats['worst']:.{decimals}f}, {stats['best']:.{decimals}f}]"


def _switches(method) -> list[str]:
    if method.family != "diffusion":
        return ["", "", "", "", ""]
    composite = "pure" if method.composite == "none" else method.composite
    on = {True: "on", False: "off"}
    spsmd = (
        f"every {method.spsmd_every}" if method.spsmd and method.spsmd_every else on[method.spsmd]
    )
    extra = [part for part in method.name.split(":")[5:]]  # nulltext, shift, guidance, steps
    return [method.attention, spsmd, on[method.deblur], composite, " ".join(extra)]


def markdown(results: Results) -> str:
    """The results table: one row per method, one column per metric."""
    totals = summary(results)
    n_scenes = len(results.scene_meta)
    holes = np.mean([m["hole_fraction"] for m in results.scene_meta.values()] or [0.0])
    best_mean = {}
    for m in results.metrics:
        means = [totals[x.name][m.name]["mean"] for x in results.methods]
        means = [v for v in means if v is not None]
        if means and len(results.methods) > 1:
            best_mean[m.name] = max(means) if m.higher_is_better else min(means)
    arrows = {True: "↑", False: "↓"}
    header = ["method", "attention", "SPSMD", "deblur", "composite", "other"]
    header += [f"{m.label} {arrows[m.higher_is_better]}" for m in results.metrics]
    lines = [
        f"# Evaluation: {results.dataset}, protocol `{results.protocol}`, "
        f"disparity `{results.disparity}`",
        "",
        f"{n_scenes} scene{'s' if n_scenes != 1 else ''}; each method's right view against the "
        "real right view. Cells: mean over the scenes"
        + (", then [worst, best]" if n_scenes > 1 else "")
        + f"; the best mean in bold. *holes*: only the pixels the left view cannot see "
        f"({holes:.1%} of the pixels on average); *visible*: the others, split into *near* "
        "(within 4 px of a hole) and *far*; *edge fg* / *edge bg*: the seen pixels in the 4 px "
        "band on the near / far side of each depth edge (a jump of 2 px or more). Regions come "
        "from the ground truth alone: docs/evaluation.md.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for method in results.methods:
        row = [f"`{method.family}`", *_switches(method)]
        for m in results.metrics:
            stats = totals[method.name][m.name]
            decimals = 2 if m.name.startswith("psnr") else 4
            row.append(_cell(stats, decimals, stats["mean"] == best_mean.get(m.name)))
        lines.append("| " + " | ".join(row) + " |")
    if results.temporal:
        lines += [
            "",
            "Temporal stability (a video): flicker, the mean absolute change between consecutive "
            "frames, of each method's right view against the left view's (1.0: the right eye "
            "changes exactly as much as the left).",
            "",
            "| method | flicker left | flicker right | right / left ↓ |",
            "|---|---|---|---|",
        ]
        for method in results.methods:
            t = results.temporal.get(method.name)
            if t:
                lines.append(
                    f"| `{method.name}` | {t['flicker_left']:.4f} | {t['flicker_right']:.4f} | "
                    f"{t['flicker_ratio']:.3f} |"
                )
    return "\n".join(lines) + "\n"


# --- pictures ----------------------------------------------------------------------------------


FONT, FONT_SCALE, LINE_HEIGHT = cv2.FONT_HERSHEY_SIMPLEX, 0.45, 18


def _wrap(label: str, width: int) -> list[str]:
    """The label in lines that fit `width` pixels, broken at spaces."""
    lines: list[str] = []
    for word in label.split(" "):
        candidate = f"{lines[-1]} {word}" if lines else word
        fits = cv2.getTextSize(candidate, FONT, FONT_SCALE, 1)[0][0] <= width - 8
        if lines and fits:
            lines[-1] = candidate
        else:
            lines.append(word)
    return lines


def _tile(rgb: np.ndarray, label: str, width: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    scale = min(1.0, width / w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    image = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA) if scale < 1 else rgb
    lines = _wrap(label, image.shape[1])
    strip = np.full((LINE_HEIGHT * len(lines) + 6, image.shape[1], 3), 255, np.uint8)
    for i, line in enumerate(lines):
        origin = (4, LINE_HEIGHT * (i + 1))
        cv2.putText(strip, line, origin, FONT, FONT_SCALE, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([strip, image], axis=0)


def _row(tiles: list[np.ndarray]) -> np.ndarray:
    """Tiles side by side, label strips padded to one height."""
    top = max(t.shape[0] for t in tiles)
    padded = [
        np.pad(t, ((top - t.shape[0], 0), (0, 0), (0, 0)), constant_values=255) for t in tiles
    ]
    return np.concatenate(padded, axis=1)


def error_map(
    reference: np.ndarray, view: np.ndarray, mask: np.ndarray | None = None
) -> np.ndarray:
    """Mean absolute error over the channels as a heat map (inferno), RGB uint8; with a mask,
    the heat only there and the real view, darkened, elsewhere."""
    err = np.abs(reference.astype(np.int16) - view.astype(np.int16)).mean(axis=2)
    level = np.clip(err * (255.0 / ERROR_SCALE), 0, 255).astype(np.uint8)
    heat = cv2.applyColorMap(level, cv2.COLORMAP_INFERNO)[..., ::-1]
    if mask is None:
        return heat.copy()
    return np.where(mask[..., None], heat, reference // 3)


def show_holes(rgb: np.ndarray, holes: np.ndarray) -> np.ndarray:
    out = rgb.copy()
    out[holes] = (255, 0, 255)
    return out


def _score_label(scores: dict[str, float], suffix: str = "") -> str:
    parts = []
    for key, fmt in (("psnr", "{:.2f} dB"), ("ssim", "SSIM {:.3f}"), ("lpips", "LPIPS {:.3f}")):
        value = scores.get(key + suffix, float("nan"))
        if not math.isnan(value):
            parts.append(fmt.format(value))
    return ", ".join(parts)


def _far_label(scores: dict[str, float]) -> str:
    """The whole view's scores, then the PSNR of the pixels far from the holes."""
    far = scores.get("psnr_far", float("nan"))
    return _score_label(scores) + ("" if math.isnan(far) else f", far {far:.2f} dB")


def scene_figure(result: SceneResult, tile_width: int = 400) -> np.ndarray:
    """Rows: left | real right | holes (magenta), then per method: its right view | its error
    map | the error in the holes alone; each error tile is labelled with its scores."""
    p, holes = result.prepared, result.holes
    rows = [
        [
            _tile(p.left, "left", tile_width),
            _tile(p.right, "real right", tile_width),
            _tile(show_holes(p.right, holes), "holes (the left view cannot see)", tile_width),
        ]
    ]
    for name, view in result.views.items():
        scores = result.scores[name]
        rows.append(
            [
                _tile(view, f"{name.split(':')[0]} {_short(name)}".strip(), tile_width),
                _tile(error_map(p.right, view), "error: " + _far_label(scores), tile_width),
                _tile(
                    error_map(p.right, view, holes),
                    "holes: " + _score_label(scores, "_holes"),
                    tile_width,
                ),
            ]
        )
    return np.concatenate([_row(row) for row in rows], axis=0)


def _short(name: str) -> str:
    """A diffusion method's switches, compact: `uni S D hybrid` style."""
    if not name.startswith("diffusion:"):
        return ""
    values = dict(part.split("=") for part in name.split(":")[1:])
    flags = [values["attention"]]
    spsmd = values["spsmd"]
    flags += ["no-SPSMD" if spsmd == "off" else "SPSMD" if spsmd == "on" else f"SPSMD/{spsmd}"]
    flags += ["deblur" if values["deblur"] == "on" else "no-deblur", values["composite"]]
    flags += [
        f"{k}={v}"
        for k, v in values.items()
        if k in ("nulltext", "shift", "guidance", "steps", "minwidth")
    ]
    return " ".join(flags)


def safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def write_png(path: Path, rgb: np.ndarray) -> None:
    with atomic_output(path) as tmp:
        Image.fromarray(rgb).save(tmp, format="PNG", optimize=True)


def write_text(path: Path, text: str) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(text)


def write_report(results: Results, out: Path, settings: dict | None = None) -> list[Path]:
    """results.md and results.json under `out`; returns the files written."""
    md, js = Path(out) / "results.md", Path(out) / "results.json"
    write_text(md, markdown(results))
    write_text(js, json.dumps(to_json(results, settings), indent=2) + "\n")
    return [md, js]
