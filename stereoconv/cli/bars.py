"""Progress bars: the command line's side of the progress contract (stereoconv.progress)."""

from __future__ import annotations

import threading

import tqdm

# what each stage's bar says, the unit it counts, and whether the bar stays when done
LABELS = {
    "frames": ("converting", "frame", True),
    "photos": ("photos", "file", True),
    "checking": ("checking", "file", False),
    "diffusion": ("diffusion", "step", False),
    "convergence": ("depth at the borders", "frame", True),
    "scenes": ("scenes", "scene", False),
}


def iterate(items, stage: str, quiet: bool = False):
    """The items with a bar of `stage` as they are taken (eval's scenes); only on a terminal,
    none if `quiet`."""
    label, unit, leave = LABELS[stage]
    return tqdm.tqdm(items, desc=label, unit=unit, leave=leave, disable=True if quiet else None)


class Bars:
    """One tqdm bar on stderr per stage, opened when the stage first reports and closed when it
    reaches its total (a later report of the same stage opens a fresh one). Only on a terminal:
    logs and pipes get no carriage-return lines; `quiet` shows none. `stages` limits the bars
    to those stages (e.g. a video shows frames, not each batch's diffusion steps)."""

    def __init__(self, quiet: bool = False, stages: tuple[str, ...] | None = None):
        self.quiet = quiet
        self.stages = stages
        self.bars: dict[str, tqdm.tqdm] = {}
        self.lock = threading.Lock()

    def __call__(self, stage: str, advance: int, total: int | None) -> None:
        if self.quiet or (self.stages is not None and stage not in self.stages):
            return
        with self.lock:
            bar = self.bars.get(stage)
            if bar is None:
                label, unit, leave = LABELS.get(stage, (stage, "it", True))
                bar = tqdm.tqdm(
                    total=total,
                    desc=label,
                    unit=unit,
                    leave=leave,
                    disable=None,
                    dynamic_ncols=True,
                )
                self.bars[stage] = bar
            bar.total = total
            bar.update(advance)
            if total is not None and bar.n >= total:
                bar.close()
                del self.bars[stage]

    def close(self) -> None:
        with self.lock:
            for bar in self.bars.values():
                bar.close()
            self.bars.clear()

    def __enter__(self) -> Bars:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
