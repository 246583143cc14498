"""What a new user meets on a fresh clone (issue 29), each through the real command line: one
line for every mistake, nothing left behind by a failed run, models found before any work, and
--help offering only what a command takes."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest
from PIL import Image

from stereoconv.cli.main import main
from tests.helpers.clips import decode_all, numbered_frame, read_number, write_clip
from tests.helpers.paths import ROOT


def run(capsys, *argv):
    """`stereoconv ARGV`: (exit status, stdout, stderr lines)."""
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err.strip().splitlines()


def one_line_error(code, err, text):
    assert code != 0
    assert len(err) == 1 and err[0].startswith("stereoconv: error:") and text in err[0], err


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """6 numbered frames at 25 fps with audio, and a folder of their disparity maps (4 px)."""
    folder = tmp_path_factory.mktemp("newcomer")
    path = write_clip(
        folder / "clip.mp4", [numbered_frame(i) for i in range(6)], audio_seconds=0.24
    )
    maps = folder / "maps"
    maps.mkdir()
    for i in range(6):
        Image.fromarray(np.full((64, 128), 4, np.uint8)).save(maps / f"{i:03d}.png")
    return path, maps


def warp(clip) -> list[str]:
    """The fast options of a video run: the warp backend on the given disparity."""
    return ["--backend", "warp", "--depth", clip[1], "--depth-kind", "disparity-px", "--quiet"]


def leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# --- 1. no traceback ---------------------------------------------------------------------------


def test_every_pixel_format_offered_encodes(capsys, tmp_path, clip):
    """4:2:2 10-bit was refused by a fixed Main 10 profile deep in the encoder."""
    out = tmp_path / "o.mkv"
    code, _, err = run(
        capsys, "video", clip[0], out, *warp(clip), "--pix-fmt", "yuv422p10le", "--max-frames", "3"
    )
    assert code == 0, err
    assert "--pix-fmt yuv422p10le is more than 8-bit: encoding HEVC" in err[0]
    assert "10-bit source" not in err[0]  # the source is 8-bit
    with av.open(str(out)) as container:
        cc = container.streams.video[0].codec_context
        assert (cc.name, cc.pix_fmt) == ("hevc", "yuv422p10le")


# --- 2 and 4. every model found before any work; nothing left behind --------------------------


def test_a_missing_model_leaves_no_work_folder(capsys, tmp_path, clip, monkeypatch):
    """The corrected command runs without --overwrite."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "o.mp4"
    code, _, err = run(
        capsys, "video", clip[0], out, "--backend", "warp", "--depth-model", tmp_path / "none"
    )
    assert code == 1 and "depth model" in err[-1], err
    assert leftovers(tmp_path) == []
    code, _, err = run(capsys, "video", clip[0], out, *warp(clip))
    assert code == 0, err


def test_a_run_stopped_before_its_first_chunk_leaves_no_work_folder(
    capsys, tmp_path, clip, monkeypatch
):
    """Stopped in its first chunk: nothing to resume, so nothing is kept; stopped in its second,
    the first chunk is kept for the rerun."""
    import stereoconv.runner.local as local

    real, calls = local.convert_chunk, []

    def stop_at(n):
        def convert(job, converter, chunk, progress):
            calls.append(chunk.index)
            if chunk.index == n:
                raise KeyboardInterrupt
            return real(job, converter, chunk, progress)

        return convert

    out = tmp_path / "o.mp4"
    monkeypatch.setattr(local, "convert_chunk", stop_at(0))
    code, _, _ = run(capsys, "video", clip[0], out, *warp(clip), "--chunk-frames", "3")
    assert code == 130 and leftovers(tmp_path) == []
    monkeypatch.setattr(local, "convert_chunk", stop_at(1))
    code, _, _ = run(capsys, "video", clip[0], out, *warp(clip), "--chunk-frames", "3")
    assert code == 130 and leftovers(tmp_path) == [".o.mp4.stereoconv-work"]
    monkeypatch.setattr(local, "convert_chunk", stop_at(-1))
    calls.clear()
    code, _, err = run(capsys, "video", clip[0], out, *warp(clip), "--chunk-frames", "3")
    assert code == 0 and calls == [1], err
    assert "resuming: 1 of 2 chunks already converted" in err[0]


def test_images_leave_no_output_folder_when_no_photo_was_converted(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    pictures = tmp_path / "in"
    pictures.mkdir()
    Image.fromarray(numbered_frame(1)).save(pictures / "a.png")
    out = tmp_path / "out"
    code, _, err = run(
        capsys, "images", pictures, out, "--backend", "warp", "--depth-model", tmp_path / "none"
    )
    assert code == 1 and "depth model" in err[-1], err
    assert not out.exists()


def test_text_finds_its_depth_model_before_the_diffusion(capsys, tmp_path, tiny_sd, monkeypatch):
    """`text` ran 70 s of diffusion, then failed on the missing depth model."""
    from stereoconv.diffusion.pipeline import StereoDiffusion

    def never(*args, **kwargs):
        raise AssertionError("the diffusion ran before every model was found")

    monkeypatch.setattr(StereoDiffusion, "text_to_stereo", never)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "o.png"
    code, _, err = run(
        capsys, "text", "a cat", out, "--model", tiny_sd, "--depth-model", tmp_path / "none"
    )
    assert code == 1 and "depth model" in err[-1], err
    assert not out.exists()


# --- 5 and 6. hints and --help offer only what the command takes -------------------------------


@pytest.mark.parametrize("command", ["text", "depth"])
def test_the_cpu_hint_of_text_and_depth_offers_no_backend(capsys, tmp_path, command, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    args = ["a cat"] if command == "text" else [tmp_path / "d.png", "a cat"]
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(tmp_path / "d.png")
    code, _, err = run(
        capsys, command, *args, tmp_path / "o.png", "--device", "cpu", "--model", tmp_path / "m"
    )
    assert code == 1 and "takes minutes per picture" in err[0], err
    assert "--backend" not in err[0]


def help_of(capsys, *command) -> str:
    assert main([*command, "--help"]) == 0
    return " ".join(capsys.readouterr().out.split())  # click's wrapping undone


def layouts_offered(text: str) -> list[str]:
    return text.split("--layout [")[1].split("]")[0].split("|")


def test_help_offers_only_what_each_command_takes(capsys):
    for command in ("image", "images", "text", "depth", "preview"):
        assert "spatial" not in layouts_offered(help_of(capsys, command)), command
    assert "pair" not in layouts_offered(help_of(capsys, "video"))
    assert "pair" not in layouts_offered(help_of(capsys, "preview"))
    video = help_of(capsys, "video")
    assert "-q, --quiet" in video and "--text-guidance" not in video
    assert "--pix-fmt [auto|yuv420p|" in video
    for command in ("image", "images", "preview"):
        assert "--text-guidance" not in help_of(capsys, command), command
    for command in ("text", "depth"):
        text = help_of(capsys, command)
        for option in ("--guidance ", "--views", "--null-text", "--fill-start", "--temporal-fill"):
            assert option not in text, (command, option)
        assert "--text-guidance" in text and "-q, --quiet" in text
    evaluation = help_of(capsys, "eval")
    for option in ("--spatial-", "--vr180-hfov", "--text-guidance"):
        assert option not in evaluation, option
    assert "--protocol [calibrated|paper]" in evaluation
    assert "--disparity [gt|estimated]" in evaluation and "-q, --quiet" in evaluation
    assert "_RL sbs-rl" in help_of(capsys, "image")


def test_eval_choices_are_the_evaluations_own():
    from stereoconv.cli import evaluate
    from stereoconv.evaluation import protocols

    assert evaluate.PROTOCOLS == protocols.PROTOCOLS
    assert evaluate.DISPARITY_SOURCES == protocols.DISPARITY_SOURCES


def test_video_refuses_a_layout_it_does_not_offer_in_one_line(capsys, tmp_path, clip):
    code, _, err = run(
        capsys, "video", clip[0], tmp_path / "o.mp4", *warp(clip), "--layout", "pair"
    )
    one_line_error(code, err, "'pair' is not one of")


# --- 12. messages ------------------------------------------------------------------------------


def test_ctrl_c_on_one_picture_promises_no_resume(capsys, tmp_path, monkeypatch):
    import stereoconv.jobs.image

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(stereoconv.jobs.image, "convert_image", interrupted)
    Image.fromarray(numbered_frame(1)).save(tmp_path / "a.png")
    code, _, err = run(capsys, "image", tmp_path / "a.png", tmp_path / "o.png", "--backend", "warp")
    assert (code, err) == (130, ["stereoconv: interrupted"])


def test_one_frame_is_one_frame_and_one_map_cannot_drive_a_video(capsys, tmp_path, clip):
    code, out, err = run(
        capsys, "video", clip[0], tmp_path / "o.mp4", *warp(clip), "--max-frames", "1"
    )
    assert code == 0 and "(1 frame;" in out, err
    still = sorted(clip[1].iterdir())[0]
    argv = ["--backend", "warp", "--depth", still, "--depth-kind", "disparity-px", "--quiet"]
    code, _, err = run(capsys, "video", clip[0], tmp_path / "p.mp4", *argv)
    one_line_error(code, err, "has 1 frame from the start of the range")
    assert "one map cannot drive a video: give a depth video or a folder of maps" in err[0]


def test_make_tiny_models_help_makes_no_folder(tmp_path):
    import subprocess
    import sys

    script = ROOT / "scripts" / "make_tiny_models.py"
    done = subprocess.run(
        [sys.executable, script, "--help"], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0 and "OUT" in done.stdout
    assert not list(tmp_path.iterdir())


# --- 7. preview: fast by default, the video's depth options, each row's time --------------------


def test_preview_takes_the_videos_depth_and_labels_each_row(capsys, tmp_path, clip, monkeypatch):
    """No --backend: the warp backend (no diffusion model is loaded, so it runs offline); the
    --depth of the video; each cell says its frame's time."""
    import stereoconv.jobs.preview as preview

    captions, real = [], preview.caption
    monkeypatch.setattr(preview, "caption", lambda c, text: captions.append(text) or real(c, text))
    out = tmp_path / "sheet.png"
    given = ["--depth", clip[1], "--depth-kind", "disparity-px"]
    code, _, err = run(
        capsys, "preview", clip[0], out, *given, "--frames", "2", "--divergences", "3"
    )
    assert code == 0, err
    assert captions == [
        "0.00 s   div 3  conv 0.5",
        "0.00 s   div 3  conv auto",
        "0.20 s   div 3  conv 0.5",
        "0.20 s   div 3  conv auto",
    ]
    sheet = np.asarray(Image.open(out)).astype(int)
    cell = sheet[18:82, :256]  # the given 4 px: the right view is the left moved by 4
    left, right = cell[:, :128], cell[:, 128:]
    assert np.abs(left[:, 8:120] - right[:, 4:116]).mean() < 8
    assert "backend" not in " ".join(err)


def test_preview_help_says_its_default_backend(capsys):
    assert (
        "--backend [warp|diffusion] warp (fast) or diffusion (StereoDiffusion) [default: warp]"
        in (help_of(capsys, "preview"))
    )
    assert "--depth PATH" in help_of(capsys, "preview")


# --- 11. names ---------------------------------------------------------------------------------


def test_spatial_video_into_its_own_folder_gets_a_name_of_its_own(capsys, tmp_path, clip):
    src = write_clip(tmp_path / "clip.mov", [numbered_frame(i) for i in range(3)])
    argv = ["--backend", "warp", "--depth", clip[1], "--depth-kind", "disparity-px", "--quiet"]
    code, out, err = run(capsys, "video", src, tmp_path, *argv, "--layout", "spatial")
    assert code == 0, err
    assert f"wrote {tmp_path / 'clip_spatial.mov'}" in out


# --- 9. --max-fps: a steady cadence, declared --------------------------------------------------


def test_max_fps_keeps_a_steady_cadence_and_says_its_rate(capsys, tmp_path):
    """25 fps capped at 12 kept 2 frames of every 25 a slot late: a 120 ms hitch every second
    and a variable rate (ffprobe: 11.745 fps). Now every 3rd frame, 8.333 fps, said."""
    src = write_clip(tmp_path / "c.mp4", [numbered_frame(i) for i in range(25)])
    maps = tmp_path / "maps"
    maps.mkdir()
    for i in range(25):
        Image.fromarray(np.full((64, 128), 4, np.uint8)).save(maps / f"{i:03d}.png")
    given = ["--backend", "warp", "--depth", maps, "--depth-kind", "disparity-px", "--quiet"]
    out = tmp_path / "o.mp4"
    code, _, err = run(capsys, "video", src, out, *given, "--max-fps", "12")
    assert code == 0, err
    assert "cadence at 8.333 fps (every 3rd frame)" in err[0]
    frames, times = decode_all(out)
    assert [read_number(f) for f in frames] == list(range(0, 25, 3))
    assert np.diff(times) == pytest.approx([0.12] * 8, abs=1e-3)
    with av.open(str(out)) as container:
        assert container.streams.video[0].average_rate == Fraction(25, 3)


# --- 10. the copied audio is the source's ------------------------------------------------------


def audio_packets(path) -> list[bytes]:
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(container.streams.audio[0]) if p.size]


def audio_samples(path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.concatenate([f.to_ndarray() for f in container.decode(audio=0)], axis=1)


def test_copied_aac_keeps_its_priming_packet(capsys, tmp_path, clip):
    """AAC's first packet (its priming, before time 0 behind the edit list) was left out: one
    packet less and the first 21 ms decoded differently."""
    out = tmp_path / "o.mp4"
    code, _, err = run(capsys, "video", clip[0], out, *warp(clip))
    assert code == 0, err
    assert audio_packets(out) == audio_packets(clip[0])
    assert np.array_equal(audio_samples(out), audio_samples(clip[0]))


# --- 3. the parallax budget holds whatever the depth's units ------------------------------------


def test_given_pixels_are_held_to_the_budget(capsys, tmp_path, clip):
    """Measured disparity spanning 16 % of the width: the report warns without auto; auto
    scales it into --divergence (said) and the report finds it inside. The demo went 11 %
    behind the screen and its report called that fine."""
    import json

    maps = tmp_path / "maps"
    maps.mkdir()
    ramp = np.tile(np.linspace(1, 21, 128), (64, 1)).astype(np.uint8)  # 20 px: 15.6 %
    for i in range(6):
        Image.fromarray(ramp).save(maps / f"{i:03d}.png")
    given = ["--backend", "warp", "--depth", maps, "--depth-kind", "disparity-px", "--quiet"]
    code, _, err = run(
        capsys, "video", clip[0], tmp_path / "a.mp4", *given, "--report", tmp_path / "a.html"
    )
    assert code == 0, err
    data = json.loads((tmp_path / "a.json").read_text())
    shots = [s["shot"] for s in data["shots"]]
    assert data["overall"]["used_pct_max"] > 15 and data["overall"]["over_budget_shots"] == shots
    assert f"beyond the budget in {len(shots)} shot" in (tmp_path / "a.html").read_text()
    code, _, err = run(
        capsys,
        "video",
        clip[0],
        tmp_path / "b.mp4",
        *given,
        "--convergence",
        "auto",
        "--report",
        tmp_path / "b.html",
    )
    assert code == 0, err
    assert any("spans up to 15.6 % of the width, more than --divergence 3 %" in e for e in err)
    data = json.loads((tmp_path / "b.json").read_text())
    assert data["overall"]["used_pct_max"] == pytest.approx(3.0, abs=0.01)
    assert data["overall"]["over_budget_shots"] == [] and data["overall"]["violation_frames"] == []
    assert "beyond the budget" not in (tmp_path / "b.html").read_text()


# --- 14. stereo metadata a player reading only the bitstream sees -------------------------------


def said_by_the_bitstream(path, folder) -> list[tuple[int, int]]:
    """FFmpeg's stereo side data on the first frame of the video stream alone, remuxed to a raw
    H.264 / HEVC file (no container to say anything): (AVStereo3D type, flags) of each."""
    import struct

    with av.open(str(path)) as source:
        stream = source.streams.video[0]
        codec = stream.codec_context.name
        raw = folder / f"raw.{codec}"
        with av.open(str(raw), "w", format=codec) as out:
            copy = out.add_stream_from_template(stream)
            for packet in source.demux(stream):
                if packet.size:
                    packet.stream = copy
                    out.mux(packet)
    with av.open(str(raw)) as container:
        frame = next(container.decode(video=0))
    return [
        struct.unpack("=ii", bytes(d)[:8]) for d in frame.side_data if "STEREO3D" in str(d.type)
    ]


@pytest.mark.parametrize(
    "layout,codec,said",
    [("sbs-rl", "libx264", (1, 1)), ("sbs", "libx265", (1, 0)), ("tb", "libx265", (2, 0))],
)
def test_the_frame_packing_sei_says_the_layout(capsys, tmp_path, clip, layout, codec, said):
    """AV_STEREO3D_SIDEBYSIDE 1, TOPBOTTOM 2; flag 1: the right view first. sbs-rl and every
    HEVC output said nothing in the bitstream."""
    out = tmp_path / "o.mp4"
    argv = [*warp(clip), "--layout", layout, "--codec", codec, "--max-frames", "3"]
    code, _, err = run(capsys, "video", clip[0], out, *argv)
    assert code == 0, err
    assert said_by_the_bitstream(out, tmp_path) == [said]


# --- 13. progress: a label on every bar, no bar in a log ----------------------------------------


def test_every_bar_of_a_video_has_its_label(capsys, tmp_path, clip, monkeypatch):
    """The conversion and --convergence auto's first pass: one labelled bar each."""
    import tqdm

    from stereoconv.cli.bars import LABELS

    opened = []

    class Recorder(tqdm.tqdm):
        def __init__(self, *args, **kwargs):
            opened.append(kwargs.get("desc"))
            super().__init__(*args, **{**kwargs, "disable": True})

    monkeypatch.setattr(tqdm, "tqdm", Recorder)
    given = ["--backend", "warp", "--depth", clip[1], "--depth-kind", "disparity-px"]
    code, _, err = run(
        capsys, "video", clip[0], tmp_path / "o.mp4", *given, "--convergence", "auto"
    )
    assert code == 0, err
    assert opened == [LABELS["convergence"][0], LABELS["frames"][0]]


def test_eval_writes_no_bar_into_a_log(capsys, tmp_path):
    """stderr is not a terminal here (a log, a pipe): no carriage-return bar lines."""
    for side in ("left", "right", "disparity"):
        (tmp_path / "scenes" / side).mkdir(parents=True)
        picture = np.full((64, 128), 4, np.uint8) if side == "disparity" else numbered_frame(1)
        Image.fromarray(picture).save(tmp_path / "scenes" / side / "a.png")
    argv = ["eval", tmp_path / "scenes", "--methods", "leave-blank", "--no-lpips"]
    code = main([str(a) for a in argv] + ["--no-figures", "--out", str(tmp_path / "e")])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "\r" not in err and "scene" not in err


# --- libx265 and a stream of two frames -------------------------------------------------------


@pytest.mark.parametrize("layout,suffix", [("sbs", ".mp4"), ("spatial", ".mov")])
def test_a_two_frame_hevc_video_has_its_decode_times(capsys, tmp_path, clip, layout, suffix):
    """x265 leaves the decode times of a one- or two-frame stream unset (garbage, a few times in
    20: the MP4 muxer's "pts/dts pair unsupported", spatial video's views out of step); a last
    chunk of two frames hit it. Their decode times are now their presentation times."""
    out = tmp_path / f"o{suffix}"
    argv = [*warp(clip), "--codec", "libx265", "--layout", layout, "--max-frames", "2"]
    code, _, err = run(capsys, "video", clip[0], out, *argv)
    assert code == 0, err
    with av.open(str(out)) as container:
        times = [(p.pts, p.dts) for p in container.demux(video=0) if p.size]
    assert len(times) == 2 and all(pts == dts for pts, dts in times), times
