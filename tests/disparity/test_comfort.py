"""Comfort statistics and --convergence auto on a clip with known depth: a near card slides
into the right frame border."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from stereoconv.backends.warp import WarpBackend
from stereoconv.config import build_config
from stereoconv.converter import StereoConverter
from stereoconv.disparity.comfort import shot_convergence
from stereoconv.jobs.video.convergence import plan_convergence
from stereoconv.jobs.video.job import VideoOptions, open_workdir, prepare_job
from stereoconv.report.stats import frame_stats
from stereoconv.runner.local import convert_video
from tests.helpers.clips import card_scene


def run(tmp_path, name, **settings):
    src, maps = (
        card_scene(tmp_path)
        if not (tmp_path / "card.mkv").exists()
        else (tmp_path / "card.mkv", tmp_path / "depth")
    )
    config = build_config(backend="warp", depth_kind="relative-disparity", **settings)
    converter = StereoConverter(config, torch.device("cpu"))
    job = prepare_job(
        config,
        src,
        tmp_path / name,
        VideoOptions(chunk_frames=7),
        depth=maps,
        notify=lambda text: None,
        collect_stats=True,
    )
    if config.auto_convergence:
        job = plan_convergence(job, converter)
    open_workdir(job, False, print)
    _, totals = convert_video(converter, job)
    return job, totals.frames_stats


def test_violations_are_found_and_auto_convergence_removes_them(tmp_path):
    _, fixed = run(tmp_path, "fixed.mp4", convergence=0.5)
    violating = [s["index"] for s in fixed if s["violation"]]
    assert violating == list(range(10, 18))  # the card is cut by the border
    in_view = [s for s in fixed if s["index"] < 18]
    assert all(s["near_pct"] == pytest.approx(1.5, abs=0.05) for s in in_view)  # 3 % x (1 - 0.5)

    job, auto = run(tmp_path, "auto.mp4", convergence=0.5, auto_convergence=True)
    assert set(job.convergence_plan) == {1.0}  # one shot, one screen plane: no jumps
    assert not any(s["violation"] for s in auto)
    assert [s["index"] for s in auto if s["violation_without_auto"]] == violating
    assert max(s["near_pct"] for s in auto) <= 0.0 + 1e-6  # nothing in front any more


def test_shot_convergence_is_constant_per_shot_and_not_below_the_base():
    near = [0.2, 0.9, 0.3, 0.1, 0.1]
    cuts = [True, False, False, True, False]
    assert shot_convergence(near, cuts, 0.5) == [0.92, 0.92, 0.92, 0.5, 0.5]


def test_frame_stats_measure_parallax_and_holes():
    d = torch.zeros(1, 10, 100)
    d[..., 40:60] = 5.0  # a block 5 px in front opens 5 px of holes behind it
    holes = WarpBackend().convert(torch.zeros(1, 3, 10, 100), d).holes  # the backend's
    stats = dataclasses.asdict(frame_stats(d, 100, holes)[0])  # a Parallax record
    assert stats["near_pct"] == 5.0 and stats["far_pct"] == 0.0
    assert not stats["violation"]
    # the share of the backend's own holes: the 5 px gap less the half pixel each surface keeps
    # at its edge (the warp since issue 28)
    assert stats["holes"] == pytest.approx(holes.float().mean().item())
    assert stats["holes"] == pytest.approx(4 / 100, abs=1e-6)


def test_auto_convergence_for_a_photo_library(tmp_path, tiny_depth):
    from PIL import Image

    from stereoconv.cli.main import main

    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (40, 80, 3), dtype=np.uint8)).save(photos / "a.png")
    outputs = {}
    for name, extra in (("fixed", []), ("auto", ["--convergence", "auto"])):
        args = [
            "images",
            str(photos),
            str(tmp_path / name),
            "--backend",
            "warp",
            "--depth-model",
            str(tiny_depth),
            "-q",
            *extra,
        ]
        assert main(args) == 0
        outputs[name] = np.asarray(Image.open(tmp_path / name / "a_LR.png"))  # tagged: SBS
    # the screen plane moved: the right views differ, the left ones (the photo) do not
    assert np.array_equal(outputs["fixed"][:, :80], outputs["auto"][:, :80])
    assert not np.array_equal(outputs["fixed"][:, 80:], outputs["auto"][:, 80:])


def test_auto_convergence_for_a_still_picture(tmp_path, capsys):
    from PIL import Image

    from stereoconv.cli.main import main

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (40, 80, 3), dtype=np.uint8)).save(tmp_path / "p.png")
    depth = np.zeros((40, 80), np.float32)
    depth[10:30, 60:] = 1.0  # a near block cut by the right border
    np.save(tmp_path / "d.npy", depth)
    for name, extra in (("fixed", []), ("auto", ["--convergence", "auto"])):
        args = [
            "image",
            str(tmp_path / "p.png"),
            str(tmp_path / f"{name}.png"),
            "--backend",
            "warp",
            "--depth",
            str(tmp_path / "d.npy"),
            "--layout",
            "pair",
            *extra,
        ]
        assert main(args) == 0
    right = {n: np.asarray(Image.open(tmp_path / f"{n}_R.png")) for n in ("fixed", "auto")}
    left = np.asarray(Image.open(tmp_path / "p.png"))
    # with auto the near block sits on the screen plane: it does not move at all
    assert np.array_equal(right["auto"][10:30, 62:], left[10:30, 62:])
    assert not np.array_equal(right["fixed"][10:30, 62:], left[10:30, 62:])
