"""Stereo geometry as pure, batched torch functions.

Convention (one for the whole product, see docs/geometry.md): a pixel of the left view at
column x appears in the right view at column x - d. d is in pixels of the image it applies to and
signed: d > 0 in front of the screen plane, d < 0 behind it, d = 0 on it. Larger d is nearer.

Shapes: images are (B, C, H, W), disparity maps and masks (B, H, W).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F

# --- views ----------------------------------------------------------------------------------


def view_disparities(disparity: torch.Tensor, views: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Split a left-to-right disparity into the shift applied to each output view.

    views="right": the input is the left view (shift 0) and the right view is synthesised.
    views="both": the input is the centre view; each eye gets half the disparity, the left one
    in the opposite direction, so the pair keeps the same total disparity.
    """
    if views == "right":
        return torch.zeros_like(disparity), disparity
    if views == "both":
        return -0.5 * disparity, 0.5 * disparity
    raise ValueError(f"views must be 'right' or 'both', not {views!r}")


# --- row helpers ------------------------------------------------------------------------------


def nearest_valid_columns(valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For each pixel, the column of the nearest valid pixel to its left and to its right
    (itself if valid); -1 / W where there is none. valid: (B, H, W) bool."""
    w = valid.shape[-1]
    cols = torch.arange(w, device=valid.device).expand_as(valid)
    left = torch.where(valid, cols, torch.full_like(cols, -1)).cummax(dim=-1).values
    right_flipped = torch.where(valid, cols, torch.full_like(cols, w)).flip(-1)
    right = right_flipped.cummin(dim=-1).values.flip(-1)
    return left, right


def background_side_columns(valid: torch.Tensor, disparity: torch.Tensor) -> torch.Tensor:
    """For each pixel, the column to take a value from: itself if valid, otherwise the nearer
    valid neighbour in its row on the background side (the smaller disparity), or the only
    valid side at a frame border. Rows with nothing valid point at column 0."""
    w = valid.shape[-1]
    left, right = nearest_valid_columns(valid)
    inf = torch.tensor(float("inf"), device=disparity.device, dtype=disparity.dtype)
    d_left = torch.where(left >= 0, disparity.gather(-1, left.clamp(0, w - 1)), inf)
    d_right = torch.where(right < w, disparity.gather(-1, right.clamp(0, w - 1)), inf)
    pick = torch.where(d_left <= d_right, left, right)
    return torch.where(valid, torch.arange(w, device=valid.device), pick).clamp(0, w - 1)


def fill_unknown_disparity(disparity: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """Fill unknown disparities (occlusions and invalid pixels of a ground-truth map) from the
    background side of each gap, as a disocclusion shows background. Unknown values of the input
    may be anything (nan, inf, 0). Rows with nothing known take the frame's smallest value."""
    safe = torch.where(known, disparity, torch.zeros_like(disparity))
    src = background_side_columns(known, safe)
    filled = safe.gather(-1, src)
    empty_rows = ~known.any(dim=-1, keepdim=True)
    if empty_rows.any():
        far = torch.where(known, safe, torch.full_like(safe, float("inf"))).flatten(1).amin(1)
        far = torch.where(torch.isfinite(far), far, torch.zeros_like(far))
        filled = torch.where(empty_rows, far.view(-1, 1, 1).expand_as(filled), filled)
    return filled


# --- image-space forward warp -----------------------------------------------------------------


class WarpResult(NamedTuple):
    image: torch.Tensor  # (B, C, H, W), zeros in holes
    holes: torch.Tensor  # (B, H, W) bool: target pixels the source view does not see
    disparity: torch.Tensor  # (B, H, W) disparity of the surface seen at each target pixel


def forward_warp(image: torch.Tensor, disparity: torch.Tensor, max_jump: float = 1.0) -> WarpResult:
    """Z-buffered, sub-pixel forward warp: source pixel (x, y) goes to (x - d, y).

    Each row is treated as a piecewise-linear surface: neighbouring source pixels whose
    disparities differ by at most `max_jump` pixels are joined by a segment, and every target
    pixel a segment covers gets the linearly interpolated colour and disparity. Larger jumps are
    depth edges: the gap they open is a hole (a disocclusion), not a stretch. Pixels that belong to
    no segment are splatted to the nearest target pixel. Where several candidates land on one
    target pixel, the nearest surface (largest disparity) wins; ties average.
    """
    b, c, h, w = image.shape
    disparity = disparity.to(image.dtype)
    cols = torch.arange(w, device=image.device, dtype=image.dtype)
    pos = cols - disparity  # target column of every source pixel

    # Segments between source columns i and i + 1, each covering up to k integer targets.
    k = math.floor(1 + max_jump) + 1
    pa, pb = pos[..., :-1], pos[..., 1:]
    da, db = disparity[..., :-1], disparity[..., 1:]
    joined = (db - da).abs() <= max_jump
    offsets = torch.arange(k, device=image.device, dtype=image.dtype)
    t = torch.ceil(pa).unsqueeze(-1) + offsets  # (B, H, W-1, k)
    seg_valid = joined.unsqueeze(-1) & (t <= pb.unsqueeze(-1)) & (t >= 0) & (t <= w - 1)
    frac = ((t - pa.unsqueeze(-1)) / (pb - pa).clamp_min(1e-6).unsqueeze(-1)).clamp(0, 1)
    seg_depth = da.unsqueeze(-1) + frac * (db - da).unsqueeze(-1)
    ca, cb = image[..., :-1].unsqueeze(-1), image[..., 1:].unsqueeze(-1)
    seg_colour = ca + frac.unsqueeze(1) * (cb - ca)  # (B, C, H, W-1, k)

    # Source pixels that no drawn segment ends on: splat them on their own.
    drawn_seg = joined & (pb >= pa)
    drawn = torch.zeros_like(disparity, dtype=torch.bool)
    drawn[..., :-1] |= drawn_seg
    drawn[..., 1:] |= drawn_seg
    pt = torch.round(pos)
    pt_valid = ~drawn & (pt >= 0) & (pt <= w - 1)

    targets = torch.cat([t.flatten(2), pt.flatten(2)], dim=-1).long().clamp(0, w - 1)
    valid = torch.cat([seg_valid.flatten(2), pt_valid.flatten(2)], dim=-1)
    depth = torch.cat([seg_depth.flatten(2), disparity.flatten(2)], dim=-1)
    colour = torch.cat([seg_colour.flatten(3), image.flatten(3)], dim=-1)

    # Z-buffer: the largest disparity per target pixel, then average the candidates that reach it.
    row_base = torch.arange(b * h, device=image.device).view(b, h, 1) * w
    index = (targets + row_base).flatten()
    depth_flat = torch.where(valid, depth, torch.full_like(depth, -torch.inf)).flatten()
    zbuf = torch.full((b * h * w,), -torch.inf, device=image.device, dtype=image.dtype)
    zbuf.scatter_reduce_(0, index, depth_flat, reduce="amax")
    win = (valid.flatten() & (depth_flat >= zbuf[index] - 1e-3)).to(image.dtype)
    count = torch.zeros(b * h * w, device=image.device, dtype=image.dtype)
    count.scatter_add_(0, index, win)
    colour_flat = (colour * win.view(b, 1, h, -1)).permute(1, 0, 2, 3).reshape(c, -1)
    acc = torch.zeros(c, b * h * w, device=image.device, dtype=image.dtype)
    acc.scatter_add_(1, index.expand(c, -1), colour_flat)

    holes = (count == 0).view(b, h, w)
    out = (acc / count.clamp_min(1)).view(c, b, h, w).permute(1, 0, 2, 3)
    seen = torch.where(holes, torch.zeros_like(disparity), zbuf.view(b, h, w))
    return WarpResult(out.contiguous(), holes, seen)


# --- latent-space shift (StereoDiffusion's Stereo Pixel Shift) ---------------------------------


def disparity_to_latent(disparity: torch.Tensor, factor: int = 8) -> torch.Tensor:
    """Image-pixel disparity (B, H, W), H and W multiples of `factor` -> latent-pixel disparity
    (B, H/factor, W/factor): area-averaged, then divided by the factor."""
    h, w = disparity.shape[-2:]
    size = (h // factor, w // factor)
    small = F.interpolate(disparity.unsqueeze(1).float(), size=size, mode="area")
    return small.squeeze(1) / factor


def shift_latent(
    latent: torch.Tensor, disparity: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stereo Pixel Shift (paper eq. 3, with the reference code's sign): the value at latent
    column x moves to x - round(d). Nearer values win collisions (a z-buffer, where the reference
    relies on painting order). Returns the shifted latent (zeros in holes) and the bool mask of
    covered latent pixels, (B, h, w); its complement is the hole mask."""
    b, c, h, w = latent.shape
    cols = torch.arange(w, device=latent.device)
    shift = torch.round(disparity).long()
    target = cols - shift
    inside = (target >= 0) & (target < w)
    row_base = torch.arange(b * h, device=latent.device).view(b, h, 1) * w
    index = (target.clamp(0, w - 1) + row_base).flatten()
    depth = torch.where(inside, disparity.float(), torch.full_like(disparity.float(), -torch.inf))
    zbuf = torch.full((b * h * w,), -torch.inf, device=latent.device)
    zbuf.scatter_reduce_(0, index, depth.flatten(), reduce="amax")
    # One winner per target: the nearest; among equal disparities, the leftmost source column.
    winner = inside.flatten() & (depth.flatten() == zbuf[index])
    src = torch.full((b * h * w,), w, device=latent.device, dtype=torch.long)
    src.scatter_reduce_(0, index[winner], cols.expand(b, h, w).flatten()[winner], reduce="amin")
    covered = (src < w).view(b, h, w)
    gathered = latent.gather(-1, src.clamp(max=w - 1).view(b, 1, h, w).expand(b, c, h, w))
    shifted = torch.where(covered.unsqueeze(1), gathered, torch.zeros_like(latent))
    return shifted, covered
