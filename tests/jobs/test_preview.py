"""`stereoconv preview`: a contact sheet of a few frames at several settings, before a long job."""

import numpy as np
from PIL import Image

from stereoconv.cli.main import main
from tests.helpers.clips import numbered_frame, write_clip


def test_contact_sheet_has_a_row_per_frame_and_a_column_per_setting(capsys, tmp_path, tiny_depth):
    src = write_clip(tmp_path / "clip.mp4", [numbered_frame(i) for i in range(20)])
    out = tmp_path / "sheet.png"
    argv = [
        "preview",
        str(src),
        str(out),
        "--frames",
        "2",
        "--divergences",
        "0,6",
        "--convergences",
        "0.5,auto",
        "--cell-width",
        "128",
        "--backend",
        "warp",
        "--depth-model",
        str(tiny_depth),
        "--start",
        "0.2",
    ]
    assert main(argv) == 0, capsys.readouterr().err
    sheet = np.asarray(Image.open(out)).astype(int)
    assert sheet.shape == (2 * (18 + 32), 4 * 128, 3)  # SBS cells 128 wide, a caption above each
    first = sheet[18:50]
    flat = first[:, :128]  # divergence 0: both eyes the same
    assert np.abs(flat[:, :64] - flat[:, 64:]).mean() < 3
    deep = first[:, 256:384]  # divergence 6: the right eye differs
    assert np.abs(deep[:, :64] - deep[:, 64:]).mean() > 3
    assert not np.array_equal(sheet[18:50], sheet[68:100])  # two different frames


def test_bad_settings_are_one_line(capsys, tmp_path):
    src = write_clip(tmp_path / "clip.mp4", [numbered_frame(i) for i in range(3)])
    code = main(["preview", str(src), str(tmp_path / "s.png"), "--convergences", "0.5,near"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "--convergences takes" in err[0], err
    assert not (tmp_path / "s.png").exists()


def test_settings_out_of_range_are_refused_as_the_single_options_are(capsys, tmp_path):
    """--divergences and --convergences take the ranges of --divergence and --convergence."""
    src = write_clip(tmp_path / "clip.mp4", [numbered_frame(i) for i in range(3)])
    out = str(tmp_path / "s.png")
    for option, values, why in (
        ("--divergences", "2,50", "--divergences must be <= 25, not 50"),
        ("--divergences", "-1", "--divergences must be >= 0, not -1"),
        ("--convergences", "0.5,1.5", "--convergences must be <= 1, not 1.5"),
    ):
        code = main(["preview", str(src), out, option, values])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 1 and err == [f"stereoconv: error: {why}"], err
    assert not (tmp_path / "s.png").exists()
