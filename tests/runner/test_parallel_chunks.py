"""Chunks (and photo batches) converted at once in threads (the warp job on a GPU): they do run
at once, give the same files as one by one, and an error ends the job without losing or
duplicating a finished chunk."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
import torch

from stereoconv.config import VideoOptions, build_config
from stereoconv.converter import StereoConverter
from stereoconv.jobs.video.job import open_workdir, prepare_job
from stereoconv.progress import silent
from stereoconv.runner import local as video_job
from stereoconv.runner.local import convert_video
from tests.helpers.clips import decode_all, numbered_frame, read_number, write_clip
from tests.helpers.meeting import meeting_factory


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("clips") / "numbered.mp4"
    return write_clip(path, [numbered_frame(i) for i in range(40)], audio_seconds=1.6)


def convert(tmp_path, clip, tiny_depth, name, at_once, meet=None):
    config = build_config(backend="warp", depth_model=str(tiny_depth))
    converter = StereoConverter(config, torch.device("cpu"))
    if meet is not None:  # the first `at_once` batches must be converted together
        converter = meeting_factory(config, torch.device("cpu"), at_once, str(meet))
    options = VideoOptions(chunk_frames=8)
    job = prepare_job(config, clip, tmp_path / name, options, notify=print, collect_stats=True)
    open_workdir(job, False, print)
    notes, totals = convert_video(converter, job, at_once=at_once)
    return tmp_path / name, totals


def test_chunks_at_once_give_the_same_file_as_one_by_one(tmp_path, clip, tiny_depth):
    serial, serial_totals = convert(tmp_path, clip, tiny_depth, "serial.mp4", 1)
    met = tmp_path / "met"
    threaded, threaded_totals = convert(tmp_path, clip, tiny_depth, "threaded.mp4", 3, met)
    assert met.read_text() == "3 met"  # three chunks were inside the converter together
    digest = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
    assert digest(serial) == digest(threaded)
    assert serial_totals == threaded_totals
    assert [read_number(f) for f in decode_all(threaded)[0]] == list(range(40))


def test_an_error_in_one_chunk_ends_the_job_and_a_rerun_resumes(
    tmp_path, clip, tiny_depth, monkeypatch
):
    real, calls = video_job.convert_chunk, []

    def failing(job, converter, chunk, progress=silent):
        if chunk.index == 1:
            raise RuntimeError("chunk 1 fails")
        calls.append(chunk.index)
        return real(job, converter, chunk, progress)

    monkeypatch.setattr(video_job, "convert_chunk", failing)
    with pytest.raises(RuntimeError, match="chunk 1 fails"):
        convert(tmp_path, clip, tiny_depth, "out.mp4", 2)
    assert not (tmp_path / "out.mp4").exists()
    done = sorted(calls)
    assert 1 not in done and 0 in done

    def counted(job, converter, chunk, progress=silent):
        calls.append(chunk.index)
        return real(job, converter, chunk, progress)

    calls.clear()
    monkeypatch.setattr(video_job, "convert_chunk", counted)
    out, _ = convert(tmp_path, clip, tiny_depth, "out.mp4", 2)
    assert sorted(calls) == sorted(set(range(5)) - set(done))  # none twice, none lost
    assert [read_number(f) for f in decode_all(out)[0]] == list(range(40))


def test_photo_batches_at_once_meet_and_give_the_same_files(tmp_path, tiny_depth):
    from PIL import Image

    from stereoconv.jobs.library import convert_library
    from stereoconv.runner.local import local_batches

    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(1)
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (40, 64, 3), dtype=np.uint8)).save(photos / f"{i}.png")
    config = build_config(backend="warp", depth_model=str(tiny_depth), batch_size=2)
    met = tmp_path / "met"
    for at_once in (1, 3):
        converter = StereoConverter(config, torch.device("cpu"))
        if at_once > 1:
            converter = meeting_factory(config, torch.device("cpu"), at_once, str(met))
        mapper = local_batches(converter, at_once)
        convert_library(converter, photos, tmp_path / f"out{at_once}", mapper)
    assert met.read_text() == "3 met"  # the three batches were converted together
    for i in range(6):
        assert (tmp_path / "out1" / f"{i}.png").read_bytes() == (
            tmp_path / "out3" / f"{i}.png"
        ).read_bytes()


@pytest.mark.parametrize(
    ("settings", "device", "photos", "expected"),
    [
        ({"backend": "warp"}, "cuda", False, 4),
        ({"backend": "warp"}, "cpu", False, 1),
        ({}, "cuda", False, 4),  # the default: the carried fill
        ({}, "cuda", True, 1),  # a photo library's batches are never carried
        ({"temporal_fill": "off"}, "cuda", False, 1),  # the per-frame hybrid: the GPU is busy
        ({"composite": "none"}, "cuda", False, 1),
        ({}, "cpu", False, 1),
    ],
)
def test_chunks_at_once_by_backend_and_device(monkeypatch, settings, device, photos, expected):
    """Several chunks at once where the CPU is the bottleneck on a GPU: the warp backend and the
    video's carried fill; one where the UNet keeps the GPU busy, and on the CPU."""
    import types

    monkeypatch.setattr(video_job, "available_cores", lambda: 16)
    converter = types.SimpleNamespace(config=build_config(**settings), device=torch.device(device))
    assert video_job.chunks_at_once(converter, photos) == expected


@pytest.mark.parametrize(
    ("chunks", "most", "expected"),
    [
        (5, 4, 5),  # one round of 5, not 4 and then 1 alone
        (3, 4, 4),  # all at once anyway
        (8, 4, 4),  # two full rounds
        (9, 4, 5),  # 5 and 4: one idle place, not 3 (4, 4, 1)
        (13, 4, 7),  # 7 and 6
        (100, 4, 4),
        (101, 4, 6),  # 17 rounds of 6: one idle place, not 3
        (5, 1, 1),  # one at a time where one fits
    ],
)
def test_the_last_round_leaves_few_places_idle(chunks, most, expected):
    at_once = video_job.filling_rounds(chunks, most)
    assert at_once == expected
    assert most <= at_once <= 2 * most
    idle = math.ceil(chunks / at_once) * at_once - chunks
    assert all(math.ceil(chunks / n) * n - chunks >= idle for n in range(most, 2 * most + 1))


def test_a_job_converts_as_many_at_once_as_fill_its_rounds(monkeypatch):
    import types

    monkeypatch.setattr(video_job, "available_cores", lambda: 16)
    monkeypatch.setattr(video_job, "card_gib", lambda device: 80.0)
    converter = types.SimpleNamespace(
        config=build_config(backend="warp"), device=torch.device("cuda")
    )
    assert video_job.chunks_at_once(converter, chunks=5) == 5
    assert video_job.chunks_at_once(converter) == 4
    assert video_job.AtOnce(converter, chunks=5).n == 5
    cpu = types.SimpleNamespace(config=build_config(backend="warp"), device=torch.device("cpu"))
    assert video_job.chunks_at_once(cpu, chunks=5) == 1
    carry = types.SimpleNamespace(config=build_config(), device=torch.device("cuda"))
    assert video_job.chunks_at_once(carry, chunks=5) == 4  # its memory: no more than fit
    monkeypatch.setattr(video_job, "card_gib", lambda device: 24.0)
    assert video_job.chunks_at_once(converter, chunks=5) == 4  # a smaller card: as before


def test_after_an_error_chunks_waiting_for_their_cuts_give_up(
    tmp_path, clip, tiny_depth, monkeypatch
):
    """A chunk that fails stops the shot pass (Shots.stop): a chunk waiting inside for the cuts
    of its frames gives up instead of converting once the pass gets there, leaves no file,
    and the error raised is the first chunk's."""
    import dataclasses
    import threading

    config = build_config(backend="warp", depth_model=str(tiny_depth))
    converter = StereoConverter(config, torch.device("cpu"))
    job = prepare_job(config, clip, tmp_path / "o.mp4", VideoOptions(chunk_frames=8), notify=print)
    open_workdir(job, False, print)
    asked, stopped = [], threading.Event()
    real = video_job.convert_chunk

    def cuts_between(first, stop):  # the pass has not got there: wait for it
        asked.append(stop)
        assert stopped.wait(60), "never stopped"
        raise RuntimeError("the shot pass was stopped")

    class WaitingCuts:
        def job_reading(self, job):
            return dataclasses.replace(job, cuts=cuts_between)

        def stop(self):
            stopped.set()

    def chunk_0_fails(job, converter, chunk, progress=silent):
        if chunk.index == 0:
            for _ in range(6000):  # once chunk 1 waits for its cuts
                if asked:
                    break
                threading.Event().wait(0.01)
            raise RuntimeError("chunk 0 fails")
        return real(job, converter, chunk, progress)

    monkeypatch.setattr(video_job, "convert_chunk", chunk_0_fails)
    with pytest.raises(RuntimeError, match="chunk 0 fails"):
        convert_video(converter, job, at_once=2, shots=WaitingCuts())
    assert stopped.is_set() and asked
    assert not any(job.is_done(c) for c in job.chunks)
