"""The diffusion commands end to end on the CPU with tiny models (outputs are noise)."""

import io

import numpy as np
import pytest
import tqdm
from PIL import Image

from stereoconv.cli.main import main


@pytest.fixture
def photo(tmp_path):
    rng = np.random.default_rng(1)
    path = tmp_path / "photo.jpg"
    Image.fromarray(rng.integers(0, 256, (45, 70, 3), dtype=np.uint8)).save(path)
    return path


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    return code, capsys.readouterr()


@pytest.fixture
def bars(monkeypatch):
    """The progress bars the command makes, shown (into a buffer) as on a terminal."""
    made = []

    class Shown(tqdm.tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **{**kwargs, "disable": False, "file": io.StringIO()})
            made.append(self)

    monkeypatch.setattr(tqdm, "tqdm", Shown)
    return made


def assert_one_full_bar(bars, total):
    """One picture: one bar over the UNet calls, and it reached its end exactly."""
    assert [(bar.n, bar.total) for bar in bars] == [(total, total)]


def test_image_with_the_diffusion_backend(capsys, tmp_path, photo, tiny_sd, tiny_depth, bars):
    out = tmp_path / "out.png"
    code, cap = run(
        capsys,
        "image",
        photo,
        out,
        "--backend",
        "diffusion",
        "--model",
        tiny_sd,
        "--depth-model",
        tiny_depth,
        "--steps",
        "6",
        "--divergence",
        "20",  # holes wide enough for the diffusion fill
        "--fill-min-width",
        "3",
        "--device",
        "cpu",
    )
    assert code == 0, cap.err
    assert_one_full_bar(bars, 2 * (6 - 1))  # both views inverted to t' (step 1), then the fill
    sbs = np.asarray(Image.open(out))
    assert sbs.shape == (45, 140, 3)
    # hybrid composite: the left half is the input photo, untouched
    assert np.array_equal(sbs[:, :70], np.asarray(Image.open(photo).convert("RGB")))


def test_image_paper_preset_runs_with_overrides(capsys, tmp_path, photo, tiny_sd, tiny_depth):
    out = tmp_path / "paper.png"
    code, cap = run(
        capsys,
        "image",
        photo,
        out,
        "--preset",
        "paper",
        "--model",
        tiny_sd,
        "--depth-model",
        tiny_depth,
        "--steps",
        "5",
        "--null-text-steps",
        "2",
    )
    assert code == 0, cap.err
    assert Image.open(out).size == (140, 45)


def test_text_to_stereo(capsys, tmp_path, tiny_sd, tiny_depth, bars):
    out = tmp_path / "t.png"
    code, cap = run(
        capsys,
        "text",
        "a red motorcycle",
        out,
        "--model",
        tiny_sd,
        "--depth-model",
        tiny_depth,
        "--steps",
        "5",
        "--width",
        "72",
        "--height",
        "64",
    )
    assert code == 0, cap.err
    assert Image.open(out).size == (144, 64)
    assert_one_full_bar(bars, 2 * 5 - 1)  # the left image alone, then both from t' = step 1


def test_depth_to_stereo_from_a_map_and_from_a_photo(
    capsys, tmp_path, photo, tiny_sd_depth, tiny_depth, bars
):
    depth_map = tmp_path / "near_bright.png"
    ramp = np.tile(np.linspace(0, 255, 80, dtype=np.uint8), (60, 1))
    Image.fromarray(ramp).save(depth_map)
    code, cap = run(
        capsys,
        "depth",
        depth_map,
        "a garage",
        tmp_path / "d.png",
        "--model",
        tiny_sd_depth,
        "--steps",
        "5",
        "--size",
        "80",
        "--layout",
        "pair",
    )
    assert code == 0, cap.err
    assert Image.open(tmp_path / "d_L.png").size == (80, 64)
    assert_one_full_bar(bars, 5)
    code, cap = run(
        capsys,
        "depth",
        "a garage",
        tmp_path / "p.png",
        "--from-image",
        photo,
        "--model",
        tiny_sd_depth,
        "--depth-model",
        tiny_depth,
        "--steps",
        "5",
    )
    assert code == 0, cap.err


def test_depth_command_errors(capsys, tmp_path, tiny_sd):
    code, cap = run(capsys, "depth", "only a prompt", tmp_path / "x.png")
    assert code == 1 and "DEPTH_MAP PROMPT OUT" in cap.err
    Image.fromarray(np.full((64, 64), 9, np.uint8)).save(tmp_path / "m.png")
    code, cap = run(
        capsys, "depth", tmp_path / "m.png", "p", tmp_path / "x.png", "--model", tiny_sd
    )
    assert code == 1 and "not depth-conditioned" in cap.err


def test_missing_diffusion_model(capsys, tmp_path, photo, tiny_depth, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, cap = run(
        capsys,
        "image",
        photo,
        tmp_path / "o.png",
        "--backend",
        "diffusion",
        "--model",
        "nobody/no-sd",
        "--depth-model",
        tiny_depth,
    )
    assert code == 1
    lines = [ln for ln in cap.err.splitlines() if ln.startswith("stereoconv: error")]
    assert len(lines) == 1 and "'nobody/no-sd'" in lines[0] and "HF_HOME" in lines[0]
    assert not (tmp_path / "o.png").exists()


def stereoconv_process(*argv, **env):
    """`python -m stereoconv ARGV` in a fresh process (the libraries not yet imported, as for a
    user), with env added to the environment; returns (status, stderr lines)."""
    import os
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, "-m", "stereoconv", *map(str, argv)],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
    )
    return run.returncode, run.stderr.splitlines()


def test_library_warnings_stay_off_the_terminal(tmp_path, photo, tiny_sd, tiny_depth):
    """diffusers ("install accelerate") and huggingface_hub (deprecations) warn in this very
    environment; the user sees only stereoconv's lines, the error one line, last."""
    common = ["--backend", "diffusion", "--depth-model", tiny_depth, "--device", "cpu"]
    missing = ["image", photo, tmp_path / "o.png", "--model", "nobody/no-sd", *common]
    offline = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "empty-cache")}
    # the control: with the libraries' own settings asked for, their warnings are there
    code, err = stereoconv_process(
        *missing, **offline, PYTHONWARNINGS="default", DIFFUSERS_VERBOSITY="warning"
    )
    assert code == 1 and [line for line in err if not line.startswith("stereoconv:")], err
    code, err = stereoconv_process(*missing, **offline)
    assert code == 1 and all(line.startswith("stereoconv:") for line in err), err
    assert [line for line in err if "error" in line] == [err[-1]] and "no-sd" in err[-1]
    out = tmp_path / "ok.png"
    code, err = stereoconv_process("image", photo, out, "--model", tiny_sd, "--steps", "2", *common)
    assert code == 0 and out.is_file()
    assert err and all(line.startswith("stereoconv: note:") for line in err), err


def test_depth_from_image_refuses_a_picture_over_max_megapixels(
    capsys, tmp_path, photo, tiny_sd_depth, tiny_depth
):
    """--from-image reads the photo under --max-megapixels, as every picture command does."""
    out = tmp_path / "out.png"
    common = ["--model", tiny_sd_depth, "--depth-model", tiny_depth, "--steps", "2"]
    common += ["--size", "64", "--device", "cpu"]
    code, cap = run(
        capsys, "depth", "a castle", out, "--from-image", photo, *common, "--max-megapixels", 0.002
    )
    err = cap.err.strip().splitlines()
    assert code == 1 and "over the limit of 0.002: raise --max-megapixels" in err[-1], err
    assert not out.exists()
    code, cap = run(capsys, "depth", "a castle", out, "--from-image", photo, *common)
    assert code == 0 and out.exists(), cap.err
