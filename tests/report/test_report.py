"""--report on clips and photos with known disparity: the report finds the window violations and
the budget it was given, --convergence auto removes them (and the report shows both), and the
HTML page is self-contained."""

from __future__ import annotations

import base64
import io
import json
import re

import numpy as np
import pytest
import torch
from PIL import Image

from stereoconv.cli.main import main
from stereoconv.converter import StereoConverter
from stereoconv.report.summary import flicker_of, pick_evenly, split_shots, video_summary
from tests.helpers.clips import CARD_H as H
from tests.helpers.clips import CARD_W as W
from tests.helpers.clips import card_scene

CARD_CUT = list(range(10, 18))  # the frames where the near card is cut by the right border


@pytest.fixture(scope="module")
def card(tmp_path_factory):
    """The near card of test_comfort sliding into the right border: clip and depth folder."""
    return card_scene(tmp_path_factory.mktemp("card"))


def convert(tmp_path, clip, maps, name, *extra):
    out, report = tmp_path / f"{name}.mp4", tmp_path / f"{name}.html"
    argv = [
        "video",
        clip,
        out,
        "--backend",
        "warp",
        "--depth",
        maps,
        "--depth-kind",
        "relative-disparity",
        "--divergence",
        "3",
        "--chunk-frames",
        "7",
        "--device",
        "cpu",
        "--quiet",
        "--report",
        report,
        *extra,
    ]
    assert main([str(a) for a in argv]) == 0
    return report, json.loads(report.with_suffix(".json").read_text())


def images_in(html: str, mime: str) -> list[bytes]:
    return [base64.b64decode(b) for b in re.findall(rf'src="data:{mime};base64,([^"]+)"', html)]


def assert_self_contained(html: str) -> None:
    """Nothing that a browser would fetch: no remote or local resources, no scripts."""
    assert not re.search(r"""(src|href)\s*=\s*(?!["']?data:)""", html, re.I)
    assert not re.search(r"url\(|@import|<script|<link", html, re.I)
    assert "http://" not in html and "https://" not in html


def test_video_report_finds_the_violations_and_the_budget(tmp_path, card):
    report, data = convert(tmp_path, *card, "fixed", "--convergence", "0.5")
    assert data["budget"]["divergence_pct"] == 3.0 and data["budget"]["convergence"] == 0.5
    assert data["overall"]["violation_frames"] == CARD_CUT
    assert "violation_frames_without_auto" not in data["overall"]
    (shot,) = data["shots"]  # one shot: no cut in the clip
    assert (shot["first_frame"], shot["last_frame"], shot["frames"]) == (0, 19, 20)
    assert (shot["budget_far_pct"], shot["budget_near_pct"]) == (-1.5, 1.5)  # 3 % around 0.5
    assert shot["near_pct_max"] == pytest.approx(1.5, abs=0.05)
    assert shot["far_pct_min"] == pytest.approx(-1.5, abs=0.05)
    assert shot["used_pct"] <= 3.0 + 1e-6
    assert 0 < shot["holes_max"] < 0.2 and shot["flicker_ratio"] > 0
    assert [f["index"] for f in data["frames"] if f["violation"]] == CARD_CUT
    shown = data["thumbnails"]
    assert len(shown) == 6 and {t["frame"] for t in shown} <= set(CARD_CUT)
    assert all(t["sides"] == ["right"] for t in shown)
    assert data["provenance"]["settings"]["divergence"] == 3.0
    assert data["provenance"]["versions"]["stereoconv"]

    html = report.read_text()
    assert_self_contained(html)
    plots = images_in(html, "image/png")
    assert len(plots) == 4 and all(p.startswith(b"\x89PNG") for p in plots)
    thumbs = [Image.open(io.BytesIO(t)) for t in images_in(html, "image/jpeg")]
    assert len(thumbs) == 6
    assert all(t.size == (2 * W, H) for t in thumbs)  # frames of the side-by-side output
    assert "Window violations" in html and "--convergence auto" in html


def test_auto_convergence_removes_the_violations_and_the_report_shows_both(tmp_path, card):
    report, data = convert(tmp_path, *card, "auto", "--convergence", "auto")
    assert data["budget"]["auto_convergence"] is True
    assert data["overall"]["violation_frames"] == []
    assert data["overall"]["violation_frames_without_auto"] == CARD_CUT
    (shot,) = data["shots"]
    assert shot["convergence"] == 1.0  # the whole card behind the screen, one plane per shot
    assert shot["near_pct_max"] <= 1e-6 and shot["near_pct_max_without_auto"] > 1.4
    assert data["thumbnails"] == []
    html = report.read_text()
    assert_self_contained(html)
    assert "without auto" in html and len(images_in(html, "image/png")) == 4
    assert "No frame of the output violates the window" in html


def test_a_json_report_name_is_refused_before_any_work(capsys, tmp_path, card):
    out = tmp_path / "never.mp4"
    argv = [
        "video",
        card[0],
        out,
        "--backend",
        "warp",
        "--depth",
        card[1],
        "--report",
        tmp_path / "r.json",
    ]
    assert main([str(a) for a in argv]) == 1
    assert "give the HTML page's name" in capsys.readouterr().err
    assert not out.exists()


def test_images_report_has_a_row_per_photo(capsys, tmp_path, tiny_depth, monkeypatch):
    """Two photos whose depth is known (the red block is near, the rest far): one block touches
    the right border, the other sits in the middle."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for name, x0 in (("edge.png", 40), ("middle.png", 16)):
        rgb = np.full((32, 48, 3), 90, np.uint8)
        rgb[8:24, x0 : x0 + 8] = (230, 40, 40)
        Image.fromarray(rgb).save(photos / name)

    def known_depth(self, frames):
        return (torch.as_tensor(frames)[..., 0] > 200).float().to(self.device)

    monkeypatch.setattr(StereoConverter, "relative_disparity", known_depth)
    report = tmp_path / "photos.html"
    argv = [
        "images",
        photos,
        tmp_path / "out",
        "--backend",
        "warp",
        "--depth-model",
        tiny_depth,
        "--device",
        "cpu",
        "-q",
        "--report",
        report,
    ]
    assert main([str(a) for a in argv]) == 0
    data = json.loads(report.with_suffix(".json").read_text())
    rows = {r["source"]: r for r in data["photos"]}
    assert set(rows) == {"edge.png", "middle.png"}
    assert rows["edge.png"]["violation"] and rows["edge.png"]["sides"] == ["right"]
    assert not rows["middle.png"]["violation"]
    for row in rows.values():
        assert row["budget_pct"] == 3.0
        assert row["near_pct"] == pytest.approx(1.5, abs=0.05)  # the block: 3 % x (1 - 0.5)
        assert row["far_pct"] == pytest.approx(-1.5, abs=0.05)
        assert 0 < row["holes"] < 0.1
    assert data["counts"]["converted"] == 2 and data["overall"]["violations"] == ["edge.png"]
    html = report.read_text()
    assert_self_contained(html)
    assert len(images_in(html, "image/png")) == 1
    (thumb,) = images_in(html, "image/jpeg")  # the violating photo's output, side by side
    assert Image.open(io.BytesIO(thumb)).size == (96, 32)


def frame(index, cut=False, left=0.1, right=0.2, violation=False):
    return {
        "index": index,
        "time": index / 25,
        "cut": cut,
        "convergence": 0.5,
        "near_pct": 1.0,
        "far_pct": -1.0,
        "front_left": 0.0,
        "front_right": 0.5 if violation else 0.0,
        "violation": violation,
        "holes": 0.01,
        "change_left": left,
        "change_right": right,
    }


def test_shots_split_at_cuts_and_the_cut_is_not_flicker():
    frames = [
        frame(0, cut=True),
        frame(1),
        frame(2, violation=True),
        frame(3, cut=True, left=5.0, right=1.0),
        frame(4, left=0.1, right=0.1),
    ]
    shots = split_shots(list(reversed(frames)))
    assert [[f["index"] for f in s] for s in shots] == [[0, 1, 2], [3, 4]]
    assert flicker_of(shots[0]) == pytest.approx(2.0)
    assert flicker_of(shots[1]) == pytest.approx(1.0)  # the change across the cut left out
    summary = video_summary(frames, 3.0)
    assert [s["violation_frames"] for s in summary["shots"]] == [[2], []]
    assert summary["overall"]["violation_frames"] == [2] and summary["overall"]["shots"] == 2


def test_pick_evenly_keeps_the_ends():
    assert pick_evenly(list(range(8)), 6) == [0, 1, 3, 4, 6, 7]
    assert pick_evenly([5, 6], 6) == [5, 6]
