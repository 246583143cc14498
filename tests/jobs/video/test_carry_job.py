"""The carried fill (temporal_fill = carry, the video default) through the real `video` job, on
the tiny SD model with the disparity given: the same frames whether the job runs in one go or is
stopped and resumed (a chunk starts its carry afresh, so each chunk is a pure function of its
frames), and the UNet's work counted per frame in the report. Ray: tests/runner/test_ray.py."""

from __future__ import annotations

import json

import numpy as np
import pytest

from stereoconv.cli.main import main
from tests.helpers.clips import PAN_FRAMES as FRAMES
from tests.helpers.clips import decode_all, pan_with_depth


@pytest.fixture(scope="module")
def pan(tmp_path_factory):
    return pan_with_depth(tmp_path_factory.mktemp("carry-job"))


def carry_args(pan, tiny_sd, out, *extra) -> list[str]:
    """The carried job on the pan, lossless: the frames stereoconv makes compare exactly (x264 at
    CRF 18 was seen to encode the same frames of a 5-frame chunk differently from one run to
    the next in one process, docs/video.md)."""
    clip, maps = pan
    return [
        str(a)
        for a in (
            "video", clip, out, "--model", tiny_sd, "--depth", maps,
            "--depth-kind", "disparity-px", "--steps", "4", "--fill-min-width", "6",
            "--chunk-frames", "5", "--device", "cpu", "--quiet", "--crf", "0", *extra,
        )
    ]  # fmt: skip


def test_resumed_job_gives_the_uninterrupted_frames(pan, tiny_sd, tmp_path, monkeypatch):
    import stereoconv.runner.local as local

    whole = tmp_path / "whole.mp4"
    assert main(carry_args(pan, tiny_sd, whole, "--report", tmp_path / "r.html")) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    costs = [f["unet_evaluations"] for f in report["frames"]]
    # each chunk (5 frames) paints its first frame; the rest is carried along the pan
    assert all(costs[i] > 0 for i in (0, 5, 10)), costs
    assert sum(c > 0 for c in costs) <= 5, costs
    assert report["unet_evaluations_per_frame"] == pytest.approx(sum(costs) / FRAMES, rel=1e-3)

    resumed = tmp_path / "resumed.mp4"
    real = local.convert_chunk

    def stop_at_the_second(job, converter, chunk, progress):
        if chunk.index == 1:
            raise KeyboardInterrupt
        return real(job, converter, chunk, progress)

    monkeypatch.setattr(local, "convert_chunk", stop_at_the_second)
    assert main(carry_args(pan, tiny_sd, resumed)) == 130
    monkeypatch.setattr(local, "convert_chunk", real)
    assert main(carry_args(pan, tiny_sd, resumed)) == 0
    a, b = decode_all(whole)[0], decode_all(resumed)[0]
    assert len(a) == len(b) == FRAMES
    differ = [
        (i, int(np.abs(x.astype(int) - y).max()), int((x != y).any(-1).sum()))
        for i, (x, y) in enumerate(zip(a, b, strict=True))
        if not np.array_equal(x, y)
    ]
    assert not differ, f"(frame, largest difference, pixels) that differ: {differ}"


def test_off_paints_every_frame_with_holes(pan, tiny_sd, tmp_path):
    """temporal_fill off: the per-frame hybrid, every frame painted over the whole frame."""
    out = tmp_path / "off.mp4"
    args = carry_args(pan, tiny_sd, out, "--temporal-fill", "off", "--report", tmp_path / "r.html")
    assert main(args) == 0
    costs = [f["unet_evaluations"] for f in json.loads((tmp_path / "r.json").read_text())["frames"]]
    assert len(costs) == FRAMES and all(c == pytest.approx(costs[0]) for c in costs)
    assert costs[0] == pytest.approx(2 * 2 * (4 - 1))  # both views, inverted to t', then filled


def test_one_chunk_of_the_pan_costs_an_eighth_of_the_per_frame_hybrid(pan, tiny_sd, tmp_path):
    """Issue 27's count: the carried fill's UNet image-evaluations per frame, through the real
    job over one chunk of the pan, at most 1/8 of the per-frame hybrid's (both counted)."""

    def per_frame(name: str, *extra) -> float:
        report = tmp_path / f"{name}.html"
        args = carry_args(pan, tiny_sd, tmp_path / f"{name}.mp4", "--report", report, *extra)
        assert main([*args, "--chunk-frames", str(FRAMES)]) == 0
        return json.loads(report.with_suffix(".json").read_text())["unet_evaluations_per_frame"]

    off, carried = per_frame("off", "--temporal-fill", "off"), per_frame("carry")
    assert off == pytest.approx(2 * 2 * (4 - 1))
    assert 0 < carried <= off / 8, (carried, off)


def test_chunks_carried_at_once_give_the_frames_of_one_by_one(pan, tiny_sd, tmp_path, monkeypatch):
    """On a GPU the carried fill's chunks run at once in threads (runner.local.chunks_at_once),
    their paints taking turns at the one UNet: three chunks that meet in their first paint give
    the frames of the chunks one by one."""
    import threading

    import stereoconv.backends.diffusion as diffusion
    import stereoconv.runner.local as local

    one_by_one = tmp_path / "one.mp4"
    assert main(carry_args(pan, tiny_sd, one_by_one)) == 0

    real_fill, met = diffusion.DiffusionBackend.fill, threading.Barrier(3, timeout=60)
    calls, lock = [0], threading.Lock()

    def meeting_fill(self, *args, **kwargs):
        with lock:
            calls[0] += 1
            meets = calls[0] <= 3
        if meets:
            met.wait()  # breaks (and the job fails) unless three chunks paint at once
        return real_fill(self, *args, **kwargs)

    monkeypatch.setattr(local, "chunks_at_once", lambda converter, photos=False, chunks=None: 3)
    monkeypatch.setattr(diffusion.DiffusionBackend, "fill", meeting_fill)
    at_once = tmp_path / "at-once.mp4"
    assert main(carry_args(pan, tiny_sd, at_once)) == 0
    assert calls[0] >= 3
    a, b = decode_all(one_by_one)[0], decode_all(at_once)[0]
    assert len(a) == len(b) == FRAMES
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
