import pytest
import torch

from stereoconv.layout import anaglyph, arrange, pack, packed_size
from stereoconv.layouts import RECORDS, layout_of


@pytest.fixture
def views():
    g = torch.Generator().manual_seed(0)
    return torch.rand(2, 3, 9, 15, generator=g), torch.rand(2, 3, 9, 15, generator=g)


def test_full_layouts_keep_each_view_whole(views):
    left, right = views
    sbs = pack(left, right, layout_of("sbs"))
    assert sbs.shape == (2, 3, 9, 30)
    assert torch.equal(sbs[..., :15], left) and torch.equal(sbs[..., 15:], right)
    tb = pack(left, right, layout_of("tb"))
    assert tb.shape == (2, 3, 18, 15)
    assert torch.equal(tb[..., :9, :], left) and torch.equal(tb[..., 9:, :], right)


def test_half_layouts_squeeze_each_view_into_its_half(views):
    left, right = views
    half = pack(left, right, layout_of("half-sbs"))
    assert half.shape == (2, 3, 9, 14)  # odd width: two halves of 7
    flat = torch.full((1, 3, 9, 15), 0.3), torch.full((1, 3, 9, 15), 0.7)
    half = pack(*flat, layout_of("half-sbs"))
    assert torch.allclose(half[..., :7], torch.tensor(0.3)) and torch.allclose(
        half[..., 7:], torch.tensor(0.7)
    )
    htb = pack(*flat, layout_of("half-tb"))
    assert htb.shape == (1, 3, 8, 15)
    assert torch.allclose(htb[..., :4, :], torch.tensor(0.3))
    assert torch.allclose(htb[..., 4:, :], torch.tensor(0.7))


@pytest.mark.parametrize("layout", [r for r in RECORDS if r.files == 1], ids=lambda r: r.name)
def test_packed_size_matches_pack(views, layout):
    assert pack(*views, layout).shape[-2:] == packed_size(9, 15, layout)


def test_arrange_caps_then_packs_or_keeps_the_two_views(views):
    left, right = views
    (packed,) = arrange(left, right, layout_of("tb"), 12, 90.0)  # 18 x 15 packed: too tall
    h, w = packed.shape[-2:]
    assert max(h, w) <= 12 and h % 2 == 0 and w % 2 == 0
    pair = arrange(left, right, layout_of("pair"), None, 90.0)
    assert len(pair) == 2 and pair[0] is left and pair[1] is right  # two files, uncapped


def test_anaglyph_puts_the_left_view_in_red_and_the_right_in_cyan():
    white, black = torch.ones(1, 3, 2, 2), torch.zeros(1, 3, 2, 2)
    left_only = anaglyph(white, black)
    right_only = anaglyph(black, white)
    assert left_only[0, 0].mean() > 0.8 and left_only[0, 1:].max() < 0.05
    assert right_only[0, 0].max() < 0.05 and right_only[0, 1:].mean() > 0.8


def test_cross_eyed_layout_swaps_the_eyes():
    left, right = torch.rand(1, 3, 5, 7), torch.rand(1, 3, 5, 7)
    packed = pack(left, right, layout_of("sbs-rl"))
    assert packed.shape == (1, 3, 5, 14) and packed_size(5, 7, layout_of("sbs-rl")) == (5, 14)
    assert torch.equal(packed[..., :7], right) and torch.equal(packed[..., 7:], left)
