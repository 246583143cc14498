"""RGB to 8-bit Y'CbCr 4:2:0 on the device, before frames cross to the host: half the bytes of
RGB cross, and the encoder's CPU threads are left to x264 instead of swscale.

The matrix follows the stream's colour tags as swscale reads them (an unspecified matrix is
BT.601, swscale's default, as before this module), and chroma is subsampled as swscale's
bilinear path does it: the mean of each horizontal pair, then rows filtered (1, 3, 3, 1) / 8 at
each second row. Planes differ from swscale's by its fixed-point rounding alone (at most 1), for
frames at least 8 rows high (below that swscale shortens its filter).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

BT601 = (0.299, 0.114)
# (Kr, Kb) by FFmpeg's AVColorSpace value; every other value reads as BT.601, as in swscale
LUMA_WEIGHTS = {
    1: (0.2126, 0.0722),  # BT.709
    4: (0.30, 0.11),  # FCC
    7: (0.212, 0.087),  # SMPTE 240M
    9: (0.2627, 0.0593),  # BT.2020 non-constant luminance
}  # 10, BT.2020 constant luminance, is no matrix at all; PyAV hands swscale BT.601 for it


def luma_weights(matrix: int) -> tuple[float, float]:
    """(Kr, Kb) of an AVColorSpace value."""
    return LUMA_WEIGHTS.get(matrix, BT601)


def half_size(rgb: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, H / 2, W / 2): pairs of columns averaged, rows filtered with
    (1, 3, 3, 1) / 8 around each pair (edge rows repeated)."""
    pairs = (rgb[..., 0::2] + rgb[..., 1::2]) / 2
    rows = F.pad(pairs, (0, 0, 1, 1), mode="replicate")
    return (
        rows[..., 0:-2:2, :]
        + 3 * rows[..., 1:-1:2, :]
        + 3 * rows[..., 2::2, :]
        + rows[..., 3::2, :]
    ) / 8


def rgb_to_i420(rgb: torch.Tensor, matrix: int, full_range: bool) -> torch.Tensor:
    """(B, 3, H, W) RGB in [0, 1], H and W even -> (B, H * 3 // 2, W) uint8 in I420 order: the
    Y plane, then Cb and Cr at half the size each way (what PyAV's yuv420p arrays hold)."""
    b, _, h, w = rgb.shape
    if h % 2 or w % 2:
        raise ValueError(f"4:2:0 needs even sides, not {w}x{h}")
    kr, kb = luma_weights(matrix)
    weights = torch.tensor([kr, 1.0 - kr - kb, kb], device=rgb.device, dtype=torch.float32)
    rgb = rgb.float().clamp(0, 1)
    luma = torch.einsum("bchw,c->bhw", rgb, weights)
    half = half_size(rgb)  # chroma is linear in RGB: subsampling RGB subsamples Cb and Cr
    half_luma = torch.einsum("bchw,c->bhw", half, weights)
    cb = (half[:, 2] - half_luma) / (2 * (1 - kb))
    cr = (half[:, 0] - half_luma) / (2 * (1 - kr))
    y_scale, y_offset, c_scale = (255.0, 0.0, 255.0) if full_range else (219.0, 16.0, 224.0)
    planes = [
        (luma * y_scale + y_offset).reshape(b, -1),
        (cb * c_scale + 128).reshape(b, -1),
        (cr * c_scale + 128).reshape(b, -1),
    ]
    return torch.cat(planes, 1).round_().clamp_(0, 255).to(torch.uint8).reshape(b, h * 3 // 2, w)
