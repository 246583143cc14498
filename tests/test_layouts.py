"""The layout records (stereoconv/layouts.py): each record's values are what the code makes of
them. The stereo metadata a record names is read back from the files the real encoders and
joiners write, by FFmpeg (through PyAV's frame side data) and by our box parser, and what it
says (side by side or top-bottom, which eye first) is where layout.pack puts each view."""

from __future__ import annotations

import struct
from fractions import Fraction

import av
import numpy as np
import pytest
import torch
from PIL import Image

from stereoconv.cli.main import main
from stereoconv.config import LAYOUTS
from stereoconv.layout import VR180_HFOV, pack, packed_size
from stereoconv.layouts import ENCODERS, PACKINGS, RECORDS, Layout
from stereoconv.media.encode import ChunkEncoder, EncoderSettings, legal_size
from stereoconv.media.mp4box import VR180_BOUNDS, read_equi_bounds, read_st3d
from stereoconv.media.spatial.vexu import read_spatial
from stereoconv.media.video import ColourTags
from tests.helpers.clips import numbered_frame, write_clip

# What each format's values mean, from their specifications: (packing, right eye first)
ST3D = {1: ("top-bottom", False), 2: ("side-by-side", False)}  # Spherical Video V2 RFC
MATROSKA = {  # Matroska StereoMode, as FFmpeg names it
    "left_right": ("side-by-side", False),
    "right_left": ("side-by-side", True),
    "top_bottom": ("top-bottom", False),
}
# the frame-packing SEI of H.264 and HEVC: (frame_packing_type, content_interpretation_type)
SEI = {
    (3, 1): ("side-by-side", False),
    (3, 2): ("side-by-side", True),
    (4, 1): ("top-bottom", False),
    (4, 2): ("top-bottom", True),
}
# FFmpeg's AVStereo3D: type (AV_STEREO3D_SIDEBYSIDE 1, _TOPBOTTOM 2), flags (_FLAG_INVERT 1)
AV_STEREO3D = {1: "side-by-side", 2: "top-bottom"}
AV_SPHERICAL_EQUIRECTANGULAR_TILE = 2  # equirectangular with bounds: part of the sphere

SIGNALLED = [r for r in RECORDS if (r.st3d, r.matroska, r.frame_packing) != (None, None, None)]
VIDEO = [r for r in RECORDS if r.files == 1]  # every layout a video can be written in
PACKED_VIDEO = [r for r in VIDEO if r.encoder == "packed"]


def names(layouts: list[Layout]) -> list[str]:
    return [layout.name for layout in layouts]


def sei(layout: Layout) -> tuple[int, int] | None:
    """The SEI values of a record (media/framepacking.py: right_first is interpretation 2)."""
    if layout.frame_packing is None:
        return None
    return layout.frame_packing, 2 if layout.right_first else 1


def test_the_records_are_the_command_lines_choices():
    assert LAYOUTS == tuple(names(RECORDS)) and len(set(LAYOUTS)) == len(LAYOUTS)
    assert {r.packing for r in RECORDS} == set(PACKINGS)
    assert {r.encoder for r in RECORDS} == set(ENCODERS)
    tags = [r.tag for r in RECORDS if r.tag]
    assert len(set(tags)) == len(tags)  # each tag names one layout
    for r in RECORDS:  # a video-only layout says which container holds it
        assert not r.video_only or r.container is not None, r.name


def claim(layout: Layout) -> tuple[str, bool]:
    """What the layout's own packing says: (packing, right eye first)."""
    return layout.packing, layout.right_first


@pytest.mark.parametrize("layout", SIGNALLED, ids=names(SIGNALLED))
def test_each_metadata_value_says_where_pack_puts_each_view(layout):
    pairs = ((ST3D, layout.st3d), (MATROSKA, layout.matroska), (SEI, sei(layout)))
    said = [table[value] for table, value in pairs if value is not None]
    assert said and all(s == claim(layout) for s in said), said
    white, black = torch.ones(1, 3, 8, 12), torch.zeros(1, 3, 8, 12)
    packed = pack(white, black, layout, VR180_HFOV)[0]
    axis = -1 if layout.packing == "side-by-side" else -2
    first, second = (half.mean().item() for half in packed.chunk(2, dim=axis))
    assert first != second and (first < second) == layout.right_first, (first, second)


def stereo3d(frame: av.VideoFrame) -> list[tuple[str, bool]]:
    """FFmpeg's stereo side data on a decoded frame: (packing, right eye first) of each."""
    out = []
    for data in frame.side_data:
        if "STEREO3D" in str(data.type).upper():
            kind, flags = struct.unpack("=ii", bytes(data)[:8])
            out.append((AV_STEREO3D.get(kind, f"type {kind}"), bool(flags & 1)))
    return out


def spherical(frame: av.VideoFrame) -> tuple[int, ...] | None:
    """FFmpeg's spherical side data: projection, yaw, pitch, roll, bounds left, top, right,
    bottom (0.32 fixed point); None without it."""
    for data in frame.side_data:
        if "SPHERICAL" in str(data.type).upper():
            return struct.unpack("=I3i4I", bytes(data)[:32])
    return None


def first_frame(path) -> av.VideoFrame:
    with av.open(str(path)) as container:
        return next(container.decode(video=0))


@pytest.mark.parametrize("codec", ["libx264", "libx265"])
@pytest.mark.parametrize("layout", PACKED_VIDEO, ids=names(PACKED_VIDEO))
def test_frame_packing_sei_is_the_records(tmp_path, layout, codec):
    """What FFmpeg's H.264 and HEVC decoders read from the chunk encoder's frame-packing SEI
    (the chunk has no st3d) is where pack puts each view: sbs-rl's right view first too.
    Views of 64 x 96: x265 corrupts its heap on frames as small as 16 x 48."""
    height, width = legal_size(*packed_size(64, 96, layout))
    settings = EncoderSettings(
        codec,
        30,
        "ultrafast",
        "yuv420p",
        width,
        height,
        Fraction(1, 25),
        Fraction(25),
        ColourTags(),
        layout,
    )
    encoder = ChunkEncoder(tmp_path / "chunk.mp4", settings)
    encoder.write(np.zeros((3, height, width, 3), np.uint8), [0, 1, 2])
    assert encoder.close() == 3
    said = stereo3d(first_frame(tmp_path / "chunk.mp4"))
    assert said == ([claim(layout)] if layout.frame_packing else []), said


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    # three frames (libx265's unset decode times of a two-frame stream: media/encode.timed, and
    # tests/cli/test_newcomer.py)
    folder = tmp_path_factory.mktemp("clip")
    return write_clip(folder / "clip.mp4", [numbered_frame(i, 32, 64) for i in range(3)])


def convert(capsys, clip, out, layout: Layout, tiny_depth) -> None:
    argv = ["video", clip, out, "--layout", layout.name, "--quiet", "--backend", "warp"]
    code = main([str(a) for a in argv] + ["--depth-model", str(tiny_depth)])
    assert code == 0, capsys.readouterr().err


def said_by_ffmpeg(frame: av.VideoFrame, layout: Layout, meaning: dict, value) -> None:
    """FFmpeg's stereo side data on the frame (what it read from the container's metadata
    `value` and from the stream's frame-packing SEI) says what the record says, and nothing
    else."""
    expected = {meaning[value]} if value is not None else set()
    if layout.frame_packing is not None:
        expected.add(SEI[sei(layout)])
    assert set(stereo3d(frame)) == expected, stereo3d(frame)


@pytest.mark.parametrize("layout", VIDEO, ids=names(VIDEO))
def test_mp4_and_mov_carry_the_records_st3d_and_projection(
    capsys, tmp_path, clip, layout, tiny_depth
):
    out = tmp_path / f"out{layout.container or '.mp4'}"
    convert(capsys, clip, out, layout, tiny_depth)
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        size = stream.height, stream.width
    height, width = legal_size(*packed_size(32, 64, layout))
    if layout.encoder == "mv-hevc":  # two layers, each one of the stacked views
        height //= 2
    assert size == (height, width)
    on_sphere = layout.projection == "equirect-180"
    assert read_st3d(out) == layout.st3d  # our parser
    assert read_equi_bounds(out) == (VR180_BOUNDS if on_sphere else None)
    assert ("vexu" in read_spatial(out)["children"]) == (layout.encoder == "mv-hevc")
    if layout.encoder == "mv-hevc":  # FFmpeg's reading of vexu: test_spatial.py (PyAV cannot
        return  # name the side data of MV-HEVC frames)
    frame = first_frame(out)  # FFmpeg's reading
    said_by_ffmpeg(frame, layout, ST3D, layout.st3d)
    mapping = spherical(frame)
    if on_sphere:  # 180 degrees: a quarter of the sphere's width cut from either side
        assert mapping is not None and mapping[0] == AV_SPHERICAL_EQUIRECTANGULAR_TILE
        assert mapping[4:] == (2**30, 0, 2**30, 0), mapping
    else:
        assert mapping is None and layout.projection is None


@pytest.mark.parametrize("layout", PACKED_VIDEO, ids=names(PACKED_VIDEO))
def test_matroska_carries_the_records_stereo_mode_and_projection(
    capsys, tmp_path, clip, layout, tiny_depth
):
    out = tmp_path / "out.mkv"
    convert(capsys, clip, out, layout, tiny_depth)
    with av.open(str(out)) as container:
        assert container.streams.video[0].metadata.get("stereo_mode") == layout.matroska
    frame = first_frame(out)
    said_by_ffmpeg(frame, layout, MATROSKA, layout.matroska)
    mapping = spherical(frame)  # Matroska's Projection, as FFmpeg reads it
    if layout.projection == "equirect-180":
        assert mapping is not None and mapping[0] == AV_SPHERICAL_EQUIRECTANGULAR_TILE
        assert mapping[4:] == (2**30, 0, 2**30, 0), mapping
    else:
        assert mapping is None


def refused(capsys, argv: list, tiny_depth, status: int = 1) -> str:
    code = main([str(a) for a in argv] + ["--backend", "warp", "--depth-model", str(tiny_depth)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == status and len(err) == 1, err
    return err[0]


def test_what_a_record_cannot_make_is_refused(capsys, tmp_path, clip, tiny_depth):
    """A command's --layout offers only what it makes (a usage error, status 2, for the rest);
    a preset that names another layout is refused by what the record says."""
    picture = tmp_path / "p.png"
    Image.fromarray(numbered_frame(0, 32, 64)).save(picture)

    def both_ways(argv: list, layout) -> str:
        line = refused(capsys, [*argv, "--layout", layout.name], tiny_depth, status=2)
        assert f"'{layout.name}' is not one of" in line, line
        preset = tmp_path / f"{layout.name}.toml"
        preset.write_text(f'layout = "{layout.name}"\n')
        return refused(capsys, [*argv, "--preset", preset], tiny_depth)

    for layout in RECORDS:
        if layout.video_only:  # no picture, no preview; only its container
            line = both_ways(["image", picture, tmp_path / "o.png"], layout)
            assert "`stereoconv video`" in line, line
            line = refused(
                capsys, ["video", clip, tmp_path / "o.mkv", "--layout", layout.name], tiny_depth
            )
            assert layout.container in line, line
        if layout.files > 1:  # two files a picture: no video, no preview
            line = both_ways(["video", clip, tmp_path / "o.mp4"], layout)
            assert "two files" in line, line
        if layout.video_only or layout.files > 1:
            argv = ["preview", clip, tmp_path / "s.png", "--frames", "1"]
            assert "a preview shows packed frames" in both_ways(argv, layout)
    assert not list(tmp_path.glob("o*")) and not (tmp_path / "s.png").exists()
