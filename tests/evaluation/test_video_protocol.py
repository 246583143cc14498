"""The video protocol of `stereoconv eval video:...`: clips with ground truth made from the
Middlebury 2014 Motorcycle pair, the temporal metric, and the protocol end to end through the
real `video` job (warp backend) on a tiny clip."""

import json

import cv2
import numpy as np
import pytest
import torch

from stereoconv.cli.main import main
from stereoconv.errors import UserError
from stereoconv.evaluation.clips import (
    DISPARITY_CODE,
    ClipSpec,
    Stills,
    make_clip,
    plan_clips,
    read_video,
    write_clip,
)
from stereoconv.evaluation.datasets import open_dataset
from stereoconv.evaluation.video_protocol import (
    clip_holes,
    parse_video_methods,
    pooled,
    settings_args,
    source_points,
    temporal_change,
)
from stereoconv.geometry import forward_warp

SPEC = ClipSpec(96, 64, 5, 2)


@pytest.fixture(scope="module")
def stills():
    return Stills()


def warp_error(left: np.ndarray, disparity: np.ndarray, right: np.ndarray) -> float:
    """Mean absolute difference of the real right view from the z-buffered warp of the left
    view by `disparity`, on the pixels the warp covers."""
    image = torch.from_numpy(left).permute(2, 0, 1)[None].float()
    warped = forward_warp(image, torch.from_numpy(disparity)[None])
    visible = ~warped.holes[0].numpy()
    return float(np.abs(warped.image[0].permute(1, 2, 0).numpy() - right)[visible].mean())


def moved_back(frames: np.ndarray, motion: np.ndarray, t: int):
    """Frame t-1 moved by the motion onto frame t, and where it lands inside frame t-1."""
    h, w = frames.shape[1:3]
    map_x, map_y = source_points(motion, h, w)
    inside = (map_x >= 0) & (map_x <= w - 1) & (map_y >= 0) & (map_y <= h - 1)
    moved = cv2.remap(frames[t - 1].astype(np.float32), map_x, map_y, cv2.INTER_LINEAR)
    return moved.reshape(frames.shape[1:]), inside


@pytest.mark.parametrize("kind", ["pan-right", "pan-left", "zoom", "static"])
def test_a_clip_is_a_true_stereo_pair_in_every_frame(stills, kind):
    """The real right view is the left view warped by the clip's disparity (within the real
    data's own mismatch), and clearly not by a disparity 2 px off."""
    clip = make_clip(kind, stills["motorcycle"], SPEC)
    assert clip.left.shape == clip.right.shape == (5, 64, 96, 3)
    assert np.all(clip.disparity * DISPARITY_CODE == np.round(clip.disparity * DISPARITY_CODE))
    for t in range(5):
        right_error = warp_error(clip.left[t], clip.disparity[t], clip.right[t])
        off_error = warp_error(clip.left[t], clip.disparity[t] + 2, clip.right[t])
        assert right_error < 10 and right_error < 0.5 * off_error, (t, right_error, off_error)


@pytest.mark.parametrize("kind", ["pan-right", "pan-left"])
def test_a_pan_moves_every_view_exactly_by_its_known_motion(stills, kind):
    clip = make_clip(kind, stills["motorcycle"], SPEC)
    assert clip.motion[0] is None and clip.cuts == [0]
    step = 2 if kind == "pan-right" else -2
    for t in range(1, 5):
        np.testing.assert_allclose(clip.motion[t], [[1, 0, -step], [0, 1, 0]])
        for frames in (clip.left, clip.right, clip.disparity[..., None]):
            moved, inside = moved_back(frames, clip.motion[t], t)
            assert inside.mean() > 0.9
            np.testing.assert_array_equal(moved[inside], frames[t][inside].astype(np.float32))
    # the content really moves: frame t is not frame t-1
    assert np.abs(clip.left[1].astype(int) - clip.left[0]).mean() > 5


def test_a_zoom_scales_the_disparity_and_its_motion_maps_frame_to_frame(stills):
    clip = make_clip("zoom", stills["motorcycle"], SPEC)
    scale = 1.01
    for t in range(1, 5):
        np.testing.assert_allclose(clip.motion[t][:, :2], np.eye(2) * scale, rtol=1e-12)
        moved, inside = moved_back(clip.left, clip.motion[t], t)
        assert np.abs(moved - clip.left[t])[inside].mean() < 3
        disparity, _ = moved_back(clip.disparity[..., None], clip.motion[t], t)
        ratio = np.median(clip.disparity[t][inside] / disparity[inside])
        assert ratio == pytest.approx(scale, abs=2e-3)


def test_a_static_shot_has_fresh_sensor_noise_on_every_frame_of_both_views(stills):
    clip = make_clip("static", stills["motorcycle"], SPEC)
    for views in (clip.left, clip.right):
        change = views[1].astype(float) - views[0]
        assert change.std() == pytest.approx(np.sqrt(2) * SPEC.noise_sigma, rel=0.15)
    np.testing.assert_array_equal(clip.disparity[0], clip.disparity[4])
    np.testing.assert_array_equal(clip.motion[1], [[1, 0, 0], [0, 1, 0]])


def test_a_cut_joins_two_scenes_and_has_no_motion_across_it(middlebury2003):
    clip = Stills(middlebury2003).clip(plan_clips("video:motorcycle", ("cut",))[0], SPEC)
    assert clip.name == "motorcycle-cut-teddy" and clip.scenes == ("motorcycle", "teddy")
    assert clip.cuts == [0, 2] and clip.meta["cut_frame"] == 2
    assert clip.motion[1] is not None and clip.motion[3] is not None
    teddy = make_clip("pan-right", Stills(middlebury2003)["teddy"], ClipSpec(96, 64, 3, 2))
    np.testing.assert_array_equal(clip.right[2:], teddy.right)


def test_clip_files_are_lossless_and_a_stereo_video_dataset(stills, tmp_path):
    clip = make_clip("zoom", stills["motorcycle"], SPEC)
    files = write_clip(clip, tmp_path / "clip")
    np.testing.assert_array_equal(read_video(files["left"]), clip.left)
    np.testing.assert_array_equal(read_video(files["right"]), clip.right)
    np.testing.assert_array_equal(read_video(files["disparity"]) / DISPARITY_CODE, clip.disparity)
    record = json.loads((tmp_path / "clip" / "clip.json").read_text())
    assert record["motion"][0] is None and len(record["motion"]) == 5
    dataset = open_dataset(str(tmp_path / "clip"))  # the eval's own stereo-video reader
    scene = dataset.scenes[3].load()
    np.testing.assert_array_equal(scene.right, clip.right[3])
    np.testing.assert_array_equal(scene.disparity, clip.disparity[3])


def test_temporal_change_is_zero_for_the_real_view_and_not_for_noise_in_the_holes(stills):
    clip = make_clip("pan-right", stills["motorcycle"], SPEC)
    holes = clip_holes(clip)
    real = temporal_change(clip.right, holes, clip.motion)
    assert np.isnan(real[0][0]) and real[0][1] == 0
    assert all(value == 0 and count > 100 for value, count in real[1:])
    rng = np.random.default_rng(1)
    noisy = clip.right.copy()
    noisy[holes] = np.clip(noisy[holes] + rng.normal(0, 20, noisy[holes].shape), 0, 255)
    assert pooled(temporal_change(noisy, holes, clip.motion)) > 10


def test_temporal_change_follows_the_content_not_the_screen(stills):
    """Holes painted with a texture that moves with the scene do not change; the same texture
    held still on the screen does (a motion applied the wrong way would swap the two)."""
    clip = make_clip("pan-right", stills["motorcycle"], SPEC)
    holes = clip_holes(clip)
    texture = np.random.default_rng(2).integers(0, 256, (64, 200, 3), dtype=np.uint8)
    moving, still = clip.right.copy(), clip.right.copy()
    for t in range(5):
        moving[t][holes[t]] = texture[:, 2 * t : 2 * t + 96][holes[t]]
        still[t][holes[t]] = texture[:, :96][holes[t]]
    assert pooled(temporal_change(moving, holes, clip.motion)) == 0
    assert pooled(temporal_change(still, holes, clip.motion)) > 30


def test_method_names_and_options():
    methods = parse_video_methods("warp, default,narrow=--fill-min-width 8 --seed 3")
    assert [m.name for m in methods] == ["warp", "default", "narrow"]
    assert methods[0].args == ("--backend", "warp")
    assert methods[2].args == ("--fill-min-width", "8", "--seed", "3")
    for bad in ("nosuch", "warp,warp", "bad name=--seed 1", ""):
        with pytest.raises(UserError):
            parse_video_methods(bad)
    given = {"model": "m", "deblur": False, "steps": 4, "seed": None}
    assert settings_args(given) == ["--model", "m", "--no-deblur", "--steps", "4"]


def test_clip_sets():
    from stereoconv.cli.evaluate import CLIP_KINDS as OPTION_KINDS
    from stereoconv.evaluation.clips import CLIP_KINDS

    assert OPTION_KINDS == CLIP_KINDS  # spelt out in the CLI, so that --help loads no numpy
    standard = [p.name for p in plan_clips("video:standard")]
    assert len(standard) == 11 and "venus-pan-left" in standard and "teddy-cut-tsukuba" in standard
    assert len(plan_clips("video:all")) == 20
    assert [p.name for p in plan_clips("video:venus", ("cut", "zoom"))] == [
        "venus-zoom",
        "venus-cut-motorcycle",
    ]
    for bad, kinds in (("video:nosuch", ("zoom",)), ("video:teddy", ("spin",))):
        with pytest.raises(UserError):
            plan_clips(bad, kinds)


def test_the_protocol_runs_end_to_end_through_the_video_job(stills, tmp_path, capsys):
    """The warp backend through `stereoconv video` on a tiny pan: its right views come back
    from the 4:4:4 lossless encoding within the colour conversion's rounding of the warp run
    here, the real right view's temporal change is 0, and a second run reads the outputs."""
    from stereoconv.backends.warp import WarpBackend

    out = tmp_path / "out"
    argv = ["eval", "video:motorcycle", "--clips", "pan-right", "--clip-size", "64x48"]
    argv += ["--clip-frames", "4", "--methods", "warp", "--out", str(out), "--device", "cpu"]
    assert main(argv) == 0, capsys.readouterr().err
    result = json.loads((out / "results.json").read_text())
    record = result["clips"]["motorcycle-pan-right"]
    assert record["real_right"]["temporal_holes"] == 0
    warp = record["methods"]["warp"]
    assert len(warp["frames"]) == 4 and not warp["reused"]
    assert 8 < warp["mean"]["psnr_holes"] < warp["mean"]["psnr_visible"] < 40
    assert 0 < warp["mean"]["lpips_holes"] < 1 and warp["mean"]["temporal_holes"] >= 0

    decoded = read_video(out / "clips" / "motorcycle-pan-right" / "warp.mkv")[:, :, 64:]
    clip = make_clip("pan-right", stills["motorcycle"], ClipSpec(64, 48, 4, 2))
    frames = torch.from_numpy(clip.left).permute(0, 3, 1, 2).float() / 255
    with torch.inference_mode():
        _, right = WarpBackend(views="right")(frames, torch.from_numpy(clip.disparity))
    here = (right.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()
    assert np.abs(decoded.astype(int) - here).max() <= 2

    strip = cv2.imread(str(out / "strips" / "motorcycle-pan-right.png"))
    assert strip.shape[0] > 3 * 48 and strip.shape[1] > 4 * 48
    table = (out / "results.md").read_text()
    assert "| `warp` |" in table and "temporal change holes" in table

    assert main([*argv, "--overwrite", "--reuse-outputs"]) == 0
    again = json.loads((out / "results.json").read_text())["clips"]["motorcycle-pan-right"]
    assert again["methods"]["warp"]["reused"]
    assert again["methods"]["warp"]["mean"] == warp["mean"]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--methods", "nosuch"], "unknown video method"),
        (["--clip-size", "64"], "--clip-size must be"),
        (["--clips", "spin"], "unknown clip kind"),
        (["--clip-size", "2000x48"], "too small"),
        (["--protocol", "paper"], "real geometry"),
        (["--scenes", "venus-zoom"], "no clip venus-zoom"),
    ],
)
def test_video_protocol_mistakes_are_one_line(tmp_path, capsys, extra, message):
    code = main(["eval", "video:motorcycle", "--out", str(tmp_path), *extra])
    err = capsys.readouterr().err
    assert code == 1 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "results.md").exists()


def test_unet_evaluations_from_the_job_report_become_a_column(stills):
    """When the job's report JSON gives `unet_evaluations` per frame, the tables show them."""
    from stereoconv.evaluation.video_protocol import (
        ClipResult,
        MethodRun,
        VideoMethod,
        VideoResults,
        clip_summary,
        score_run,
    )
    from stereoconv.evaluation.video_report import columns, markdown

    clip = make_clip("pan-right", stills["motorcycle"], ClipSpec(64, 48, 3, 2))
    holes = clip_holes(clip)
    frames = [{"index": t, "unet_evaluations": [80, 10, 0][t]} for t in range(3)]
    run = MethodRun(clip.right.copy(), 3.0, frames)
    scores = score_run(clip, holes, run, lpips=False, device="cpu")
    assert [f["unet_evaluations"] for f in scores] == [80, 10, 0]
    result = ClipResult(clip, holes, {"m": run.right}, {"m": scores}, [(0.0, 1)] * 3, {"m": 3.0})
    results = VideoResults(ClipSpec(64, 48, 3, 2), [VideoMethod("m", ())], [], lpips=False)
    results.clips[clip.name] = clip_summary(result)
    assert results.clips[clip.name]["methods"]["m"]["mean"]["unet_evaluations"] == 30
    assert "unet_evaluations" in [c[0] for c in columns(results)]
    assert "UNet evaluations / frame" in markdown(results)
