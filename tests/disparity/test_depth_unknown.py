"""Which values of a --depth map mean "unknown" (--depth-unknown, docs/geometry.md): a 0 in a PNG
is unknown, a 0 in a .npy a disparity of 0 unless `--depth-unknown 0` says otherwise (ground truth
converted to arrays often keeps 0 for unknown), nan and inf always; through the command line."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from stereoconv.cli.main import main
from stereoconv.disparity.maps import read_depth_values, zero_is_unknown
from tests.helpers.cli import assert_one_line_error


@pytest.fixture
def scene(tmp_path):
    """A textured picture and its disparity in pixels: background 2, a block at 9, and a
    stripe of unknown values (0) along the block's right side, where the background shows."""
    rng = np.random.default_rng(5)
    picture = tmp_path / "picture.png"
    Image.fromarray(rng.integers(0, 256, (24, 48, 3), dtype=np.uint8)).save(picture)
    disparity = np.full((24, 48), 2.0, np.float32)
    disparity[6:18, 20:32] = 9.0
    disparity[6:18, 32:34] = 0.0  # unknown
    return picture, disparity


def right_view(capsys, tmp_path, picture, depth, *options) -> np.ndarray:
    out = tmp_path / f"out-{depth.stem}-{'-'.join(options) or 'auto'}.png"
    argv = ["image", str(picture), str(out), "--backend", "warp", "--layout", "pair"]
    argv += ["--depth", str(depth), "--depth-kind", "disparity-px", "--device", "cpu", *options]
    code = main(argv)
    assert code == 0, capsys.readouterr().err
    return np.asarray(Image.open(out.with_name(out.stem + "_R.png")))


def test_npy_zero_is_a_disparity_unless_told(capsys, tmp_path, scene):
    picture, disparity = scene
    np.save(tmp_path / "zeros.npy", disparity)
    np.save(tmp_path / "nans.npy", np.where(disparity == 0, np.nan, disparity))
    zeros_auto = right_view(capsys, tmp_path, picture, tmp_path / "zeros.npy")
    zeros_unknown = right_view(
        capsys, tmp_path, picture, tmp_path / "zeros.npy", "--depth-unknown", "0"
    )
    nans = right_view(capsys, tmp_path, picture, tmp_path / "nans.npy")
    # told that 0 is unknown, the zeros are read as the NaNs are: filled from the background
    assert np.array_equal(zeros_unknown, nans)
    # by default a 0 in a .npy is a disparity of 0 (behind the background): another picture
    assert not np.array_equal(zeros_auto, nans)
    # --depth-unknown nan: only nan and inf are unknown, as the default for arrays
    zeros_nan = right_view(
        capsys, tmp_path, picture, tmp_path / "zeros.npy", "--depth-unknown", "nan"
    )
    assert np.array_equal(zeros_nan, zeros_auto)


def test_png_zero_is_unknown_unless_told(capsys, tmp_path, scene):
    picture, disparity = scene
    Image.fromarray(disparity.astype(np.uint8)).save(tmp_path / "map.png")
    np.save(tmp_path / "nans.npy", np.where(disparity == 0, np.nan, disparity))
    auto = right_view(capsys, tmp_path, picture, tmp_path / "map.png")
    told = right_view(capsys, tmp_path, picture, tmp_path / "map.png", "--depth-unknown", "0")
    nans = right_view(capsys, tmp_path, picture, tmp_path / "nans.npy")
    assert np.array_equal(auto, told) and np.array_equal(auto, nans)
    as_value = right_view(capsys, tmp_path, picture, tmp_path / "map.png", "--depth-unknown", "nan")
    assert not np.array_equal(as_value, auto)


def test_a_bad_choice_is_one_line(capsys, tmp_path, scene):
    picture, disparity = scene
    np.save(tmp_path / "d.npy", disparity)
    argv = ["image", str(picture), str(tmp_path / "o.png"), "--backend", "warp"]
    code = main([*argv, "--depth", str(tmp_path / "d.npy"), "--depth-unknown", "maybe"])
    err = capsys.readouterr().err.strip().splitlines()
    assert_one_line_error(code, err, "'maybe' is not one of 'auto', '0', 'nan'")


@pytest.mark.parametrize(
    "kind, unknown, expected",
    [
        ("disparity-px", "auto", None),
        ("depth", "auto", None),
        ("relative-disparity", "auto", False),
        ("relative-disparity", "0", True),
        ("disparity-px", "0", True),
        ("disparity-px", "nan", False),
    ],
)
def test_zero_is_unknown_per_kind_and_option(kind, unknown, expected):
    assert zero_is_unknown(kind, unknown) is expected


def test_read_depth_values_per_format(tmp_path):
    values = np.array([[0.0, 1.5, np.nan, np.inf]], np.float32)
    np.save(tmp_path / "a.npy", values)
    assert read_depth_values(tmp_path / "a.npy")[1].tolist() == [[True, True, False, False]]
    assert read_depth_values(tmp_path / "a.npy", True)[1].tolist() == [[False, True, False, False]]
    Image.fromarray(np.array([[0, 3, 7]], np.uint8)).save(tmp_path / "a.png")
    assert read_depth_values(tmp_path / "a.png")[1].tolist() == [[False, True, True]]
    assert read_depth_values(tmp_path / "a.png", False)[1].tolist() == [[True, True, True]]
