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


def _nearest_valid_columns(valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
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
    left, right = _nearest_valid_columns(valid)
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

# A gap narrower than this (pixels of the target row) that opens between two neighbouring source
# pixels is a crack: each side reaches a whole pixel into it rather than half of one, so that
# a far surface does not show through a small step inside a near one.
CRACK_GAP = 3.5


class WarpResult(NamedTuple):
    image: torch.Tensor  # (B, C, H, W), zeros in holes
    holes: torch.Tensor  # (B, H, W) bool: target pixels the source view does not see
    disparity: torch.Tensor  # (B, H, W) disparity of the surface seen at each target pixel


def _pad(x: torch.Tensor, side: str, value: bool) -> torch.Tensor:
    """A (B, H, W-1) relation between neighbours as a (B, H, W) per-pixel one: for each pixel,
    the relation with its left (side="left") or right neighbour; `value` where there is none."""
    pad = (1, 0) if side == "left" else (0, 1)
    return F.pad(x, pad, value=value)


def _resolve(index, valid, depth, colour, shape) -> WarpResult:
    """Z-buffer of flattened candidates: per target pixel the largest disparity wins, candidates
    that reach it (within 1e-3) are averaged. index, valid, depth: (B*H*K,) targets in the
    flattened frame; colour (C, B*H*K)."""
    b, c, h, w = shape
    n = b * h * w
    depth = torch.where(valid, depth, torch.full_like(depth, -torch.inf))
    zbuf = torch.full((n,), -torch.inf, device=depth.device, dtype=depth.dtype)
    zbuf.scatter_reduce_(0, index, depth, reduce="amax")
    win = (valid & (depth >= zbuf[index] - 1e-3)).to(depth.dtype)
    count = torch.zeros(n, device=depth.device, dtype=depth.dtype).scatter_add_(0, index, win)
    acc = torch.zeros(c, n, device=depth.device, dtype=depth.dtype)
    acc.scatter_add_(1, index.expand(c, -1), colour * win)
    holes = (count == 0).view(b, h, w)
    out = (acc / count.clamp_min(1)).view(c, b, h, w).permute(1, 0, 2, 3)
    seen = torch.where(holes, torch.zeros_like(holes, dtype=depth.dtype), zbuf.view(b, h, w))
    return WarpResult(out, holes, seen)


def forward_warp(
    image: torch.Tensor,
    disparity: torch.Tensor,
    max_jump: float = 1.0,
    edge_extend: torch.Tensor | None = None,
) -> WarpResult:
    """Z-buffered, sub-pixel forward warp: source pixel (x, y) goes to (x - d, y).

    Each row is a piecewise-linear surface: neighbouring source pixels whose disparities differ
    by at most `max_jump` pixels are joined by a segment, and every target pixel a segment covers
    gets the linearly interpolated colour and disparity. Larger jumps are depth edges: the gap
    they open is a hole (a disocclusion), not a stretch; a surface that folds away or is seen
    edge-on (a segment of no length) draws nothing. Each source pixel also stands for a pixel-wide
    patch of its surface: where no segment continues it on one side (the end of a run, an
    isolated pixel) it covers the targets within half a pixel of its position on that side with
    its own colour (a whole pixel on either side of a crack, CRACK_GAP). Where several candidates
    land on one target pixel, the nearest surface (largest disparity) wins; ties average.

    The order of the z-test is that of a right view (near content, larger d, moves left); a left
    view is the mirror image of one.

    edge_extend (B, H, W) in [0, 1], optional: occluding edges drawn soft. At the start of a run
    whose left neighbour is farther by more than `max_jump` (the near surface's edge that moves
    over the far one), the near surface's footprint begins `edge_extend` pixels before its
    half-pixel patch, and each target pixel it covers in part blends the near surface's colour
    over what lies behind, by the part covered (a camera pixel on an edge sees both).
    """
    b, c, h, w = image.shape
    disparity = disparity.to(image.dtype)
    cols = torch.arange(w, device=image.device, dtype=image.dtype)
    pos = cols - disparity  # target column of every source pixel

    # Segments between source columns i and i + 1, each covering up to k integer targets.
    k = math.floor(1 + max_jump) + 1
    pa, pb = pos[..., :-1], pos[..., 1:]
    da, db = disparity[..., :-1], disparity[..., 1:]
    seg = ((db - da).abs() <= max_jump) & (pb > pa)
    offsets = torch.arange(k, device=image.device, dtype=image.dtype)
    t = torch.ceil(pa).unsqueeze(-1) + offsets  # (B, H, W-1, k)
    seg_valid = seg.unsqueeze(-1) & (t <= pb.unsqueeze(-1)) & (t >= 0) & (t <= w - 1)
    frac = ((t - pa.unsqueeze(-1)) / (pb - pa).clamp_min(1e-6).unsqueeze(-1)).clamp(0, 1)
    seg_depth = da.unsqueeze(-1) + frac * (db - da).unsqueeze(-1)
    ca, cb = image[..., :-1].unsqueeze(-1), image[..., 1:].unsqueeze(-1)
    seg_colour = ca + frac.unsqueeze(1) * (cb - ca)  # (B, C, H, W-1, k)

    # The pixel's own patch where no segment continues it: the target in (pos - reach, pos] on
    # its left (floor(pos)), the one in [pos, pos + reach) on its right (ceil(pos)).
    gap = pb - pa
    crack = ~seg & (gap > 0) & (gap < CRACK_GAP)
    reach_left = torch.where(_pad(crack, "left", False), 1.0, 0.5)
    reach_right = torch.where(_pad(crack, "right", False), 1.0, 0.5)
    cap_left, cap_right = torch.floor(pos), torch.ceil(pos)
    left_ok = _pad(~seg, "left", True) & (cap_left > pos - reach_left)
    right_ok = _pad(~seg, "right", True) & (cap_right < pos + reach_right)
    occluding = _pad(db - da > max_jump, "left", False)  # the left neighbour is farther
    if edge_extend is not None:
        left_ok = left_ok & ~occluding  # drawn soft, below
    cap_t = torch.stack([cap_left, cap_right], dim=-1)  # (B, H, W, 2)
    cap_valid = torch.stack([left_ok, right_ok], dim=-1) & (cap_t >= 0) & (cap_t <= w - 1)
    cap_depth = disparity.unsqueeze(-1).expand_as(cap_t)
    cap_colour = image.unsqueeze(-1).expand(b, c, h, w, 2)

    row_base = torch.arange(b * h, device=image.device).view(b, h, 1) * w
    targets = torch.cat([t.flatten(2), cap_t.flatten(2)], dim=-1).long().clamp(0, w - 1)
    warped = _resolve(
        (targets + row_base).flatten(),
        torch.cat([seg_valid.flatten(2), cap_valid.flatten(2)], dim=-1).flatten(),
        torch.cat([seg_depth.flatten(2), cap_depth.flatten(2)], dim=-1).flatten(),
        torch.cat([seg_colour.flatten(3), cap_colour.flatten(3)], dim=-1)
        .permute(1, 0, 2, 3)
        .reshape(c, -1),
        (b, c, h, w),
    )
    if edge_extend is None:
        return WarpResult(warped.image.contiguous(), warped.holes, warped.disparity)
    return _soft_edges(image, disparity, pos, occluding, edge_extend, warped, max_jump)


def _soft_edges(image, disparity, pos, occluding, extend, warped, max_jump) -> WarpResult:
    """forward_warp's soft occluding edges: the two targets left of each occluding run start
    take the near surface's colour over what lies there by the part of them it covers."""
    b, c, h, w = image.shape
    start = pos - 0.5 - extend.to(pos.dtype).clamp(0, 1)  # where the near footprint begins
    targets = torch.ceil(pos).unsqueeze(-1) - torch.tensor([1.0, 2.0], device=pos.device)
    cover = (targets + 0.5 - start.unsqueeze(-1)).clamp(0, 1)  # (B, H, W, 2)
    tgt = targets.long().clamp(0, w - 1)
    seen = warped.disparity.gather(-1, tgt.flatten(2)).view_as(cover)
    hole = warped.holes.gather(-1, tgt.flatten(2)).view_as(cover)
    near = disparity.unsqueeze(-1)
    ok = occluding.unsqueeze(-1) & (targets >= 0) & (cover > 0)
    # Over a hole, a pixel covered at least half is the near surface's, as without softness.
    ok &= torch.where(hole, cover >= 0.5, near > seen + max_jump)
    cover = torch.where(hole, torch.ones_like(cover), cover)

    # One near surface per target (the nearest; equals average), blended over what is there.
    n = b * h * w
    row_base = torch.arange(b * h, device=pos.device).view(b, h, 1, 1) * w
    index = (tgt + row_base).flatten()
    depth = torch.where(ok, near.expand_as(cover), torch.full_like(cover, -torch.inf)).flatten()
    best = torch.full((n,), -torch.inf, device=pos.device, dtype=pos.dtype)
    best.scatter_reduce_(0, index, depth, reduce="amax")
    win = (ok.flatten() & (depth >= best[index] - 1e-3)).to(pos.dtype)
    count = torch.zeros(n, device=pos.device, dtype=pos.dtype).scatter_add_(0, index, win)
    alpha = torch.zeros(n, device=pos.device, dtype=pos.dtype)
    alpha.scatter_add_(0, index, win * cover.flatten())
    colour = image.unsqueeze(-1).expand(b, c, h, w, 2).permute(1, 0, 2, 3, 4).reshape(c, -1)
    acc = torch.zeros(c, n, device=pos.device, dtype=pos.dtype)
    acc.scatter_add_(1, index.expand(c, -1), colour * (win * cover.flatten()))
    hit = count > 0
    a = alpha / count.clamp_min(1)  # the mean part covered
    blended = acc / alpha.clamp_min(1e-12)  # the near colour, weighted by cover
    under = warped.image.permute(1, 0, 2, 3).reshape(c, -1)
    out = torch.where(hit, a * blended + (1 - a) * under, under)
    out = out.view(c, b, h, w).permute(1, 0, 2, 3).contiguous()
    mostly = (hit & (a >= 0.5)).view(b, h, w)
    seen = torch.where(mostly, best.view(b, h, w), warped.disparity)
    holes = warped.holes & ~hit.view(b, h, w)
    return WarpResult(out, holes, torch.where(holes, torch.zeros_like(seen), seen))


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
