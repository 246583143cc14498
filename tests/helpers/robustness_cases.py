"""The bad- and awkward-input matrix: one table that tests/cli/test_robustness.py runs and that
docs/robustness.md is generated from (`python -m tests.helpers.robustness_cases >
docs/robustness.md`; a test fails when the page and the table differ).

Each case: the command, what is given, the expected outcome ("error" with a text the one error
line must contain, or "ok" with what happens), and how the test builds the input.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Case:
    id: str
    command: str  # image | images | video | text | depth | eval
    given: str  # what the user hands over (for the docs)
    outcome: str  # "error" or "ok"
    behaviour: str  # what happens (for the docs); for errors, text in the one error line
    argv: tuple[str, ...]  # {in}, {out}, {dir} are filled in by the test


def photo(path, size=(37, 61), mode="RGB", dtype=np.uint8):
    rng = np.random.default_rng(0)
    if mode == "I;16":
        Image.fromarray(rng.integers(0, 65535, size, dtype=np.uint16)).save(path)
    elif mode == "L":
        Image.fromarray(rng.integers(0, 256, size, dtype=np.uint8)).save(path)
    elif mode == "RGBA":
        Image.fromarray(rng.integers(0, 256, (*size, 4), dtype=np.uint8), "RGBA").save(path)
    elif mode == "CMYK":
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).convert("CMYK").save(
            path, format="JPEG"
        )
    else:
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(path)
    return path


W = ("--backend", "warp")  # the cases run the warp backend with the tiny depth model
CASES = [
    Case(
        "missing-path",
        "image",
        "an input path that does not exist",
        "error",
        "input not found",
        ("image", "{dir}/nothing.png", "{out}.png", *W),
    ),
    Case(
        "folder-as-file",
        "image",
        "a folder where a file is expected",
        "error",
        "is a folder",
        ("image", "{dir}", "{out}.png", *W),
    ),
    Case(
        "zero-byte",
        "image",
        "a zero-byte .png",
        "error",
        "cannot read image",
        ("image", "{in:empty.png}", "{out}.png", *W),
    ),
    Case(
        "text-as-png",
        "image",
        "a text file named .png",
        "error",
        "cannot read image",
        ("image", "{in:text.png}", "{out}.png", *W),
    ),
    Case(
        "one-pixel",
        "image",
        "a 1x1 image",
        "ok",
        "converted: a 2x1 side-by-side image",
        ("image", "{in:one.png}", "{out}.png", *W),
    ),
    Case(
        "16-bit",
        "image",
        "a 16-bit grey PNG",
        "ok",
        "converted (top 8 bits, as RGB)",
        ("image", "{in:deep.png}", "{out}.png", *W),
    ),
    Case(
        "cmyk",
        "image",
        "a CMYK JPEG",
        "ok",
        "converted to RGB",
        ("image", "{in:cmyk.jpg}", "{out}.jpg", *W),
    ),
    Case(
        "alpha",
        "image",
        "a PNG with alpha",
        "ok",
        "converted; alpha dropped (views are opaque)",
        ("image", "{in:alpha.png}", "{out}.png", *W),
    ),
    Case(
        "grey",
        "image",
        "a greyscale PNG",
        "ok",
        "converted",
        ("image", "{in:grey.png}", "{out}.png", *W),
    ),
    Case(
        "odd-size",
        "image",
        "an odd size (853x481)",
        "ok",
        "converted at 1706x481",
        ("image", "{in:odd.png}", "{out}.png", *W),
    ),
    Case(
        "too-large",
        "image",
        "an image over --max-megapixels",
        "error",
        "over the limit of 0.001: raise --max-megapixels",
        ("image", "{in:photo.png}", "{out}.png", "--max-megapixels", "0.001", *W),
    ),
    Case(
        "not-writable",
        "image",
        "an output folder that cannot be created or written",
        "error",
        "cannot create the output folder",
        ("image", "{in:photo.png}", "/proc/sc/out.png", *W),
    ),
    Case(
        "output-is-input",
        "image",
        "the output equal to the input",
        "error",
        "is the input",
        ("image", "{in:photo.png}", "{in:photo.png}", "--overwrite", *W),
    ),
    Case(
        "existing-output",
        "image",
        "an existing output without --overwrite",
        "error",
        "exists; pass --overwrite",
        ("image", "{in:photo.png}", "{in:other.png}", *W),
    ),
    Case(
        "negative-divergence",
        "image",
        "--divergence -1",
        "error",
        "--divergence must be >= 0",
        ("image", "{in:photo.png}", "{out}.png", "--divergence", "-1", *W),
    ),
    Case(
        "unknown-layout",
        "image",
        "--layout diagonal",
        "error",
        "'diagonal' is not one of",
        ("image", "{in:photo.png}", "{out}.png", "--layout", "diagonal", *W),
    ),
    Case(
        "preset-typo",
        "image",
        "a preset file with a misspelt key",
        "error",
        "did you mean 'divergence'",
        ("image", "{in:photo.png}", "{out}.png", "--preset", "{in:typo.toml}", *W),
    ),
    Case(
        "not-a-model",
        "image",
        "a model folder that is not a model",
        "error",
        "is not a usable model",
        ("image", "{in:photo.png}", "{out}.png", "--depth-model", "{dir}/empty-model", *W),
    ),
    Case(
        "unsupported-format",
        "image",
        "an output format with no writer (.xyz)",
        "error",
        "unsupported output format",
        ("image", "{in:photo.png}", "{out}.xyz", *W),
    ),
    Case(
        "image-new-folder",
        "image",
        "a new folder as OUT, without the trailing /",
        "error",
        "/ to write into a new folder",
        ("image", "{in:photo.png}", "{out}", *W),
    ),
    Case(
        "spatial-picture",
        "image",
        "--layout spatial (a video format) for a picture: not offered (a preset that names it: "
        "`use it with stereoconv video`)",
        "error",
        "'spatial' is not one of",
        ("image", "{in:photo.png}", "{out}.png", "--layout", "spatial", *W),
    ),
    Case(
        "video-missing",
        "video",
        "a video path that does not exist",
        "error",
        "input not found",
        ("video", "{dir}/none.mp4", "{out}.mp4", *W),
    ),
    Case(
        "video-new-folder",
        "video",
        "a new folder as OUT, without the trailing /",
        "error",
        "/ to write into a new folder",
        ("video", "{in:clip.mp4}", "{out}", *W),
    ),
    Case(
        "pix-fmt",
        "video",
        "`--pix-fmt rgb48le` (a format the encoders do not take)",
        "error",
        "'rgb48le' is not one of 'auto', 'yuv420p'",
        ("video", "{in:clip.mp4}", "{out}.mp4", "--pix-fmt", "rgb48le", *W),
    ),
    Case(
        "ray-address-malformed",
        "video",
        "`--ray-address foo`",
        "error",
        "--ray-address must be host:port, ray://host:port or auto, not 'foo'",
        ("video", "{in:clip.mp4}", "{out}.mp4", "--ray-address", "foo", *W),
    ),
    Case(
        "ray-unreachable",
        "video",
        "`--ray-address 127.0.0.1:1`: no cluster there",
        "error",
        "cannot reach a Ray cluster at 127.0.0.1:1",
        ("video", "{in:clip.mp4}", "{out}.mp4", "--ray-address", "127.0.0.1:1", *W),
    ),
    Case(
        "video-text",
        "video",
        "a text file named .mp4",
        "error",
        "cannot read video",
        ("video", "{in:text.mp4}", "{out}.mp4", *W),
    ),
    Case(
        "video-zero-byte",
        "video",
        "a zero-byte .mp4",
        "error",
        "cannot read video",
        ("video", "{in:empty.mp4}", "{out}.mp4", *W),
    ),
    Case(
        "audio-only",
        "video",
        "an audio-only file",
        "error",
        "has no video stream",
        ("video", "{in:audio.m4a}", "{out}.mp4", *W),
    ),
    Case(
        "truncated",
        "video",
        "a truncated video",
        "ok",
        "converts the frames that are there and says the file looks truncated",
        ("video", "{in:cut.mkv}", "{out}.mp4", *W),
    ),
    Case(
        "unsupported-codec",
        "video",
        "--codec libvpx (not offered)",
        "error",
        "'libvpx' is not one of",
        ("video", "{in:clip.mp4}", "{out}.mp4", "--codec", "libvpx", *W),
    ),
    Case(
        "video-container",
        "video",
        "an output container it cannot write (.avi)",
        "error",
        "unsupported output container",
        ("video", "{in:clip.mp4}", "{out}.avi", *W),
    ),
    Case(
        "video-existing",
        "video",
        "an existing output without --overwrite",
        "error",
        "exists; pass --overwrite",
        ("video", "{in:clip.mp4}", "{in:other.mp4}", *W),
    ),
    Case(
        "bomb-header",
        "image",
        "a PNG whose header claims 60000x60000 pixels",
        "error",
        "60000x60000 (3600 megapixels), over the limit of 100",
        ("image", "{in:bomb.png}", "{out}.png", *W),
    ),
    Case(
        "big-header",
        "image",
        "a PNG whose header claims 12000x12000 pixels",
        "error",
        "over the limit of 100",
        ("image", "{in:big.png}", "{out}.png", *W),
    ),
    Case(
        "depth-bomb",
        "image",
        "a --depth map whose header claims 60000x60000 pixels",
        "error",
        "too many pixels for a depth map",
        ("image", "{in:photo.png}", "{out}.png", "--depth", "{in:bomb.png}", *W),
    ),
    Case(
        "huge-divergence",
        "image",
        "--divergence 1e9",
        "error",
        "--divergence must be <= 25",
        ("image", "{in:photo.png}", "{out}.png", "--divergence", "1e9", *W),
    ),
    Case(
        "nan-convergence",
        "image",
        "--convergence nan",
        "error",
        "--convergence must be",
        ("image", "{in:photo.png}", "{out}.png", "--convergence", "nan", *W),
    ),
    Case(
        "zero-batch",
        "image",
        "--batch-size 0",
        "error",
        "--batch-size must be >= 1",
        ("image", "{in:photo.png}", "{out}.png", "--batch-size", "0", *W),
    ),
    Case(
        "infinite-seam",
        "image",
        "--seam inf",
        "error",
        "--seam must be <= 256",
        ("image", "{in:photo.png}", "{out}.png", "--seam", "inf", *W),
    ),
    Case(
        "steps-before-model",
        "image",
        "--steps 100000 with a diffusion model that does not exist",
        "error",
        "--steps must be <= 1000",
        (
            "image",
            "{in:photo.png}",
            "{out}.png",
            "--backend",
            "diffusion",
            "--steps",
            "100000",
            "--model",
            "{dir}/no-model",
        ),
    ),
    Case(
        "video-damaged",
        "video",
        "an H.264 MP4 with one packet in the middle overwritten",
        "ok",
        "converts the 95 frames FFmpeg decodes, each at its time; one line: `damaged "
        "input: 1 of 96 frames could not be decoded`",
        ("video", "{in:damaged.mp4}", "{out}.mp4", *W),
    ),
    Case(
        "video-damaged-strict",
        "video",
        "the same file with --strict (nothing is written; the converted chunks are kept)",
        "error",
        "--strict: damaged input: 1 of 96 frames",
        ("video", "{in:damaged.mp4}", "{out}.mp4", "--strict", *W),
    ),
    Case(
        "video-damaged-tail",
        "video",
        "an H.264 MP4 with its last two packets overwritten",
        "ok",
        "converts the 94 frames FFmpeg decodes; one line says 2 were lost",
        ("video", "{in:damaged-tail.mp4}", "{out}.mp4", *W),
    ),
    Case(
        "video-repeated-time",
        "video",
        "an MPEG-TS H.264 clip, one frame stamped with the "
        "time of the one before (48 frames, 47 times)",
        "ok",
        "converts one frame per time, 47; one line says 1 repeated",
        ("video", "{in:repeated-time.ts}", "{out}.mp4", *W),
    ),
    Case(
        "video-no-keyframe",
        "video",
        "an H.264 MP4 whose only keyframe is overwritten",
        "error",
        "no frame could be decoded",
        ("video", "{in:damaged-key.mp4}", "{out}.mp4", *W),
    ),
    Case(
        "video-huge-size",
        "video",
        "a video whose header claims 16000x16000 pixels",
        "error",
        "over the limit of 100",
        ("video", "{in:huge.mkv}", "{out}.mp4", *W),
    ),
    Case(
        "video-wide",
        "video",
        "a video whose header claims 65000x2 pixels",
        "error",
        "sides over 16384 are refused",
        ("video", "{in:wide.mkv}", "{out}.mp4", *W),
    ),
    Case(
        "video-no-size",
        "video",
        "a video whose header claims 60000x60000 (FFmpeg drops it)",
        "error",
        "has no picture size",
        ("video", "{in:giant.mkv}", "{out}.mp4", *W),
    ),
    Case(
        "video-absurd-rate",
        "video",
        "a video whose header claims a frame every nanosecond",
        "error",
        "frames per second; over 1000 are refused",
        ("video", "{in:fast.mkv}", "{out}.mp4", *W),
    ),
    Case(
        "video-crf",
        "video",
        "--crf 99",
        "error",
        "--crf must be <= 51",
        ("video", "{in:clip.mp4}", "{out}.mp4", "--crf", "99", *W),
    ),
    Case(
        "video-chunk-frames",
        "video",
        "--chunk-frames 0",
        "error",
        "--chunk-frames must be >= 1",
        ("video", "{in:clip.mp4}", "{out}.mp4", "--chunk-frames", "0", *W),
    ),
    Case(
        "video-nan-start",
        "video",
        "--start nan",
        "error",
        "--start must be",
        ("video", "{in:clip.mp4}", "{out}.mp4", "--start", "nan", *W),
    ),
    Case(
        "images-bomb",
        "images",
        "a folder with a good photo and a PNG claiming 60000x60000",
        "error",
        "1 failed",
        ("images", "{in:bomb-photos}", "{dir}/out-photos", "--skip-errors", *W),
    ),
    Case(
        "images-missing",
        "images",
        "an input folder that does not exist",
        "error",
        "not found",
        ("images", "{dir}/no-photos", "{dir}/out-photos", *W),
    ),
    Case(
        "images-same",
        "images",
        "OUT_DIR equal to IN_DIR",
        "error",
        "is IN_DIR",
        ("images", "{in:photos}", "{in:photos}", *W),
    ),
    Case(
        "text-size",
        "text",
        "--width 65 (not a multiple of 8)",
        "error",
        "multiple of 8",
        (
            "text",
            "a cat",
            "{out}.png",
            "--width",
            "65",
            "--model",
            "{tiny_sd}",
            "--depth-model",
            "{tiny_depth}",
        ),
    ),
    Case(
        "depth-unreadable",
        "depth",
        "a depth map that is not an image",
        "error",
        "cannot read",
        ("depth", "{in:text.png}", "a castle", "{out}.png"),
    ),
    Case(
        "eval-missing",
        "eval",
        "a dataset folder that does not exist",
        "error",
        "not found",
        ("eval", "{dir}/no-dataset", "--out", "{dir}/eval-out"),
    ),
    Case(
        "eval-method",
        "eval",
        "an unknown method name",
        "error",
        "unknown method",
        ("eval", "skimage:motorcycle", "--methods", "magic", "--out", "{dir}/eval-out"),
    ),
]


def markdown() -> str:
    """docs/robustness.md, from the table."""
    lines = [
        "# Robustness: every bad input, interruption and resource limit",
        "",
        "Generated from `tests/helpers/robustness_cases.py` (`python -m",
        "tests.helpers.robustness_cases > docs/robustness.md`);",
        "`tests/cli/test_robustness.py` runs every row and fails if this page and the table",
        "differ. Every error is one line on stderr starting `stereoconv: error:`, with a non-zero",
        "exit status; in every case the input is unchanged (checked by hash) and no file is left",
        "under the final output name unless the case converts.",
        "",
        "| command | given | outcome | what happens |",
        "|---|---|---|---|",
    ]
    for c in CASES:
        what = f"one line: `... {c.behaviour} ...`" if c.outcome == "error" else c.behaviour
        lines.append(f"| `{c.command}` | {c.given} | {c.outcome} | {what} |")
    lines += [
        "",
        "## Interruptions and limits",
        "",
        "| event | what happens | test |",
        "|---|---|---|",
        "| Ctrl-C (SIGINT) or SIGTERM during `video` | the chunk in progress is dropped, finished "
        "chunks are kept in the work folder, exit status 130 (SIGINT) or 143 (SIGTERM) and "
        "`interrupted; run the same "
        "command again to resume`; the second run converts only the missing chunks and gives "
        "the same frames | `test_signal_stops_video_and_the_rerun_finishes` (a real subprocess "
        "and a real signal) |",
        "| SIGTERM during `images` | exit status 143; the manifest keeps what was written; the "
        "second run converts "
        "the rest and the outputs are byte-identical to an uninterrupted run | "
        "`test_sigterm_stops_a_photo_library_and_the_rerun_finishes` |",
        "| the GPU runs out of memory | the batch halves (said once: `GPU out of memory: going on "
        "with batches of N frames`) and the job goes on with the same frames; out of memory for "
        "one frame is one error line | `test_out_of_memory_halves_the_batch` (the real "
        "`torch.cuda.OutOfMemoryError` raised on the CPU) |",
        "| the disk fills up while writing | one line (`the disk is full writing ...; finished "
        "work is kept`), exit 1, no partial file; once space is freed the same command resumes "
        "and completes | `test_disk_full_stops_cleanly_and_resumes` on a small tmpfs (needs "
        "root to mount; CI runs as root) |",
        "| a worker process of a Ray job dies | Ray restarts it and retries its chunk | "
        "`tests/runner/test_ray.py` |",
        "| SIGKILL (`kill -9`) during `video` | partial files and the lock stay; the same command "
        "takes the lock over, converts only the missing chunks and gives the frames of an "
        "uninterrupted run | `test_killed_with_sigkill_and_resumed_gives_the_uninterrupted_"
        "frames` (tests/test_reproducible.py) |",
        "| the same command on one CPU and on all | the same frames (the encoder's thread count is "
        "fixed, not taken from the CPUs a process may use) | "
        "`test_the_same_command_on_one_cpu_gives_the_same_frames` |",
        "| a second run on an output a live run is writing (`video`, `images`), also with "
        "`--overwrite` | one line naming the live run's process id, exit 1; the live run's work "
        "folder is not touched | `test_a_second_run_on_a_live_runs_output_is_refused`, "
        "`test_two_runs_started_at_once_one_writes_the_other_says_so` (tests/test_one_writer.py) |",
        "| a lock left by a run that died | taken over, said in one line | "
        "`test_a_dead_runs_lock_is_taken_over` |",
        "| a Ray worker dies during a photo batch | the batch is retried photo by photo and "
        "completes | `test_a_photo_batch_whose_worker_died_is_retried` "
        "(tests/runner/test_ray.py) |",
        "| a photo kills its Ray worker (a poisoned input) | after Ray's restart it is tried once "
        "more alone, then listed as failed (`the worker process converting it died`); every "
        "other photo is converted | `test_a_poisoned_photo_is_reported_and_the_rest_done` |",
        "| `--device cpu` (or cuda) with `--workers` | the workers use that device (cpu keeps "
        "them off a cluster's GPUs); a device a worker lacks is one line | "
        "`test_workers_use_the_asked_device` |",
        "| a setting out of its range, from a preset or an option | one line naming the range, "
        "before any model loads; every numeric setting declares its range | "
        "`tests/cli/test_ranges.py` |",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
