"""Apple spatial video (--layout spatial): two x265 streams joined into one MV-HEVC stream, read
back with FFmpeg's MV-HEVC decoder through PyAV; Apple's vexu / hfov boxes read back by our own
parser and by FFmpeg's."""

from __future__ import annotations

import av
import av.filter
import av.logging
import numpy as np
import pytest

from stereoconv.cli.main import main
from stereoconv.media.spatial import encoder, hevc, mvhevc
from stereoconv.media.spatial.vexu import read_spatial
from tests.helpers.cli import run
from tests.helpers.clips import audio_duration, decode_all, psnr, render_planes, texture, write_clip


def decode_views(path):
    """Both views of an MV-HEVC file, as FFmpeg's decoder returns them with view_ids -1: per
    access unit the base view (left), then the second view (right), both with its time."""
    frames = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.options = {"view_ids": "-1"}
        for frame in container.decode(stream):
            frames.append((frame.pts, float(frame.time), frame.to_ndarray(format="rgb24")))
    assert len(frames) % 2 == 0
    lefts, rights = frames[0::2], frames[1::2]
    assert [p for p, _, _ in lefts] == [p for p, _, _ in rights]  # one picture per view and AU
    return [f for _, _, f in lefts], [f for _, _, f in rights], [t for _, t, _ in lefts]


def ffmpeg_frame_info(path, frames: int) -> list[str]:
    """What FFmpeg itself attaches to the first decoded frames (its showinfo filter's text):
    the view id of each frame and the stereo metadata it read from the bitstream and vexu."""
    before = av.logging.get_level()
    av.logging.set_level(av.logging.INFO)
    try:
        with av.logging.Capture(True) as logs, av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.codec_context.options = {"view_ids": "-1"}
            graph = av.filter.Graph()
            source, info, sink = (
                graph.add_buffer(template=stream),
                graph.add("showinfo"),
                graph.add("buffersink"),
            )
            source.link_to(info)
            info.link_to(sink)
            graph.configure()
            for n, frame in enumerate(container.decode(stream)):
                graph.push(frame)
                graph.pull()
                if n + 1 == frames:
                    break
    finally:
        av.logging.set_level(before)
    text = "".join(message for _, name, message in logs if name == "showinfo")
    return [line.strip() for line in text.splitlines() if "side data" in line]


# --- the bitstream ---------------------------------------------------------------------------


def encode_view(frames, settings):
    cc = av.CodecContext.create("libx265", "w")
    cc.width, cc.height, cc.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
    cc.time_base = settings.time_base
    cc.options = encoder.x265_options(settings)
    packets = []
    for i, rgb in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        packets += cc.encode(frame)
    packets += cc.encode(None)
    return [(p.pts, p.dts, bytes(p)) for p in packets]


def test_spatial_views_pin_the_encoder_threads_as_every_chunk(tmp_path):
    """x265's frame threads change its output, and by default they follow the CPUs the process
    may use: the two views' encoders pin them as the main HEVC encoder does, so a spatial video
    is the same file on any machine (and a resumed or distributed job splices matching
    chunks)."""
    from fractions import Fraction

    from stereoconv.media.encode import ENCODER_THREADS, X265_FRAME_THREADS, EncoderSettings
    from stereoconv.media.video import ColourTags

    settings = EncoderSettings(
        "libx265", 20, "ultrafast", "yuv420p", 64, 96, Fraction(1, 25), Fraction(25),
        ColourTags(), "spatial",
    )  # fmt: skip
    options = encoder.x265_options(settings)
    assert options["threads"] == str(ENCODER_THREADS)
    assert X265_FRAME_THREADS in options["x265-params"].split(":")
    frames = [np.full((48, 64, 3), 20 * i, np.uint8) for i in range(6)]
    assert encode_view(frames, settings) == encode_view(frames, settings)


def decode_annexb(path, **options):
    with av.open(str(path), format="hevc") as container:
        stream = container.streams.video[0]
        stream.codec_context.options = options
        return [f.to_ndarray(format="rgb24") for f in container.decode(stream)]


def test_two_x265_streams_join_into_two_layers_losslessly(tmp_path):
    """The joined stream decodes, layer by layer, to exactly what each view's own stream
    decodes to: the layer-1 rewrite (NAL headers, parameter set ids, slice PPS id) and the
    multi-layer VPS lose nothing; a plain decode still shows the left view."""
    from fractions import Fraction
    from types import SimpleNamespace

    settings = SimpleNamespace(
        time_base=Fraction(1, 25), frame_rate=Fraction(25), crf=20, preset="ultrafast"
    )
    n = 60  # keyframes every 2 s: two IDRs, parameter sets seen twice
    left = [
        np.ascontiguousarray(np.roll(texture(64, 128, 1), 2 * i, 1).astype(np.uint8))
        for i in range(n)
    ]
    right = [
        np.ascontiguousarray(np.roll(texture(64, 128, 2), i, 0).astype(np.uint8)) for i in range(n)
    ]
    pl, pr = encode_view(left, settings), encode_view(right, settings)
    (tmp_path / "l.hevc").write_bytes(b"".join(p for _, _, p in pl))
    (tmp_path / "r.hevc").write_bytes(b"".join(p for _, _, p in pr))
    joiner = mvhevc.ViewJoiner(25.0)
    units = [joiner.join(a, b) for (_, _, a), (_, _, b) in zip(pl, pr, strict=True)]
    stream = hevc.annexb(joiner.parameter_sets) + b"".join(units)
    (tmp_path / "mv.hevc").write_bytes(stream)
    layers = [hevc.nal_layer(u) for u in hevc.split_annexb(stream)]
    assert layers.count(1) == 2 + n  # layer-1 SPS, PPS and one slice per picture

    before = av.logging.get_level()
    av.logging.set_level(av.logging.WARNING)
    try:
        with av.logging.Capture(True) as logs:
            both = decode_annexb(tmp_path / "mv.hevc", view_ids="-1")
            base = decode_annexb(tmp_path / "mv.hevc")
    finally:
        av.logging.set_level(before)
    assert not logs, logs  # no warning or error from FFmpeg's parser and decoder
    alone_left = decode_annexb(tmp_path / "l.hevc")
    alone_right = decode_annexb(tmp_path / "r.hevc")
    assert len(both) == 2 * n and len(base) == n
    assert all(np.array_equal(a, b) for a, b in zip(both[0::2], alone_left, strict=True))
    assert all(np.array_equal(a, b) for a, b in zip(both[1::2], alone_right, strict=True))
    assert all(np.array_equal(a, b) for a, b in zip(base, alone_left, strict=True))
    for decoded, own, other in zip(both[1::2], right, left, strict=True):  # layer 1: the right
        assert psnr(decoded, own) > psnr(decoded, other) + 10


def test_escaping_round_trip():
    tricky = [
        b"\x00\x00\x00\x01",
        b"\x00\x00\x03\x00\x00",
        b"\x12\x00\x00",
        b"\x00\x00\x02\x0a",
        bytes(range(4)) * 3 + b"\x00\x00",
    ]
    for rbsp in tricky:
        nal = hevc.escape(rbsp)
        assert hevc.unescape(nal) == rbsp
        # no start code or reserved pattern inside, no zero byte at the end (H.265 7.4.2)
        assert not any(nal[i] == nal[i + 1] == 0 and nal[i + 2] <= 2 for i in range(len(nal) - 2))
        assert nal[-1] != 0


def test_stacked_views_are_what_the_encoder_is_sized_for():
    import torch

    from stereoconv.layout import packed_size, stack_views
    from stereoconv.layouts import layout_of

    left, right = torch.rand(2, 1, 3, 9, 15).unbind(0)  # odd height: each view padded to 10
    stacked = stack_views(left, right)
    assert stacked.shape[-2:] == packed_size(9, 15, layout_of("spatial")) == (20, 15)
    assert torch.equal(stacked[..., :9, :], left) and torch.equal(stacked[..., 10:19, :], right)


def test_bundled_x265_has_no_multiview():
    """Why the views are joined here and not by x265: this build has no multiview support
    (docs/vision-pro.md). If a new wheel has it, this fails, and native MV-HEVC encoding can
    be tried."""
    from fractions import Fraction

    before = av.logging.get_level()
    av.logging.set_level(av.logging.WARNING)
    try:
        with av.logging.Capture(True) as logs:
            cc = av.CodecContext.create("libx265", "w")
            cc.width, cc.height, cc.pix_fmt = 64, 64, "yuv420p"
            cc.time_base = Fraction(1, 25)
            cc.options = {"x265-params": "log-level=0:num-views=2:format=1"}
            frame = av.VideoFrame(64, 64, "yuv420p")
            frame.pts = 0
            cc.encode(frame)
            cc.encode(None)
    finally:
        av.logging.set_level(before)
    messages = [m.strip() for _, name, m in logs if name == "libx265"]
    assert "Unknown option: num-views." in messages, logs
    assert "Unknown option: format." in messages, logs


# --- the command -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def planes(tmp_path_factory):
    """24 frames of a scene with known depth (a card sliding over a wall), the disparity maps,
    1 s of audio. Colours muted to a third, as in natural video: the random full-saturation
    texture alone loses 10 dB to 4:2:0 chroma, which spatial video (Multiview Main) must use."""
    folder = tmp_path_factory.mktemp("planes")
    lefts, maps = [], folder / "depth"
    maps.mkdir()
    for t in range(24):
        left, disparity = render_planes(t)
        grey = left.mean(axis=-1, keepdims=True)
        lefts.append(np.clip(grey + (left - grey) / 3, 0, 255).astype(np.uint8))
        np.save(maps / f"{t:04d}.npy", disparity)
    src = write_clip(
        folder / "planes.mkv", lefts, codec="libx264", pix_fmt="yuv444p", audio_seconds=1.0
    )
    return src, maps


def test_spatial_video_holds_both_views_with_their_timestamps(capsys, tmp_path, planes):
    src, maps = planes
    given = ["--depth", maps, "--depth-kind", "disparity-px", "--chunk-frames", "10"]
    out, ref = tmp_path / "planes.mov", tmp_path / "reference.mkv"
    code, stdout, err = run(capsys, "video", src, out, "--layout", "spatial", "--crf", "10", *given)
    assert code == 0, err
    assert "24 frames" in stdout
    # the same conversion packed side by side, losslessly: the right views that went in
    code, _, err = run(
        capsys, "video", src, ref, "--layout", "sbs", "--crf", "0", "--pix-fmt", "yuv444p", *given
    )
    assert code == 0, err

    inputs, input_times = decode_all(src)
    reference = [f[:, 160:] for f in decode_all(ref)[0]]
    lefts, rights, times = decode_views(out)
    assert len(lefts) == len(rights) == 24  # across three chunks joined by remuxing
    assert np.allclose(times, input_times, atol=1e-4)
    left_psnr = [psnr(o, i) for o, i in zip(lefts, inputs, strict=True)]
    right_psnr = [psnr(o, r) for o, r in zip(rights, reference, strict=True)]
    print(
        f"\nspatial: worst frame PSNR, left view vs input {min(left_psnr):.1f} dB, right view "
        f"vs the converter's right view {min(right_psnr):.1f} dB"
    )
    assert min(left_psnr) > 35 and min(right_psnr) > 35
    for i in range(1, 23):  # each frame is its own, in order (the card moves a pixel a frame)
        assert psnr(rights[i], reference[i]) > max(
            psnr(rights[i], reference[i - 1]), psnr(rights[i], reference[i + 1])
        )
    assert psnr(lefts[5], rights[5]) < 30  # the views are not the same picture twice
    assert abs(audio_duration(out) - 1.0) < 0.05

    info = ffmpeg_frame_info(out, 4)
    views = [line for line in info if "View ID" in line]
    assert views == [f"side data - View ID: view id: {v}" for v in (0, 1, 0, 1)], info
    stereo = [line for line in info if "Stereo 3D" in line]
    assert ["view - left" in s for s in stereo] == [True, False, True, False], stereo
    assert ["view - right" in s for s in stereo] == [False, True, False, True], stereo


def test_vexu_box_reads_back(capsys, tmp_path, planes):
    src, maps = planes
    out = tmp_path / "meta.mov"
    code, _, err = run(
        capsys,
        "video",
        src,
        out,
        "--layout",
        "spatial",
        "--max-frames",
        "3",
        "--depth",
        maps,
        "--depth-kind",
        "disparity-px",
        "--spatial-baseline",
        "63.5",
        "--spatial-hfov",
        "71.2",
    )
    assert code == 0, err
    meta = read_spatial(out)
    assert meta["entry"] == "hvc1"  # parameter sets out of band, as Apple's players want
    assert meta["children"][:2] == ["hvcC", "lhvC"] and {"vexu", "hfov"} <= set(meta["children"])
    assert meta["vexu"] == ["eyes", "proj"] and meta["eyes"] == ["stri", "hero", "cams"]
    assert meta["stri"] == {
        "has_left": True,
        "has_right": True,
        "has_additional_views": False,
        "views_reversed": False,
    }
    assert meta["hero"] == 1  # the left eye
    assert meta["baseline_um"] == 63500
    assert meta["hfov_millidegrees"] == 71200
    assert meta["projection"] == "rect"
    # FFmpeg's own mov demuxer reads the same values into the frames' stereo metadata
    stereo = [line for line in ffmpeg_frame_info(out, 1) if "Stereo 3D" in line]
    assert len(stereo) == 1, stereo
    assert "primary_eye - left" in stereo[0] and "baseline: 63500" in stereo[0], stereo
    assert "horizontal_field_of_view: 71.200" in stereo[0], stereo


def test_spatial_needs_a_mov_video(capsys, tmp_path, planes):
    src, maps = planes
    code, _, err = run(capsys, "video", src, tmp_path / "o.mp4", "--layout", "spatial")
    assert code == 1 and len(err) == 1 and ".mov" in err[0], err
    code, _, err = run(
        capsys, "video", src, tmp_path / "o.mov", "--layout", "spatial", "--spatial-hfov", "200"
    )
    assert code == 1 and len(err) == 1 and "--spatial-hfov" in err[0], err
    left, disparity = render_planes(0)
    np.save(tmp_path / "d.npy", disparity)
    from PIL import Image

    Image.fromarray(left).save(tmp_path / "l.png")
    code = main(
        [
            "image",
            str(tmp_path / "l.png"),
            str(tmp_path / "o.png"),
            "--layout",
            "spatial",
            "--depth",
            str(tmp_path / "d.npy"),
            "--depth-kind",
            "disparity-px",
            "--backend",
            "warp",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    # `image --layout` does not offer it (a preset that names it: tests/test_layouts.py)
    assert code == 2 and len(err) == 1 and "'spatial' is not one of" in err[0], err
    assert not (tmp_path / "o.png").exists()
