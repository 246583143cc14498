"""`stereoconv video` on real and test-made clips: frames, timestamps, audio, rotation, bit
depth, stereo metadata, temporal stability, resume, bad input."""

from __future__ import annotations

import gc
import hashlib
import json
import os
from fractions import Fraction

import av
import numpy as np
import pytest

from stereoconv.media.mp4box import read_st3d, top_level_boxes
from stereoconv.report.stats import flicker, flicker_ratio
from tests.helpers.cli import run
from tests.helpers.clips import (
    audio_duration,
    bikes_path,
    decode_all,
    numbered_frame,
    psnr,
    read_number,
    render_planes,
    write_clip,
)


@pytest.fixture(scope="module")
def numbered(tmp_path_factory):
    """50 numbered frames at 25 fps with 2 s of audio."""
    path = tmp_path_factory.mktemp("clips") / "numbered.mp4"
    return write_clip(path, [numbered_frame(i) for i in range(50)], audio_seconds=2.0)


def video_info(path):
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return s.codec_context.name, s.width, s.height, s.codec_context.pix_fmt


def test_bikes_keeps_frames_timing_and_the_left_view(capsys, tmp_path, tiny_depth):
    src = bikes_path()
    out = tmp_path / "bikes_sbs.mp4"
    code, stdout, err = run(
        capsys, "video", src, out, "--depth-model", tiny_depth, "--chunk-frames", "100"
    )
    assert code == 0, err
    assert "250 frames" in stdout
    frames_in, times_in = decode_all(src)
    frames_out, times_out = decode_all(out)
    assert len(frames_out) == len(frames_in) == 250
    assert video_info(out)[1:3] == (1280, 272)
    step = times_in[1] - times_in[0]
    assert np.allclose(
        np.array(times_out) - times_out[0], np.array(times_in) - times_in[0], atol=1e-6
    )
    with av.open(str(src)) as a, av.open(str(out)) as b:
        da = float(a.streams.video[0].duration * a.streams.video[0].time_base)
        db = float(b.streams.video[0].duration * b.streams.video[0].time_base)
    assert abs(da - db) <= step + 1e-6
    worst = min(psnr(o[:, :640], i) for o, i in zip(frames_out, frames_in, strict=True))
    print(f"\nbikes: left half vs input, worst frame PSNR {worst:.1f} dB")
    assert worst > 35


def test_numbered_frames_and_audio_in_order(capsys, tmp_path, numbered, tiny_depth):
    out = tmp_path / "n.mkv"
    code, _, err = run(
        capsys, "video", numbered, out, "--depth-model", tiny_depth, "--chunk-frames", "7"
    )
    assert code == 0, err
    frames, times = decode_all(out)
    assert [read_number(f) for f in frames] == list(range(50))
    assert abs(audio_duration(out) - 2.0) < 0.05


def test_start_and_end_trim_video_and_audio(capsys, tmp_path, numbered, tiny_depth):
    out = tmp_path / "trim.mp4"
    code, _, err = run(
        capsys,
        "video",
        numbered,
        out,
        "--depth-model",
        tiny_depth,
        "--start",
        "0.4",
        "--end",
        "1.2",
        "--chunk-frames",
        "8",
    )
    assert code == 0, err
    frames, times = decode_all(out)
    assert [read_number(f) for f in frames] == list(range(10, 30))
    assert times[0] == pytest.approx(0.0, abs=1e-3)
    assert abs(audio_duration(out) - 0.8) < 0.05
    code, _, err = run(
        capsys,
        "video",
        numbered,
        tmp_path / "max.mp4",
        "--depth-model",
        tiny_depth,
        "--max-frames",
        "12",
    )
    assert code == 0, err
    assert [read_number(f) for f in decode_all(tmp_path / "max.mp4")[0]] == list(range(12))


def test_variable_frame_rate_keeps_its_timestamps(capsys, tmp_path, tiny_depth):
    tb = Fraction(1, 12800)
    pts = [0, 512, 1100, 1500, 2600, 3000, 3512, 4000, 5200, 5600, 6100, 7000, 7300, 8900]
    src = write_clip(
        tmp_path / "vfr.mp4", [numbered_frame(i) for i in range(len(pts))], pts=pts, time_base=tb
    )
    out = tmp_path / "vfr_sbs.mp4"
    code, _, err = run(
        capsys, "video", src, out, "--depth-model", tiny_depth, "--chunk-frames", "5"
    )
    assert code == 0, err
    frames, times = decode_all(out)
    assert [read_number(f) for f in frames] == list(range(len(pts)))
    assert np.allclose(times, [float(p * tb) for p in pts], atol=1e-4)


def test_rotated_phone_clip_comes_out_upright(capsys, tmp_path, tiny_depth):
    upright = [numbered_frame(i, 64, 128) for i in range(6)]
    for f in upright:
        f[40:, :20] = (255, 0, 0)  # a red corner bottom left, to see the orientation
    stored = [np.ascontiguousarray(np.rot90(f, k=-1)) for f in upright]  # as a phone stores it
    src = write_clip(tmp_path / "rot.mp4", stored, rotation=90)
    out = tmp_path / "rot_sbs.mp4"
    code, _, err = run(capsys, "video", src, out, "--depth-model", tiny_depth)
    assert code == 0, err
    frames, _ = decode_all(out)
    assert frames[0].shape == (64, 256, 3)
    assert psnr(frames[0][:, :128], upright[0]) > 30
    assert [read_number(f) for f in frames] == list(range(6))


def test_odd_size_works(capsys, tmp_path, tiny_depth):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (481, 853, 3), dtype=np.uint8) for _ in range(3)]
    # 4:2:0 video cannot be odd-sized: the odd source clip is 4:4:4
    src = write_clip(tmp_path / "odd444.mkv", frames, codec="libx264", pix_fmt="yuv444p")
    out = tmp_path / "odd_sbs.mp4"
    code, _, err = run(capsys, "video", src, out, "--depth-model", tiny_depth)
    assert code == 0, err
    _, width, height, _ = video_info(out)
    assert (width, height) == (1706, 482)  # padded by one row to be encoder-legal


def test_ten_bit_hdr_input_stays_ten_bit(capsys, tmp_path, tiny_depth):
    ramp = np.linspace(0, 65535, 96, dtype=np.uint16)
    frame = np.stack([np.tile(ramp, (64, 1))] * 3, axis=-1)
    frames = [np.ascontiguousarray(frame) for _ in range(4)]
    pq_bt2020 = (9, 16, 9, 1)  # primaries, transfer (PQ), matrix, limited range
    src = write_clip(
        tmp_path / "hdr.mkv",
        frames,
        codec="libx265",
        pix_fmt="yuv420p10le",
        colour=pq_bt2020,
        input_format="rgb48le",
    )
    out = tmp_path / "hdr_sbs.mkv"
    code, _, err = run(capsys, "video", src, out, "--depth-model", tiny_depth)
    assert code == 0, err
    assert any("10-bit" in line for line in err)  # the switch to HEVC is said
    codec, width, _, pix_fmt = video_info(out)
    assert codec == "hevc" and pix_fmt == "yuv420p10le" and width == 192
    mov = tmp_path / "hdr_sbs.mov"  # Apple's players want HEVC tagged hvc1
    assert run(capsys, "video", src, mov, "--depth-model", tiny_depth)[0] == 0
    with av.open(str(mov)) as c:
        assert c.streams.video[0].codec_tag == "hvc1"
    decoded_mov, _ = decode_all(mov, "rgb48le")
    assert len(decoded_mov) == 4
    with av.open(str(out)) as c:
        cc = c.streams.video[0].codec_context
        assert (int(cc.color_primaries), int(cc.color_trc), int(cc.colorspace)) == (9, 16, 9)
    decoded, _ = decode_all(out, "rgb48le")
    assert psnr(decoded[0][:, :96], frames[0], 65535.0) > 35


def test_stereo_metadata_in_each_container(capsys, tmp_path, numbered, tiny_depth):
    mp4, tb_mp4, mkv = tmp_path / "m.mp4", tmp_path / "tb.mp4", tmp_path / "m.mkv"
    base = ["--depth-model", tiny_depth, "--max-frames", "5"]
    assert run(capsys, "video", numbered, mp4, *base)[0] == 0
    assert run(capsys, "video", numbered, tb_mp4, "--layout", "tb", *base)[0] == 0
    assert run(capsys, "video", numbered, mkv, *base)[0] == 0
    assert read_st3d(mp4) == 2 and read_st3d(tb_mp4) == 1  # left-right, top-bottom
    with av.open(str(mkv)) as c:
        assert c.streams.video[0].metadata.get("stereo_mode") == "left_right"
    cross = tmp_path / "cross.mkv"  # eyes swapped: the right view first, and said so
    assert run(capsys, "video", numbered, cross, "--layout", "sbs-rl", *base)[0] == 0
    with av.open(str(cross)) as c:
        assert c.streams.video[0].metadata.get("stereo_mode") == "right_left"
    left_first, right_first = decode_all(mkv)[0][0], decode_all(cross)[0][0]
    assert psnr(right_first[:, 128:], left_first[:, :128]) > 35  # the input is the left eye
    with av.open(str(mp4)) as c:  # H.264 frame-packing SEI, exported as frame side data
        frame = next(c.decode(video=0))
        kinds = [str(sd.type) for sd in frame.side_data]
        assert any("STEREO3D" in k.upper() for k in kinds), kinds


def test_names_in_a_folder_carry_the_stereo_tag(capsys, tmp_path, numbered, tiny_depth):
    base = ["--depth-model", tiny_depth, "--max-frames", "2"]
    folder = tmp_path / "out"
    folder.mkdir()
    assert run(capsys, "video", numbered, folder, *base)[0] == 0  # an existing folder
    assert run(capsys, "video", numbered, f"{tmp_path}/new/", "--layout", "half-tb", *base)[0] == 0
    assert [p.name for p in folder.iterdir()] == ["numbered_LR.mp4"]
    assert [p.name for p in (tmp_path / "new").iterdir()] == ["numbered_3dv.mp4"]
    code, _, err = run(
        capsys, "video", numbered, folder, "--name-tag", "_SBS", "--layout", "sbs", *base
    )
    assert code == 0 and (folder / "numbered_SBS.mp4").is_file()
    # a file name the user gave is kept as given, whatever the tag
    assert run(capsys, "video", numbered, tmp_path / "mine.mkv", *base)[0] == 0
    assert (tmp_path / "mine.mkv").is_file() and not list(tmp_path.glob("mine_*"))


@pytest.mark.parametrize("suffix", [".mkv", ".mp4", ".mov"])
def test_frame_rate_is_the_source_rate_and_mp4_starts_fast(
    capsys, tmp_path, numbered, tiny_depth, suffix
):
    out = tmp_path / f"rate{suffix}"
    code, _, err = run(
        capsys,
        "video",
        numbered,
        out,
        "--depth-model",
        tiny_depth,
        "--max-frames",
        "6",
        "--chunk-frames",
        "4",
    )
    assert code == 0, err
    with av.open(str(out)) as c:  # Matroska's DefaultDuration once said 12800 fps here
        assert c.streams.video[0].average_rate == 25
    if suffix != ".mkv":  # the index first, so that a player streaming the file starts at once
        order = [kind for kind, _, _ in top_level_boxes(out)]
        assert order.index(b"moov") < order.index(b"mdat"), order
        assert read_st3d(out) == 2  # still found, and the frames still decode (offsets moved)
        assert len(decode_all(out)[0]) == 6


def test_known_depth_scene_is_stable_and_matches_the_right_eye(capsys, tmp_path):
    frames = 24
    lefts, rights, maps = [], [], tmp_path / "depth"
    maps.mkdir()
    for t in range(frames):
        left, disparity = render_planes(t)
        lefts.append(left)
        rights.append(render_planes(t, eye="right")[0])
        np.save(maps / f"{t:04d}.npy", disparity)
    src = write_clip(tmp_path / "planes.mkv", lefts, codec="libx264", pix_fmt="yuv444p")
    out = tmp_path / "planes_sbs.mkv"
    code, stdout, err = run(
        capsys,
        "video",
        src,
        out,
        "--depth",
        maps,
        "--depth-kind",
        "disparity-px",
        "--crf",
        "4",
        "--pix-fmt",
        "yuv444p",
        "--chunk-frames",
        "10",
    )
    assert code == 0, err
    decoded, _ = decode_all(out)
    left_out = np.stack([f[:, :160] for f in decoded])
    right_out = np.stack([f[:, 160:] for f in decoded])
    ratio = flicker_ratio(flicker(left_out), flicker(right_out), float("inf"))
    # pixels the left eye also sees: away from the right border and from the strip the card
    # uncovers (7 px right of it, rows 20..75), which the warp can only invent
    seen = np.ones((96, 160), bool)
    seen[:, 150:] = False
    everywhere = []
    for t, (r, g) in enumerate(zip(right_out, rights, strict=True)):
        seen_t = seen.copy()
        seen_t[20:76, 30 + t + 51 - 2 : 30 + t + 60 + 2] = False
        everywhere.append(psnr(r[:, :150], g[:, :150]))
        seen_psnr = psnr(r[seen_t], g[seen_t])
        assert seen_psnr > 35, (t, seen_psnr)
    print(
        f"\nplanes: flicker right/left {ratio:.3f}; right view vs the rendered right eye: "
        f"{np.mean(everywhere):.1f} dB overall, > 35 dB where the left eye sees the surface"
    )
    assert ratio <= 1.1


def test_resume_converts_only_missing_chunks(capsys, tmp_path, numbered, tiny_depth, monkeypatch):
    """Chunks done are kept, also when the rerun asks for another --batch-size (it changes
    speed, not frames: stereoconv.config.pixel_settings, as the photo library decides)."""
    import stereoconv.runner.local as video_job  # where convert_video finds convert_chunk

    out = tmp_path / "resume.mp4"
    args = ["video", numbered, out, "--depth-model", tiny_depth, "--chunk-frames", "10"]
    real = video_job.convert_chunk
    calls = []

    def failing(job, converter, chunk, progress):
        if chunk.index == 3:
            raise KeyboardInterrupt  # as Ctrl-C in the middle of the job
        calls.append(chunk.index)
        return real(job, converter, chunk, progress)

    monkeypatch.setattr(video_job, "convert_chunk", failing)
    code, _, err = run(capsys, *args)
    assert code == 130 and "resume" in err[-1]
    assert not out.exists()
    work = tmp_path / ".resume.mp4.stereoconv-work"
    assert sorted(p.name for p in work.glob("chunk-*.mp4")) == [
        f"chunk-{i:06d}.mp4" for i in range(3)
    ]
    assert not list(work.glob(".*partial*"))  # the interrupted chunk left nothing behind

    calls.clear()
    monkeypatch.setattr(
        video_job, "convert_chunk", lambda *a, **k: (calls.append(a[2].index), real(*a, **k))[1]
    )
    code, _, err = run(capsys, *args, "--batch-size", "3")
    assert code == 0, err
    assert calls == [3, 4] and any("resuming: 3 of 5" in line for line in err)
    assert [read_number(f) for f in decode_all(out)[0]] == list(range(50))
    assert not work.exists()


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_bad_inputs(capsys, tmp_path, numbered):
    def fails(*argv, text):
        code, _, err = run(capsys, "video", *argv)
        assert code != 0 and len(err) == 1 and text in err[0], err

    fails(tmp_path / "none.mp4", tmp_path / "o.mp4", text="input not found")
    (tmp_path / "text.mp4").write_text("not a video at all")
    fails(tmp_path / "text.mp4", tmp_path / "o.mp4", text="cannot read video")
    before = sha(numbered)
    fails(numbered, numbered, "--overwrite", text="is the input")
    assert sha(numbered) == before
    fails(numbered, tmp_path / "o.avi", text="unsupported output container")
    fails(numbered, tmp_path / "o.mp4", "--layout", "pair", text="pair")
    # audio only
    with av.open(str(tmp_path / "audio.m4a"), "w") as out:
        stream = out.add_stream("aac", rate=48000)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, 1024), np.float32), format="flt", layout="mono"
        )
        frame.sample_rate, frame.pts = 48000, 0
        out.mux(stream.encode(frame))
        out.mux(stream.encode())
    fails(tmp_path / "audio.m4a", tmp_path / "o.mp4", text="no video stream")
    assert not (tmp_path / "o.mp4").exists()


def test_truncated_video_converts_what_decodes_and_says_so(capsys, tmp_path, tiny_depth):
    src = write_clip(tmp_path / "full.mkv", [numbered_frame(i) for i in range(40)])
    data = src.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    out = tmp_path / "cut_sbs.mp4"
    code, stdout, err = run(capsys, "video", cut, out, "--depth-model", tiny_depth)
    assert code == 0, err
    numbers = [read_number(f) for f in decode_all(out)[0]]
    # the decodable frames, in order, none twice; frames whose data was cut are missing
    assert 0 < len(numbers) < 40 and numbers == sorted(set(numbers)) and numbers[0] == 0
    assert f"{len(numbers)} frames" in stdout
    assert any("looks truncated" in line for line in err), err


def test_work_folder_of_another_job_is_not_reused(capsys, tmp_path, numbered, tiny_depth):
    out = tmp_path / "x.mp4"
    work = tmp_path / ".x.mp4.stereoconv-work"
    work.mkdir()
    (work / "job.json").write_text(json.dumps({"fingerprint": "someone else"}))
    code, _, err = run(capsys, "video", numbered, out, "--depth-model", tiny_depth)
    assert code == 1 and "another job" in err[0]
    code, _, err = run(
        capsys,
        "video",
        numbered,
        out,
        "--depth-model",
        tiny_depth,
        "--overwrite",
        "--max-frames",
        "3",
    )
    assert code == 0, err


def resident_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads Linux's /proc")
def test_memory_stays_flat_chunk_after_chunk(tmp_path, tiny_depth):
    """A long job holds no more memory at its end than after its first chunks: the resident
    memory at the end of each of 30 chunks (the whole job through the local runner, join
    included, tiny depth model) has no upward trend.
    (Peak RSS is no such measure: it is the highest of the chunks' transient peaks, which
    rises with their number even when nothing is kept.)"""
    import statistics

    import torch

    from stereoconv.config import VideoOptions, build_config
    from stereoconv.converter import StereoConverter
    from stereoconv.jobs.video.job import open_workdir, prepare_job
    from stereoconv.runner.local import convert_video

    src = write_clip(tmp_path / "c.mp4", [numbered_frame(i) for i in range(900)])
    config = build_config(backend="warp", depth_model=str(tiny_depth))
    converter = StereoConverter(config, torch.device("cpu"))
    # the chunks' memory is measured: the shot detector's first pass (a window of frames at a
    # time) would add minutes of CPU here, not memory
    options = VideoOptions(chunk_frames=30, preset="ultrafast", shots="threshold")
    job = prepare_job(config, src, tmp_path / "o.mp4", options, notify=print)
    open_workdir(job, False, print)
    after, done = [], [0]

    def at_chunk_end(stage: str, frames: int, total: int | None) -> None:  # a batch at a time
        done[0] += frames
        if done[0] % 30 == 0:
            gc.collect()
            after.append(resident_mib())

    _, totals = convert_video(converter, job, at_chunk_end)
    assert totals.frames == 900 and len(after) == 30
    early, late = statistics.mean(after[2:12]), statistics.mean(after[-10:])
    print(f"\nresident after chunks 3-12: {early:.1f} MiB, after the last 10: {late:.1f} MiB")
    # chunks 3-12 and 21-30 are 18 chunks apart: a leak of 0.5 MiB a chunk is about 9 MiB
    # (+11.6 and +13.3 measured with one injected); the noise between runs is a few MiB
    assert late - early < 6
