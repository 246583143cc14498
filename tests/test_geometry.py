import pytest
import torch

from stereoconv.backends.warp import last_writes
from stereoconv.disparity.plan import relative_to_pixels, robust_range
from stereoconv.geometry import (
    disparity_to_latent,
    fill_unknown_disparity,
    forward_warp,
    scatter_sums,
    shift_latent,
    view_disparities,
)


def random_image(b=1, c=3, h=7, w=13, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, c, h, w, generator=g)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_uniform_integer_disparity_moves_content_by_k_and_opens_k_columns(k):
    img = random_image(h=9, w=17)
    res = forward_warp(img, torch.full((1, 9, 17), float(k)))
    assert torch.equal(res.image[..., : 17 - k], img[..., k:])
    expected_holes = torch.zeros(1, 9, 17, dtype=torch.bool)
    expected_holes[..., 17 - k :] = True
    assert torch.equal(res.holes, expected_holes)
    assert torch.all(res.image[..., 17 - k :] == 0)


@pytest.mark.parametrize("k", [2, 4])
def test_negative_disparity_moves_content_the_other_way(k):
    img = random_image(h=5, w=11)
    res = forward_warp(img, torch.full((1, 5, 11), -float(k)))
    assert torch.equal(res.image[..., k:], img[..., : 11 - k])
    assert res.holes[..., :k].all() and not res.holes[..., k:].any()


def test_nearer_surface_wins_every_collision_and_the_gap_is_a_hole():
    w = 13
    img = torch.zeros(1, 3, 1, w)
    img[:, 0] = 0.25  # background colour
    img[:, :, :, 5:9] = torch.tensor([0.9, 0.1, 0.2]).view(1, 3, 1, 1)  # foreground block
    disparity = torch.ones(1, 1, w)
    disparity[..., 5:9] = 4.0
    res = forward_warp(img, disparity)
    # foreground lands on columns 1..4, over background pixels 2..4 that also land there
    assert torch.allclose(res.image[0, :, 0, 1:5], img[0, :, 0, 5:9])
    assert torch.equal(res.disparity[0, 0, 1:5], torch.full((4,), 4.0))
    holes = res.holes[0, 0].nonzero().flatten().tolist()
    assert holes == [5, 6, 7, 12]  # the disocclusion behind the block, and the right border


def test_nearer_surface_wins_whatever_the_order_in_the_row():
    # the same collision mirrored: the near block comes after the background in the row
    w = 12
    img = random_image(h=1, w=w)
    disparity = torch.zeros(1, 1, w)
    disparity[..., 9:] = 3.0  # near block at columns 9..11 lands on 6..8, over background 6..8
    res = forward_warp(img, disparity)
    assert torch.allclose(res.image[..., 6:9], img[..., 9:12])
    assert res.holes[0, 0].nonzero().flatten().tolist() == [9, 10, 11]


@pytest.mark.parametrize("d", [0.25, 0.5, 0.75])
def test_subpixel_disparity_interpolates_linearly(d):
    img = random_image(h=4, w=10)
    res = forward_warp(img, torch.full((1, 4, 10), d))
    # target x sits between sources x and x + 1: weight d on the right neighbour
    expected = (1 - d) * img[..., :-1] + d * img[..., 1:]
    assert torch.allclose(res.image[..., :-1], expected, atol=1e-6)
    assert not res.holes[..., :-1].any()
    # The last target pixel: the last source pixel's own patch [9 - d - 0.5, 9 - d + 0.5]
    # covers more than half of it only for d < 0.5; then it has that pixel's colour.
    if d < 0.5:
        assert not res.holes[..., -1].any() and torch.equal(res.image[..., -1], img[..., -1])
    else:
        assert res.holes[..., -1].all()


def test_odd_non_square_batch_equals_frames_one_by_one():
    imgs = random_image(b=3, h=11, w=23, seed=3)
    g = torch.Generator().manual_seed(1)
    disp = torch.rand(3, 11, 23, generator=g) * 6 - 2
    batched = forward_warp(imgs, disp)
    assert batched.image.shape == (3, 3, 11, 23)
    for i in range(3):
        single = forward_warp(imgs[i : i + 1], disp[i : i + 1])
        assert torch.equal(single.image, batched.image[i : i + 1])
        assert torch.equal(single.holes, batched.holes[i : i + 1])


def test_depth_to_pixels_hits_the_asked_divergence_and_convergence():
    width = 400
    ramp = torch.linspace(0, 1, width).expand(1, 50, width).clone()
    for divergence, convergence in [(4.0, 0.0), (2.5, 0.5), (3.0, 1.0)]:
        d = relative_to_pixels(ramp, width, divergence, convergence, torch.zeros(1), torch.ones(1))
        span = divergence / 100 * width
        assert d.max().item() == pytest.approx((1 - convergence) * span, abs=1e-4)
        assert d.min().item() == pytest.approx(-convergence * span, abs=1e-4)
        # the depth at the convergence value sits on the screen plane
        col = round(convergence * (width - 1))
        assert abs(d[0, 0, col].item()) < span / width * 1.01


def test_robust_range_ignores_outliers():
    rel = torch.linspace(0, 1, 100 * 100).view(1, 100, 100).clone()
    rel[0, 0, :20] = 1e6  # a few wild values
    low, high = robust_range(rel)
    assert low.item() == pytest.approx(0.02, abs=0.01)
    assert high.item() == pytest.approx(0.98, abs=0.01)
    d = relative_to_pixels(rel, 100, 10.0, 0.0)
    assert d.max().item() == pytest.approx(10.0)  # clipped, not stretched by the outliers


def test_view_disparities_split_for_both_views():
    d = torch.full((1, 2, 2), 4.0)
    left, right = view_disparities(d, "both")
    assert torch.equal(left, -0.5 * d) and torch.equal(right, 0.5 * d)
    assert torch.equal(right - left, d)
    left, right = view_disparities(d, "right")
    assert torch.equal(left, torch.zeros_like(d)) and torch.equal(right, d)


def test_unknown_disparity_is_filled_from_the_background_side():
    row = torch.tensor([[[10.0, 10.0, float("inf"), float("inf"), 2.0, 2.0]]])
    known = torch.isfinite(row)
    filled = fill_unknown_disparity(row, known)
    assert filled.tolist() == [[[10.0, 10.0, 2.0, 2.0, 2.0, 2.0]]]
    border = torch.tensor([[[float("nan"), 3.0, 5.0]]])
    assert fill_unknown_disparity(border, torch.isfinite(border)).tolist() == [[[3.0, 3.0, 5.0]]]


@pytest.mark.parametrize("k", [1, 2, 3])
def test_latent_shift_moves_by_k_and_masks_exactly_k_columns(k):
    g = torch.Generator().manual_seed(k)
    latent = torch.randn(2, 4, 6, 10, generator=g)
    shifted, covered = shift_latent(latent, torch.full((2, 6, 10), float(k)))
    assert torch.equal(shifted[..., : 10 - k], latent[..., k:])
    assert torch.all(shifted[..., 10 - k :] == 0)
    assert torch.equal(covered.sum(-1), torch.full((2, 6), 10 - k))
    assert not covered[..., 10 - k :].any()


def test_latent_shift_nearer_value_wins():
    latent = torch.arange(8.0).view(1, 1, 1, 8)
    disparity = torch.zeros(1, 1, 8)
    disparity[..., 5] = 2.0  # column 5 lands on 3, where column 3 (d = 0) also lands
    shifted, covered = shift_latent(latent, disparity)
    assert shifted[0, 0, 0, 3].item() == 5.0
    assert not covered[0, 0, 5]


def test_disparity_to_latent_scales_to_latent_pixels():
    d = torch.full((1, 16, 24), 16.0)
    assert torch.equal(disparity_to_latent(d), torch.full((1, 2, 3), 2.0))


# --- the same sums in any order: a GPU's atomic adds come in any order ---------------------------


def test_fixed_point_sums_do_not_depend_on_the_order_of_the_values():
    """A GPU's float atomics add the values of one target in whatever order its threads come,
    and float sums round differently by order: two runs of one job differed in the output's
    bytes. scatter_sums in fixed point (a GPU's way) gives the same sums in any order, to float
    precision."""
    g = torch.Generator().manual_seed(0)
    n, count = 50, 4000
    index = torch.randint(0, n, (count,), generator=g)  # about 80 values a target
    values = torch.rand(3, count, generator=g) * torch.logspace(-4, 0, count)
    order = torch.randperm(count, generator=g)
    ours = (
        scatter_sums(index, values, n, True),
        scatter_sums(index[order], values[:, order], n, True),
    )
    assert torch.equal(*ours)
    exact = torch.zeros(3, n, dtype=torch.float64).index_add_(1, index, values.double())
    assert torch.allclose(ours[0].double(), exact, rtol=1e-6, atol=0)
    plain = [
        torch.zeros(3, n).index_add_(1, i, v)
        for i, v in ((index, values), (index[order], values[:, order]))
    ]
    assert not torch.equal(*plain)  # the data round differently by order in plain float sums


def test_fixed_point_sums_keep_a_lone_value_exact_at_any_scale():
    """A target with one value keeps it bit for bit (the warp's pixels with one source: the
    same as plain float sums give)."""
    values = torch.tensor([[0.3, 0.01, -0.7], [250.0, -3.5, 0.1]])  # down to 2^-17 of 256
    assert torch.equal(scatter_sums(torch.arange(3), values, 3, True), values)
    assert torch.equal(scatter_sums(torch.arange(3), values, 3), values)


def test_the_last_write_of_a_target_is_kept():
    """Writes to one target in parallel keep any of them on a GPU; last_writes keeps the
    largest source, as a write in order would."""
    target = torch.tensor([4, 1, 4, 7, 1, 4])
    source = torch.tensor([10, 11, 12, 13, 14, 15])
    kept = last_writes(target, source, 8)
    assert kept.tolist() == [False, False, False, True, True, True]
    image = torch.zeros(8)
    image[target] = source.float()  # on the CPU, in order
    assert torch.equal(image[target[kept]], source[kept].float())


def test_the_warp_in_fixed_point_gives_the_float_warp_s_pixels():
    """The GPU's way (fixed-point sums) through the whole warp, run here on the CPU: the same
    holes and disparity, colours within float rounding, on a noise-like disparity where many
    surfaces land on one target."""
    from unittest import mock

    import stereoconv.geometry as geometry
    from stereoconv.backends.warp import warp_view

    g = torch.Generator().manual_seed(2)
    frames, disparity = (
        torch.rand(2, 3, 40, 64, generator=g),
        torch.rand(2, 40, 64, generator=g) * 12,
    )
    plain = geometry.scatter_sums
    with mock.patch.object(geometry, "scatter_sums", lambda i, v, n: plain(i, v, n, fixed=True)):
        fixed = warp_view(frames, disparity)
    ours = warp_view(frames, disparity)
    assert torch.equal(fixed.holes, ours.holes) and torch.equal(fixed.disparity, ours.disparity)
    assert (fixed.image - ours.image).abs().max() < 1e-6
