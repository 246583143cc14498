"""The warp backend's fill against the classic (integer z-buffered warp + Telea) on the
Middlebury 2001/2003 scenes with ground truth, and the fill's rules on small synthetic rows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stereoconv.backends.warp import WarpBackend, fill_holes
from tests.helpers.scenes import against_baseline, filled, middlebury


def warp_backend_right_view(left: np.ndarray, disparity: np.ndarray) -> np.ndarray:
    frames = torch.from_numpy(left.copy()).permute(2, 0, 1)[None].float() / 255
    out = WarpBackend(views="right", fill_sigma=3.0).synthesise(frames, filled(disparity))
    return (out[0].permute(1, 2, 0).clamp(0, 1) * 255).round().to(torch.uint8).numpy()


@pytest.mark.parametrize("scene", ["teddy", "tsukuba", "venus"])
def test_warp_backend_beats_zbuffer_warp_plus_telea_on_middlebury(scene):
    left, right, disparity = middlebury(scene)
    ours = warp_backend_right_view(left, disparity)
    base_psnr, base_ssim, our_psnr, our_ssim = against_baseline(scene, left, right, disparity, ours)
    assert our_psnr > base_psnr and our_ssim > base_ssim


def row(values) -> torch.Tensor:
    """A one-row, one-channel image (1, 1, 1, W)."""
    return torch.tensor(values, dtype=torch.float32).view(1, 1, 1, -1)


def test_fill_takes_the_background_side_averaged_over_its_surface():
    # Background (d = 0) on the left, its edge pixel darkened; foreground (d = 5) on the right.
    image = row([0.5, 0.5, 0.5, 0.2, 0, 0, 0, 0, 1.0, 1.0])
    holes = torch.tensor([[[False] * 4 + [True] * 4 + [False] * 2]])
    disparity = torch.tensor([[[0.0] * 4 + [0.0] * 4 + [5.0] * 2]])
    out = fill_holes(image, holes, disparity, sigma=0)[0, 0, 0]
    # Mean of the three background pixels next to the hole, never the foreground's 1.0.
    assert torch.allclose(out[4:8], torch.full((4,), 0.4))
    assert torch.equal(out[~holes[0, 0]], image[0, 0, 0][~holes[0, 0]])


def test_fill_does_not_average_across_another_surface():
    # The background strip next to the hole is one pixel wide; behind it lies a nearer surface.
    image = row([0.9, 0.9, 0.3, 0, 0, 0, 1.0])
    holes = torch.tensor([[[False, False, False, True, True, True, False]]])
    disparity = torch.tensor([[[6.0, 6.0, 0.0, 0.0, 0.0, 0.0, 5.0]]])
    out = fill_holes(image, holes, disparity, sigma=0)[0, 0, 0]
    assert torch.allclose(out[3:6], torch.full((3,), 0.3))


def test_cracks_are_interpolated_across():
    image = row([0.0, 0.0, 0.0, 0.0, 0.9, 0.9])
    holes = torch.tensor([[[False, False, True, True, False, False]]])
    disparity = torch.tensor([[[1.0, 1.0, 1.0, 1.0, 4.0, 4.0]]])
    out = fill_holes(image, holes, disparity, sigma=3.0)[0, 0, 0]
    assert torch.allclose(out[2:4], torch.tensor([0.3, 0.6]))


def test_warp_fill_is_batched_and_shape_preserving():
    torch.manual_seed(0)
    frames = torch.rand(2, 3, 16, 24)
    disparity = torch.rand(2, 16, 24) * 6
    out = WarpBackend(views="right", fill_sigma=3.0).synthesise(frames, disparity)
    assert out.shape == frames.shape and torch.isfinite(out).all()
    one = WarpBackend(views="right", fill_sigma=3.0).synthesise(frames[1:], disparity[1:])
    assert torch.allclose(out[1:], one, atol=1e-6)


def test_frame_by_frame_on_the_cpu_gives_the_batched_warps_pixels():
    """On the CPU the warp backend warps a batch frame by frame (faster there); the pixels,
    holes and disparity are exactly those of the whole batch at once (the GPU's way)."""
    from stereoconv.backends.warp import border_runs, textured_strips, warp_view

    torch.manual_seed(1)
    frames = torch.rand(3, 3, 20, 32)
    disparity = torch.rand(3, 20, 32) * 8
    disparity[:, 5:15, 10:20] += 6  # a near block: holes beside it
    batched = warp_view(frames, disparity)
    filled = fill_holes(batched.image, batched.holes, batched.disparity, 3.0)
    batched = batched._replace(image=textured_strips(filled, border_runs(batched.holes)))
    by_frame = WarpBackend(views="right", fill_sigma=3.0).filled_view(frames, disparity)
    assert batched.holes.any()
    for ours, theirs in zip(by_frame, batched, strict=True):
        assert torch.equal(ours, theirs)


def test_smoothing_blends_into_the_background_never_the_foreground():
    # Background (d = 0) of two tones on the left, a hole, then foreground (d = 5), over 7 rows.
    image = torch.zeros(1, 3, 7, 12)
    image[..., :4] = 0.4
    image[..., 3:, :4] = 0.2
    image[..., 8:] = 1.0
    holes = torch.zeros(1, 7, 12, dtype=torch.bool)
    holes[..., 4:8] = True
    disparity = torch.zeros(1, 7, 12)
    disparity[..., 8:] = 5.0
    out = fill_holes(image, holes, disparity, sigma=3.0)
    filled = out[..., 4:8]
    assert filled.min() >= 0.2 - 1e-6 and filled.max() <= 0.4 + 1e-6
    # Blended across rows: the rows next to the change of tone take something of both.
    assert 0.2 < out[0, 0, 3, 5] < 0.4 and 0.2 < out[0, 0, 2, 5] < 0.4
    assert torch.equal(out[..., :4], image[..., :4]) and torch.equal(out[..., 8:], image[..., 8:])
