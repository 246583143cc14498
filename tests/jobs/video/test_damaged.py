"""Damaged video: every frame FFmpeg decodes is converted at its own time, the loss is said in
one line and in the report, and --strict makes it an error that keeps the converted work."""

from __future__ import annotations

import json

import pytest

from stereoconv.cli.main import main
from tests.helpers.clips import decode_all
from tests.helpers.hostile import broken_timestamps_clip, damaged_clip, ffmpeg_decodable


@pytest.fixture(scope="module")
def damaged(tmp_path_factory):
    """96 numbered frames, packets 30-32 and 60 (file order) overwritten."""
    return damaged_clip(tmp_path_factory.mktemp("damaged") / "damaged.mp4", [30, 31, 32, 60])


def convert(src, out, tiny_depth, *extra) -> int:
    return main(
        [
            "video",
            str(src),
            str(out),
            "--backend",
            "warp",
            "--depth-model",
            str(tiny_depth),
            "--chunk-frames",
            "24",
            "--quiet",
            *extra,
        ]
    )


def test_every_frame_ffmpeg_decodes_is_converted_at_its_time(damaged, tmp_path, capsys, tiny_depth):
    decodable = ffmpeg_decodable(damaged)
    lost = 96 - len(decodable)
    assert 0 < lost < 10  # the damage costs FFmpeg a few frames, not the rest of the file
    report = tmp_path / "report.html"
    assert convert(damaged, tmp_path / "out.mp4", tiny_depth, "--report", str(report)) == 0
    lines = [x for x in capsys.readouterr().err.splitlines() if "damaged input" in x]
    assert len(lines) == 1 and f"{lost} of 96 frames could not be decoded" in lines[0], lines
    _, times = decode_all(tmp_path / "out.mp4")
    assert times == pytest.approx(decodable)  # a lost frame's slot keeps its time
    data = json.loads(report.with_suffix(".json").read_text())
    assert data["decoding"] == {"expected_frames": 96, "lost_frames": lost, "repeated_frames": 0}
    assert lines[0].split("stereoconv: ")[-1] in data["notes"]


def test_strict_refuses_and_keeps_the_work_for_a_rerun(damaged, tmp_path, capsys, tiny_depth):
    out = tmp_path / "out.mp4"
    assert convert(damaged, out, tiny_depth, "--strict") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("stereoconv: error: --strict: damaged input")
    assert not out.exists()
    assert convert(damaged, out, tiny_depth) == 0  # the same command without --strict
    assert "resuming: 4 of 4 chunks already converted" in capsys.readouterr().err
    assert len(decode_all(out)[0]) == len(ffmpeg_decodable(damaged))


def test_a_repeated_timestamp_drops_one_frame_and_says_so(tmp_path, capsys, tiny_depth):
    """48 frames, one carrying the time of the one before: FFmpeg decodes all 48 at 47
    distinct times; every time is converted once (the first frame at a time wins), and the
    repeat is said in one line and in the report. (MPEG-TS seeks by bytes: the first GOP must
    not be skipped.)"""
    src = broken_timestamps_clip(tmp_path / "broken.ts")
    _, times = decode_all(src)
    assert len(times) == 48 and len(set(times)) == 47
    report = tmp_path / "report.html"
    assert convert(src, tmp_path / "out.mp4", tiny_depth, "--report", str(report)) == 0
    lines = [x for x in capsys.readouterr().err.splitlines() if "damaged input" in x]
    assert len(lines) == 1 and "1 frames repeated" in lines[0], lines
    frames, out_times = decode_all(tmp_path / "out.mp4")
    assert len(frames) == 47
    data = json.loads(report.with_suffix(".json").read_text())
    assert data["decoding"] == {"expected_frames": 47, "lost_frames": 0, "repeated_frames": 1}
