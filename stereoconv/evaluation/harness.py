"""The evaluation loop: each scene prepared by the protocol, its disparity (ground truth or a depth
model), every method's right view, every metric against the real right view.

Metrics are a list of `Metric`s, each a function of (reference, view, mask) -> float, the mask
being the scene region the metric names (holes by default); a scene kind with a measure of its
own (a video's flicker) adds one to the list, and the report shows whatever the list holds. The
regions (evaluation.regions) come from the ground-truth disparity alone (the disparity used,
where there is none): holes, what the left view cannot see; near, the seen pixels within 4 px of
a hole; far, the rest; and the bands on either side of each depth edge.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from stereoconv.config import StereoConfig
from stereoconv.errors import UserError
from stereoconv.evaluation import metrics
from stereoconv.evaluation.datasets import Dataset
from stereoconv.evaluation.methods import Method, MethodRunner
from stereoconv.evaluation.protocols import Prepared, estimated_pixels, prepare
from stereoconv.evaluation.regions import scene_regions
from stereoconv.report.stats import flicker_ratio, frame_change


@dataclass(frozen=True)
class Metric:
    name: str  # key in the results, e.g. "psnr_holes"
    label: str  # column title, e.g. "PSNR holes"
    higher_is_better: bool
    score: Callable[[np.ndarray, np.ndarray, np.ndarray], float]  # (reference, view, mask)
    region: str = "holes"  # the mask score gets: a key of evaluation.regions.scene_regions


# PSNR on each of these regions too (evaluation.regions): label in the table
REGION_LABELS = {
    "near": "near",
    "far": "far",
    "edge_fg": "edge fg",
    "edge_bg": "edge bg",
}


def standard_metrics(lpips: bool = True, device: str = "cpu") -> list[Metric]:
    """PSNR, SSIM and (optionally) LPIPS on the whole view, on the hole pixels alone (what the
    left view cannot see) and on the visible pixels alone (what it sees); then PSNR on the
    visible pixels near the holes and far from them, and on the bands either side of the depth
    edges (evaluation.regions)."""
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
    regions = [
        Metric(f"psnr_{region}", f"PSNR {label}", True, metrics.psnr, region)
        for region, label in REGION_LABELS.items()
    ]
    return whole + holes + visible + regions


@dataclass
class SceneResult:
    """One scene's views and scores, handed to the report as soon as the scene is done."""

    prepared: Prepared
    disparity: np.ndarray  # what the methods were given, pixels
    holes: np.ndarray  # (H, W) bool
    views: dict[str, np.ndarray]  # method name -> right view (H, W, 3) uint8
    scores: dict[str, dict[str, float]]  # method name -> metric name -> value
    regions: dict[str, np.ndarray] = field(default_factory=dict)  # evaluation.regions


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


def hole_mask(disparity: np.ndarray, known: np.ndarray | None = None) -> np.ndarray:
    """What the left view cannot see (evaluation.regions)."""
    return scene_regions(disparity, known)["holes"]


def truth_regions(prepared: Prepared, disparity: np.ndarray) -> dict[str, np.ndarray]:
    """The scene's regions from its ground truth (its measured pixels only), or from the
    disparity the methods were given where it has none."""
    if prepared.disparity is None:
        return scene_regions(disparity)
    return scene_regions(prepared.disparity, prepared.known)


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
    prepared: Prepared,
    views: dict[str, np.ndarray],
    regions: dict[str, np.ndarray],
    metric_list: list[Metric],
) -> dict[str, dict[str, float]]:
    return {
        name: {m.name: float(m.score(prepared.right, view, regions[m.region])) for m in metric_list}
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
        regions = truth_regions(prepared, disparity)
        holes = regions["holes"]
        views = {m.name: runner.right_view(m, prepared.left, disparity) for m in methods}
        scores = score_views(prepared, views, regions, metric_list)
        if meter is not None:
            meter.add(prepared.left, views)
        for name, values in scores.items():
            results.scores.setdefault(name, {})[scene.name] = values
        results.scene_meta[scene.name] = {
            **scene.meta,
            "size": list(prepared.left.shape[:2]),
            "hole_fraction": float(holes.mean()),
            "region_fractions": {k: float(v.mean()) for k, v in regions.items()},
            "disparity_range": [float(disparity.min()), float(disparity.max())],
        }
        if on_scene is not None:
            on_scene(SceneResult(prepared, disparity, holes, views, scores, regions))
    if meter is not None:
        results.temporal = meter.results()
    return results
