"""The optical flow the carried fill follows (stereoconv/motion.py): it finds a pan, and its
result does not depend on OpenCV's thread count, so a resumed or distributed job carries the
same pixels."""

from __future__ import annotations

import pytest
import torch

from stereoconv.motion import dis_flow, full_size_flow, greys_for_flow
from tests.helpers.clips import flow_texture as texture


def test_the_flow_finds_a_pan():
    world = texture(80, 140)
    before, after = world[:, :, 10:110], world[:, :, 12:112]  # the content moves 2 px left
    grey = greys_for_flow(torch.stack([before, after]))
    flow = full_size_flow(dis_flow(*grey), 80, 100)
    inner = flow[:, 10:-10, 10:-10]
    assert inner[0].median().item() == pytest.approx(2.0, abs=0.1)
    assert inner[1].abs().median().item() < 0.1


def test_the_flow_does_not_depend_on_opencv_s_thread_count():
    import cv2

    world = texture(120, 200, seed=3)
    before, after = world[:, :, 10:170], world[:, :, 13:173]  # 3 px left
    grey = greys_for_flow(torch.stack([before, after]))
    threads = cv2.getNumThreads()
    try:
        flows = []
        for n in (1, 2, 4):
            cv2.setNumThreads(n)
            flows.append(full_size_flow(dis_flow(*grey), 120, 160))
    finally:
        cv2.setNumThreads(threads)
    assert flows[0].abs().max() > 1  # a real flow, not zeros
    assert all(torch.equal(flows[0], f) for f in flows[1:])
