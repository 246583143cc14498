"""The frame-packing arrangement SEI (H.264 D.1.26, H.265 D.2.16, payload type 45): what a player
that reads only the bitstream (a TV, FFmpeg's decoders) learns of a packed stereo frame. Written
here rather than by the encoder: x264's `frame-packing` cannot say that the right view comes
first (sbs-rl) and x265 has no such option.

The chunk encoder puts one into every keyframe's access unit, before its first slice; it
persists until the next (repetition period 1, persistence flag 1), as x264's own does.
"""

from __future__ import annotations

import re

from stereoconv.layouts import Layout
from stereoconv.media.spatial.hevc import BitWriter, escape

FRAME_PACKING_PAYLOAD = 45


def arrangement(layout: Layout, hevc: bool) -> bytes:
    """The SEI payload of a layout's frame packing (its record's frame_packing type: 3 side by
    side, 4 top-bottom); content interpretation 1: frame 0 (left or top) is the left view, 2:
    the right view (sbs-rl)."""
    bits = BitWriter()
    bits.ue(0)  # frame_packing_arrangement_id
    bits.u(1, 0)  # cancel flag
    bits.u(7, layout.frame_packing)
    bits.u(1, 0)  # quincunx_sampling_flag
    bits.u(6, 2 if layout.right_first else 1)  # content_interpretation_type
    bits.u(6, 0)  # spatial flipping, frame0 flipped, field views, current is frame0, self-contained
    bits.u(16, 0)  # frame0 / frame1 grid positions (x, y), 4 bits each
    bits.u(8, 0)  # reserved byte
    if hevc:
        bits.u(1, 1)  # frame_packing_arrangement_persistence_flag
        bits.u(1, 0)  # upsampled_aspect_ratio_flag
    else:
        bits.ue(1)  # frame_packing_arrangement_repetition_period
        bits.u(1, 0)  # extension flag
    if not bits.aligned:  # the payload ends byte-aligned: a bit equal to one, then zeros
        bits.u(1, 1)
        while not bits.aligned:
            bits.u(1, 0)
    return bits.value.to_bytes(bits.size // 8, "big")


def sei_nal(layout: Layout, hevc: bool) -> bytes:
    """A whole SEI NAL unit with the layout's frame-packing arrangement."""
    payload = arrangement(layout, hevc)
    header = bytes([39 << 1, 1]) if hevc else bytes([6])  # prefix SEI (layer 0, TID 0) / SEI
    message = bytes([FRAME_PACKING_PAYLOAD, len(payload)]) + payload + b"\x80"  # + trailing
    return header + escape(message)


def is_vcl(header: int, hevc: bool) -> bool:
    """Whether a NAL unit, by its first header byte, is a slice."""
    return (header >> 1) & 0x3F < 32 if hevc else 1 <= header & 0x1F <= 5


def with_sei(packet: bytes, nal: bytes, hevc: bool) -> bytes:
    """An encoder's packet (Annex B: NAL units after start codes, as x264 and x265 give them
    to FFmpeg, which makes MP4's length fields when muxing) with `nal` before its first slice,
    after any access unit delimiter, parameter sets and the encoder's own SEI."""
    for start in re.finditer(b"\x00\x00\x01", packet):
        if start.end() < len(packet) and is_vcl(packet[start.end()], hevc):
            at = start.start() - (start.start() > 0 and packet[start.start() - 1] == 0)
            return packet[:at] + b"\x00\x00\x00\x01" + nal + packet[at:]
    return packet  # no slice: left as it is
