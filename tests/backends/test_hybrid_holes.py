"""Which holes the hybrid composite generates, and where its blend reaches: pure tensor math."""

import torch

from stereoconv.backends.diffusion import border_runs, generation_holes, hole_runs, seam_alpha


def row(text: str) -> torch.Tensor:
    """'..##...' -> a (1, 1, W) hole mask: # is a hole."""
    return torch.tensor([[[c == "#" for c in text]]])


def test_hole_runs_measure_each_run():
    runs = hole_runs(row("#..###.##"))[0, 0].tolist()
    assert runs == [1, 0, 0, 3, 3, 3, 0, 2, 2]


def test_narrow_runs_keep_the_warp_fill():
    holes = row("##....####....#####")
    assert generation_holes(holes, min_width=4)[0, 0].tolist() == (
        [False] * 6 + [True] * 4 + [False] * 4 + [True] * 5
    )


def test_border_strips_are_left_to_the_warp_when_asked():
    holes = row("###....###....###")
    assert border_runs(holes)[0, 0].tolist() == [True] * 3 + [False] * 11 + [True] * 3
    inner = generation_holes(holes, min_width=3, border=False)[0, 0]
    assert inner.tolist() == [False] * 7 + [True] * 3 + [False] * 7
    assert generation_holes(holes, min_width=3, border=True).sum() == 9


def test_seam_reaches_only_into_the_background_side():
    """A hole between background (d = 1) on its left and foreground (d = 9) on its right: the
    blend weight spreads 2 px to the left, none to the right."""
    holes = row("......###......")
    disparity = torch.tensor([[[1.0] * 6 + [0.0] * 3 + [9.0] * 6]])
    alpha = seam_alpha(holes, disparity, seam=2)[0, 0, 0]
    assert alpha[6:9].tolist() == [1.0, 1.0, 1.0]
    assert alpha[4] > 0 and alpha[5] > alpha[4] and alpha[:4].eq(0).all()
    assert alpha[9:].eq(0).all()


def test_generated_pairs_keep_the_warp_fill_where_asked():
    """Text and depth to stereo composite with the same settings as images: holes narrower
    than min_width and, without border, the edge strips keep the warp backend's fill."""
    from stereoconv.backends.diffusion import HybridSettings, hybrid_composite, warp_and_fill

    generator = torch.Generator().manual_seed(0)
    left = torch.rand(1, 3, 24, 64, generator=generator)
    disparity = torch.zeros(1, 24, 64)
    disparity[:, :, 20:30] = 6.0  # a near block: a 6 px hole beside it, and a strip at the edge
    disparity[:, :, 40:] = 2.0
    generated = torch.rand(1, 3, 24, 64, generator=generator)

    def composite(min_width: int, border: bool):
        settings = HybridSettings(fill_min_width=min_width, fill_border=border)
        plan = warp_and_fill(left, disparity, settings)
        return hybrid_composite(plan, generated, settings.seam), plan.holes

    base = warp_and_fill(left, disparity, HybridSettings()).base
    everywhere, holes = composite(0, True)
    assert holes.any() and not torch.allclose(everywhere, base)
    kept, none = composite(64, False)
    assert not none.any() and torch.equal(kept, base)
    wide_only, some = composite(5, True)
    narrow = composite(7, True)[1]
    assert some.sum() > narrow.sum()  # the 6 px hole is generated at 5, not at 7
