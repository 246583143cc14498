"""HEVC bitstream pieces (ITU-T H.265): NAL units of an Annex B stream, and reading and writing
the bits of their RBSPs (emulation prevention removed), for the MV-HEVC join (mvhevc.py)."""

from __future__ import annotations

import re

VPS, SPS, PPS, AUD, EOS, EOB, FD, SEI_PREFIX, SEI_SUFFIX = 32, 33, 34, 35, 36, 37, 38, 39, 40


class MvHevcError(ValueError):
    """The two single-view streams cannot be joined (an unexpected bitstream shape)."""


# --- bits ------------------------------------------------------------------------------------


def unescape(ebsp: bytes) -> bytes:
    """RBSP from a NAL unit payload: every emulation_prevention_three_byte removed."""
    return ebsp.replace(b"\x00\x00\x03", b"\x00\x00")


_EMULATION = re.compile(b"\x00\x00(?=[\x00-\x03]|\\Z)")


def escape(rbsp: bytes) -> bytes:
    """NAL unit payload from an RBSP: 0x03 after every 00 00 that precedes 00..03 or the end."""
    return _EMULATION.sub(b"\x00\x00\x03", rbsp)


class BitReader:
    def __init__(self, data: bytes, pos: int = 0):
        self.value = int.from_bytes(data, "big")
        self.size = 8 * len(data)
        self.pos = pos

    def u(self, n: int) -> int:
        if n == 0:
            return 0
        if self.pos + n > self.size:
            raise MvHevcError("read past the end of a parameter set")
        out = (self.value >> (self.size - self.pos - n)) & ((1 << n) - 1)
        self.pos += n
        return out

    def ue(self) -> int:
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros > 31:
                raise MvHevcError("malformed exp-Golomb code")
        return (1 << zeros) - 1 + self.u(zeros)

    def payload_end(self) -> int:
        """Bit position of the rbsp_stop_one_bit (the last 1 bit of the RBSP)."""
        value, end = self.value, self.size
        if value == 0:
            raise MvHevcError("empty RBSP")
        trailing = (value & -value).bit_length() - 1
        return end - 1 - trailing


class BitWriter:
    def __init__(self) -> None:
        self.value = 0
        self.size = 0

    def u(self, n: int, value: int) -> None:
        if value < 0 or value >= 1 << n:
            raise ValueError(f"{value} does not fit in {n} bits")
        self.value = (self.value << n) | value
        self.size += n

    def ue(self, value: int) -> None:
        code = value + 1
        length = code.bit_length()
        self.u(2 * length - 1, code)

    def copy(self, reader: BitReader, n: int) -> None:
        """The next n bits of reader, as they are."""
        while n > 0:
            step = min(n, 1024)
            self.u(step, reader.u(step))
            n -= step

    @property
    def aligned(self) -> bool:
        return self.size % 8 == 0

    def rbsp(self) -> bytes:
        """The bits with rbsp_trailing_bits (a stop bit, zeros to the byte end)."""
        self.u(1, 1)
        while not self.aligned:
            self.u(1, 0)
        return self.value.to_bytes(self.size // 8, "big")


# --- NAL units -------------------------------------------------------------------------------


def split_annexb(data: bytes) -> list[bytes]:
    """NAL units of an Annex B byte stream (start codes removed)."""
    starts = [m.end() for m in re.finditer(b"\x00\x00\x01", data)]
    nals = []
    for i, start in enumerate(starts):
        end = starts[i + 1] - 3 if i + 1 < len(starts) else len(data)
        nal = data[start:end]
        if i + 1 < len(starts):
            nal = nal.rstrip(b"\x00")  # the leading zero of a following 4-byte start code
        if nal:
            nals.append(nal)
    return nals


def annexb(nals: list[bytes]) -> bytes:
    return b"".join(b"\x00\x00\x00\x01" + n for n in nals)


def nal_type(nal: bytes) -> int:
    return (nal[0] >> 1) & 0x3F


def nal_layer(nal: bytes) -> int:
    return ((nal[0] & 1) << 5) | (nal[1] >> 3)


def nal_header(kind: int, layer: int, temporal_id_plus1: int) -> bytes:
    return bytes([(kind << 1) | (layer >> 5), ((layer & 0x1F) << 3) | temporal_id_plus1])


def is_vcl(nal: bytes) -> bool:
    return nal_type(nal) < 32


def is_irap(nal: bytes) -> bool:
    return 16 <= nal_type(nal) <= 23
