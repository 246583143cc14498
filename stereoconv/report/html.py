"""A comfort report as one self-contained HTML page: inline CSS, plots and thumbnails as
base64 data URIs, no scripts, fonts or anything else fetched, so it opens offline and can be
mailed as one file. Pure functions from the report's data to text."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any

STYLE = """
body { font-family: system-ui, sans-serif; color: #1c2833; max-width: 1100px; margin: 24px auto;
  padding: 0 20px; line-height: 1.45; font-size: 15px; }
h1 { font-size: 26px; margin: 0 0 4px; } h2 { font-size: 19px; margin: 28px 0 8px;
  border-bottom: 1px solid #d5d8dc; padding-bottom: 4px; }
.sub { color: #566573; margin: 0 0 16px; word-break: break-all; }
table { border-collapse: collapse; margin: 6px 0 10px; }
th, td { border: 1px solid #d5d8dc; padding: 4px 9px; text-align: left; vertical-align: top; }
th { background: #f4f6f7; font-weight: 600; }
td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.kv th { width: 210px; }
.warn { color: #b03a2e; font-weight: 600; } .ok { color: #1e8449; font-weight: 600; }
.muted { color: #707b7c; }
img.plot { width: 100%; max-width: 1056px; display: block; margin: 4px 0 14px; }
.thumbs { display: flex; flex-wrap: wrap; gap: 10px; }
figure { margin: 0; } figure img { display: block; border: 1px solid #aab7b8; }
figcaption { font-size: 12.5px; color: #566573; }
code, pre { font-family: ui-monospace, monospace; font-size: 13px; }
pre { background: #f4f6f7; padding: 8px; white-space: pre-wrap; word-break: break-all; }
"""


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def pct(value: float | None, signed: bool = False, digits: int = 2) -> str:
    if value is None:
        return "—"
    return f"{value:+.{digits}f} %" if signed else f"{value:.{digits}f} %"


def share(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f} %"


def number(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def frame_list(indices: Sequence[int], shown: int = 12) -> str:
    text = ", ".join(str(i) for i in indices[:shown])
    return text + (f" … ({len(indices)} in all)" if len(indices) > shown else "")


def table(header: Sequence[str], rows: Iterable[Sequence[str]], numeric: Sequence[bool]) -> str:
    """Cells are HTML already (escape text before)."""
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="n">{c}</td>' if n else f"<td>{c}</td>"
            for c, n in zip(row, numeric, strict=True)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def key_values(pairs: Iterable[tuple[str, str]]) -> str:
    """Values are HTML already."""
    rows = "".join(f"<tr><th>{escape(k)}</th><td>{v}</td></tr>" for k, v in pairs)
    return f'<table class="kv">{rows}</table>'


def plain(value: Any) -> str:
    if isinstance(value, str):
        return escape(value)
    return escape(json.dumps(value))


def page(title: str, subtitle: str, sections: Iterable[str]) -> str:
    body = "\n".join(sections)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
        f'<h1>{escape(title)}</h1><p class="sub">{subtitle}</p>\n{body}\n</body></html>\n'
    )


def plot_images(plots: Mapping[str, bytes]) -> str:
    return "".join(
        f'<img class="plot" alt="{escape(name)}" src="{data_uri(data, "image/png")}">'
        for name, data in plots.items()
    )


def thumbnail(image: bytes, caption: str) -> str:
    return (
        f'<figure><img alt="{escape(caption)}" src="{data_uri(image, "image/jpeg")}">'
        f"<figcaption>{escape(caption)}</figcaption></figure>"
    )


def provenance_section(provenance: Mapping[str, Any]) -> str:
    """Settings, options and versions: what it takes to make the same output again."""
    command = provenance.get("command")
    parts = ["<h2>Reproduce</h2>"]
    if command:
        parts.append(f"<p>Command:</p><pre>{escape(command)}</pre>")
    parts.append(f'<p class="muted">Written {escape(provenance["created"])}.</p>')
    parts.append(
        "<h3>Versions</h3>" + key_values((k, plain(v)) for k, v in provenance["versions"].items())
    )
    if provenance.get("options"):
        parts.append(
            "<h3>Job options</h3>"
            + key_values((k, plain(v)) for k, v in provenance["options"].items())
        )
    parts.append(
        "<h3>Settings</h3>" + key_values((k, plain(v)) for k, v in provenance["settings"].items())
    )
    return "\n".join(parts)


# --- video ---------------------------------------------------------------------------------------


def violations_verdict(overall: Mapping[str, Any], auto: bool) -> str:
    count = len(overall["violation_frames"])
    text = (
        '<span class="ok">none</span>'
        if count == 0
        else f'<span class="warn">{count} of {overall["frames"]} frames</span>'
    )
    if "violation_frames_without_auto" in overall:
        before = len(overall["violation_frames_without_auto"])
        text += f" (without <code>--convergence auto</code>: {before} frames)"
    elif count and not auto:
        text += " — <code>--convergence auto</code> moves the screen plane to remove them"
    return text


def budget_text(data: Mapping[str, Any]) -> str:
    budget = data["budget"]
    if budget.get("given_px"):
        text = f"divergence {pct(budget['divergence_pct'])} of the width; disparity given in pixels"
        if not budget["auto_convergence"]:
            return text + ", used as given"
        scale = budget.get("given_scale", 1.0)
        scaled = f", scaled by {number(scale, 3)} into the budget" if scale < 1 else ""
        return text + f"{scaled}, shifted per shot behind the frame borders (auto)"
    plane = number(budget["convergence"])
    if budget["auto_convergence"]:
        plane = f"auto, per shot, at least {plane}"
    return f"divergence {pct(budget['divergence_pct'])} of the width (screen plane: {plane})"


def video_overview(data: Mapping[str, Any]) -> str:
    o, video, flicker = data["overall"], data["video"], data["flicker"]
    used = (
        f"nearest {pct(o['near_pct_max'], True)}, farthest {pct(o['far_pct_min'], True)}; "
        f"range up to {pct(o['used_pct_max'])}"
    )
    if data["budget"]["divergence_pct"]:
        used += f" of the {pct(data['budget']['divergence_pct'])} asked"
    used = escape(used)
    over = o.get("over_budget_shots") or []
    if over:
        used += (
            f' — <span class="warn">beyond the budget in {plural(len(over), "shot")}</span>: '
            "uncomfortable to fuse (a smaller --depth-scale, or --convergence auto, which scales "
            "given disparity into the budget)"
        )
    holes = f"mean {share(o['holes_mean'])}, max {share(o['holes_max'])} of the right view"
    generated = data["provenance"]["settings"]["backend"] == "diffusion"
    holes += " (generated)" if generated else " (filled by warp)"
    pairs = [
        (
            "Video",
            escape(
                f"{video['width']}×{video['height']}, {number(video['frame_rate'], 3)} fps, "
                f"{video['codec']}; {plural(o['frames'], 'frame')} converted in "
                f"{plural(o['shots'], 'shot')}"
            ),
        ),
        ("Budget asked", escape(budget_text(data))),
        ("Parallax used", used),
        ("Window violations", violations_verdict(o, data["budget"]["auto_convergence"])),
        (
            "Flicker ratio",
            escape(
                f"{number(flicker['ratio'])} (right view's frame-to-frame change over the left's; "
                "1.00: as stable as the input)"
            ),
        ),
        ("Holes", escape(holes)),
    ]
    return "<h2>At a glance</h2>" + key_values(pairs)


def shots_table(shots: Sequence[Mapping[str, Any]]) -> str:
    auto = bool(shots) and "violation_frames_without_auto" in shots[0]
    header = [
        "shot",
        "frames",
        "time, s",
        "screen plane",
        "nearest",
        "farthest",
        "range / budget",
        "violations",
    ]
    if auto:
        header.append("without auto")
    header += ["flicker ratio", "holes mean / max"]
    rows = []
    for s in shots:
        plane = s["convergence"]
        plane = number(plane) if isinstance(plane, float | int) else escape(str(plane))
        violations = len(s["violation_frames"])
        row = [
            str(s["shot"]),
            f"{s['first_frame']}–{s['last_frame']}",
            f"{s['start_s']:.2f}–{s['end_s']:.2f}",
            plane,
            pct(s["near_pct_max"], True),
            pct(s["far_pct_min"], True),
            (
                f'<span class="warn">{pct(s["used_pct"])}</span>'
                if s.get("over_budget")
                else pct(s["used_pct"])
            )
            + f" / {pct(s['budget_pct'])}",
            f'<span class="warn">{violations}</span>' if violations else "0",
        ]
        if auto:
            row.append(str(len(s["violation_frames_without_auto"])))
        row += [number(s["flicker_ratio"]), f"{share(s['holes_mean'])} / {share(s['holes_max'])}"]
        rows.append(row)
    numeric = [True, True, True, True, True, True, True, True] + [True] * (3 if auto else 2)
    return "<h2>Shots</h2>" + table(header, rows, numeric)


def violations_section(data: Mapping[str, Any], thumbs: Mapping[int, bytes]) -> str:
    parts = ["<h2>Window violations</h2>"]
    parts.append(
        "<p>Frames where something in front of the screen plane (parallax &gt; 0) touches the "
        f"left or right frame border: more than {data['budget']['violation_share_pct']:g} % of "
        f"the {data['budget']['border_band_pct']:g} %-wide border band. The eyes see it in front "
        "of the screen while the screen's edge cuts it. Thumbnails are frames of the output.</p>"
    )
    shown = {t["frame"]: t for t in data["thumbnails"]}
    any_violation = False
    for shot in data["shots"]:
        frames = shot["violation_frames"]
        without = shot.get("violation_frames_without_auto")
        if not frames and not without:
            continue
        any_violation = any_violation or bool(frames)
        line = f"<h3>Shot {shot['shot']}</h3><p>{len(frames)} frames"
        if frames:
            line += f": {escape(frame_list(frames))}"
        if without is not None:
            line += f"; without <code>--convergence auto</code>: {len(without)} frames"
            if without:
                line += f" ({escape(frame_list(without))})"
        parts.append(line + "</p>")
        figures = [
            thumbnail(
                thumbs[i],
                f"frame {i} · {shown[i]['time']:.2f} s · {' and '.join(shown[i]['sides'])} border",
            )
            for i in frames
            if i in thumbs and i in shown
        ]
        if figures:
            parts.append(f'<div class="thumbs">{"".join(figures)}</div>')
    if not any_violation:
        parts.append('<p class="ok">No frame of the output violates the window.</p>')
    return "\n".join(parts)


def render_video(
    data: Mapping[str, Any], plots: Mapping[str, bytes], thumbs: Mapping[int, bytes]
) -> str:
    subtitle = escape(f"{data['input']} → {data['output']}") + f" · {escape(data['created'])}"
    notes = ""
    if data["notes"]:
        notes = "<h2>Notes</h2><ul>" + "".join(f"<li>{escape(n)}</li>" for n in data["notes"])
        notes += "</ul>"
    return page(
        "stereoconv comfort report",
        subtitle,
        [
            video_overview(data),
            "<h2>Over time</h2>" + plot_images(plots),
            shots_table(data["shots"]),
            violations_section(data, thumbs),
            notes,
            provenance_section(data["provenance"]),
        ],
    )


# --- photo libraries -----------------------------------------------------------------------------


def photos_table(rows: Sequence[Mapping[str, Any]]) -> str:
    header = ["#", "photo", "nearest", "farthest", "range / budget", "violation", "holes"]
    cells = [
        [
            str(n),
            escape(r["source"]),
            pct(r["near_pct"], True),
            pct(r["far_pct"], True),
            f"{pct(r['used_pct'])} / {pct(r['budget_pct'])}",
            f'<span class="warn">{escape(" and ".join(r["sides"]))} border</span>'
            if r["violation"]
            else "no",
            share(r["holes"]),
        ]
        for n, r in enumerate(rows, start=1)
    ]
    return "<h2>Photos</h2>" + table(header, cells, [True, False, True, True, True, False, True])


def render_images(data: Mapping[str, Any], plot: bytes | None, thumbs: Mapping[str, bytes]) -> str:
    o, rows = data["overall"], data["photos"]
    violating = [r for r in rows if r["violation"]]
    counts = data["counts"]
    pairs = [
        (
            "Photos",
            escape(
                f"{counts['converted']} converted, {counts['up_to_date']} up to date, "
                f"{counts['failed']} failed, {counts['left_alone']} outputs left alone"
            ),
        ),
        (
            "Budget asked",
            escape(
                f"divergence {pct(data['budget']['divergence_pct'])} of the width, screen plane "
                f"{number(data['budget']['convergence'])}"
            ),
        ),
        (
            "Parallax used",
            escape(
                f"nearest up to {pct(o['near_pct_max'], True)}, farthest down to "
                f"{pct(o['far_pct_min'], True)}"
            ),
        ),
        (
            "Window violations",
            f'<span class="warn">{plural(len(violating), "photo")}</span>'
            if violating
            else '<span class="ok">none</span>',
        ),
        ("Holes", escape(f"mean {share(o['holes_mean'])}, max {share(o['holes_max'])}")),
    ]
    sections = ["<h2>At a glance</h2>" + key_values(pairs)]
    if plot is not None:
        sections.append(plot_images({"parallax per photo": plot}))
    sections.append(photos_table(rows))
    if thumbs:
        figures = "".join(thumbnail(image, name) for name, image in thumbs.items())
        sections.append(f'<h2>Window violations</h2><div class="thumbs">{figures}</div>')
    if data["failed"]:
        items = "".join(f"<li>{escape(f['why'])}</li>" for f in data["failed"])
        sections.append(f"<h2>Failed</h2><ul>{items}</ul>")
    sections.append(provenance_section(data["provenance"]))
    subtitle = escape(f"{data['input']} → {data['output']}") + f" · {escape(data['created'])}"
    return page("stereoconv comfort report: photos", subtitle, sections)
