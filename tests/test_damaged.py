"""Damaged video: every frame FFmpeg decodes is converted at its own time, the loss is said in
one line and in the report, and --strict makes it an error that keeps the converted work."""

from __future__ import annotations

import json

import pytest

from stereoconv.cli import main
from tests.clips import decode_all
from tests.hostile import damaged_clip, ffmpeg_decodable


@pytest.fixture(scope="module")
def damaged(tmp_path_factory):
    """96 numbered frames, packets 30-32 and 60 (file order) overwritten."""
    return damaged_clip(tmp_path_factory.mktemp("damaged") / "damaged.mp4", [30, 31, 32, 60])


def convert(src, out, tiny_depth, *extra) -> int:
    return main(["video", str(src), str(out), "--backend", "warp", "--depth-model",
                 str(tiny_depth), "--chunk-frames", "24", "--quiet", *extra])  # fmt: skip


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


def broken_timestamps_clip(path, frames: int = 48, copy_to: int = 20):
    """An MPEG-TS H.264 clip whose PES packet `copy_to` carries the timestamps of the packet
    before it: a frame that repeats another's time, as muxers with broken clocks write."""
    import av

    from tests.clips import numbered_frame

    with av.open(str(path), "w", format="mpegts") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 128, 64, "yuv420p"
        stream.options = {"g": "12"}
        for i in range(frames):
            image = av.VideoFrame.from_ndarray(numbered_frame(i), format="rgb24")
            for packet in stream.encode(image):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    data = bytearray(path.read_bytes())
    starts, i = [], data.find(b"\x00\x00\x01\xe0")  # video PES headers
    while i >= 0:
        starts.append(i)
        i = data.find(b"\x00\x00\x01\xe0", i + 4)
    a, b = starts[copy_to - 1], starts[copy_to]
    length = data[a + 8]  # PES header data length: the PTS (and DTS) fields
    data[b + 9 : b + 9 + length] = data[a + 9 : a + 9 + length]
    path.write_bytes(bytes(data))
    return path


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
