"""The evaluation harness: datasets, protocols, methods, the report and `stereoconv eval`, on
Middlebury Motorcycle (real numbers) and on tiny random models (the pipeline only)."""

import json

import numpy as np
import pytest
from PIL import Image

from stereoconv.cli.evaluate import eval_command
from stereoconv.cli.main import cli, main
from stereoconv.config import build_config
from stereoconv.errors import UserError
from stereoconv.evaluation import classical
from stereoconv.evaluation.datasets import open_dataset
from stereoconv.evaluation.methods import parse_methods
from stereoconv.evaluation.protocols import fit_affine, prepare
from stereoconv.evaluation.tables import summarise
from tests.helpers.scenes import write_pfm


def test_the_eval_command_is_part_of_the_cli():
    assert cli.get_command(None, "eval") is eval_command


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    return code, capsys.readouterr()


def synthetic_scene(h=48, w=64, seed=0):
    """Random texture at disparity 2 with a nearer square at disparity 10; its right view is the
    left one warped, with new random texture where the left view cannot see."""
    rng = np.random.default_rng(seed)
    left = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    disparity = np.full((h, w), 2.0, np.float32)
    disparity[12:36, 20:44] = 10.0
    right, holes = classical.integer_warp(left, disparity)
    right[holes] = rng.integers(0, 256, (holes.sum(), 3))
    return left, right, disparity


def write_middlebury(root, names=("Alpha", "Beta")):
    for i, name in enumerate(names):
        left, right, disparity = synthetic_scene(seed=i)
        folder = root / name
        folder.mkdir(parents=True)
        Image.fromarray(left).save(folder / "im0.png")
        Image.fromarray(right).save(folder / "im1.png")
        disparity[0, :5] = np.inf  # unknown, as Middlebury marks it
        write_pfm(folder / "disp0.pfm", disparity)
        (folder / "calib.txt").write_text("width=64\nheight=48\nndisp=16\n")
    return root


# --- datasets ----------------------------------------------------------------------------------


def test_middlebury_layout(tmp_path):
    root = write_middlebury(tmp_path / "mb")
    data = open_dataset(str(root))
    assert data.layout == "middlebury" and [s.name for s in data.scenes] == ["Alpha", "Beta"]
    scene = data.scenes[1].load()
    assert scene.left.shape == (48, 64, 3) and scene.meta["calib"]["ndisp"] == "16"
    assert np.isnan(scene.disparity[0, :5]).all() and scene.disparity[20, 30] == 10.0
    assert [s.name for s in open_dataset(str(root / "Alpha")).scenes] == ["Alpha"]
    assert [s.name for s in open_dataset(str(root), only=["Beta"]).scenes] == ["Beta"]


def test_kitti_layout_disparity_is_png_over_256(tmp_path):
    root = tmp_path / "kitti" / "training"
    for sub in ("image_2", "image_3", "disp_occ_0"):
        (root / sub).mkdir(parents=True)
    left, right, _ = synthetic_scene()
    for name in ("000000_10.png", "000000_11.png"):
        Image.fromarray(left).save(root / "image_2" / name)
        Image.fromarray(right).save(root / "image_3" / name)
    disp = np.full((48, 64), 5 * 256 + 128, np.uint16)
    disp[:4] = 0
    Image.fromarray(disp).save(root / "disp_occ_0" / "000000_10.png")
    data = open_dataset(str(tmp_path / "kitti"))
    assert data.layout == "kitti" and [s.name for s in data.scenes] == ["000000_10"]
    d = data.scenes[0].load().disparity
    assert np.isnan(d[:4]).all() and np.allclose(d[4:], 5.5)


def test_folder_of_triplets(tmp_path):
    for sub in ("left", "right", "disparity"):
        (tmp_path / sub).mkdir()
    for name in ("a", "b"):
        left, right, disparity = synthetic_scene()
        Image.fromarray(left).save(tmp_path / "left" / f"{name}.png")
        Image.fromarray(right).save(tmp_path / "right" / f"{name}.jpg")
    np.save(tmp_path / "disparity" / "a.npy", disparity)
    scenes = [s.load() for s in open_dataset(str(tmp_path)).scenes]
    assert np.array_equal(scenes[0].disparity, disparity) and scenes[1].disparity is None


def test_dataset_mistakes_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="dataset not found"):
        open_dataset(str(tmp_path / "nope"))
    with pytest.raises(UserError, match="not a stereo dataset"):
        open_dataset(str(tmp_path))
    root = write_middlebury(tmp_path / "mb", names=("Alpha",))
    with pytest.raises(UserError, match="no scene Gamma"):
        open_dataset(str(root), only=["Gamma"])
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(root / "Alpha" / "im1.png")
    with pytest.raises(UserError, match="differ in size"):
        open_dataset(str(root)).scenes[0].load()


# --- protocols and classical methods -----------------------------------------------------------


def test_paper_protocol_crops_resizes_and_normalises(motorcycle):
    data = open_dataset("skimage:motorcycle")
    scene = data.scenes[0].load()
    paper = prepare(scene, "paper")
    assert paper.left.shape == paper.right.shape == (512, 512, 3)
    assert paper.disparity.min() == 0 and paper.disparity.max() == pytest.approx(0.08 * 512)
    # the centred 500 x 500 square of the 741 x 500 view (offset 120), upscaled
    expected = np.asarray(Image.fromarray(motorcycle[0][:, 120:620]).resize((512, 512), 3))
    assert np.array_equal(paper.left, expected)
    calibrated = prepare(scene, "calibrated")
    assert calibrated.left is scene.left
    known = np.isfinite(motorcycle[2])
    assert np.array_equal(calibrated.disparity[known], motorcycle[2][known])
    assert np.isfinite(calibrated.disparity).all()


def test_affine_fit_recovers_scale_and_offset():
    rel = np.random.default_rng(0).random((20, 30)).astype(np.float32)
    mask = np.ones_like(rel, bool)
    assert np.allclose(fit_affine(rel, 40 * rel + 7, mask), 40 * rel + 7, atol=1e-4)


def test_leave_blank_and_stretch_on_a_constant_shift():
    left = np.random.default_rng(0).integers(0, 256, (5, 12, 3), dtype=np.uint8)
    d = np.full((5, 12), 3.0)
    blank = classical.leave_blank(left, d)
    assert np.array_equal(blank[:, :9], left[:, 3:]) and not blank[:, 9:].any()
    # stretch: interior runs interpolate between their borders, edge runs repeat the edge
    row = np.array([[[10], [0], [0], [40], [0]]], np.uint8)
    holes = np.array([[False, True, True, False, True]])
    assert classical.stretch_fill(row, holes)[0, :, 0].tolist() == [10, 20, 30, 40, 40]


def test_method_names_and_sets():
    cfg = build_config("preview")
    names = [m.name for m in parse_methods("classical, warp,telea", cfg)]
    assert names == ["leave-blank", "stretch", "telea", "soft-splat", "warp"]
    assert len({m.name for m in parse_methods("ablation", cfg)}) == 24
    assert all(m.composite == "none" for m in parse_methods("table2", cfg))
    (m,) = parse_methods("diffusion:attention=bi:spsmd=off:composite=pure", cfg)
    assert (m.attention, m.spsmd, m.deblur, m.composite) == ("bi", False, cfg.deblur, "none")
    diffusion, hybrid = m.settings(cfg)  # the run's own records, with the method's switches
    assert diffusion.spsmd_every == 0 and diffusion.attention == "bi"
    assert hybrid.composite == "none" and hybrid.max_side == cfg.max_side
    for bad, message in [
        ("warpp", "unknown method 'warpp'"),
        ("diffusion:attn=bi", "unknown diffusion switch 'attn'"),
        ("diffusion:deblur=yes", "deblur must be on or off"),
    ]:
        with pytest.raises(UserError, match=message):
            parse_methods(bad, cfg)


def test_summary_best_and_worst_follow_each_metric_direction():
    assert summarise([20.0, 10.0, float("nan")], True) == {
        "mean": 15.0,
        "best": 20.0,
        "worst": 10.0,
        "scenes": 2,
    }
    lp = summarise([0.2, 0.4], False)
    assert (lp["best"], lp["worst"]) == (0.2, 0.4)


# --- `stereoconv eval` -------------------------------------------------------------------------


def test_eval_motorcycle_calibrated_warp_backend_beats_the_classics(capsys, tmp_path):
    out = tmp_path / "report"
    code, cap = run(capsys, "eval", "skimage:motorcycle", "--out", out, "--device", "cpu")
    assert code == 0, cap.err
    results = json.loads((out / "results.json").read_text())
    mean = {
        name: {k: v["mean"] for k, v in method["summary"].items()}
        for name, method in results["methods"].items()
    }
    assert list(mean) == ["leave-blank", "stretch", "telea", "soft-splat", "warp"]
    print("\n" + (out / "results.md").read_text())
    warp = mean["warp"]
    for other in ("leave-blank", "stretch", "telea", "soft-splat"):
        assert warp["psnr"] > mean[other]["psnr"] and warp["ssim"] > mean[other]["ssim"]
        assert warp["lpips"] < mean[other]["lpips"]
        # every region: the holes, near them, far from them, both sides of the depth edges
        for region in ("holes", "near", "far", "edge_fg", "edge_bg"):
            assert warp[f"psnr_{region}"] > mean[other][f"psnr_{region}"], (other, region)
    # the same classic as tests/backends/test_motorcycle.py, through the harness
    assert abs(mean["telea"]["psnr"] - 23.15) < 0.05
    assert abs(mean["telea"]["psnr_holes"] - 17.08) < 0.05
    # the integer warp's seen pixels are the same whatever fills its holes
    assert (
        mean["telea"]["psnr_far"] == mean["stretch"]["psnr_far"] == mean["leave-blank"]["psnr_far"]
    )
    # leave blank is black in the holes: far worse there than anything that fills them
    assert mean["leave-blank"]["psnr_holes"] < mean["stretch"]["psnr_holes"] - 5
    table = (out / "results.md").read_text()
    assert "| `warp` |" in table and f"**{warp['psnr']:.2f}**" in table
    assert "PSNR far ↑ | PSNR edge fg ↑ | PSNR edge bg ↑ |" in table
    regions = results["scene_info"]["Motorcycle"]["region_fractions"]
    assert sum(regions[k] for k in ("holes", "near", "far")) == pytest.approx(1.0)
    figure = Image.open(out / "scenes" / "Motorcycle.png")
    assert figure.width > 741 and figure.height > 4 * 500 * 400 / 741
    # an existing report is kept unless --overwrite
    code, cap = run(capsys, "eval", "skimage:motorcycle", "--out", out, "--no-lpips")
    assert code == 1 and "pass --overwrite" in cap.err


def test_eval_diffusion_ablation_end_to_end_on_tiny_models(capsys, tmp_path, tiny_sd):
    """Every diffusion switch reaches the pipeline (outputs are noise: random weights)."""
    root = write_middlebury(tmp_path / "mb")
    out = tmp_path / "report"
    argv = ["eval", root, "--out", out, "--methods", "all", "--model", tiny_sd]
    argv += ["--steps", "4", "--spsmd-every", "2", "--device", "cpu", "--no-lpips"]
    code, cap = run(capsys, *argv)
    assert code == 0, cap.err
    results = json.loads((out / "results.json").read_text())
    assert len(results["methods"]) == 5 + 24
    scores = {n: m["scenes"]["Alpha"]["psnr"] for n, m in results["methods"].items()}
    assert all(np.isfinite(v) for v in scores.values())
    base = "diffusion:attention=uni:spsmd=on:deblur=off:composite=pure"
    for changed in (
        "diffusion:attention=off:spsmd=on:deblur=off:composite=pure",
        "diffusion:attention=uni:spsmd=off:deblur=off:composite=pure",
        "diffusion:attention=uni:spsmd=on:deblur=on:composite=pure",
        "diffusion:attention=uni:spsmd=on:deblur=off:composite=hybrid",
    ):
        assert scores[changed] != scores[base], changed
    assert (out / "scenes" / "Alpha.png").is_file() and (out / "scenes" / "Beta.png").is_file()


def test_eval_paper_protocol_with_estimated_disparity(capsys, tmp_path, tiny_sd, tiny_depth):
    out = tmp_path / "report"
    argv = ["eval", "skimage:motorcycle", "--out", out, "--protocol", "paper"]
    argv += ["--paper-size", "64", "--disparity", "estimated", "--depth-model", tiny_depth]
    argv += ["--methods", "classical,diffusion", "--model", tiny_sd, "--steps", "3"]
    code, cap = run(capsys, *argv, "--device", "cpu", "--no-figures")
    assert code == 0, cap.err
    results = json.loads((out / "results.json").read_text())
    assert results["protocol"] == "paper" and results["disparity"] == "estimated"
    info = results["scene_info"]["Motorcycle"]
    assert info["size"] == [64, 64] and info["disparity_range"] == pytest.approx([0, 0.08 * 64])
    assert not (out / "scenes").exists()


@pytest.mark.parametrize(
    "argv, message, status",
    [  # a closed set is a choice of --help (a usage error, 2)
        (["--protocol", "papers"], "'papers' is not one of 'calibrated', 'paper'", 2),
        (["--disparity", "model"], "'model' is not one of 'gt', 'estimated'", 2),
        (["--methods", "blank"], "unknown method 'blank'", 1),
    ],
)
def test_eval_mistakes_are_one_line(capsys, tmp_path, argv, message, status):
    code, cap = run(capsys, "eval", "skimage:motorcycle", "--out", tmp_path, *argv)
    assert code == status and message in cap.err and len(cap.err.strip().splitlines()) == 1
    code, cap = run(capsys, "eval", tmp_path / "missing", "--out", tmp_path)
    assert code == 1 and "dataset not found" in cap.err


def test_a_stereo_video_dataset_reports_flicker(tmp_path, capsys):
    """Left and right videos of a scene with known depth, and its disparity video: every frame
    is scored and each method's flicker is measured against the left view's."""
    import av

    from stereoconv.cli.main import main
    from tests.helpers.clips import render_planes, write_clip

    data = tmp_path / "planes"
    data.mkdir()
    lefts, rights, maps = [], [], []
    for t in range(8):
        left, disparity = render_planes(t)
        lefts.append(left)
        rights.append(render_planes(t, eye="right")[0])
        maps.append(disparity.astype(np.uint8))  # whole pixels: 8-bit disparity video
    write_clip(data / "left.mkv", lefts, pix_fmt="yuv444p")
    write_clip(data / "right.mkv", rights, pix_fmt="yuv444p")
    with av.open(str(data / "disparity.mkv"), "w") as out:
        stream = out.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = 160, 96, "gray"
        for d in maps:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(d, format="gray")))
        out.mux(stream.encode())
    code = main(
        [
            "eval",
            str(data),
            "--methods",
            "stretch,warp",
            "--no-lpips",
            "--no-figures",
            "--out",
            str(tmp_path / "out"),
        ]
    )
    assert code == 0, capsys.readouterr().err
    result = json.loads((tmp_path / "out" / "results.json").read_text())
    assert len(result["scene_info"]) == 8
    temporal = result["temporal"]
    assert set(temporal) == {"stretch", "warp"}
    assert 0 < temporal["warp"]["flicker_ratio"] < 1.2
    assert "Temporal stability" in (tmp_path / "out" / "results.md").read_text()
