"""The stereo layouts, one record each: how the two views are stored, what the file's name and
metadata tell players, and which encoder writes a video of it.

A leaf (no torch): config.LAYOUTS, the command line's choices, is the records' names. Every
other module reads a layout's record instead of testing its name: layout.py makes its pixels
(arrange, pack, packed_size), media/ writes its metadata, jobs/ check what it can make.
"""

from __future__ import annotations

from dataclasses import dataclass

from stereoconv.errors import UserError

# How the two views become pictures (layout.pack): side by side or one above the other in one
# frame; mixed into one anaglyph; each its own file; or stacked, each of even height, as the
# MV-HEVC encoder of spatial video takes them (it encodes each view as a layer of its own).
PACKINGS = ("side-by-side", "top-bottom", "anaglyph", "two-files", "stacked")
# The video encoders (jobs/video/chunk.open_encoder): one H.264 / HEVC stream of packed frames
# (media/encode.py), or Apple's two-layer MV-HEVC (media/spatial/, 8-bit 4:2:0 x265, a vexu box)
ENCODERS = ("packed", "mv-hevc")


@dataclass(frozen=True)
class Layout:
    """One stereo layout. The metadata values are None where the format has no word for the
    layout: st3d says left first, so sbs-rl has none; the frame-packing SEI of H.264 and HEVC
    says which view comes first (media/framepacking.py: right_first)."""

    name: str  # the --layout value
    about: str  # what it is, in words, for messages
    packing: str  # one of PACKINGS
    half: bool = False  # each view squeezed to half its size along the packing's axis
    right_first: bool = False  # the right eye's view first (cross-eyed viewing)
    # "equirect-180": each view put on the front half of a sphere (layout.equirect_180) before
    # packing; in MP4 / MOV an sv3d box says so (media/mp4box.py)
    projection: str | None = None
    tag: str = ""  # the file-name tag of --name-tag auto, read by DeoVR, SKYBOX, Quest, ...
    video_only: bool = False  # no picture of it: `image`, `images`, text, depth refuse it
    container: str | None = None  # the one container a video of it can go into
    encoder: str = "packed"  # one of ENCODERS
    st3d: int | None = None  # Spherical Video V2 st3d stereo_mode: 1 top-bottom, 2 left-right
    matroska: str | None = None  # Matroska StereoMode (FFmpeg's stereo_mode tag)
    frame_packing: int | None = None  # frame-packing SEI type (H.264, HEVC): 3 SBS, 4 TB

    @property
    def files(self) -> int:
        """Files per stereo picture: two for the views kept apart (OUT_L, OUT_R), else one."""
        return 2 if self.packing == "two-files" else 1


# The order is the command line's (config.LAYOUTS).
RECORDS = (
    Layout(
        "sbs",
        "full side by side",
        "side-by-side",
        tag="_LR",
        st3d=2,
        matroska="left_right",
        frame_packing=3,
    ),
    Layout(
        "half-sbs",
        "half side by side",
        "side-by-side",
        half=True,
        tag="_3dh",
        st3d=2,
        matroska="left_right",
        frame_packing=3,
    ),
    Layout(
        "tb",
        "full top-bottom",
        "top-bottom",
        tag="_TB",
        st3d=1,
        matroska="top_bottom",
        frame_packing=4,
    ),
    Layout(
        "half-tb",
        "half top-bottom",
        "top-bottom",
        half=True,
        tag="_3dv",
        st3d=1,
        matroska="top_bottom",
        frame_packing=4,
    ),
    Layout("anaglyph", "red-cyan anaglyph", "anaglyph", tag="_anaglyph"),
    # pair's own tags are the files' _L and _R (jobs/image.pair_paths)
    Layout("pair", "the two views as two files", "two-files"),
    # Apple's players read the stereo of spatial video from inside the file (vexu); its tag only
    # keeps a name chosen in a folder apart from the input's (clip.mov -> clip_spatial.mov)
    Layout(
        "spatial",
        "Apple spatial video",
        "stacked",
        tag="_spatial",
        video_only=True,
        container=".mov",
        encoder="mv-hevc",
    ),
    Layout(
        "sbs-rl",
        "side by side, eyes swapped (cross-eyed)",
        "side-by-side",
        right_first=True,
        tag="_RL",
        matroska="right_left",
        frame_packing=3,
    ),
    # `_180_LR`: 180 degrees, then the eyes' order, the tag DeoVR and SKYBOX document
    Layout(
        "vr180",
        "VR180 (equirectangular side by side)",
        "side-by-side",
        projection="equirect-180",
        tag="_180_LR",
        st3d=2,
        matroska="left_right",
        frame_packing=3,
    ),
)
BY_NAME = {layout.name: layout for layout in RECORDS}


def layout_of(name: str) -> Layout:
    """The record of a layout name (config.StereoConfig.layout, checked there)."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown layout {name!r}") from None


def name_tag(layout: Layout, requested: str) -> str:
    """The tag for names stereoconv chooses: `auto` the layout's, `none` no tag, or the given
    literal tag (such as _SBS)."""
    if requested == "none":
        return ""
    if requested == "auto":
        return layout.tag
    if not requested or "/" in requested or "\\" in requested:
        raise UserError(f"--name-tag must be auto, none or a tag such as _SBS, not {requested!r}")
    return requested
