"""The plots of a comfort report, drawn with matplotlib (Agg, no display) and returned as PNG
bytes. Each function takes plain per-frame series; none keeps global pyplot state.

Every plot over time has the same size, margins and time axis, so that the plots stacked in the
page line up: a frame is at the same x in each.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

DPI = 96
WIDTH_IN, HEIGHT_IN = 11.0, 2.6
LEFT_IN, RIGHT_IN, TOP_IN, BOTTOM_IN = 1.0, 2.75, 0.35, 0.5  # the legend goes on the right
NEAR, FAR, BAD, WITHOUT, LEFT, RIGHT = (
    "#c0392b",
    "#2471a3",
    "#e74c3c",
    "#f5b041",
    "#7f8c8d",
    "#8e44ad",
)
BUDGET, HOLES, BOUNDARY = "#d5f5e3", "#aed6f1", "#555555"


def frame_edges(times: Sequence[float]) -> list[float]:
    """Where each frame's span starts, and where the last one ends (one typical frame later)."""
    step = (times[-1] - times[0]) / (len(times) - 1) if len(times) > 1 else 0.04
    return [*times, times[-1] + (step or 0.04)]


def figure(
    edges: Sequence[float] | None,
    rows: int = 1,
    height: float = HEIGHT_IN,
    ratios: Sequence[float] | None = None,
):
    """A figure of `rows` stacked axes with the shared margins; over time if edges are given."""
    fig = Figure(figsize=(WIDTH_IN, height), dpi=DPI)
    grid = {
        "left": LEFT_IN / WIDTH_IN,
        "right": 1 - RIGHT_IN / WIDTH_IN,
        "bottom": BOTTOM_IN / height,
        "top": 1 - TOP_IN / height,
        "hspace": 0.15,
        "height_ratios": ratios,
    }
    axes = fig.subplots(rows, 1, sharex=True, squeeze=False, gridspec_kw=grid)[:, 0]
    for ax in axes:
        ax.grid(True, color="#dddddd", linewidth=0.6)
        ax.set_axisbelow(True)
    if edges is not None:
        axes[-1].set_xlim(edges[0], edges[-1])
        axes[-1].set_xlabel("time, s")
    return fig, axes


def finish(fig: Figure, axes, title: str) -> bytes:
    """Title, legends on the right, and the PNG."""
    axes[0].set_title(title, loc="left", fontsize=11.5, fontweight="bold")
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, frameon=False)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def mark_cuts(ax, cut_times: Sequence[float], label: bool = True) -> None:
    """Shot boundaries as dashed vertical lines (the first shot's start is not one)."""
    for i, t in enumerate(cut_times[1:]):
        ax.axvline(
            t,
            color=BOUNDARY,
            linestyle="--",
            linewidth=0.8,
            label="shot boundary" if label and i == 0 else None,
        )


def shade_frames(
    ax,
    edges: Sequence[float],
    flags: Sequence[bool],
    band: tuple[float, float],
    colour: str,
    label: str,
) -> None:
    """Shade the time spans of the frames whose flag is set, between the heights of band: one
    span per run of consecutive frames (a long film stays a few patches)."""
    runs: list[list[int]] = []
    for k, flag in enumerate(flags):
        if flag and runs and runs[-1][1] == k:
            runs[-1][1] = k + 1
        elif flag:
            runs.append([k, k + 1])
    for n, (start, stop) in enumerate(runs):
        ax.axvspan(
            edges[start],
            edges[stop],
            *band,
            color=colour,
            linewidth=0,
            label=label if n == 0 else None,
        )


def parallax_plot(
    times: Sequence[float],
    near: Sequence[float],
    far: Sequence[float],
    limits: Sequence[tuple[float, float]] | None,
    cut_times: Sequence[float],
    near_without_auto: Sequence[float] | None = None,
) -> bytes:
    """Nearest and farthest parallax over time, the budget band the asked divergence allows
    (per frame: it moves with the screen plane) and the screen plane itself."""
    edges = frame_edges(times)
    fig, axes = figure(edges)
    ax = axes[0]
    if limits is not None:
        low, high = [lo for lo, _ in limits], [hi for _, hi in limits]
        ax.fill_between(
            edges,
            [*low, low[-1]],
            [*high, high[-1]],
            step="post",
            color=BUDGET,
            label="budget (asked divergence)",
        )
    ax.axhline(0, color="black", linewidth=0.9, label="screen plane")
    if near_without_auto is not None:
        ax.plot(
            times,
            near_without_auto,
            color=NEAR,
            linestyle=":",
            linewidth=1.4,
            drawstyle="steps-post",
            label="nearest without auto",
        )
    ax.plot(
        times,
        near,
        color=NEAR,
        linewidth=1.5,
        drawstyle="steps-post",
        label="nearest (in front: > 0)",
    )
    ax.plot(
        times, far, color=FAR, linewidth=1.5, drawstyle="steps-post", label="farthest (behind: < 0)"
    )
    mark_cuts(ax, cut_times)
    ax.set_ylabel("parallax, % of width")
    return finish(fig, axes, "Disparity budget used")


def violations_plot(
    times: Sequence[float],
    front: Sequence[float],
    violation: Sequence[bool],
    threshold: float,
    cut_times: Sequence[float],
    without_auto: Sequence[bool] | None = None,
) -> bytes:
    """Above: the share of the border bands in front of the screen (the larger side) and the
    threshold of a violation. Below: the violating frames, with and without auto convergence."""
    edges = frame_edges(times)
    fig, (top, strip) = figure(edges, 2, HEIGHT_IN + 0.7, [3, 1])
    top.plot(
        times,
        [100 * v for v in front],
        color="#34495e",
        linewidth=1.3,
        label="border band in front",
    )
    top.axhline(100 * threshold, color=BAD, linestyle="--", linewidth=1, label="violation above")
    top.set_ylim(bottom=0)
    top.set_ylabel("% of the band")
    mark_cuts(top, cut_times)
    mark_cuts(strip, cut_times, label=False)
    shade_frames(strip, edges, violation, (0.55, 0.95), BAD, "violation (this output)")
    ticks = ([0.75], ["output"])
    if without_auto is not None:
        shade_frames(strip, edges, without_auto, (0.05, 0.45), WITHOUT, "violation without auto")
        ticks = ([0.25, 0.75], ["without auto", "output"])
    strip.set_yticks(*ticks)
    strip.set_ylim(0, 1)
    return finish(fig, [top, strip], "Window violations")


def holes_plot(
    times: Sequence[float], holes: Sequence[float], cut_times: Sequence[float], generated: bool
) -> bytes:
    """The share of the right view the left view cannot see: generated (diffusion) or filled
    from the background (warp)."""
    edges = frame_edges(times)
    fig, axes = figure(edges)
    label = "generated (diffusion)" if generated else "filled from the background"
    axes[0].stairs([100 * h for h in holes], edges, fill=True, color=HOLES, label=label)
    mark_cuts(axes[0], cut_times)
    axes[0].set_ylim(bottom=0)
    axes[0].set_ylabel("% of the right view")
    return finish(fig, axes, "Holes: pixels the left view cannot see")


def flicker_plot(
    times: Sequence[float],
    left: Sequence[float | None],
    right: Sequence[float | None],
    cut_times: Sequence[float],
) -> bytes:
    """Frame-to-frame change of each view's thumbnail: the terms of the flicker measure (gaps:
    not measured, the first frame of a chunk)."""
    fig, axes = figure(frame_edges(times))
    nan = float("nan")
    marker = "o" if len(times) <= 300 else None
    for values, colour, label in (
        (left, LEFT, "left view (the input)"),
        (right, RIGHT, "right view (synthesised)"),
    ):
        axes[0].plot(
            times,
            [nan if v is None else v for v in values],
            color=colour,
            linewidth=1.2,
            marker=marker,
            markersize=2.5,
            label=label,
        )
    mark_cuts(axes[0], cut_times)
    axes[0].set_ylim(bottom=0)
    axes[0].set_ylabel("mean change")
    return finish(fig, axes, "Temporal stability: change from the previous frame")


def photos_plot(
    near: Sequence[float],
    far: Sequence[float],
    violation: Sequence[bool],
    limits: tuple[float, float],
) -> bytes:
    """Per photo, in order: the parallax range used (bar from farthest to nearest), violating
    photos in red, and the budget band."""
    fig, axes = figure(None)
    ax = axes[0]
    ax.axhspan(limits[0], limits[1], color=BUDGET, label="budget (asked divergence)")
    ax.axhline(0, color="black", linewidth=0.9, label="screen plane")
    for bad, colour, label in ((False, FAR, "parallax used"), (True, BAD, "window violation")):
        photos = [k for k, v in enumerate(violation) if v == bad]
        if photos:
            ax.bar(
                [k + 1 for k in photos],
                [near[k] - far[k] for k in photos],
                width=0.7,
                bottom=[far[k] for k in photos],
                color=colour,
                label=label,
            )
    ax.set_xlim(0.3, len(near) + 0.7)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("photo (table order)")
    ax.set_ylabel("parallax, % of width")
    return finish(fig, axes, "Disparity budget used per photo")
