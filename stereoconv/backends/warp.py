"""The warp backend: z-buffered forward warp of the frame, holes filled from the background.

Fast and model-free apart from depth: for previews, modest hardware and every frame the
diffusion backend does not need to touch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from stereoconv.backends.views import StereoViews
from stereoconv.geometry import (
    WarpResult,
    background_side_columns,
    forward_warp,
    nearest_valid_columns,
    view_disparities,
)

# Surfaces whose neighbouring pixels differ by at most this many pixels of disparity are drawn as
# one surface by the warp. One pixel: a larger step would fold the surface away or stretch it to
# more than twice its width, which is a depth edge, not a slant.
MAX_JUMP = 1.0
# Mixed pixels at depth edges: a pixel beside an edge whose colour lies between the colours of
# its two neighbours across the edge is a blend of both surfaces (the camera's pixel straddled
# the edge). Only where the two sides differ by at least EDGE_CONTRAST (RMS over the channels,
# images in [0, 1]) is the blend measured; a blend between BLEND_LOW and 1 - BLEND_LOW of the
# near colour counts as mixed.
EDGE_CONTRAST = 0.1
BLEND_LOW = 0.25
# An occluding edge moves at most this far (pixels) from where the depth map has it towards the
# colours' edge: a larger disagreement is more often texture than a misplaced edge.
EDGE_SHIFT = 0.5
# Hole runs at most this wide with seen pixels on both sides are cracks: interpolated across.
CRACK_WIDTH = 2
# Seen pixels averaged on the background side of a hole, the edge pixel first.
BACKGROUND_PIXELS = 3
# Seen pixels at most this much nearer (px of disparity) than a hole's background count as it.
BACKGROUND_TOLERANCE = 0.5
# How far a frame-edge strip goes from the flat fill to the block of the view beside it
# (textured_strips: the warp backend's strips, and a carried fill's that nothing was carried
# into). Chosen on the video protocol (organism, docs/video.md): 0.1 brings
# motorcycle-pan-right's hole LPIPS within the per-frame hybrid's (0.4150 -> 0.4060) and keeps
# every clip's hole PSNR and temporal change within issue 27's margins; 0.3 gains more LPIPS
# and loses up to 0.3 dB of holes on venus-pan-right. On the warp's still scenes 0.1 is the
# best of 0.1, 0.2 and 0.3 (docs/evaluation.md).
STRIP_TEXTURE = 0.1
# A frame's outermost column that is darker than the column inside it (below EDGE_LINE_DARKER of
# its brightness) on at least EDGE_LINE_ROWS of the rows is a line the camera or a scaler left on
# the frame (Middlebury's tsukuba has one): it belongs to the frame, not to the scene, and warped
# with the scene it would be a dark line inside the picture. Measured on the scenes at hand: such
# a line is darker on 89-100 % of the rows, a plain edge column on at most 41 %.
EDGE_LINE_DARKER = 0.85
EDGE_LINE_ROWS = 0.8


def gaussian_1d(sigma: float, device, dtype) -> torch.Tensor:
    radius = max(1, round(2 * sigma))
    x = torch.arange(-radius, radius + 1, device=device, dtype=dtype)
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _masked_blur(image: torch.Tensor, mask: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of `image` that averages only pixels where mask is set (normalised
    convolution), separable. image (B, C, H, W), mask (B, H, W)."""
    g = gaussian_1d(sigma, image.device, image.dtype)
    r = g.numel() // 2
    m = mask.unsqueeze(1).to(image.dtype)
    stacked = torch.cat([image * m, m], dim=1)
    ch = stacked.shape[1]
    x = F.pad(stacked, (0, 0, r, r), mode="replicate")
    x = F.conv2d(x, g.view(1, 1, -1, 1).expand(ch, 1, -1, 1), groups=ch)
    x = F.pad(x, (r, r, 0, 0), mode="replicate")
    x = F.conv2d(x, g.view(1, 1, 1, -1).expand(ch, 1, 1, -1), groups=ch)
    return x[:, :-1] / x[:, -1:].clamp_min(1e-6)


def _gather_columns(image: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """image (B, C, H, W) read at columns (B, H, W) of the same row."""
    return image.gather(-1, columns.unsqueeze(1).expand_as(image))


def _background_colour(
    image: torch.Tensor, seen: torch.Tensor, disparity: torch.Tensor, src: torch.Tensor
) -> torch.Tensor:
    """The colour a hole pixel extends from its background side: the mean of up to
    BACKGROUND_PIXELS seen pixels from the edge pixel `src` onwards, away from the hole, that lie
    on the same surface (disparity within 1 px per step of the edge pixel's). One pixel alone is
    often a poor sample: at a depth edge it mixes foreground and background colour, and the
    outermost column of a frame is often darkened or smeared by the camera."""
    w = seen.shape[-1]
    cols = torch.arange(w, device=src.device)
    step = torch.sign(src - cols)  # away from the hole; 0 for seen pixels
    d0 = disparity.gather(-1, src)
    total = torch.zeros_like(image)
    weight = torch.zeros_like(disparity)
    for k in range(BACKGROUND_PIXELS):
        col = src + step * k
        inside = (col >= 0) & (col < w)
        col = col.clamp(0, w - 1)
        same = (disparity.gather(-1, col) - d0).abs() <= k
        ok = (inside & seen.gather(-1, col) & same) | (k == 0)
        wk = ok.to(image.dtype)
        total = total + _gather_columns(image, col) * wk.unsqueeze(1)
        weight = weight + wk
    return total / weight.unsqueeze(1)


def _crack_fill(image: torch.Tensor, holes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Runs of at most CRACK_WIDTH hole pixels in a row with seen pixels on both sides are cracks
    (a steep surface torn open by the warp, or a sliver too thin to show anything but the mixed
    colour of its sides): linear interpolation between the two sides. Returns the interpolated
    colours and the crack mask."""
    w = holes.shape[-1]
    before, after = nearest_valid_columns(~holes)
    cols = torch.arange(w, device=holes.device)
    cracks = holes & (before >= 0) & (after < w) & (after - before - 1 <= CRACK_WIDTH)
    a = _gather_columns(image, before.clamp(0, w - 1))
    b = _gather_columns(image, after.clamp(0, w - 1))
    t = ((cols - before) / (after - before).clamp_min(1)).to(image.dtype).unsqueeze(1)
    return a + t * (b - a), cracks


def fill_holes(
    image: torch.Tensor, holes: torch.Tensor, disparity: torch.Tensor, sigma: float = 3.0
) -> torch.Tensor:
    """Fill disocclusion holes with the background.

    - Cracks (runs of at most CRACK_WIDTH pixels between seen pixels) are interpolated across.
    - Every other hole pixel takes the colour of its background side (the nearest seen pixel of
      its row with the smaller disparity: a disocclusion reveals what is behind, never the
      foreground that moved away; at a frame border the only side there is), averaged over a few
      pixels of that surface, then the filled region is smoothed with a Gaussian (normalised
      convolution) over hole pixels and the seen background around them, never the foreground,
      which removes the horizontal streaks of plain extension.

    image (B, C, H, W), holes and disparity (B, H, W)."""
    seen = ~holes
    src = background_side_columns(seen, disparity)
    extended = torch.where(
        holes.unsqueeze(1), _background_colour(image, seen, disparity, src), image
    )
    interpolated, cracks = _crack_fill(image, holes)
    extended = torch.where(cracks.unsqueeze(1), interpolated, extended)
    if sigma <= 0:
        return extended
    filled = holes & ~cracks
    # The smoothing also averages the seen pixels around a hole that are no nearer than the
    # background it was filled from (within `sigma` pixels, BACKGROUND_TOLERANCE): the fill then
    # blends into the real background texture in 2D, as inpainting does, but never takes colour
    # from the foreground that moved away.
    reach = max(1, round(sigma))
    fill_disparity = torch.where(
        filled, disparity.gather(-1, src), torch.full_like(disparity, -torch.inf)
    )
    nearest_fill = F.max_pool2d(fill_disparity.unsqueeze(1), (1, 2 * reach + 1), 1, (0, reach))
    nearest_fill = F.max_pool2d(nearest_fill, (2 * reach + 1, 1), 1, (reach, 0)).squeeze(1)
    background = seen & (disparity <= nearest_fill + BACKGROUND_TOLERANCE)
    smooth = _masked_blur(extended, holes | background, sigma)
    return torch.where(filled.unsqueeze(1), smooth, extended)


def border_runs(holes: torch.Tensor) -> torch.Tensor:
    """Hole pixels whose horizontal run touches the frame's left or right edge: what lies
    outside the left camera's view, rather than background a foreground object hides."""
    before, after = nearest_valid_columns(~holes)
    return holes & ((before < 0) | (after >= holes.shape[-1]))


def textured_strips(view: torch.Tensor, strips: torch.Tensor) -> torch.Tensor:
    """view (B, C, H, W) with each frame-edge strip pixel (strips: border_runs, (B, H, W))
    blended STRIP_TEXTURE of the way to the view one strip's width inwards: the block beside the
    strip moved across it. The fill alone smears the strip flat; the block brings it some of the
    texture beside it and moves with that content, so the strip holds still along a pan."""
    w = strips.shape[-1]
    cols = torch.arange(w, device=strips.device).expand_as(strips)
    before, after = nearest_valid_columns(~strips)
    width = after - before - 1  # the strip's width in its row
    src = torch.where(after >= w, cols - width, cols + width).clamp(0, w - 1)
    beside = view.gather(-1, src.unsqueeze(1).expand_as(view))
    textured = torch.lerp(view, beside, STRIP_TEXTURE)
    return torch.where(strips.unsqueeze(1), textured, view)


def _blend(pixel, near, far, near_beyond, far_beyond) -> torch.Tensor:
    """How much of `near`'s colour each `pixel` holds on the line from `far` to `near` (0: far's
    colour, 1: near's); colours (C, N). Measured only between two plain colours: NaN where the
    two differ by less than EDGE_CONTRAST, or where the next pixel on either side
    (`near_beyond`, `far_beyond`) differs from its neighbour by more than half as much (texture,
    not an edge)."""
    span = near - far
    power = (span * span).sum(0)
    blend = ((pixel - far) * span).sum(0) / power.clamp_min(1e-12)
    plain = ((near_beyond - near) ** 2).sum(0) <= power / 4
    plain &= ((far_beyond - far) ** 2).sum(0) <= power / 4
    enough = (power >= pixel.shape[0] * EDGE_CONTRAST**2) & plain
    return torch.where(enough, blend, torch.full_like(blend, float("nan")))


def _row_colours(flat: torch.Tensor, pixels: torch.Tensor, w: int, shifts: range) -> list:
    """The colours (C, N) at each of `shifts` columns left (negative: right) of the flat pixel
    indices `pixels`, clamped to their row."""
    col = pixels % w
    return [flat[:, pixels - col + (col - k).clamp(0, w - 1)] for k in shifts]


def without_edge_lines(frames: torch.Tensor) -> torch.Tensor:
    """frames (B, C, H, W) with each dark outermost column (EDGE_LINE_DARKER, left or right) given
    the colours of the column inside it; the frames themselves where there is none."""
    if frames.shape[-1] < 3:
        return frames
    brightness = frames.mean(1)  # (B, H, W)
    out = frames.clone()
    for outer, inner in ((0, 1), (-1, -2)):
        darker = brightness[..., outer] < EDGE_LINE_DARKER * brightness[..., inner]
        line = (darker.to(frames.dtype).mean(-1) >= EDGE_LINE_ROWS).view(-1, 1, 1)
        out[..., outer] = torch.where(line, frames[..., inner], frames[..., outer])
    return out


def left_neighbour(x: torch.Tensor) -> torch.Tensor:
    """Each pixel's left neighbour's value, the first column its own (any width, one too)."""
    return torch.cat([x[..., :1], x[..., :-1]], dim=-1)


def warp_view(frames: torch.Tensor, disparity: torch.Tensor) -> WarpResult:
    """The sub-pixel z-buffered warp every right view starts from (holes still open), with the
    mixed pixels of depth edges put where the camera of the new view would see them:

    - At a disocclusion (the left neighbour is nearer by more than MAX_JUMP), the far pixel
      beside the near one holds some of the near colour: the left view's blur of the edge. It is
      drawn once more with the near surface, one pixel on, as the rim the edge leaves on the
      background it reveals; where it is a blend of the two (BLEND_LOW), it leaves the background
      side altogether, where it would be a ghost of the near edge.
    - At an occluding edge (the left neighbour is farther), the near surface's edge is drawn
      soft (forward_warp's edge_extend), reaching as far past its half pixel as its far
      neighbour holds near colour, at most EDGE_SHIFT: the depth map's edge is moved towards
      the colours' edge.
    - A dark line on the frame's left or right edge (without_edge_lines) is warped with the
      colours beside it: it belongs to the frame, and the scene moves under it.
    """
    frames = without_edge_lines(frames)
    b, c, h, w = frames.shape
    d = disparity.to(frames.dtype)
    flat = frames.transpose(0, 1).reshape(c, -1)
    left_d = left_neighbour(d)  # each pixel's left neighbour's
    revealed = (d < left_d - MAX_JUMP).flatten().nonzero().squeeze(1)
    far_near = _row_colours(flat, revealed, w, range(-2, 3))  # columns i + 2 ... i - 2
    blend = _blend(far_near[2], far_near[3], far_near[1], far_near[4], far_near[0])
    ghost = (blend >= BLEND_LOW) & (blend <= 1 - BLEND_LOW)
    moved = d.flatten().clone()
    moved[revealed[ghost]] = left_d.flatten()[revealed[ghost]]
    moved = moved.view_as(d)

    # The part of each occluding edge's far neighbour (column i - 1) that is near colour,
    # between the colours at i - 2 (far) and i (near).
    occluding = moved > left_neighbour(moved) + MAX_JUMP
    occluding = occluding.flatten().nonzero().squeeze(1)
    around = _row_colours(flat, occluding, w, range(-1, 4))  # columns i + 1 ... i - 3
    far_part = _blend(around[2], around[1], around[3], around[0], around[4])
    extend = torch.zeros_like(d).flatten()
    extend[occluding] = far_part.nan_to_num(0).clamp(0, EDGE_SHIFT)
    warped = forward_warp(frames, moved, MAX_JUMP, edge_extend=extend.view_as(d))
    return _rim(flat, d, left_d, revealed[~ghost], warped)


def _rim(flat, d, left_d, revealed, warped: WarpResult) -> WarpResult:
    """Each revealed far pixel's colour (flat pixel indices) once more, with its near
    neighbour's disparity, on the target pixel it would take moving with it, where that target
    is a hole."""
    b, c, h, w = warped.image.shape
    col = revealed % w
    near = left_d.flatten()[revealed]
    target = torch.round(col - near).long()
    inside = (target >= 0) & (target < w)
    target = revealed - col + target.clamp(0, w - 1)
    holes = warped.holes.flatten()
    ok = inside & holes[target]
    target, source, near = target[ok], revealed[ok], near[ok]
    mine = last_writes(target, source, holes.numel())
    target, source, near = target[mine], source[mine], near[mine]
    image = warped.image.transpose(0, 1).reshape(c, -1)  # may be a view of warped, ours
    image[:, target] = flat[:, source]
    seen = warped.disparity.flatten().clone()
    seen[target] = near
    holes = holes.clone()
    holes[target] = False
    image = image.view(c, b, h, w).transpose(0, 1).contiguous()
    return WarpResult(image, holes.view(b, h, w), seen.view(b, h, w))


def last_writes(target: torch.Tensor, source: torch.Tensor, n: int) -> torch.Tensor:
    """(N,) bool: of the writes of `source` (flat indices, N) to `target` (flat indices < n),
    the one a target keeps: the largest source, as a sequential write in order would leave it
    (a GPU's parallel writes to one target leave any of them, another each run)."""
    last = torch.full((n,), -1, dtype=source.dtype, device=source.device)
    last.scatter_reduce_(0, target, source, reduce="amax")
    return last[target] == source


class WarpBackend:
    """frames (B, 3, H, W) float in [0, 1] and disparity (B, H, W) in pixels -> (left, right)."""

    name = "warp"

    def __init__(self, views: str = "right", fill_sigma: float = 3.0):
        self.views = views
        self.fill_sigma = fill_sigma

    def filled_view(self, frames: torch.Tensor, disparity: torch.Tensor) -> WarpResult:
        """One warped view of `frames` by `disparity`, holes filled (their mask kept). On the
        CPU frame by frame: the same pixels (no frame depends on its batch), twice as fast at
        720p (202 against 417 ms a frame for batches of 8 on the development CPU), where a
        whole batch's intermediates outgrow the caches."""
        if frames.device.type == "cpu" and len(frames) > 1:
            pairs = zip(frames, disparity, strict=True)
            parts = [self.filled_view(f[None], d[None]) for f, d in pairs]
            return WarpResult(*(torch.cat(p) for p in zip(*parts, strict=True)))
        warped = warp_view(frames, disparity)
        filled = fill_holes(warped.image, warped.holes, warped.disparity, self.fill_sigma)
        return warped._replace(image=textured_strips(filled, border_runs(warped.holes)))

    def synthesise(self, frames: torch.Tensor, disparity: torch.Tensor) -> torch.Tensor:
        """One right-eye view of `frames` by `disparity` (near content, larger d, moves left),
        holes filled."""
        return self.filled_view(frames, disparity).image

    def convert(self, frames: torch.Tensor, disparity: torch.Tensor) -> StereoViews:
        d_left, d_right = view_disparities(disparity, self.views)
        right = self.filled_view(frames, d_right)
        if self.views == "right":
            return StereoViews(frames, right.image, right.holes)
        # The left eye's near content moves right: the mirror image of a right-eye warp, so that
        # the z-test and the fill still know near from far.
        left = self.synthesise(frames.flip(-1), -d_left.flip(-1)).flip(-1)
        return StereoViews(left, right.image, right.holes)

    def __call__(
        self, frames: torch.Tensor, disparity: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.convert(frames, disparity)[:2]
