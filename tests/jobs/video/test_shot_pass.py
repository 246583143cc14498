"""The trained detector's pass beside the chunks (jobs/video/shots.py, ShotPass): a chunk gets the
cuts before its end while later frames are still to decode, they are the whole pass's, the
complete pass is stored for a resumed job, and a stopped pass stores nothing. The frames come
from a stand-in decoder that holds back the rest of the video until the test lets it go; the
network is the real one."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from stereoconv.disparity import transnet
from stereoconv.jobs.video import shots
from stereoconv.jobs.video.shots import ShotPass, read_cuts

FRAMES, CUT = 300, 200  # a hard cut from one flat colour to another at frame 200
HELD_FROM = 130  # the stand-in decoder waits here until released


def flat(colour: tuple[int, int, int]) -> np.ndarray:
    return np.broadcast_to(np.array(colour, np.uint8), (transnet.HEIGHT, transnet.WIDTH, 3)).copy()


@pytest.fixture
def held_decoder(monkeypatch):
    """Replaces the pass's decoder: frames of two shots, held back at HELD_FROM until the
    returned event is set."""
    release = threading.Event()

    def thumbnails(path, pts, info, segment, stop=None):
        for i in range(len(pts)):
            if i == HELD_FROM:
                assert release.wait(60), "never released"
            if stop is not None and stop.is_set():
                return  # as the real decoders: a stop ends them short, without a word
            yield i, flat((200, 40, 40) if i < CUT else (30, 60, 220))

    monkeypatch.setattr(shots, "thumbnails", thumbnails)
    return release


def start(tmp_path) -> ShotPass:
    pts = tuple(range(FRAMES))
    return ShotPass(tmp_path / "in.mp4", pts, None, 100, torch.device("cpu"), tmp_path / "s.json")


def test_a_chunk_gets_its_cuts_before_the_pass_is_complete(tmp_path, held_decoder):
    shot_pass = start(tmp_path)
    assert shot_pass.cuts_before(50) == (0,)  # decided on frames the decoder has given
    assert not (tmp_path / "s.json").exists()  # the rest is still held back
    held_decoder.set()
    assert shot_pass.cuts_before(CUT) == (0,)
    assert shot_pass.cuts_before(CUT + 1) == (0, CUT)
    shot_pass.join()
    assert shot_pass.cuts_before(FRAMES) == (0, CUT)
    assert read_cuts(tmp_path / "s.json", FRAMES) == [0, CUT]


def test_a_stopped_pass_stores_nothing(tmp_path, held_decoder):
    shot_pass = start(tmp_path)
    assert shot_pass.cuts_before(50) == (0,)
    threading.Timer(0.2, held_decoder.set).start()  # the decoder goes on; the pass ends at once
    shot_pass.stop()
    assert not (tmp_path / "s.json").exists()
    with pytest.raises(RuntimeError, match="stopped"):
        shot_pass.cuts_before(FRAMES)


def test_an_error_in_the_pass_reaches_the_chunks(tmp_path, monkeypatch):
    def broken(path, pts, info, segment, stop=None):
        yield 0, flat((0, 0, 0))
        raise OSError("the input went away")

    monkeypatch.setattr(shots, "thumbnails", broken)
    shot_pass = start(tmp_path)
    with pytest.raises(OSError, match="went away"):
        shot_pass.cuts_before(10)
    with pytest.raises(OSError, match="went away"):
        shot_pass.join()
    assert not (tmp_path / "s.json").exists()


def test_a_stop_ends_a_segments_decoding_at_its_next_frame(tmp_path):
    """stop() ends the decoding threads too, not only the pass: a segment asked to stop gives
    no more frames (Ctrl-C does not wait for whole segments of a long video to decode)."""
    from stereoconv.media.video import frame_timestamps, probe
    from tests.helpers.clips import numbered_frame, write_clip

    clip = write_clip(tmp_path / "c.mp4", [numbered_frame(i) for i in range(12)])
    info, pts = probe(clip), tuple(frame_timestamps(clip, 0, None))
    whole = shots.segment_thumbnails(clip, pts, info, (0, len(pts)))
    assert [i for i, _ in whole] == list(range(12))
    stop = threading.Event()
    stop.set()
    assert shots.segment_thumbnails(clip, pts, info, (0, len(pts)), stop) == []
