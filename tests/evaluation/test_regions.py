"""The scene regions every evaluation table scores apart (evaluation.regions) and the soft-splat
reference method (evaluation.classical.soft_splat), on small scenes whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from stereoconv.evaluation import classical
from stereoconv.evaluation.regions import scene_regions


def square_scene() -> np.ndarray:
    """Background at disparity 2, a square at 10 (rows 5-14, columns 15-24) that moves 8 px
    further left in the right view (to columns 5-14)."""
    d = np.full((20, 40), 2.0, np.float32)
    d[5:15, 15:25] = 10.0
    return d


def test_holes_near_and_far_split_the_view():
    r = scene_regions(square_scene())
    holes, near, far = r["holes"], r["near"], r["far"]
    # the background behind the square (columns 15-22 of its rows) and the right border strip
    assert holes[5:15, 15:23].all() and not holes[5:15, 23:38].any() and holes[:, 38:].all()
    assert not holes[:5, :38].any()
    assert (holes.astype(int) + near + far == 1).all()  # a partition of the view
    assert near[10, 23:27].all() and far[10, 27:34].all()  # 1-4 px from the hole, then beyond
    assert near[5:15, 11:15].all() and far[10, 0:10].all()


def test_edge_bands_lie_either_side_of_the_depth_edges():
    r = scene_regions(square_scene())
    fg, bg = r["edge_fg"], r["edge_bg"]
    # the square's left rim (it covers the background there) and its right rim (by the hole)
    assert fg[10, 5:9].all() and fg[10, 11:15].all() and not fg[10, 9:11].any()
    # the background left of the square, 1-4 px; on its right the background side is the hole
    assert bg[10, 1:5].all() and not bg[10, 0] and not bg[10, 15:].any()
    assert bg[1:5, 8].all() and bg[15:19, 8].all()  # above and below the square
    assert not (fg & bg).any() and not ((fg | bg) & r["holes"]).any()


def test_unknown_disparities_land_nowhere():
    d = square_scene()
    d[:, 30] = np.nan  # not measured: the target it would land on (28) is not seen
    r = scene_regions(d)
    assert r["holes"][:, 28].all() and not r["holes"][:, 27].any()
    # the same as saying so with a mask
    known = np.isfinite(d)
    assert np.array_equal(scene_regions(np.nan_to_num(d), known)["holes"], r["holes"])


@pytest.mark.parametrize("shift", [0, 3])
def test_soft_splat_of_a_whole_pixel_shift_is_the_integer_warp_with_telea(shift):
    left = np.random.default_rng(shift).integers(0, 256, (12, 30, 3), dtype=np.uint8)
    d = np.full((12, 30), float(shift), np.float32)
    assert np.array_equal(classical.soft_splat(left, d), classical.warp_telea(left, d))


def test_soft_splat_averages_the_surfaces_it_keeps():
    left = np.zeros((1, 8, 3), np.uint8)
    left[0, :, 0] = [0, 40, 80, 120, 160, 200, 240, 250]
    # half a pixel: every target between two sources, weights 1/2
    half = classical.soft_splat(left, np.full((1, 8), 0.5, np.float32))
    assert half[0, :7, 0].tolist() == [20, 60, 100, 140, 180, 220, 245]
    # a near pixel (d = 3.5) beside far ones (d = 0.5): where both reach, the near one alone
    d = np.full((1, 8), 0.5, np.float32)
    d[0, 5] = 3.5  # lands at 1.5: targets 1 and 2 take its colour only
    near = classical.soft_splat(left, d)
    assert near[0, 1, 0] == 200 and near[0, 2, 0] == 200
