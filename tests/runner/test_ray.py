"""Ray: a real local cluster started by the test, CPU workers, tiny models, a real clip. A
worker converts several chunks (or photo batches) at once, as the local runner does."""

from __future__ import annotations

import functools
import json
import os
import signal

import numpy as np
import pytest
import ray

from stereoconv.cli.main import main
from stereoconv.config import build_config
from stereoconv.jobs.video.finish import finish_job
from stereoconv.jobs.video.job import VideoOptions, open_workdir, prepare_job
from stereoconv.runner.ray import make_actors, run_chunks
from tests.helpers.clips import (
    PAN_FRAMES,
    decode_all,
    edited_bikes,
    numbered_frame,
    pan_with_depth,
    read_number,
    write_clip,
)
from tests.helpers.hostile import dying_factory
from tests.helpers.meeting import meeting_factory


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("ray") / "clip.mp4"
    return write_clip(path, [numbered_frame(i) for i in range(60)], audio_seconds=2.4)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, clip, tiny_depth):
    """The single-process conversion, chunked the same way."""
    out = tmp_path_factory.mktemp("ray-ref") / "single.mp4"
    assert main(warp_video(clip, out, tiny_depth)) == 0
    return decode_all(out)[0]


def warp_video(clip, out, tiny_depth, *extra) -> list[str]:
    """`video` arguments of the warp job on the clip, in chunks of 10 (the reference's)."""
    args = ["video", clip, out, "--backend", "warp", "--depth-model", tiny_depth]
    return [str(a) for a in [*args, "--chunk-frames", 10, *extra, "--quiet"]]


def assert_identical(path, reference):
    frames = decode_all(path)[0]
    assert len(frames) == len(reference) == 60
    assert all(np.array_equal(a, b) for a, b in zip(frames, reference, strict=True))
    assert [read_number(f) for f in frames] == list(range(60))


def job_for(clip, out, tiny_depth):
    config = build_config(backend="warp", depth_model=str(tiny_depth))
    options = VideoOptions(chunk_frames=10)
    job = prepare_job(config, clip, out, options, notify=lambda text: None)
    open_workdir(job, False, lambda text: None)
    return job


def test_two_workers_give_the_single_process_frames_bit_for_bit(
    cluster, tmp_path, clip, reference, tiny_depth
):
    out = tmp_path / "ray.mp4"
    assert main(warp_video(clip, out, tiny_depth, "--workers", 2)) == 0
    assert_identical(out, reference)


def test_one_worker_converts_three_chunks_at_once_and_gives_the_same_frames(
    cluster, tmp_path, clip, reference, tiny_depth
):
    job = job_for(clip, tmp_path / "at-once.mp4", tiny_depth)
    met = tmp_path / "met"
    meet = functools.partial(meeting_factory, parties=3, marker=str(met))
    (actor,) = make_actors(job.config, 1, use_gpus=False, factory=meet, at_once=3)
    assert ray.get(actor.at_once.remote()) == 3
    done = run_chunks(job, [actor])
    assert met.read_text() == "3 met"  # three chunks were inside the converter together
    assert len(done) == 6
    finish_job(job)
    assert_identical(job.output, reference)  # the single-process run, one chunk at a time


def test_a_killed_worker_is_restarted_and_its_chunks_retried(
    cluster, tmp_path, clip, reference, tiny_depth
):
    job = job_for(clip, tmp_path / "killed.mp4", tiny_depth)
    (actor,) = make_actors(job.config, 1, use_gpus=False, at_once=3)
    victim = ray.get(actor.pid.remote())
    killed = []

    def kill_once(chunk):
        if not killed:  # after the first chunk, while the next ones are converting
            os.kill(victim, signal.SIGKILL)
            killed.append(chunk)

    done = run_chunks(job, [actor], on_chunk=kill_once)
    assert killed and len(done) == 6
    assert ray.get(actor.pid.remote()) != victim  # Ray restarted it
    finish_job(job)
    assert_identical(job.output, reference)


def test_stopped_job_resumes_with_only_the_missing_chunks(
    cluster, tmp_path, clip, reference, tiny_depth
):
    job = job_for(clip, tmp_path / "resumed.mp4", tiny_depth)
    actors = make_actors(job.config, 2, use_gpus=False)
    seen = []

    def stop_after_two(chunk):
        seen.append(chunk.index)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_chunks(job, actors, on_chunk=stop_after_two)
    finished = {c.index for c in job.chunks if job.is_done(c)}
    assert finished == set(seen)

    job = job_for(clip, tmp_path / "resumed.mp4", tiny_depth)  # the same command again
    done = run_chunks(job, actors)
    assert {c.index for c in done} == set(range(6)) - finished
    finish_job(job)
    assert_identical(job.output, reference)
    assert not job.workdir.exists()


def test_photo_library_on_two_workers_equals_one_process(cluster, tmp_path, tiny_depth):
    from PIL import Image

    photos = tmp_path / "photos"
    (photos / "trip").mkdir(parents=True)
    rng = np.random.default_rng(3)
    for name, size in [
        ("a.png", (40, 64)),
        ("trip/b.png", (40, 64)),
        ("trip/c.jpg", (48, 30)),
        ("d.png", (48, 30)),
        ("e.png", (40, 64)),
    ]:
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(photos / name)
    common = ["--backend", "warp", "--depth-model", str(tiny_depth), "--batch-size", "2", "-q"]
    assert main(["images", str(photos), str(tmp_path / "local"), *common]) == 0
    assert main(["images", str(photos), str(tmp_path / "ray"), *common, "--workers", "2"]) == 0
    local = sorted(p.relative_to(tmp_path / "local") for p in (tmp_path / "local").rglob("*.*"))
    on_ray = sorted(p.relative_to(tmp_path / "ray") for p in (tmp_path / "ray").rglob("*.*"))
    outputs = [p for p in local if not p.name.startswith(".")]
    assert local == on_ray and len(outputs) == 5
    for rel in outputs:
        assert (tmp_path / "local" / rel).read_bytes() == (tmp_path / "ray" / rel).read_bytes()


# --- photo batches: retried like chunks, a poisoned photo reported; --device -------------------


def photo_folder(folder, sizes):
    from PIL import Image

    folder.mkdir()
    rng = np.random.default_rng(5)
    for i, size in enumerate(sizes):
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


def library_on(actors, photos, out, tiny_depth, batch_size=4):
    from stereoconv.converter import StereoConverter
    from stereoconv.jobs.library import convert_library
    from stereoconv.runner.ray_photos import ray_photo_batches

    config = build_config(backend="warp", depth_model=str(tiny_depth), batch_size=batch_size)
    converter = StereoConverter(config, "cpu")
    return convert_library(converter, photos, out, ray_photo_batches(actors), skip_errors=True)


def test_one_worker_converts_photo_batches_at_once_as_one_process_does(
    cluster, tmp_path, tiny_depth
):
    from stereoconv.converter import StereoConverter
    from stereoconv.jobs.library import convert_library
    from stereoconv.runner.local import local_batches

    photos = photo_folder(tmp_path / "photos", [(40, 64)] * 6 + [(48, 30)] * 2)
    config = build_config(backend="warp", depth_model=str(tiny_depth), batch_size=2)
    met = tmp_path / "met"
    meet = functools.partial(meeting_factory, parties=3, marker=str(met))
    (actor,) = make_actors(config, 1, use_gpus=False, factory=meet, at_once=3)
    report = library_on([actor], photos, tmp_path / "ray", tiny_depth, batch_size=2)
    assert met.read_text() == "3 met" and len(report.converted) == 8
    out = tmp_path / "local"  # in this process, one batch at a time
    mapper = local_batches(StereoConverter(config, "cpu"), 1)
    convert_library(StereoConverter(config, "cpu"), photos, out, mapper)
    for i in range(8):
        assert (out / f"{i}.png").read_bytes() == (tmp_path / "ray" / f"{i}.png").read_bytes()


def test_a_poisoned_photo_is_reported_and_the_rest_done(cluster, tmp_path, tiny_depth):
    # batches of 2 (the poisoned one first: the smallest), up to 3 at once on one worker: the
    # poisoned photo takes its neighbours' process down too, each photo is retried alone
    photos = photo_folder(tmp_path / "photos", [(40, 64)] * 6 + [(48, 37)])
    config = build_config(backend="warp", depth_model=str(tiny_depth), batch_size=2)
    (actor,) = make_actors(config, 1, use_gpus=False, factory=dying_factory, at_once=3)
    report = library_on([actor], photos, tmp_path / "out", tiny_depth, batch_size=2)
    assert [str(s) for s, _ in report.failed] == ["6.png"]
    assert "the worker process converting it died" in report.failed[0][1]
    converted = [f"{i}.png" for i in range(6)]
    assert sorted(str(s) for s in report.converted) == converted
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == converted


def test_a_photo_batch_whose_worker_died_is_retried(cluster, tmp_path, tiny_depth):
    photos = photo_folder(tmp_path / "photos", [(40, 64)] * 4)
    marker = tmp_path / "died-once"
    config = build_config(
        backend="warp", depth_model=str(tiny_depth), batch_size=4, prompt=str(marker)
    )
    actors = make_actors(config, 1, use_gpus=False, factory=dying_factory)
    report = library_on(actors, photos, tmp_path / "out", tiny_depth)
    assert marker.exists()  # the worker died on the first batch
    assert not report.failed and len(report.converted) == 4


def test_workers_use_the_asked_device(cluster, tiny_depth):
    from stereoconv.errors import UserError
    from stereoconv.runner.ray import worker_device

    assert str(worker_device(None, cuda=False)) == "cpu"
    assert str(worker_device(None, cuda=True)) == "cuda"
    assert str(worker_device("cpu", cuda=True)) == "cpu"
    assert str(worker_device("cuda:1", cuda=True)) == "cuda"  # the one GPU Ray gave the actor
    with pytest.raises(UserError, match="no CUDA device"):
        worker_device("cuda", cuda=False)
    config = build_config(backend="warp", depth_model=str(tiny_depth))
    (actor,) = make_actors(config, 1, use_gpus=False, device="cpu")
    assert ray.get(actor.device.remote()) == "cpu"
    with pytest.raises(UserError, match="the Ray workers could not start: .*no CUDA device"):
        make_actors(config, 1, use_gpus=False, device="cuda")


def test_a_carried_diffusion_job_split_over_two_workers_gives_one_process_frames(
    cluster, tmp_path, tiny_sd
):
    """The diffusion backend's carried fill (the video default): each chunk carries from its
    own first frame, so chunks on two workers give the frames of one process."""
    clip, maps = pan_with_depth(tmp_path)
    common = ["--model", tiny_sd, "--depth", maps, "--depth-kind", "disparity-px"]
    common += ["--steps", "3", "--fill-min-width", "6", "--chunk-frames", "4", "--quiet"]
    common += ["--crf", "0"]  # lossless: the frames compare exactly (see test_carry_job)
    one, two = tmp_path / "one.mp4", tmp_path / "two.mp4"
    assert main([str(a) for a in ["video", clip, one, *common, "--device", "cpu"]]) == 0
    assert main([str(a) for a in ["video", clip, two, *common, "--workers", "2"]]) == 0
    a, b = decode_all(one)[0], decode_all(two)[0]
    assert len(a) == len(b) == PAN_FRAMES
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_a_worker_converts_photo_batches_as_the_local_runner_does(monkeypatch):
    """A worker's photo batches go as many at once as the local runner's (never carried, so one
    at a time where diffusion keeps the GPU busy), whatever its chunks do."""
    import stereoconv.runner.local as local
    from stereoconv.runner.ray import ChunkWorker

    monkeypatch.setattr(
        local, "chunks_at_once", lambda converter, photos=False, chunks=None: 1 if photos else 4
    )
    worker = ChunkWorker(build_config(backend="warp"), device="cpu")
    assert worker.at_once() == 4 and worker.at_once(photos=True) == 1


def test_a_worker_told_a_jobs_chunks_fills_their_rounds_as_the_local_runner(monkeypatch):
    """Before a job, the driver tells each worker about how many chunks will come to it
    (run_chunks, ChunkWorker.plan): it then converts as many at once as the local runner would
    for that many (runner.local.filling_rounds); one asked for a number keeps it."""
    import stereoconv.runner.local as local
    from stereoconv.runner.ray import ChunkWorker

    monkeypatch.setattr(
        local,
        "chunks_at_once",
        lambda converter, photos=False, chunks=None: local.filling_rounds(chunks or 4, 4),
    )
    worker = ChunkWorker(build_config(backend="warp"), device="cpu")
    assert worker.at_once() == 4
    assert worker.plan(5) == 5 and worker.at_once() == 5
    assert worker.plan(8) == 4
    assert ChunkWorker(build_config(backend="warp"), device="cpu", at_once=3).plan(5) == 3


def test_the_trained_detectors_cuts_split_over_two_workers_are_the_one_piece_ones(
    cluster, tmp_path, tiny_depth
):
    """--shots transnet (the default) through Ray: each chunk is sent the cuts of the frames it
    reads, as the pass beside the chunks decides them; the cuts (the report's flags) and the
    frames are those of the job in one piece, which has the clip's dissolve and hard cut."""
    clip = edited_bikes(tmp_path / "edited.mp4")
    results = {}
    for name, extra in {"one": [1000], "ray": [16, "--workers", 2]}.items():
        out = tmp_path / f"{name}.mp4"
        args = ["video", clip, out, "--backend", "warp", "--depth-model", tiny_depth, "--crf", 0]
        args += ["--quiet", "--report", out.with_suffix(".html"), "--chunk-frames", *extra]
        assert main([str(a) for a in args]) == 0
        report = json.loads(out.with_suffix(".json").read_text())
        results[name] = [f["index"] for f in report["frames"] if f["cut"]], decode_all(out)[0]
    (cuts, frames), (ray_cuts, ray_frames) = results["one"], results["ray"]
    assert len(cuts) == 3 and ray_cuts == cuts  # the first frame, the dissolve, the hard cut
    assert len(ray_frames) == len(frames) == 139
    assert all(np.array_equal(a, b) for a, b in zip(ray_frames, frames, strict=True))
