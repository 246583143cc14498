"""Output caps: --max-size (scaled down, aspect kept, even sides) for videos, photos, photo
libraries and generated pairs, and --max-fps for videos (frames dropped, the kept ones at their
own times, audio in sync), read back with PyAV and Pillow from real files."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest
from PIL import Image

from stereoconv.cli.main import main
from stereoconv.layout import view_size_within
from stereoconv.layouts import layout_of
from stereoconv.media.video import RateCap, cap_frame_rate
from tests.helpers.clips import (
    audio_duration,
    decode_all,
    numbered_frame,
    psnr,
    read_number,
    write_clip,
)


def run(capsys, *argv):
    code = main([str(a) for a in argv] + ["--backend", "warp", "--quiet"])
    return code, capsys.readouterr().err.strip().splitlines()


def run_photo(capsys, *argv):
    """`image` has no --quiet."""
    code = main([str(a) for a in argv] + ["--backend", "warp"])
    return code, capsys.readouterr().err.strip().splitlines()


@pytest.fixture(scope="module")
def fifty_fps(tmp_path_factory):
    """40 numbered frames at 50 fps (0.8 s) with 0.8 s of audio."""
    path = tmp_path_factory.mktemp("caps") / "fifty.mp4"
    frames = [numbered_frame(i) for i in range(40)]
    return write_clip(path, frames, rate=50, audio_seconds=0.8)


def test_cap_keeps_a_steady_cadence():
    """A steady source keeps every k-th frame (a steady rate, said where it is not the cap);
    a variable-rate one the first frame of each 1 / cap slot."""
    tb = Fraction(1, 600)
    sixty = [i * 10 for i in range(12)]  # 60 fps
    cap = cap_frame_rate(sixty, tb, 30, Fraction(60))
    assert (cap.kept, cap.rate, cap.note) == (sixty[::2], 30, None)
    thirty = [i * 20 for i in range(10)]
    cap = cap_frame_rate(thirty, tb, 24, Fraction(30))  # every other: 15 fps, said
    assert (cap.kept, cap.rate) == (thirty[::2], 15)
    assert "keeps a steady cadence at 15 fps (every 2nd frame)" in cap.note
    assert cap_frame_rate(thirty, tb, 30, Fraction(30)).kept == thirty
    assert cap_frame_rate(thirty, tb, None, Fraction(30)) == RateCap(thirty, Fraction(30))
    ntsc = [round(i * 1001 / 30000 * 1000) for i in range(30)]  # 29.97 fps in milliseconds
    assert cap_frame_rate(ntsc, Fraction(1, 1000), 29.97, None).kept == ntsc
    variable = [0, 20, 30, 60, 70, 100, 140, 150]  # 60 fps with gaps
    cap = cap_frame_rate(variable, tb, 30, None)
    assert (cap.kept, cap.rate) == ([0, 20, 60, 100, 140], 30)


def test_view_size_keeps_aspect_and_even_sides():
    sbs, tb = layout_of("sbs"), layout_of("tb")
    assert view_size_within(1080, 1920, sbs, None) == (1080, 1920)
    assert view_size_within(1080, 1920, sbs, 4096) == (1080, 1920)  # 3840 fits
    h, w = view_size_within(2160, 3840, sbs, 4096)
    assert (h, w) == (1152, 2048) and 2 * w <= 4096
    h, w = view_size_within(1081, 1921, tb, 1000)
    assert h % 2 == 0 and w % 2 == 0 and 2 * h <= 1000 and abs(w / h - 1921 / 1081) < 0.01
    for name in ("vr180", "half-sbs", "spatial", "anaglyph"):
        from stereoconv.layout import packed_size

        layout = layout_of(name)
        h, w = view_size_within(720, 1280, layout, 1000)
        assert max(packed_size(h, w, layout)) <= 1000 and abs(w / h - 1280 / 720) < 0.02


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_max_fps_halves_the_rate_and_keeps_audio_in_sync(
    capsys, tmp_path, fifty_fps, tiny_depth, suffix
):
    out = tmp_path / f"capped{suffix}"
    code, err = run(
        capsys,
        "video",
        fifty_fps,
        out,
        "--depth-model",
        tiny_depth,
        "--max-fps",
        "25",
        "--chunk-frames",
        "7",
    )
    assert code == 0, err
    frames, times = decode_all(out)
    assert [read_number(f) for f in frames] == list(range(0, 40, 2))
    assert times == pytest.approx([i * 0.04 for i in range(20)], abs=1e-3)
    with av.open(str(out)) as c:
        assert c.streams.video[0].average_rate == 25
    assert abs(audio_duration(out) - 0.8) < 0.05  # the whole sound, from the same start


def test_max_fps_takes_each_kept_frames_own_depth_map(capsys, tmp_path, fifty_fps):
    """--depth at the input's rate: a frame kept by --max-fps gets its own map, not the next
    one in the folder. Even frames' maps say 4 px, odd frames' 16 px: capped to 25 fps, every
    frame must come out as the uncapped run's even frames do."""
    maps = tmp_path / "maps"
    maps.mkdir()
    for i in range(40):
        Image.fromarray(np.full((64, 128), 16 if i % 2 else 4, np.uint8)).save(
            maps / f"{i:03d}.png"
        )
    given = ["--depth", maps, "--depth-kind", "disparity-px", "--chunk-frames", "7"]
    code, err = run(capsys, "video", fifty_fps, tmp_path / "all.mp4", *given)
    assert code == 0, err
    code, err = run(capsys, "video", fifty_fps, tmp_path / "cap.mp4", *given, "--max-fps", "25")
    assert code == 0, err
    every, capped = decode_all(tmp_path / "all.mp4")[0], decode_all(tmp_path / "cap.mp4")[0]
    assert [read_number(f) for f in capped] == list(range(0, 40, 2))
    for j, frame in enumerate(capped):
        own, next_one = every[2 * j][:, 128:], every[min(2 * j + 1, 39)][:, 128:]
        assert psnr(frame[:, 128:], own) > psnr(frame[:, 128:], next_one) + 3, j
    for late in sorted(maps.iterdir())[30:]:  # maps for 30 frames; the capped range spans 39
        late.unlink()
    code, err = run(capsys, "video", fifty_fps, tmp_path / "x.mp4", *given, "--max-fps", "25")
    assert code == 1 and len(err) == 1, err
    assert "has 30 frames from the start of the range, fewer than the 39 input frames" in err[0]


def test_a_depth_video_is_read_like_a_folder_of_maps(capsys, tmp_path, fifty_fps, monkeypatch):
    """The same maps as a lossless video: the same frames out, with --max-fps and in chunks;
    the depth video's timestamps are read once for the job, not once per chunk, and its frames
    decoded in one pass a chunk, not from a keyframe again for every batch."""
    import stereoconv.disparity.maps as maps_module

    levels = [16 if i % 2 else 4 for i in range(40)]
    folder, video = tmp_path / "maps", tmp_path / "maps.mkv"
    folder.mkdir()
    with av.open(str(video), "w") as out:
        stream = out.add_stream("ffv1", rate=50)
        stream.width, stream.height, stream.pix_fmt = 128, 64, "gray"
        for i, level in enumerate(levels):
            Image.fromarray(np.full((64, 128), level, np.uint8)).save(folder / f"{i:03d}.png")
            frame = av.VideoFrame.from_ndarray(np.full((64, 128), level, np.uint8), format="gray")
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    reads, decodes = [], []
    read_timestamps, decode_range = maps_module.frame_timestamps, maps_module.decode_range
    monkeypatch.setattr(
        maps_module, "frame_timestamps", lambda *a, **k: reads.append(a) or read_timestamps(*a, **k)
    )
    monkeypatch.setattr(
        maps_module, "decode_range", lambda *a, **k: decodes.append(a) or decode_range(*a, **k)
    )
    given = ["--depth-kind", "disparity-px", "--chunk-frames", "7", "--max-fps", "25"]
    given += ["--batch-size", "2"]
    for depth, out in ((folder, "from-folder.mp4"), (video, "from-video.mp4")):
        code, err = run(capsys, "video", fifty_fps, tmp_path / out, "--depth", depth, *given)
        assert code == 0, err
    assert len(reads) == 1  # 3 chunks, one read
    assert len(decodes) == 3  # one pass over the maps a chunk, not one a batch of 2
    a, b = decode_all(tmp_path / "from-folder.mp4")[0], decode_all(tmp_path / "from-video.mp4")[0]
    assert len(a) == len(b) == 20
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_max_fps_above_the_source_rate_changes_nothing(capsys, tmp_path, fifty_fps, tiny_depth):
    out = tmp_path / "same.mp4"
    code, err = run(
        capsys,
        "video",
        fifty_fps,
        out,
        "--depth-model",
        tiny_depth,
        "--max-fps",
        "60",
        "--max-frames",
        "6",
    )
    assert code == 0, err
    assert [read_number(f) for f in decode_all(out)[0]] == list(range(6))
    with av.open(str(out)) as c:
        assert c.streams.video[0].average_rate == 50


def test_max_size_scales_the_output_down(capsys, tmp_path, fifty_fps, tiny_depth):
    out = tmp_path / "small.mp4"
    code, err = run(
        capsys,
        "video",
        fifty_fps,
        out,
        "--depth-model",
        tiny_depth,
        "--max-size",
        "100",
        "--max-frames",
        "4",
    )
    assert code == 0, err
    with av.open(str(out)) as c:
        stream = c.streams.video[0]
        assert (stream.width, stream.height) == (100, 24)  # views 50 x 24 of 128 x 64: even
    assert len(decode_all(out)[0]) == 4


def test_bad_caps_are_one_line(capsys, tmp_path, fifty_fps):
    for option, value, text in (
        ("--max-fps", "0", "--max-fps must be > 0"),
        ("--max-size", "8", "--max-size must be >= 16"),
    ):
        code, err = run(capsys, "video", fifty_fps, tmp_path / "x.mp4", option, value)
        assert code == 1 and len(err) == 1 and text in err[0], err


def test_max_size_caps_photos_and_libraries(capsys, tmp_path, tiny_depth):
    """A 300 x 200 photo: SBS of 600 x 200 capped to 120 on its long side; a pair layout caps
    each view; a library caps every photo, and the cap is part of its settings."""
    rng = np.random.default_rng(0)
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(rng.integers(0, 256, (200, 300, 3), dtype=np.uint8)).save(photos / "a.png")
    Image.fromarray(rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)).save(photos / "b.png")
    depth = ["--depth-model", tiny_depth]
    code, err = run_photo(
        capsys, "image", photos / "a.png", tmp_path / "a_sbs.png", *depth, "--max-size", "120"
    )
    assert code == 0, err
    assert Image.open(tmp_path / "a_sbs.png").size == (120, 40)  # views 60 x 40
    code, err = run_photo(
        capsys,
        "image",
        photos / "a.png",
        tmp_path / "a.png",
        *depth,
        "--max-size",
        "120",
        "--layout",
        "pair",
    )
    assert code == 0, err
    assert (
        Image.open(tmp_path / "a_L.png").size == Image.open(tmp_path / "a_R.png").size == (120, 80)
    )
    code, err = run(capsys, "images", photos, tmp_path / "out", *depth, "--max-size", "120")
    assert code == 0, err
    sizes = {p.name: Image.open(p).size for p in (tmp_path / "out").iterdir() if p.suffix == ".png"}
    assert sizes == {"a_LR.png": (120, 40), "b_LR.png": (120, 40)}, sizes
    # another cap is another setting: the outputs made with 120 are not taken as done
    code, err = run(capsys, "images", photos, tmp_path / "out", *depth, "--max-size", "200")
    assert code == 1 and "left alone" in " ".join(err), err
