"""The temporally coherent fill of video (backends/carry.py, temporal_fill = carry): the carry
itself on a synthetic pan with exact motion, and the UNet's
share of the work counted per frame. The organism and the protocol clips judge its quality
(tests/diffusion/test_organism.py, docs/evaluation.md); these check its mechanics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stereoconv.backends.carry import CarryFill, surface_disparity
from stereoconv.backends.diffusion import DiffusionBackend
from stereoconv.backends.warp import STRIP_TEXTURE, textured_strips, warp_view
from stereoconv.config import build_config
from stereoconv.diffusion.components import load_components
from tests.helpers.clips import flow_texture as texture

# --- the carry on a synthetic pan -------------------------------------------------------------


def pan_clip(frames: int, step: int = 2, h: int = 48, w: int = 96):
    """Frames (N, 3, h, w) panning `step` px a frame over a textured background with a near
    block, and their disparity (N, h, w): the block 10 px in front, the background at 0."""
    world = texture(h, w + step * frames + 8, seed=1)
    d_world = torch.zeros(h, world.shape[-1])
    d_world[10:38, 40 : 40 + 24] = 10.0
    views = [world[:, :, i * step : i * step + w] for i in range(frames)]
    disparity = [d_world[:, i * step : i * step + w] for i in range(frames)]
    return torch.stack(views), torch.stack(disparity)


class PaintCounter:
    """A stand-in for the diffusion backend's fill that paints a fixed colour pattern, counts
    its calls and reports the latent pixels of one whole-latent evaluation per call."""

    def __init__(self, backend):
        self.backend = backend
        self.calls = []

    def __call__(self, frames, warped, holes, sparse=False):
        self.calls.append(int(holes.sum()))
        painted = torch.rand(warped.shape, generator=torch.Generator().manual_seed(len(self.calls)))
        return painted, self.backend.working_latent_area(*frames.shape[-2:])


@pytest.fixture
def carry(tiny_sd):
    """A CarryFill on the tiny SD model, its fill replaced by PaintCounter (mechanics only)."""
    cfg = build_config(backend="diffusion", steps=4, fill_min_width=4, seam=0.0, fill_sigma=0.0)
    backend = DiffusionBackend.of(load_components(str(tiny_sd), torch.device("cpu")), cfg)
    backend.fill = PaintCounter(backend)
    return CarryFill(backend)


def test_a_pan_is_painted_once_then_carried(carry):
    frames, disparity = pan_clip(6)
    views = carry(frames, disparity, [False] * 6)
    calls = carry.backend.fill.calls
    assert len(calls) == 1  # the first frame only: every later hole was shown before
    cost = views.unet_evaluations.tolist()
    assert cost[0] > 0 and cost[1:] == [0, 0, 0, 0, 0]
    holes = views.holes
    for t in range(1, 6):  # the hole's content moves with the background, exactly (2 px)
        now = holes[t].clone()
        now[:, -3:] = False  # the frame-edge strip brings new content
        src_cols = torch.nonzero(now)[:, 1] + 2
        ys = torch.nonzero(now)[:, 0]
        same = views.right[t][:, ys, torch.nonzero(now)[:, 1]]
        before = views.right[t - 1][:, ys, src_cols]
        assert torch.allclose(same, before, atol=1e-5), t
    # what the left view sees is the plain warp, untouched by the carry
    seen = ~holes
    assert torch.equal(views.left, frames)
    warped = warp_view(frames, disparity)
    assert torch.allclose(
        views.right.permute(1, 0, 2, 3)[:, seen],
        warped.image.permute(1, 0, 2, 3)[:, seen],
        atol=1e-6,
    )


def test_a_cut_starts_afresh(carry):
    frames, disparity = pan_clip(4)
    carry(frames, disparity, [False, False, True, False])
    assert len(carry.backend.fill.calls) == 2  # the first frame and the cut


def test_the_frames_do_not_depend_on_the_batches(tiny_sd):
    """A batch's optical flows start together, in threads, each from the frame before (the
    batch before's last for the first): the same frames for any batching, across a cut."""
    cfg = build_config(backend="diffusion", steps=4, fill_min_width=4, seam=0.0, fill_sigma=1.0)
    backend = DiffusionBackend.of(load_components(str(tiny_sd), torch.device("cpu")), cfg)
    frames, disparity = moving_block(7)
    cuts = [False, False, False, False, True, False, False]
    outputs, paints = [], []
    for size in (7, 3, 1):
        backend.fill = PaintCounter(backend)
        fill = CarryFill(backend)
        starts = range(0, 7, size)
        views = [
            fill(frames[s : s + size], disparity[s : s + size], cuts[s : s + size]) for s in starts
        ]
        outputs.append(torch.cat([v.right for v in views]))
        paints.append(backend.fill.calls)
    assert len(paints[0]) >= 2  # at least at the start and at the cut
    assert paints[0] == paints[1] == paints[2]
    assert torch.equal(outputs[0], outputs[1]) and torch.equal(outputs[0], outputs[2])


def test_no_carry_across_a_change_of_depth(carry):
    """A hole that now reveals a surface at another depth than the one shown there before is
    painted, not carried."""
    frames, disparity = pan_clip(2, step=0)
    second = disparity[1].clone()
    second[second == 0] = -3.0  # the background moves behind: the revealed surface changes
    carry(frames, torch.stack([disparity[0], second]), [False, False])
    assert len(carry.backend.fill.calls) == 2


def test_surface_disparity_gives_holes_their_background():
    d = torch.zeros(1, 4, 20)
    d[..., 8:12] = 5.0
    warped = warp_view(torch.zeros(1, 3, 4, 20), d)
    surface = surface_disparity(warped)
    assert warped.holes.any()
    assert surface[warped.holes].eq(0).all()  # the background beside them, not the block
    assert np.isclose(surface[~warped.holes].max().item(), 5.0)


def background_pan(frames: int, step: int, h: int = 48, w: int = 96, d: float = 4.0):
    """Frames panning over a textured background at disparity `d` (a frame-edge strip of d px
    at the right view's right edge, beyond the left view), the content moving `step` px left a
    frame (right for a negative step); and the real right views: right x shows world x + d."""
    world = texture(h, w + abs(step) * frames + 16, seed=2)
    offsets = [8 + i * step if step > 0 else 8 + (frames - 1 - i) * -step for i in range(frames)]
    left = torch.stack([world[:, :, o : o + w] for o in offsets])
    real_right = torch.stack([world[:, :, o + int(d) : o + int(d) + w] for o in offsets])
    return left, torch.full((frames, h, w), d), real_right


def test_a_frame_edge_strip_takes_a_fresh_fill_where_nothing_was_seen(carry):
    """A pan that brings new content in at the strip's side: the strip is beyond anything the
    left eye saw, so each frame takes the warp's fill there (textured by the block beside it),
    never a guess carried along."""
    from stereoconv.backends.diffusion import border_runs, warp_and_fill

    frames, disparity, _ = background_pan(5, step=2)
    views = carry(frames, disparity, [False] * 5)
    assert carry.backend.fill.calls == []  # strips are not painted
    strip = border_runs(views.holes)
    assert strip[:, :, -4:].all()
    for t in range(5):
        fresh = warp_and_fill(frames[t : t + 1], disparity[t : t + 1], carry.backend.settings)
        fresh = textured_strips(fresh.base, strip[t : t + 1])[0]
        assert torch.allclose(views.right[t][:, strip[t]], fresh[:, strip[t]], atol=1e-6)


def test_a_strip_takes_some_of_the_block_beside_it():
    """Each strip pixel moves STRIP_TEXTURE of the way to the pixel one strip's width inwards,
    at either edge of the frame; nothing else changes."""
    right = torch.arange(10.0).view(1, 1, 1, 10).expand(1, 3, 2, 10).clone()
    strips = torch.zeros(1, 2, 10, dtype=torch.bool)
    strips[0, 0, 7:] = True  # 3 px at the right edge: columns 7, 8, 9 take 4, 5, 6
    strips[0, 1, :2] = True  # 2 px at the left edge: columns 0, 1 take 2, 3
    out = textured_strips(right, strips)
    a = STRIP_TEXTURE
    assert torch.allclose(
        out[0, 0, 0, 7:], torch.tensor([7 + a * (4 - 7), 8 + a * (5 - 8), 9 + a * (6 - 9)])
    )
    assert torch.allclose(out[0, 0, 1, :2], torch.tensor([0 + a * 2, 1 + a * 2]))
    assert torch.equal(out[:, :, 0, :7], right[:, :, 0, :7]) and torch.equal(
        out[:, :, 1, 2:], right[:, :, 1, 2:]
    )


def test_a_frame_edge_strip_carries_what_the_left_eye_saw_before(carry):
    """A pan the other way: the strip shows background the left view showed a frame or two
    before, carried in as it was seen."""
    from stereoconv.backends.diffusion import border_runs

    frames, disparity, real_right = background_pan(5, step=-2)
    views = carry(frames, disparity, [False] * 5)
    strip = border_runs(views.holes)
    for t in range(2, 5):  # from the third frame on, every strip pixel was seen before
        error = (views.right[t][:, strip[t]] - real_right[t][:, strip[t]]).abs().max()
        assert error < 0.02, (t, error)
    first = (views.right[0][:, strip[0]] - real_right[0][:, strip[0]]).abs().max()
    assert first > 0.05  # the shot's first frame could only guess


def moving_block(frames: int, h: int = 48, w: int = 96):
    """A near block (10 px in front) moving 2 px left a frame over a still textured background:
    the hole beside it uncovers new background each frame."""
    background, block = texture(h, w, seed=3), texture(h, w, seed=4)
    views, disparity = [], []
    for i in range(frames):
        x0 = 50 - 2 * i
        view, d = background.clone(), torch.zeros(h, w)
        view[:, 10:38, x0 : x0 + 24] = block[:, 10:38, x0 : x0 + 24]
        d[10:38, x0 : x0 + 24] = 10.0
        views.append(view)
        disparity.append(d)
    return torch.stack(views), torch.stack(disparity)


def test_a_stop_gap_is_made_afresh_each_frame_not_carried(tiny_sd):
    """Holes too narrow to paint keep the warp's fill of the frame they are in: a stop-gap
    carried along drifts from the background revealed beside it since."""
    from stereoconv.backends.diffusion import warp_and_fill

    cfg = build_config(backend="diffusion", steps=4, fill_min_width=40, seam=0.0, fill_sigma=0.0)
    backend = DiffusionBackend.of(load_components(str(tiny_sd), torch.device("cpu")), cfg)
    backend.fill = PaintCounter(backend)
    frames, disparity = moving_block(4)
    views = CarryFill(backend)(frames, disparity, [False] * 4)
    assert backend.fill.calls == []  # nothing wide enough to paint
    assert views.holes.any()
    for t in range(4):
        fresh = warp_and_fill(frames[t : t + 1], disparity[t : t + 1], backend.settings).base[0]
        assert torch.allclose(views.right[t], fresh, atol=1e-6), t


def test_a_crack_takes_a_fresh_fill_though_its_background_was_seen(tiny_sd):
    """A hole run at most CRACK_WIDTH wide carries nothing: a near block 2 px in front moving
    right over a still background leaves a crack beside it over background the left eye saw
    the frame before, yet the crack takes the warp's fill of its own frame (a value carried
    there lands a pixel off the edge it borders: teddy-zoom's visible pixels, docs/video.md)."""
    from stereoconv.backends.diffusion import warp_and_fill

    cfg = build_config(backend="diffusion", steps=4, fill_min_width=4, seam=0.0, fill_sigma=0.0)
    backend = DiffusionBackend.of(load_components(str(tiny_sd), torch.device("cpu")), cfg)
    backend.fill = PaintCounter(backend)
    background, block = texture(48, 96, seed=5), texture(48, 96, seed=6)
    views, disparity = [], []
    for i in range(4):
        x0 = 30 + 3 * i
        view, d = background.clone(), torch.zeros(48, 96)
        view[:, 10:38, x0 : x0 + 24] = block[:, 10:38, x0 : x0 + 24]
        d[10:38, x0 : x0 + 24] = 2.0
        views.append(view)
        disparity.append(d)
    frames, disparity = torch.stack(views), torch.stack(disparity)
    out = CarryFill(backend)(frames, disparity, [False] * 4)
    assert out.holes.any() and backend.fill.calls == []
    for t in range(4):
        fresh = warp_and_fill(frames[t : t + 1], disparity[t : t + 1], backend.settings).base[0]
        assert torch.allclose(out.right[t], fresh, atol=1e-6), t
