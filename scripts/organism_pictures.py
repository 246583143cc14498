"""Pictures for docs/evaluation.md: per ground-truth scene, the window with the most
disocclusion, as left view | real right view | warp backend | hybrid | paper (`--composite
none`), the holes of the ground-truth warp outlined in the last three, 2x nearest.

    python scripts/organism_pictures.py MODEL_DIR OUT_DIR DATASET [DATASET ...] [--scenes A,B]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from stereoconv.config import build_config
from stereoconv.evaluation.datasets import open_dataset
from stereoconv.evaluation.harness import hole_mask
from stereoconv.evaluation.methods import MethodRunner, parse_methods
from stereoconv.evaluation.protocols import prepare

METHODS = "warp,diffusion,diffusion:composite=pure"
WINDOW = (128, 192)  # h, w


def busiest_window(holes: np.ndarray, size: tuple[int, int] = WINDOW) -> tuple[slice, slice]:
    h, w = min(size[0], holes.shape[0]), min(size[1], holes.shape[1])
    counts = F.avg_pool2d(torch.from_numpy(holes).float()[None, None], (h, w), stride=8)[0, 0]
    y, x = divmod(int(counts.argmax()), counts.shape[1])
    return slice(8 * y, 8 * y + h), slice(8 * x, 8 * x + w)


def outline(view: np.ndarray, holes: np.ndarray) -> np.ndarray:
    """The border of the hole region drawn in cyan."""
    grown = F.max_pool2d(torch.from_numpy(holes).float()[None, None], 3, 1, 1)[0, 0].numpy() > 0
    edge = grown & ~holes
    out = view.copy()
    out[edge] = (0, 255, 255)
    return out


def main(model: str, out_dir: str, *datasets: str, scenes: tuple[str, ...] = ()) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = build_config(None, model=model)
    runner = MethodRunner(config, torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    methods = parse_methods(METHODS, config)
    for spec in datasets:
        for source in open_dataset(spec).scenes:
            if scenes and source.name not in scenes:
                continue
            prepared = prepare(source.load(), "calibrated", 512)
            holes = hole_mask(prepared.disparity)
            views = [runner.right_view(m, prepared.left, prepared.disparity) for m in methods]
            box = busiest_window(holes)
            tiles = [prepared.left[box], prepared.right[box]]
            tiles += [outline(v[box], holes[box]) for v in views]
            gap = np.full((tiles[0].shape[0], 4, 3), 255, np.uint8)
            row = np.concatenate([t for tile in tiles for t in (tile, gap)][:-1], axis=1)
            image = Image.fromarray(row)
            image = image.resize((image.width * 2, image.height * 2), Image.NEAREST)
            image.save(out / f"organism-{source.name.lower()}.png")
            print(f"wrote {out / f'organism-{source.name.lower()}.png'} window {box}")


if __name__ == "__main__":
    args = sys.argv[1:]
    only = ()
    if "--scenes" in args:
        at = args.index("--scenes")
        only = tuple(args[at + 1].split(","))
        del args[at : at + 2]
    main(*args, scenes=only)
