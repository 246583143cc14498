"""The warp backend on a real stereo pair with ground truth: Middlebury 2014 Motorcycle
(Scharstein et al., GCPR 2014), its measured disparity given as --depth-kind disparity-px."""

import numpy as np
from PIL import Image

from stereoconv.cli.main import main
from tests.helpers.paths import ROOT
from tests.helpers.scenes import against_baseline, write_pfm


def test_warp_backend_beats_zbuffer_warp_plus_telea_on_motorcycle(tmp_path, motorcycle):
    left, right, disparity = motorcycle
    Image.fromarray(left).save(tmp_path / "im0.png")
    write_pfm(tmp_path / "disp0.pfm", disparity)
    argv = [
        "image",
        str(tmp_path / "im0.png"),
        str(tmp_path / "out.png"),
        "--backend",
        "warp",
        "--depth",
        str(tmp_path / "disp0.pfm"),
        "--depth-kind",
        "disparity-px",
        "--layout",
        "pair",
        "--device",
        "cpu",
    ]
    assert main(argv) == 0
    ours = np.asarray(Image.open(tmp_path / "out_R.png"))
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out_L.png")), left)

    base_psnr, base_ssim, our_psnr, our_ssim = against_baseline(
        "Motorcycle", left, right, disparity, ours
    )
    # The baseline is the published classical recipe; these are its known values.
    assert abs(base_psnr - 23.15) < 0.05 and abs(base_ssim - 0.867) < 0.002
    assert our_psnr > base_psnr and our_ssim > base_ssim


def demo_command(out_dir) -> list[str]:
    """The arguments of `make demo`, as the Makefile has them, writing under out_dir."""
    import shlex

    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("\ndemo:", 1)[1].split("\n\n", 1)[0].replace("\\\n", " ")
    command = recipe.split("$(BIN)/stereoconv", 1)[1].replace("$(OUT)", str(out_dir))
    return shlex.split(command)


def test_the_demo_passes_its_own_comfort_report(tmp_path):
    """`make demo` (a quarter of the clip): nothing in front of the screen is cut by the frame
    border, where the measured disparity as given has every frame violate the window."""
    import json

    root = ROOT
    argv = demo_command(tmp_path) + ["--max-frames", "12", "--quiet"]
    assert "--convergence" in argv and "--report" in argv
    argv = [a if not a.startswith("samples/") else str(root / a) for a in argv]
    assert main(argv) == 0
    report = json.loads((tmp_path / "motorcycle_pan_report.json").read_text())
    assert report["overall"]["frames"] == 12
    assert report["overall"]["violation_frames"] == []
    without = [f["index"] for f in report["frames"] if f["violation_without_auto"]]
    assert without == list(range(12))  # the disparity as given
