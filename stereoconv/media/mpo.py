"""Stereo MPO: two JPEGs, left then right, in one file (CIPA DC-007 Multi-Picture Format).

This is the file 3D cameras (Fujifilm W1/W3, Nintendo 3DS) write and stereo viewers read. Each
JPEG gets an APP2 "MPF" segment right after its Exif APP1: the first holds the MP Index IFD (one
entry per picture: size and offset) and its MP Attribute IFD, the second only its attributes.
Both pictures are typed "Multi-Frame Image (Disparity)", the left one flagged representative (the
one 2D viewers show), viewpoints numbered left to right with the left as the base viewpoint.
Offsets count from the first segment's TIFF header, as the standard says. Pillow's own MPO writer
types the second picture "Undefined" and writes no attributes, which stereo viewers may not take
for a stereo pair; hence this module.
"""

from __future__ import annotations

import struct

DISPARITY = 0x020002  # MP type "Multi-Frame Image (Disparity)"
REPRESENTATIVE = 1 << 29  # the picture shown by viewers of one picture
MPF_VERSION = b"0100"
# TIFF field types
LONG, UNDEFINED, SRATIONAL = 4, 7, 10
TIFF_HEADER = b"II*\x00" + struct.pack("<I", 8)  # little endian, first IFD right after


def _ifd(entries: list[tuple[int, int, int, bytes]], start: int, next_ifd: int = 0) -> bytes:
    """One little-endian IFD at offset `start`: (tag, type, count, value bytes) entries, sorted;
    values longer than 4 bytes go after the IFD, referenced by offset."""
    entries = sorted(entries)
    extra_at = start + 2 + 12 * len(entries) + 4
    table, extra = b"", b""
    for tag, kind, count, value in entries:
        if len(value) <= 4:
            field = value.ljust(4, b"\x00")
        else:
            field = struct.pack("<I", extra_at + len(extra))
            extra += value
        table += struct.pack("<HHI", tag, kind, count) + field
    return struct.pack("<H", len(entries)) + table + struct.pack("<I", next_ifd) + extra


def _attributes(number: int) -> list[tuple[int, int, int, bytes]]:
    """MP Attribute IFD of picture `number` (1 = left). The views come from parallel virtual
    cameras (a horizontal shift, no toe-in), so the convergence angle is 0; the baseline is
    unknown and left out."""
    return [
        (0xB000, UNDEFINED, 4, MPF_VERSION),
        (0xB101, LONG, 1, struct.pack("<I", number)),  # MPIndividualNum
        (0xB204, LONG, 1, struct.pack("<I", 1)),  # BaseViewpointNum: the left view
        (0xB205, SRATIONAL, 1, struct.pack("<ii", 0, 1)),  # ConvergenceAngle, degrees
    ]


def _segment(tiff: bytes) -> bytes:
    body = b"MPF\x00" + tiff
    return b"\xff\xe2" + struct.pack(">H", 2 + len(body)) + body


def _first_segment(sizes: tuple[int, int], right_offset: int) -> bytes:
    entries = struct.pack("<IIIHH", REPRESENTATIVE | DISPARITY, sizes[0], 0, 0, 0)
    entries += struct.pack("<IIIHH", DISPARITY, sizes[1], right_offset, 0, 0)
    index = [
        (0xB000, UNDEFINED, 4, MPF_VERSION),
        (0xB001, LONG, 1, struct.pack("<I", 2)),  # NumberOfImages
        (0xB002, UNDEFINED, len(entries), entries),  # MPEntry
    ]
    at = 8 + len(_ifd(index, 8))  # the attribute IFD follows the index IFD
    return _segment(TIFF_HEADER + _ifd(index, 8, at) + _ifd(_attributes(1), at))


def insertion_point(jpeg: bytes) -> int:
    """Where the MPF segment goes: after SOI and the JFIF APP0 / Exif APP1 segments."""
    if jpeg[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG stream")
    pos = 2
    while jpeg[pos] == 0xFF and jpeg[pos + 1] in (0xE0, 0xE1):
        pos += 2 + struct.unpack(">H", jpeg[pos + 2 : pos + 4])[0]
    return pos


def stereo_mpo(left: bytes, right: bytes) -> bytes:
    """An MPO file of two JPEG streams, left then right."""
    at_left, at_right = insertion_point(left), insertion_point(right)
    second = _segment(TIFF_HEADER + _ifd(_attributes(2), 8))
    size_right = len(right) + len(second)
    # The first segment's length does not depend on the values in it, so measure it first.
    size_left = len(left) + len(_first_segment((0, 0), 0))
    header_at = at_left + 8  # the TIFF header, after marker, length and "MPF\0"
    first = _first_segment((size_left, size_right), size_left - header_at)
    return left[:at_left] + first + left[at_left:] + right[:at_right] + second + right[at_right:]
