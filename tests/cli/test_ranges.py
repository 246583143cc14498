"""Every numeric setting has a range in its field's metadata, and one generic check enforces
it, from presets and from the command line alike, before any model loads."""

from __future__ import annotations

import math
from dataclasses import fields

import pytest

from stereoconv.cli.main import main
from stereoconv.config import StereoConfig, build_config
from stereoconv.errors import UserError
from stereoconv.fields import range_error
from stereoconv.jobs.video.job import VideoOptions

NUMERIC = [f for f in fields(StereoConfig) if f.type in ("int", "float")]
BOUNDS = ("min", "max", "above", "below")


@pytest.mark.parametrize("field", NUMERIC, ids=[f.name for f in NUMERIC])
def test_every_numeric_setting_is_bounded_on_both_sides(field):
    assert any(k in field.metadata for k in ("min", "above")), field.name
    assert any(k in field.metadata for k in ("max", "below")), field.name
    lowest = field.metadata.get("min", field.metadata.get("above"))
    highest = field.metadata.get("max", field.metadata.get("below"))
    assert lowest <= field.default <= highest  # the default is a legal value
    for value in (highest * 10 + 10, lowest - 1, math.nan):
        if field.type == "int" and math.isnan(value):
            continue
        value = int(value) if field.type == "int" else float(value)
        with pytest.raises(UserError, match=f"--{field.name.replace('_', '-')} must be"):
            build_config(preset=None, **{field.name: value})


def test_range_messages():
    assert range_error("divergence", 1e9, {"min": 0, "max": 25}) == (
        "--divergence must be <= 25, not 1e+09"
    )
    assert range_error("depth-scale", 0.0, {"above": 0}) == "--depth-scale must be > 0, not 0"
    assert range_error("steps", 3, {"min": 1, "max": 1000}) is None
    assert range_error("seam", math.inf, {"min": 0}) is None  # no upper end: inf is in range
    assert "must be a number" in range_error("seam", math.nan, {})


@pytest.mark.parametrize(
    "options, text",
    [
        ({"crf": 52}, "--crf must be <= 51"),
        ({"chunk_frames": 0}, "--chunk-frames must be >= 1"),
        ({"max_frames": 0}, "--max-frames must be >= 1"),
        ({"start": -1.0}, "--start must be >= 0"),
        ({"end": math.inf}, "--end must be <= "),
    ],
)
def test_video_options_use_the_same_check(options, text):
    with pytest.raises(UserError, match=text):
        VideoOptions(**options)


def test_a_range_error_comes_before_any_model_loads(tmp_path, capsys):
    from tests.helpers.robustness_cases import photo

    src = photo(tmp_path / "in.png")
    missing = str(tmp_path / "no-such-model")  # loading it would be another error
    argv = [
        "image",
        str(src),
        str(tmp_path / "out.png"),
        "--backend",
        "diffusion",
        "--model",
        missing,
        "--depth-model",
        missing,
        "--divergence",
        "1e9",
    ]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["stereoconv: error: --divergence must be <= 25, not 1e+09"]
