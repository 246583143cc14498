"""The evaluation loop: each scene prepared by the protocol, its disparity (ground truth or a depth
model), every method's right view, every metric against the real right view.

Metrics are a list of `Metric`s, each a function of (reference, view, holes) -> float; a scene
kind with a measure of its own (a video's flicker) adds one to the list, and the report shows
whatever the list holds. The hole mask is what the left view cannot see: the target pixels the
sub-pixel z-buffered warp of the ground-truth disparity leaves uncovered (of the disparity used,
where there is no ground truth).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import torch

from stereoconv.config import StereoConfig
from stereoconv.errors import UserError
from stereoconv.evaluation import metrics
from stereoconv.evaluation.datasets import Dataset
from stereoconv.evaluation.methods import Method, MethodRunner
from stereoconv.evaluation.protocols import Prepared, estimated_pixels, prepare
from stereoconv.geometry import forward_warp
from stereoconv.report.stats import flicker_ratio, frame_change


@dataclass(frozen=True)
class Metric:
    name: str  # key in the results, e.g. "psnr_holes"
    label: str  # column title, e.g. "PSNR holes"
    higher_is_better: bool
    score: Callable[[np.ndarray, np.ndarray, np.ndarray], float]  # (reference, view, holes)


def standard_metrics(lpips: bool = True, device: str = "cpu") -> list[Metric]:
    """PSNR, SSIM and (optionally) LPIPS on the whole view, on the hole pixels alone (what the
    left view cannot see) and on the visible pixels alone (what it sees)."""
    found = [
        ("psnr", "PSNR", True, metrics.psnr),
        ("ssim", "SSIM", True, metrics.ssim),
    ]
    if lpips:
        lp = lambda r, v, mask=None: metrics.lpips(r, v, mask, device=device)  # noqa: E731
        found.append(("lpips", "LPIPS", False, lp))
    whole = [Metric(n, label, hb, lambda r, v, h, f=f: f(r, v)) for n, label, hb, f in found]
    holes = [
        Metric(f"{n}_holes", f"{label} holes", hb, lambda r, v, h, f=f: f(r, v, h))
        for n, label, hb, f in found
    ]
    visible = [
        Metric(f"{n}_visible", f"{label} visible", hb, lambda r, v, h, f=f: f(r, v, ~h))
        for n, label, hb, f in found
    ]
    return whole + holes + visible


@dataclass
class SceneResult:
    """One scene's views and scores, handed to the report as soon as the scene is done."""

    prepared: Prepared
    disparity: np.ndarray  # what the methods were given, pixels
    holes: np.ndarray  # (H, W) bool
    views: dict[str, np.ndarray]  # method name -> right view (H, W, 3) uint8
    scores: dict[str, dict[str, float]]  # method name -> metric name -> value


@dataclass
class Results:
    dataset: str
    protocol: str
    disparity: str
    methods: list[Method]
    metrics: list[Metric]
    scores: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    # method name -> scene name -> metric name -> value
    scene_meta: dict[str, dict] = field(default_factory=dict)
    # video datasets: method name -> flicker of the left view, of its right view, and the ratio
    temporal: dict[str, dict[str, float]] = field(default_factory=dict)


class FlickerMeter:
    """The video issue's flicker measure over a dataset's frames, for every method's right
    view against the left view: mean absolute change between consecutive frames (0..1)."""

    def __init__(self):
        self.previous: dict[str, np.ndarray] = {}
        self.sums: dict[str, float] = {}
        self.pairs = 0

    def add(self, left: np.ndarray, views: dict[str, np.ndarray]) -> None:
        current = {"left": left, **views}
        if self.previous:
            self.pairs += 1
            for name, frame in current.items():
                change = frame_change(self.previous[name], frame.astype(np.float64), 3) / 255.0
                self.sums[name] = self.sums.get(name, 0.0) + float(change)
        self.previous = {k: v.astype(np.float64) for k, v in current.items()}

    def results(self) -> dict[str, dict[str, float]]:
        if not self.pairs:
            return {}
        left = self.sums["left"] / self.pairs
        return {
            name: {
                "flicker_left": left,
                "flicker_right": total / self.pairs,
                "flicker_ratio": flicker_ratio(left, total / self.pairs, float("nan")),
            }
            for name, total in self.sums.items()
            if name != "left"
        }


def hole_mask(disparity: np.ndarray) -> np.ndarray:
    d = torch.from_numpy(np.array(disparity, dtype=np.float32))[None]
    return forward_warp(torch.zeros(1, 1, *d.shape[-2:]), d).holes[0].numpy()


def scene_disparity(
    prepared: Prepared,
    protocol: str,
    source: str,
    config: StereoConfig,
    estimate: Callable[[np.ndarray], np.ndarray] | None,
) -> np.ndarray:
    """The disparity the methods get: ground truth, or the depth model's mapped to pixels."""
    if source == "gt":
        if prepared.disparity is None:
            raise UserError(
                f"scene {prepared.name} has no ground-truth disparity: use --disparity estimated"
            )
        return prepared.disparity
    if estimate is None:
        raise ValueError("--disparity estimated needs a depth estimator")
    return estimated_pixels(estimate(prepared.left), prepared, protocol, config)


def score_views(
    prepared: Prepared, views: dict[str, np.ndarray], holes: np.ndarray, metric_list: list[Metric]
) -> dict[str, dict[str, float]]:
    return {
        name: {m.name: float(m.score(prepared.right, view, holes)) for m in metric_list}
        for name, view in views.items()
    }


def evaluate(
    dataset: Dataset,
    protocol: str,
    source: str,
    methods: list[Method],
    runner: MethodRunner,
    metric_list: list[Metric],
    estimate: Callable[[np.ndarray], np.ndarray] | None = None,
    paper_size: int = 512,
    on_scene: Callable[[SceneResult], None] | None = None,
    progress: Callable[[Iterable], Iterable] = lambda it: it,
) -> Results:
    """Run every method on every scene and score it. `estimate`: left view (H, W, 3) uint8 ->
    relative disparity (H, W), for `source` = estimated. `on_scene` gets each scene's result
    (views included) as it is done, so views need not stay in memory."""
    results = Results(dataset.name, protocol, source, methods, metric_list)
    meter = FlickerMeter() if dataset.sequence else None
    for source_scene in progress(dataset.scenes):
        scene = source_scene.load()
        prepared = prepare(scene, protocol, paper_size)
        disparity = scene_disparity(prepared, protocol, source, runner.config, estimate)
        truth = prepared.disparity if prepared.disparity is not None else disparity
        holes = hole_mask(truth)
        views = {m.name: runner.right_view(m, prepared.left, disparity) for m in methods}
        scores = score_views(prepared, views, holes, metric_list)
        if meter is not None:
            meter.add(prepared.left, views)
        for name, values in scores.items():
            results.scores.setdefault(name, {})[scene.name] = values
        results.scene_meta[scene.name] = {
            **scene.meta,
            "size": list(prepared.left.shape[:2]),
            "hole_fraction": float(holes.mean()),
            "disparity_range": [float(disparity.min()), float(disparity.max())],
        }
        if on_scene is not None:
            on_scene(SceneResult(prepared, disparity, holes, views, scores))
    if meter is not None:
        results.temporal = meter.results()
    return results
