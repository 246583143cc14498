"""Scene cuts and the smoothed depth range of a video, batch by batch (disparity/shots.py,
disparity/plan.ShotTracker)."""

import math

import numpy as np
import pytest
import torch

from stereoconv.config import StereoConfig
from stereoconv.disparity.plan import DisparityPlan, ShotTracker
from stereoconv.disparity.shots import CUT_THRESHOLD, thumbnail_changes, thumbnails


def test_changes_are_each_thumbnails_from_the_one_before():
    thumbs = torch.rand(5, 9, 16, generator=torch.Generator().manual_seed(0))
    first = thumbnail_changes(None, thumbs)
    assert math.isinf(first[0])
    for i in range(1, 5):
        assert torch.isclose(first[i], (thumbs[i] - thumbs[i - 1]).abs().mean())
    previous = torch.zeros(9, 16)
    then = thumbnail_changes(previous, thumbs)
    assert torch.isclose(then[0], thumbs[0].abs().mean())
    assert torch.allclose(then[1:], first[1:])


def clip_with_a_cut(frames: int = 10, at: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    """Dark frames, then bright ones from `at` (a hard cut); relative depth whose range grows
    frame by frame, then jumps at the cut."""
    generator = torch.Generator().manual_seed(1)
    images = 0.2 + 0.02 * torch.rand(frames, 3, 36, 64, generator=generator)
    images[at:] += 0.6
    relative = torch.rand(frames, 36, 64, generator=generator)
    relative *= torch.tensor([1.0 + 0.1 * i + (3.0 if i >= at else 0.0) for i in range(frames)])[
        :, None, None
    ]
    return images, relative


def track(batch: int) -> tuple[list, list]:
    images, relative = clip_with_a_cut()
    tracker = ShotTracker(DisparityPlan.of(StereoConfig(backend="warp"), given=False))
    ranges, cuts = [], []
    for start in range(0, images.shape[0], batch):
        r, c = tracker.update(images[start : start + batch], relative[start : start + batch])
        ranges += r
        cuts += c
    return ranges, cuts


def test_cuts_and_ranges_do_not_depend_on_the_batches():
    ranges, cuts = track(batch=10)
    assert cuts == [True] + [False] * 5 + [True] + [False] * 3
    for batch in (1, 3, 4):
        other_ranges, other_cuts = track(batch)
        assert other_cuts == cuts
        assert all(
            math.isclose(a, b, rel_tol=1e-6)
            for pair, other in zip(ranges, other_ranges, strict=True)
            for a, b in zip(pair, other, strict=True)
        )
    # the range starts again at the cut: the first bright frame's own range, not an average
    images, relative = clip_with_a_cut()
    plan = DisparityPlan.of(StereoConfig(backend="warp"), given=False)
    low, high = plan.range(relative[6:7])
    assert math.isclose(ranges[6][0], float(low), rel_tol=1e-6)
    assert math.isclose(ranges[6][1], float(high), rel_tol=1e-6)
    assert ranges[5][1] < ranges[6][1]


def test_a_cut_is_a_change_above_the_threshold():
    """Flat frames whose brightness steps by 0.09, then 0.15: only the second is a cut."""
    levels = torch.tensor([0.3, 0.39, 0.48, 0.63, 0.72])
    frames = levels[:, None, None, None].expand(5, 3, 36, 64).clone()
    tracker = ShotTracker(DisparityPlan.of(StereoConfig(backend="warp"), given=False))
    _, cuts = tracker.update(frames, torch.rand(5, 36, 64))
    assert cuts == [True, False, False, True, False]
    changes = thumbnail_changes(None, thumbnails(frames))
    assert changes[1:].tolist() == pytest.approx([0.09, 0.09, 0.15, 0.09], abs=1e-6)
    assert 0.09 < CUT_THRESHOLD < 0.15


def planned_flags(cuts, batches: list[list[int]]) -> list[bool]:
    tracker = ShotTracker(DisparityPlan.of(StereoConfig(backend="warp"), given=False), cuts)
    flags = []
    for indices in batches:
        n = len(indices)
        flags += tracker.update(torch.rand(n, 3, 8, 8), torch.rand(n, 8, 8), indices)[1]
    return flags


def test_planned_cuts_read_as_known_or_as_a_pass_decides_them():
    """Planned cuts give the same flags known before (a tuple) or read from a pass batch by
    batch (a function of a range of frames, asked only for the frames come to); a cut on a
    frame that did not decode (here 5) starts the shot at the next one."""
    asked = []

    def from_a_pass(first, stop):
        asked.append((first, stop))
        return [c for c in (0, 3, 5) if first <= c < stop]

    batches = [[0, 1, 2], [3, 4], [6, 7]]  # frame 5 never decoded
    want = [True, False, False, True, False, True, False]
    assert planned_flags((0, 3, 5), batches) == want
    assert planned_flags(from_a_pass, batches) == want
    assert asked == [(0, 3), (3, 5), (5, 8)]
    # a chunk that begins later reads from its first frame on
    assert planned_flags((0, 3, 5), [[3, 4], [6]]) == [True, False, True]
    assert planned_flags((0, 3, 5), [[4], [6]]) == [False, True]


def test_a_planned_cut_before_the_first_frame_that_decodes_falls_on_it():
    """Read from frame 0 (start=0), where frame 0 did not decode: its cut starts the shot at
    frame 1, as a read from frame 1's warm-up that began at 0 would."""
    tracker = ShotTracker(DisparityPlan.of(StereoConfig(backend="warp"), given=False), (0,), 0)
    flags = tracker.update(torch.rand(2, 3, 8, 8), torch.rand(2, 8, 8), [1, 2])[1]
    assert flags == [True, False]


def test_the_smoothed_range_of_a_chunk_is_one_pieces_where_frames_are_missing():
    """The depth range's history holds the frames of the last WINDOW numbers, so a chunk that
    warms up on the WINDOW frames before it gets one piece's range even where frames before
    it did not decode (here 20-22)."""
    from stereoconv.disparity.shots import WINDOW, DepthRangeSmoother

    rng = np.random.default_rng(0)
    ranges = {i: (float(rng.uniform(0, 1)), float(rng.uniform(1, 2))) for i in range(60)}
    decoded = [i for i in ranges if i not in (20, 21, 22)]

    def smoothed(first: int) -> dict[int, tuple[float, float]]:
        smoother = DepthRangeSmoother()
        return {i: smoother.update(*ranges[i], False, i) for i in decoded if i >= first}

    whole = smoothed(0)
    for start in (30, 35, 38):
        chunk = smoothed(start - WINDOW)
        assert all(chunk[i] == whole[i] for i in chunk if i >= start), start
