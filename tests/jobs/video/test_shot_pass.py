"""The trained detector's pass beside the chunks (jobs/video/shots.py, ShotPass): a chunk gets the
cuts of its frames while segments elsewhere in the video are still to decode, they are the whole
pass's, the complete pass is stored for a resumed job, and a stopped pass stores nothing. The
frames come from a stand-in decoder that holds back a segment until the test lets it go; the
network is the real one."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from stereoconv.disparity import transnet
from stereoconv.jobs.video import shots
from stereoconv.jobs.video.shots import ShotPass, read_cuts, segments, window_input

FRAMES, CUT = 600, 450  # a hard cut from one flat colour to another at frame 450
STARTS = (0, 300)  # the chunks' first frames: segments of windows 0-4 and 5-11


def flat(colour: tuple[int, int, int]) -> np.ndarray:
    return np.broadcast_to(np.array(colour, np.uint8), (transnet.HEIGHT, transnet.WIDTH, 3)).copy()


def frame(i: int) -> np.ndarray:
    return flat((200, 40, 40) if i < CUT else (30, 60, 220))


@pytest.fixture
def held_decoder(monkeypatch):
    """Replaces the pass's decoder: frames of two shots; a segment's decoding that begins at a
    frame in `held` waits at its first frame until the event `held[first]` is set."""
    held: dict[int, threading.Event] = {}
    monkeypatch.setattr(shots, "available_cores", lambda: 2)  # both segments at once, anywhere

    def decoded(path, pts, info, first, stop, halt=None):
        if first in held:
            assert held[first].wait(60), "never released"
        for i in range(first, stop):
            if halt is not None and halt.is_set():
                return  # as the real decoder: a halt ends it short, without a word
            yield i, frame(i)

    monkeypatch.setattr(shots, "decoded_thumbnails", decoded)
    return held


def start(tmp_path) -> ShotPass:
    pts = tuple(range(FRAMES))
    return ShotPass(
        tmp_path / "in.mp4", pts, None, STARTS, torch.device("cpu"), tmp_path / "s.json"
    )


def test_segments_begin_where_chunks_begin():
    # a chunk's first frame less the 16 its depth smoothing warms up on, and the frame before
    assert segments(FRAMES, STARTS) == [range(0, 5), range(5, 12)]
    assert segments(1000, (0, 240, 480, 720)) == [
        range(0, 4),
        range(4, 9),
        range(9, 14),
        range(14, 20),
    ]
    assert segments(2500, (0,)) == [range(0, 20), range(20, 40), range(40, 50)]  # at most 1000
    assert segments(30, (0,)) == [range(0, 1)]
    # chunks of 16: their segments at least 200 frames apart
    assert segments(300, range(0, 300, 16)) == [range(0, 4), range(4, 6)]


def test_a_frame_that_did_not_decode_takes_the_one_before_it():
    held = {i: flat((i, 0, 0)) for i in (3, 4, 7)}
    window = window_input(held, np.array([2, 3, 4, 5, 6, 7, 8]))
    assert window[:, 0, 0, 0].tolist() == [3, 3, 4, 4, 4, 7, 7]
    assert window_input(held, np.array([10, 11])) is None


def test_a_chunk_gets_its_cuts_while_other_segments_wait(tmp_path, held_decoder):
    held_decoder[0] = threading.Event()  # the first segment decodes nothing yet
    shot_pass = start(tmp_path)
    assert shot_pass.cuts_between(300, 500) == (CUT,)  # the second chunk's, from its segment
    assert not (tmp_path / "s.json").exists()
    held_decoder[0].set()
    assert shot_pass.cuts_between(0, CUT) == (0,)
    shot_pass.join()
    assert shot_pass.cuts_between(0, FRAMES) == (0, CUT)
    assert read_cuts(tmp_path / "s.json", FRAMES) == [0, CUT]
    # the same as the frames judged in one piece
    whole = transnet.transition_probabilities(
        [frame(i) for i in range(FRAMES)], torch.device("cpu")
    )
    assert transnet.cut_frames(whole) == [CUT]


def test_a_stopped_pass_stores_nothing(tmp_path, held_decoder):
    held_decoder[225] = threading.Event()  # the second segment's decoding waits
    shot_pass = start(tmp_path)
    assert shot_pass.cuts_between(0, 50) == (0,)
    threading.Timer(0.2, held_decoder[225].set).start()  # it goes on; the pass ends at once
    shot_pass.stop()
    assert not (tmp_path / "s.json").exists()
    with pytest.raises(RuntimeError, match="stopped"):
        shot_pass.cuts_between(0, FRAMES)


def test_an_error_in_the_pass_reaches_the_chunks(tmp_path, monkeypatch):
    def broken(path, pts, info, first, stop, halt=None):
        yield first, flat((0, 0, 0))
        raise OSError("the input went away")

    monkeypatch.setattr(shots, "decoded_thumbnails", broken)
    shot_pass = start(tmp_path)
    with pytest.raises(OSError, match="went away"):
        shot_pass.cuts_between(0, 10)
    with pytest.raises(OSError, match="went away"):
        shot_pass.join()
    assert not (tmp_path / "s.json").exists()


def test_a_halt_ends_a_segments_decoding_at_its_next_frame(tmp_path):
    """stop() ends the decoding threads too, not only the pass: a segment asked to stop gives
    no more frames (Ctrl-C does not wait for whole segments of a long video to decode)."""
    from stereoconv.media.video import frame_timestamps, probe
    from tests.helpers.clips import numbered_frame, write_clip

    clip = write_clip(tmp_path / "c.mp4", [numbered_frame(i) for i in range(12)])
    info, pts = probe(clip), tuple(frame_timestamps(clip, 0, None))
    whole = list(shots.decoded_thumbnails(clip, pts, info, 0, len(pts)))
    assert [i for i, _ in whole] == list(range(12))
    assert [i for i, _ in shots.decoded_thumbnails(clip, pts, info, 5, 9)] == [5, 6, 7, 8]
    halt = threading.Event()
    halt.set()
    assert list(shots.decoded_thumbnails(clip, pts, info, 0, len(pts), halt)) == []


def test_a_pass_begun_before_its_folder_keeps_its_cuts_once_told_where(tmp_path, held_decoder):
    pts = tuple(range(120))  # three windows, no cut
    # complete before it is told: written when told
    early = ShotPass(tmp_path / "in.mp4", pts, None, (0,), torch.device("cpu"))
    early.join()
    assert list(tmp_path.iterdir()) == []
    early.keep_in(tmp_path / "a.json")
    assert read_cuts(tmp_path / "a.json", 120) == [0]
    # told while it runs: written when complete, once
    held_decoder[0] = threading.Event()
    late = ShotPass(tmp_path / "in.mp4", pts, None, (0,), torch.device("cpu"))
    late.keep_in(tmp_path / "b.json")
    assert not (tmp_path / "b.json").exists()
    held_decoder[0].set()
    late.join()
    assert read_cuts(tmp_path / "b.json", 120) == [0]
    (tmp_path / "b.json").unlink()
    late.keep_in(tmp_path / "b.json")  # not twice
    assert not (tmp_path / "b.json").exists()
