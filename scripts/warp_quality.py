"""The warp backend's right view on every ground-truth scene at hand and variants of them (crops,
a vertical flip, scalings), scored by region against the real right view next to the soft-splat
reference (issue 28; docs/evaluation.md, "What the left view sees").

Two steps, so that an older checkout's views can be scored by this one's regions:

    PYTHONPATH=OLD_CHECKOUT python scripts/warp_quality.py render --out views/before
    python scripts/warp_quality.py render --out views/after
    python scripts/warp_quality.py score views/before views/after --json q.json --md q.md \\
        --pictures docs/evaluation

`render` uses only WarpBackend and fill_unknown_disparity (in every version); `score` needs
this checkout (evaluation.regions, evaluation.classical.soft_splat).
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

MIDDLEBURY = Path(__file__).resolve().parents[2] / "shared" / "data" / "middlebury2003"
SCENES = ("Motorcycle", "teddy", "tsukuba", "venus")
REGIONS = ("holes", "near", "far", "edge_fg", "edge_bg")


def load(name: str, middlebury: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """left, right (uint8 RGB) and the left view's disparity (px, NaN = unknown)."""
    if name == "Motorcycle":
        from skimage import data

        left, right, d = data.stereo_motorcycle()
        d = np.where(np.isfinite(d), d, np.nan).astype(np.float32)
        return np.ascontiguousarray(left), np.ascontiguousarray(right), d
    folder = middlebury / name
    scale = float((folder / "info.txt").read_text().split()[0])
    left = np.asarray(Image.open(folder / "imL.png").convert("RGB"))
    right = np.asarray(Image.open(folder / "imR.png").convert("RGB"))
    raw = np.asarray(Image.open(folder / "groundtruth.png").convert("L")).astype(np.float32)
    return left, right, np.where(raw > 0, raw / scale, np.nan).astype(np.float32)


def area(image: np.ndarray, w: int, h: int) -> np.ndarray:
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)


def variants(name: str, left, right, d):
    """(name, left, right, disparity) of the scene and its variants: a vertical flip, two
    crops, and three scalings (views by area; disparity by the median of each 2x2 block, by
    nearest sampling, or linearly, unknown where any source is)."""
    h, w = d.shape
    yield name, left, right, d
    yield f"{name} flipped", left[::-1].copy(), right[::-1].copy(), d[::-1].copy()
    crop = (slice(h // 4, None), slice(w // 5, None))
    yield f"{name} crop", left[crop].copy(), right[crop].copy(), d[crop].copy()
    crop = (slice(h // 8, h * 7 // 8), slice(w // 2, None))
    yield f"{name} crop 2", left[crop].copy(), right[crop].copy(), d[crop].copy()
    h2, w2 = h // 2, w // 2
    blocks = d[: 2 * h2, : 2 * w2].reshape(h2, 2, w2, 2).transpose(0, 2, 1, 3).reshape(h2, w2, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # blocks with nothing known: NaN
        half = (np.nanmedian(blocks, axis=-1) / 2).astype(np.float32)
    yield f"{name} 1/2", area(left, w2, h2), area(right, w2, h2), half
    w3, h3 = round(w * 2 / 3), round(h * 2 / 3)
    nearest = cv2.resize(d, (w3, h3), interpolation=cv2.INTER_NEAREST) * (w3 / w)
    yield f"{name} 2/3", area(left, w3, h3), area(right, w3, h3), nearest.astype(np.float32)
    w4, h4 = round(w * 0.75), round(h * 0.75)
    linear = cv2.resize(np.nan_to_num(d, nan=-1e4), (w4, h4), interpolation=cv2.INTER_LINEAR)
    linear = np.where(linear < 0, np.nan, linear * (w4 / w)).astype(np.float32)
    yield f"{name} 3/4", area(left, w4, h4), area(right, w4, h4), linear


def all_variants(middlebury: Path):
    for name in SCENES:
        if name != "Motorcycle" and not (middlebury / name).is_dir():
            print(f"skipped {name}: no {middlebury / name}", file=sys.stderr)
            continue
        yield from variants(name, *load(name, middlebury))


def filled(d: np.ndarray) -> np.ndarray:
    from stereoconv.geometry import fill_unknown_disparity

    t = torch.from_numpy(d)[None]
    return fill_unknown_disparity(t, torch.isfinite(t))[0].numpy()


def product(left: np.ndarray, d: np.ndarray) -> np.ndarray:
    from stereoconv.backends.warp import WarpBackend

    frames = torch.from_numpy(left.copy()).permute(2, 0, 1)[None].float() / 255
    with torch.inference_mode():
        out = WarpBackend(views="right", fill_sigma=3.0).synthesise(
            frames, torch.from_numpy(filled(d))[None]
        )
    return (out[0].permute(1, 2, 0).clamp(0, 1) * 255).round().byte().numpy()


def file_name(name: str) -> str:
    return name.replace(" ", "_").replace("/", "-") + ".png"


def render(args) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    for name, left, _, d in all_variants(args.middlebury):
        Image.fromarray(product(left, d)).save(args.out / file_name(name))
        print("rendered", name, flush=True)


def psnr_by_region(right, view, regions) -> dict[str, float]:
    from stereoconv.evaluation.metrics import psnr

    return {"all": psnr(right, view), **{k: psnr(right, view, regions[k]) for k in REGIONS}}


def picture(name, right, views: dict[str, np.ndarray], regions, out: Path, size=(160, 120)):
    """The real right view and each view, cropped where the edge bands are densest, twice the
    size (nearest), side by side with labels; 256 colours to stay small."""
    bands = (regions["edge_fg"] | regions["edge_bg"]).astype(np.float32)
    w, h = size
    score = cv2.boxFilter(bands, -1, (w, h), normalize=False, anchor=(0, 0))
    score = score[: bands.shape[0] - h + 1, : bands.shape[1] - w + 1]
    y, x = np.unravel_index(np.argmax(score), score.shape)
    tiles = []
    for label, view in [("real right view", right), *views.items()]:
        tile = cv2.resize(view[y : y + h, x : x + w], (2 * w, 2 * h), cv2.INTER_NEAREST)
        strip = np.full((22, 2 * w, 3), 255, np.uint8)
        cv2.putText(strip, label, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1)
        tiles.append(np.concatenate([strip, tile], axis=0))
    image = Image.fromarray(np.concatenate(tiles, axis=1)).quantize(256)
    image.save(out / file_name(name), optimize=True)


def score(args) -> None:
    from stereoconv.evaluation.classical import soft_splat
    from stereoconv.evaluation.regions import scene_regions

    results = {}
    for name, left, right, d in all_variants(args.middlebury):
        regions = scene_regions(d)
        views = {
            folder.name: np.asarray(Image.open(folder / file_name(name))) for folder in args.views
        }
        views["reference (soft splat)"] = soft_splat(left, filled(d))
        results[name] = {k: psnr_by_region(right, v, regions) for k, v in views.items()}
        results[name]["fractions"] = {k: float(regions[k].mean()) for k in REGIONS}
        print(name, json.dumps(results[name]), flush=True)
        if args.pictures and name in SCENES:
            args.pictures.mkdir(parents=True, exist_ok=True)
            labels = {f"warp backend, {k}": v for k, v in views.items() if k in ("before", "after")}
            labels["reference (soft splat)"] = views["reference (soft splat)"]
            picture(f"warp-{name.lower()}", right, labels, regions, args.pictures)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    if args.md:
        args.md.write_text(markdown(results))


def markdown(results: dict) -> str:
    lines = [
        "| scene | view | all | holes | near | far | edge fg | edge bg |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, views in results.items():
        for view, s in views.items():
            if view == "fractions":
                continue
            cells = " | ".join(f"{s[k]:.2f}" for k in ("all", *REGIONS))
            lines.append(f"| {name} | {view} | {cells} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="step", required=True)
    r = sub.add_parser("render", help="the warp backend's right views, as PNG")
    r.add_argument("--out", type=Path, required=True)
    s = sub.add_parser("score", help="score saved views and the reference by region")
    s.add_argument("views", type=Path, nargs="+", help="folders written by render")
    s.add_argument("--json", type=Path)
    s.add_argument("--md", type=Path)
    s.add_argument("--pictures", type=Path)
    for p in (r, s):
        p.add_argument("--middlebury", type=Path, default=MIDDLEBURY)
    args = parser.parse_args()
    render(args) if args.step == "render" else score(args)


if __name__ == "__main__":
    main()
