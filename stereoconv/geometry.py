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
    # (a Python float, not a tensor made on the device: that would wait for the device)
    d_left = torch.where(left >= 0, disparity.gather(-1, left.clamp(0, w - 1)), float("inf"))
    d_right = torch.where(right < w, disparity.gather(-1, right.clamp(0, w - 1)), float("inf"))
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
# pixels is a crack: a surface farther than both its sides (by more than max_jump) does not show
# through it; its pixels are holes, to be filled from the two sides.
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


class _Candidates(NamedTuple):
    """Colours offered to target pixels: flat target index (N,), disparity (N,) (-inf: none),
    colour (C, N)."""

    index: torch.Tensor
    depth: torch.Tensor
    colour: torch.Tensor


class _Flat(NamedTuple):
    """A warp's result with pixels flattened: image (C, B*H*W), holes and disparity (B*H*W,)."""

    image: torch.Tensor
    holes: torch.Tensor
    disparity: torch.Tensor


def scatter_sums(
    index: torch.Tensor, values: torch.Tensor, n: int, fixed: bool | None = None
) -> torch.Tensor:
    """values (C, N) summed into (C, n) by index (N,), the same sums in any order of the values.
    The CPU adds them in order. A GPU's float atomics add them in whatever order its threads
    come, and float sums round by order: two runs of one job differed in the output's bytes.
    There (fixed, default: on a GPU) they are summed in fixed point, 2^-40 of the largest
    magnitude's power of two, exact for a lone value down to 2^-17 of it: integer sums do not
    depend on order. (On the CPU, fixed point would cost a warp 20 % for the same pixels.)"""
    c = values.shape[0]
    zeros = torch.zeros(c, n, device=values.device, dtype=values.dtype)
    if not (values.device.type == "cuda" if fixed is None else fixed):
        return zeros.index_add_(1, index, values)
    if values.numel() == 0:
        return zeros
    peak = values.detach().abs().amax().float().clamp_min(1.0)
    scale = torch.exp2(40 - torch.ceil(torch.log2(peak)))  # a power of two: exact
    fixed_values = torch.round(values.float() * scale).long()
    offsets = torch.arange(c, device=index.device).view(c, 1) * n
    sums = torch.zeros(c * n, dtype=torch.long, device=values.device)
    sums.index_add_(0, (index.view(1, -1) + offsets).flatten(), fixed_values.flatten())
    # int64 -> float32 rounds the exact sum once, as a float64 way would
    return (sums.float() / scale).to(values.dtype).view(c, n)


def _resolve(parts: list[_Candidates], c: int, n: int) -> _Flat:
    """Z-buffer: per target pixel the largest disparity wins, candidates that reach it (within
    1e-3) are averaged."""
    depth0 = parts[0].depth
    zbuf = torch.full((n,), -torch.inf, device=depth0.device, dtype=depth0.dtype)
    for part in parts:
        zbuf.scatter_reduce_(0, part.index, part.depth, reduce="amax")
    count = torch.zeros_like(zbuf)  # sums of whole numbers: the same in any order
    acc = torch.zeros(c, n, device=depth0.device, dtype=depth0.dtype)
    for part in parts:
        win = ((part.depth >= zbuf[part.index] - 1e-3) & (part.depth > -torch.inf)).to(zbuf.dtype)
        count.scatter_add_(0, part.index, win)
        acc += scatter_sums(part.index, part.colour * win, n)
    holes = count == 0
    seen = torch.where(holes, torch.zeros_like(zbuf), zbuf)
    return _Flat(acc / count.clamp_min(1), holes, seen)


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
    its own colour. Where several candidates land on one target pixel, the nearest surface
    (largest disparity) wins; ties average. A surface farther than both sides of a crack (a gap
    narrower than CRACK_GAP between neighbouring source pixels) does not show through it: those
    target pixels are holes.

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
    row_base = torch.arange(b * h, device=image.device).view(b, h, 1) * w
    image_c = image.transpose(0, 1)  # (C, B, H, W)

    # Segments between source columns i and i + 1, each covering up to k integer targets.
    k = math.floor(1 + max_jump) + 1
    pa, pb = pos[..., :-1], pos[..., 1:]
    da, db = disparity[..., :-1], disparity[..., 1:]
    seg = ((db - da).abs() <= max_jump) & (pb > pa)
    offsets = torch.arange(k, device=image.device, dtype=image.dtype)
    t = torch.ceil(pa).unsqueeze(-1) + offsets  # (B, H, W-1, k)
    seg_valid = seg.unsqueeze(-1) & (t <= pb.unsqueeze(-1)) & (t >= 0) & (t <= w - 1)
    frac = ((t - pa.unsqueeze(-1)) / (pb - pa).clamp_min(1e-6).unsqueeze(-1)).clamp(0, 1)
    seg_depth = torch.lerp(da.unsqueeze(-1), db.unsqueeze(-1), frac)
    seg_colour = torch.lerp(image_c[..., :-1].unsqueeze(-1), image_c[..., 1:].unsqueeze(-1), frac)
    segments = _Candidates(
        (t.long().clamp(0, w - 1) + row_base.unsqueeze(-1)).flatten(),
        torch.where(seg_valid, seg_depth, torch.full_like(seg_depth, -torch.inf)).flatten(),
        seg_colour.reshape(c, -1),
    )

    # The pixel's own patch where no segment continues it: the target in (pos - reach, pos] on
    # its left (floor(pos)), the one in [pos, pos + reach) on its right (ceil(pos)). Few pixels
    # have one: they are taken apart.
    cap_left, cap_right = torch.floor(pos), torch.ceil(pos)
    left_ok = _pad(~seg, "left", True) & (cap_left > pos - 0.5)
    right_ok = _pad(~seg, "right", True) & (cap_right < pos + 0.5)
    occluding = _pad(db - da > max_jump, "left", False)  # the left neighbour is farther
    if edge_extend is not None:
        left_ok = left_ok & ~occluding  # drawn soft, below
    cap_t = torch.stack([cap_left, cap_right], dim=-1)  # (B, H, W, 2)
    cap_valid = torch.stack([left_ok, right_ok], dim=-1) & (cap_t >= 0) & (cap_t <= w - 1)
    which = cap_valid.flatten().nonzero().squeeze(1)
    pixel = which // 2
    image_flat = image_c.reshape(c, -1)
    caps = _Candidates(
        pixel - pixel % w + cap_t.flatten()[which].long(),
        disparity.flatten()[pixel],
        image_flat[:, pixel],
    )
    warped = _resolve([segments, caps], c, b * h * w)
    gap = pb - pa
    cracks = (~seg & (gap > 0) & (gap < CRACK_GAP)).flatten().nonzero().squeeze(1)
    warped = _no_see_through(warped, cracks, pa, pb, torch.minimum(da, db) - max_jump, w)
    if edge_extend is not None:
        warped = _soft_edges(image_flat, disparity, pos, occluding, edge_extend, warped, max_jump)
    out = warped.image.view(c, b, h, w).transpose(0, 1).contiguous()
    return WarpResult(out, warped.holes.view(b, h, w), warped.disparity.view(b, h, w))


def _no_see_through(warped: _Flat, cracks, pa, pb, floor, w: int) -> _Flat:
    """The targets inside each crack (flat indices into the (B, H, W-1) neighbour pairs) that
    show a surface farther than `floor` become holes."""
    row = cracks // (w - 1) * w
    a, b, lowest = pa.flatten()[cracks], pb.flatten()[cracks], floor.flatten()[cracks]
    t = torch.floor(a).unsqueeze(1) + torch.arange(1, 4, device=a.device, dtype=a.dtype)
    inside = (t < b.unsqueeze(1)) & (t >= 0) & (t <= w - 1)
    target = (row.unsqueeze(1) + t.long().clamp(0, w - 1))[inside]
    lowest = lowest.unsqueeze(1).expand_as(t)[inside]
    target = target[~warped.holes[target] & (warped.disparity[target] < lowest)]
    image, holes, seen = warped.image.clone(), warped.holes.clone(), warped.disparity.clone()
    image[:, target], holes[target], seen[target] = 0, True, 0
    return _Flat(image, holes, seen)


def _soft_edges(image_flat, disparity, pos, occluding, extend, warped: _Flat, max_jump) -> _Flat:
    """forward_warp's soft occluding edges: the two targets left of each occluding run start
    take the near surface's colour over what lies there by the part of them it covers."""
    w = pos.shape[-1]
    n = pos.numel()
    p = occluding.flatten().nonzero().squeeze(1)  # the occluding run starts
    pos_p, near = pos.flatten()[p], disparity.flatten()[p]
    start = pos_p - 0.5 - extend.flatten()[p].to(pos.dtype).clamp(0, 1)  # the footprint's start
    t = torch.ceil(pos_p).unsqueeze(1) - torch.arange(1.0, 3.0, device=pos.device)  # (m, 2)
    cover = (t + 0.5 - start.unsqueeze(1)).clamp(0, 1)
    target = (p - p % w).unsqueeze(1) + t.long().clamp(0, w - 1)
    hole = warped.holes[target]
    # Over a hole, a pixel covered at least half is the near surface's, as without softness.
    ok = (t >= 0) & (cover > 0)
    ok &= torch.where(hole, cover >= 0.5, near.unsqueeze(1) > warped.disparity[target] + max_jump)
    cover = torch.where(hole, torch.ones_like(cover), cover)[ok]
    target, depth = target[ok], near.unsqueeze(1).expand_as(ok)[ok]
    source = p.unsqueeze(1).expand_as(ok)[ok]

    # One near surface per target (the nearest; equals average), blended over what is there.
    best = torch.full((n,), -torch.inf, device=pos.device, dtype=pos.dtype)
    best.scatter_reduce_(0, target, depth, reduce="amax")
    win = depth >= best[target] - 1e-3
    target, cover, source = target[win], cover[win], source[win]
    count = torch.zeros_like(best).index_add_(0, target, torch.ones_like(cover))
    alpha = scatter_sums(target, cover[None], n)[0]
    acc = scatter_sums(target, image_flat[:, source] * cover, n)
    a = alpha[target] / count[target]  # the mean part covered
    colour = acc[:, target] / alpha[target]  # the near colour, weighted by cover
    image = warped.image.clone()
    image[:, target] = a * colour + (1 - a) * warped.image[:, target]
    seen, holes = warped.disparity.clone(), warped.holes.clone()
    mostly = target[a >= 0.5]
    seen[mostly] = best[mostly]
    holes[target] = False
    return _Flat(image, holes, seen)


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
