"""Chunks converted at once in threads (the warp job on a GPU): the same files as one by one,
and an error ends the job without losing or duplicating a finished chunk."""

from __future__ import annotations

import hashlib

import pytest
import torch

from stereoconv.config import VideoOptions, build_config
from stereoconv.converter import StereoConverter
from stereoconv.jobs.video.job import open_workdir, prepare_job
from stereoconv.progress import silent
from stereoconv.runner import local as video_job
from stereoconv.runner.local import convert_video
from tests.clips import decode_all, numbered_frame, read_number, write_clip


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("clips") / "numbered.mp4"
    return write_clip(path, [numbered_frame(i) for i in range(40)], audio_seconds=1.6)


def convert(tmp_path, clip, tiny_depth, name, at_once):
    config = build_config(backend="warp", depth_model=str(tiny_depth))
    converter = StereoConverter(config, torch.device("cpu"))
    options = VideoOptions(chunk_frames=8)
    job = prepare_job(config, clip, tmp_path / name, options, notify=print, collect_stats=True)
    open_workdir(job, False, print)
    notes, totals = convert_video(converter, job, at_once=at_once)
    return tmp_path / name, totals


def test_chunks_at_once_give_the_same_file_as_one_by_one(tmp_path, clip, tiny_depth):
    serial, serial_totals = convert(tmp_path, clip, tiny_depth, "serial.mp4", 1)
    threaded, threaded_totals = convert(tmp_path, clip, tiny_depth, "threaded.mp4", 3)
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
