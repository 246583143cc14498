"""Apple's spatial video metadata in QuickTime files: the `vexu` (video extended usage) box and
the `hfov` box beside it, both children of the video sample entry (hvc1).

Layout, from Apple's "QuickTime and ISO Base Media File Formats and Spatial and Immersive Media"
(the same layout FFmpeg >= 7.1 reads and writes in libavformat/mov.c and movenc.c):

    vexu                       Box
      eyes                     Box: stereo view information
        stri                   FullBox: u8 = eye_views_reversed << 3 | has_additional_views << 2
                                            | has_right_eye_view << 1 | has_left_eye_view
        hero                   FullBox: u8 hero eye, 0 none, 1 left, 2 right
        cams                   Box
          blin                 FullBox: u32 camera baseline, micrometres
      proj                     Box
        prji                   FullBox: 4cc projection kind, 'rect' (rectilinear)
    hfov                       Box: u32 horizontal field of view, thousandths of a degree

Boxes are version 0, flags 0. Inserting them grows every box on the path from moov down to the
sample entry, and shifts chunk offsets when moov sits before mdat.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from stereoconv.errors import UserError
from stereoconv.media.mp4box import (
    box,
    boxes,
    full_box,
    grow,
    read_moov,
    sample_entry,
    shift_chunk_offsets,
    write_moov,
)

HERO_EYES = {"none": 0, "left": 1, "right": 2}
VISUAL_SAMPLE_ENTRY_FIELDS = 78  # bytes of a VisualSampleEntry before its child boxes


@dataclass(frozen=True)
class SpatialMetadata:
    """What Apple's players read from vexu / hfov."""

    baseline_um: int  # distance between the two camera centres, micrometres
    hfov_millidegrees: int  # horizontal field of view of each view
    hero_eye: str = "left"
    has_left: bool = True
    has_right: bool = True
    views_reversed: bool = False
    projection: str = "rect"

    @classmethod
    def from_settings(cls, baseline_mm: float, hfov_degrees: float) -> SpatialMetadata:
        return cls(round(baseline_mm * 1000), round(hfov_degrees * 1000))


def vexu_box(meta: SpatialMetadata) -> bytes:
    stri = (meta.views_reversed << 3) | (meta.has_right << 1) | int(meta.has_left)
    eyes = (
        full_box(b"stri", bytes([stri]))
        + full_box(b"hero", bytes([HERO_EYES[meta.hero_eye]]))
        + box(b"cams", full_box(b"blin", struct.pack(">I", meta.baseline_um)))
    )
    proj = box(b"proj", full_box(b"prji", meta.projection.encode("ascii")))
    return box(b"vexu", box(b"eyes", eyes) + proj)


def hfov_box(meta: SpatialMetadata) -> bytes:
    return box(b"hfov", struct.pack(">I", meta.hfov_millidegrees))


def add_vexu(path: Path, meta: SpatialMetadata) -> None:
    """Append vexu and hfov to the video sample entry of a QuickTime / MP4 file, in place."""
    path = Path(path)
    try:
        top, moov_pos, moov_size, moov = read_moov(path)
        chain, (entry_pos, entry_size, entry_header) = sample_entry(bytes(moov))
        children = entry_pos + entry_header + VISUAL_SAMPLE_ENTRY_FIELDS
        if any(
            k in (b"vexu", b"hfov")
            for k, *_ in boxes(bytes(moov), children, entry_pos + entry_size)
        ):
            raise ValueError("the sample entry already has vexu / hfov")
        new = vexu_box(meta) + hfov_box(meta)
        insert_at = entry_pos + entry_size
        moov[insert_at:insert_at] = new
        grow(moov, [*chain, (entry_pos, entry_size, entry_header)], len(new))
        if any(k == b"mdat" and pos > moov_pos for k, pos, _ in top):
            shift_chunk_offsets(moov, len(new))
    except (ValueError, struct.error, StopIteration) as exc:
        raise UserError(f"cannot add spatial video metadata to {path}: {exc}") from None
    write_moov(path, moov_pos, moov_size, moov)


def read_spatial(path: Path) -> dict:
    """The video sample entry's type and the vexu / hfov fields, as found:
    {"entry": "hvc1", "children": [...], "stri": {...}, "hero": 1, "baseline_um": ...,
    "projection": "rect", "hfov_millidegrees": ...}. Raises ValueError if something is
    malformed."""
    _, _, _, moov = read_moov(Path(path))
    moov = bytes(moov)
    _, (entry_pos, entry_size, entry_header) = sample_entry(moov)
    out: dict = {"entry": moov[entry_pos + 4 : entry_pos + 8].decode("latin-1"), "children": []}
    children = entry_pos + entry_header + VISUAL_SAMPLE_ENTRY_FIELDS

    def payload(pos: int, size: int, header: int, full: bool) -> bytes:
        start = pos + header + (4 if full else 0)
        if full and moov[pos + header : pos + header + 4] != b"\x00\x00\x00\x00":
            raise ValueError("unexpected version / flags")
        return moov[start : pos + size]

    for kind, pos, size, header in boxes(moov, children, entry_pos + entry_size):
        out["children"].append(kind.decode("latin-1"))
        if kind == b"hfov":
            (out["hfov_millidegrees"],) = struct.unpack(">I", payload(pos, size, header, False))
        elif kind == b"vexu":
            out["vexu"] = []
            for vkind, vpos, vsize, vheader in boxes(moov, pos + header, pos + size):
                out["vexu"].append(vkind.decode("latin-1"))
                if vkind == b"eyes":
                    _read_eyes(moov, vpos + vheader, vpos + vsize, out, payload)
                elif vkind == b"proj":
                    for pkind, ppos, psize, pheader in boxes(moov, vpos + vheader, vpos + vsize):
                        if pkind == b"prji":
                            out["projection"] = payload(ppos, psize, pheader, True).decode("ascii")
    return out


def _read_eyes(moov: bytes, start: int, end: int, out: dict, payload) -> None:
    out["eyes"] = []
    for kind, pos, size, header in boxes(moov, start, end):
        out["eyes"].append(kind.decode("latin-1"))
        if kind == b"stri":
            (flags,) = struct.unpack(">B", payload(pos, size, header, True))
            out["stri"] = {
                "has_left": bool(flags & 1),
                "has_right": bool(flags & 2),
                "has_additional_views": bool(flags & 4),
                "views_reversed": bool(flags & 8),
            }
        elif kind == b"hero":
            (out["hero"],) = struct.unpack(">B", payload(pos, size, header, True))
        elif kind == b"cams":
            for ckind, cpos, csize, cheader in boxes(moov, pos + header, pos + size):
                if ckind == b"blin":
                    (out["baseline_um"],) = struct.unpack(">I", payload(cpos, csize, cheader, True))
