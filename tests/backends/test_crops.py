"""The boxes of the latent the UNet works on when only some of a frame is painted
(backends/crops.py): pure functions over masks."""

from __future__ import annotations

import torch

from stereoconv.backends.crops import WHOLE_SHARE, grow_to_grain, paint_boxes, same_size_groups


def test_grow_to_grain_widens_about_the_centre_and_stays_inside():
    assert grow_to_grain(10, 13, 8, 40) == (8, 16)
    assert grow_to_grain(0, 3, 8, 40) == (0, 8)  # shifted back inside at the start
    assert grow_to_grain(37, 40, 8, 40) == (32, 40)  # and at the end
    assert grow_to_grain(0, 5, 8, 6) == (0, 6)  # never longer than the latent


def test_paint_boxes_cover_the_paint_with_context_on_the_grain():
    paint = torch.zeros(40, 60, dtype=torch.bool)
    paint[10:12, 5:7] = True
    paint[30:33, 50:52] = True
    boxes = paint_boxes(paint, grain=4, context=2)
    assert len(boxes) == 2
    covered = torch.zeros_like(paint)
    for y0, y1, x0, x1 in boxes:
        assert (y1 - y0) % 4 == 0 and (x1 - x0) % 4 == 0
        covered[y0:y1, x0:x1] = True
    grown = torch.nn.functional.max_pool2d(paint[None, None].float(), 5, 1, 2)[0, 0] > 0
    assert covered[grown].all()  # every painted pixel with its context
    assert covered.float().mean() < WHOLE_SHARE


def test_overlapping_boxes_merge_and_many_become_the_whole_latent():
    paint = torch.zeros(16, 32, dtype=torch.bool)
    paint[4, 10] = paint[4, 14] = True  # their contexts overlap: one box
    assert len(paint_boxes(paint, grain=4, context=2)) == 1
    everywhere = torch.zeros(16, 32, dtype=torch.bool)
    everywhere[::4, ::4] = True
    assert paint_boxes(everywhere, grain=4, context=2) == [(0, 16, 0, 32)]
    assert paint_boxes(torch.zeros(8, 8, dtype=torch.bool), 4) == []


def test_same_size_groups_batch_equal_boxes():
    boxes = [(0, 8, 0, 8), (0, 8, 8, 16), (8, 16, 0, 12), (0, 8, 16, 24)]
    assert same_size_groups(boxes, 2) == [
        [(0, 8, 0, 8), (0, 8, 8, 16)],
        [(0, 8, 16, 24)],
        [(8, 16, 0, 12)],
    ]
