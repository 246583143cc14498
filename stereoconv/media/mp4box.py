"""The Spherical Video V2 `st3d` box in MP4 / QuickTime files, which tells players (YouTube,
Quest, Vision Pro's viewers) that the frames hold two views. FFmpeg writes it only from stereo
side data that PyAV cannot attach, so it is added after muxing.

st3d (Google's Spherical Video V2 RFC) is a FullBox inside the video track's sample entry
(avc1, hvc1, ...): version 0, flags 0, then one byte stereo_mode: 0 mono, 1 top-bottom,
2 left-right. Without an sv3d box beside it the video is flat (no projection). The vr180 layout
adds one: sv3d / svhd (who wrote it), proj / prhd (pose 0, 0, 0) and equi, whose bounds crop a
quarter of the full sphere's width from each side (0.32 fixed point): 180 x 180 degrees.
"""

from __future__ import annotations

import os
import shutil
import struct
from pathlib import Path

from stereoconv.errors import UserError
from stereoconv.layouts import Layout

# equirectangular projection bounds (top, bottom, left, right) of a 180-degree video
VR180_BOUNDS = (0, 0, 0x40000000, 0x40000000)


def boxes(data: bytes, start: int = 0, end: int | None = None):
    """(type, offset, size, header_size) of the boxes laid end to end in data[start:end]."""
    end = len(data) if end is None else end
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        header = 8
        if size == 1:
            size, header = struct.unpack(">Q", data[pos + 8 : pos + 16])[0], 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            raise ValueError(f"malformed box {kind!r} at {pos}")
        yield kind, pos, size, header
        pos += size


def top_level_boxes(path: Path):
    """(type, offset, size) of the file's top-level boxes, reading only their headers."""
    out = []
    with open(path, "rb") as f:
        total = os.fstat(f.fileno()).st_size
        pos = 0
        while pos + 8 <= total:
            f.seek(pos)
            size, kind = struct.unpack(">I4s", f.read(8))
            if size == 1:
                size = struct.unpack(">Q", f.read(8))[0]
            elif size == 0:
                size = total - pos
            if size < 8:
                raise ValueError(f"malformed top-level box {kind!r} at {pos}")
            out.append((kind, pos, size))
            pos += size
    return out


def read_moov(path: Path) -> tuple[list, int, int, bytearray]:
    """(top-level boxes, moov offset, moov size, moov bytes) of an MP4 / MOV file."""
    top = top_level_boxes(path)
    moov = next((b for b in top if b[0] == b"moov"), None)
    if moov is None:
        raise ValueError("no moov box")
    _, pos, size = moov
    with open(path, "rb") as f:
        f.seek(pos)
        return top, pos, size, bytearray(f.read(size))


def signalled_header(path: Path, target: Path, layout: Layout) -> Path:
    """`target`: an MP4 of `path`'s ftyp and moov only, with the layout's st3d / sv3d boxes.
    Opened as a template, its video stream carries FFmpeg's stereo and spherical side data,
    which the Matroska muxer writes as StereoMode and Projection (media/join.py)."""
    top, _, _, moov = read_moov(Path(path))
    ftyp = b""
    with open(path, "rb") as f:
        for kind, at, size in top:
            if kind == b"ftyp":
                f.seek(at)
                ftyp = f.read(size)
    Path(target).write_bytes(ftyp + bytes(moov))
    add_st3d(Path(target), layout)
    return Path(target)


def find_path(data: bytes, path: list[bytes], start: int, end: int) -> list[tuple[int, int, int]]:
    """All (offset, size, header) chains matching `path` below data[start:end]."""
    found = []
    for kind, pos, size, header in boxes(data, start, end):
        if kind == path[0]:
            if len(path) == 1:
                found.append([(pos, size, header)])
            else:
                for rest in find_path(data, path[1:], pos + header, pos + size):
                    found.append([(pos, size, header), *rest])
    return found


def video_track_chain(moov: bytes):
    """The box chain moov/trak/mdia/minf/stbl/stsd of the first video track."""
    for trak_chain in find_path(moov, [b"moov", b"trak"], 0, len(moov)):
        trak_pos, trak_size, trak_header = trak_chain[-1]
        for hdlr in find_path(
            moov, [b"mdia", b"hdlr"], trak_pos + trak_header, trak_pos + trak_size
        ):
            pos, _, header = hdlr[-1]
            handler = moov[pos + header + 8 : pos + header + 12]  # after version/flags, pre_defined
            if handler == b"vide":
                stsd = find_path(
                    moov,
                    [b"mdia", b"minf", b"stbl", b"stsd"],
                    trak_pos + trak_header,
                    trak_pos + trak_size,
                )
                return [trak_chain[0], trak_chain[1], *stsd[0]]
    return None


def sample_entry(moov: bytes):
    """The box chain down to stsd of the first video track, and (offset, size, header) of its
    first sample entry (avc1, hvc1, ...)."""
    chain = video_track_chain(moov)
    if chain is None:
        raise ValueError("no video track")
    stsd_pos, stsd_size, stsd_header = chain[-1]
    _, pos, size, header = next(boxes(moov, stsd_pos + stsd_header + 8, stsd_pos + stsd_size))
    return chain, (pos, size, header)


def grow(moov: bytearray, chain, delta: int) -> None:
    """Add `delta` to the size field of every box in the chain (32-bit or 64-bit sizes)."""
    for pos, size, header in chain:
        if header == 16:
            moov[pos + 8 : pos + 16] = struct.pack(">Q", size + delta)
        else:
            moov[pos : pos + 4] = struct.pack(">I", size + delta)


def shift_chunk_offsets(moov: bytearray, delta: int) -> None:
    """Chunk offsets point into mdat; they move when a moov placed before mdat grows."""
    for chain in find_path(
        bytes(moov), [b"moov", b"trak", b"mdia", b"minf", b"stbl"], 0, len(moov)
    ):
        pos, size, header = chain[-1]
        for kind, bpos, _, bheader in boxes(bytes(moov), pos + header, pos + size):
            if kind not in (b"stco", b"co64"):
                continue
            count = struct.unpack(">I", moov[bpos + bheader + 4 : bpos + bheader + 8])[0]
            width = 4 if kind == b"stco" else 8
            fmt = ">I" if kind == b"stco" else ">Q"
            base = bpos + bheader + 8
            for i in range(count):
                at = base + i * width
                (value,) = struct.unpack(fmt, moov[at : at + width])
                moov[at : at + width] = struct.pack(fmt, value + delta)


def st3d_box(mode: int) -> bytes:
    return struct.pack(">I4sIB", 13, b"st3d", 0, mode)


def box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def full_box(kind: bytes, payload: bytes, version: int = 0, flags: int = 0) -> bytes:
    return box(kind, struct.pack(">I", (version << 24) | flags) + payload)


def sv3d_box(bounds: tuple[int, int, int, int] = VR180_BOUNDS) -> bytes:
    """Spherical Video V2 sv3d: equirectangular projection with the given bounds."""
    svhd = full_box(b"svhd", b"stereoconv\0")
    prhd = full_box(b"prhd", struct.pack(">iii", 0, 0, 0))
    equi = full_box(b"equi", struct.pack(">IIII", *bounds))
    return box(b"sv3d", svhd + box(b"proj", prhd + equi))


def add_st3d(path: Path, layout: Layout) -> bool:
    """Write the layout's st3d box into the video sample entry of an MP4 / MOV file, in place,
    and for a layout on the half sphere (vr180) the sv3d box after it. Returns False when the
    layout has no st3d mode (anaglyph, sbs-rl, spatial)."""
    if layout.st3d is None:
        return False
    path = Path(path)
    try:
        top, moov_pos, moov_size, moov = read_moov(path)
        chain = video_track_chain(bytes(moov))
        if chain is None:
            raise ValueError("no video track")
        stsd_pos, stsd_size, stsd_header = chain[-1]
        entry = next(boxes(bytes(moov), stsd_pos + stsd_header + 8, stsd_pos + stsd_size))
        _, entry_pos, entry_size, entry_header = entry
        spherical = layout.projection == "equirect-180"
        new = st3d_box(layout.st3d) + (sv3d_box() if spherical else b"")
        insert_at = entry_pos + entry_size
        moov[insert_at:insert_at] = new
        grow(moov, [*chain, (entry_pos, entry_size, entry_header)], len(new))
        mdat_after = any(k == b"mdat" and pos > moov_pos for k, pos, _ in top)
        if mdat_after:
            shift_chunk_offsets(moov, len(new))
    except (ValueError, struct.error, StopIteration) as exc:
        raise UserError(f"cannot add stereo metadata to {path}: {exc}") from None
    write_moov(path, moov_pos, moov_size, moov)
    return True


def write_moov(path: Path, moov_pos: int, moov_size: int, moov: bytes) -> None:
    """Put a grown moov box in place of the old one: the tail rewritten in place when moov is
    the last box, otherwise the file copied around it (then renamed over the original)."""
    if moov_pos + moov_size == path.stat().st_size:
        with open(path, "r+b") as f:
            f.seek(moov_pos)
            f.write(moov)
            f.truncate()
        return
    tmp = path.with_name(path.name + ".moov")
    with open(path, "rb") as src, open(tmp, "wb") as dst:
        dst.write(src.read(moov_pos))
        dst.write(moov)
        src.seek(moov_pos + moov_size)
        shutil.copyfileobj(src, dst)
    os.replace(tmp, path)


def read_st3d(path: Path) -> int | None:
    """The stereo_mode of the video track's st3d box, or None if there is none."""
    found = sample_entry_box(path, b"st3d")
    return None if found is None else found[12]  # after the header and version / flags


def read_equi_bounds(path: Path) -> tuple[int, int, int, int] | None:
    """The projection bounds of the video track's sv3d / proj / equi box, or None."""
    found = sample_entry_box(path, b"sv3d")
    if found is None:
        return None
    equi = find_path(found, [b"proj", b"equi"], 8, len(found))
    if not equi:
        return None
    pos, _, header = equi[0][-1]
    return struct.unpack(">IIII", found[pos + header + 4 : pos + header + 20])


def sample_entry_box(path: Path, kind: bytes) -> bytes | None:
    """The whole box of this type among the video sample entry's children, or None."""
    moov = bytes(read_moov(path)[3])
    chain = video_track_chain(moov)
    stsd_pos, stsd_size, stsd_header = chain[-1]
    _, entry_pos, entry_size, entry_header = next(
        boxes(moov, stsd_pos + stsd_header + 8, stsd_pos + stsd_size)
    )
    children_start = entry_pos + entry_header + 78  # VisualSampleEntry fields
    for found, bpos, bsize, _ in boxes(moov, children_start, entry_pos + entry_size):
        if found == kind:
            return moov[bpos : bpos + bsize]
    return None
