"""A preview before a long job: a few frames of a time range, each converted at several divergence
and convergence settings, on one contact sheet (a row per frame, a column per setting).

The depth is estimated once per frame; only the disparity and the views change per setting, so a
sheet costs little more than its frames.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from stereoconv.config import StereoConfig, check_setting
from stereoconv.converter import StereoConverter
from stereoconv.disparity.maps import DepthFrames, depth_from_values, zero_is_unknown
from stereoconv.disparity.plan import DisparityPlan
from stereoconv.errors import UserError
from stereoconv.fileio import check_output
from stereoconv.jobs.image import to_uint8
from stereoconv.layout import arrange
from stereoconv.layouts import layout_of
from stereoconv.media.images import check_writable_suffix, write_image
from stereoconv.media.video import decode_range, frame_timestamps, probe
from stereoconv.report.summary import pick_evenly

LABEL_HEIGHT = 18  # pixels of caption above each column


def parse_values(text: str, option: str, setting: str, auto: bool = False) -> list[float | str]:
    """A comma-separated list of numbers (and `auto` where allowed), each within the range of
    the config field `setting` (--divergences: that of --divergence)."""
    values: list[float | str] = []
    for item in (part.strip() for part in text.split(",")):
        if auto and item == "auto":
            values.append("auto")
            continue
        try:
            value = float(item)
        except ValueError:
            allowed = "numbers or auto" if auto else "numbers"
            raise UserError(f"{option} takes comma-separated {allowed}, not {item!r}") from None
        check_setting(setting, value, option.lstrip("-"))
        values.append(value)
    return values


@dataclass(frozen=True)
class PreviewFrame:
    index: int  # in the whole video: the frame of a --depth source that goes with it
    time: float  # seconds
    rgb: np.ndarray  # (H, W, 3)


def preview_frames(
    path: Path, start: float | None, end: float | None, count: int
) -> list[PreviewFrame]:
    """`count` frames spread over [start, end) seconds of the video."""
    info = probe(path)
    pts = frame_timestamps(path, start, end)
    if not pts:
        raise UserError(f"{path}: no video frames in the asked range")
    before = len(frame_timestamps(path, None, start)) if start else 0  # frames before the range
    picked = set(pick_evenly(pts, count))
    wanted = {p: before + i for i, p in enumerate(pts) if p in picked}
    return [
        PreviewFrame(wanted[p], float(p * info.time_base), rgb)
        for p, rgb in decode_range(path, min(wanted), max(wanted), info)
        if p in wanted
    ]


def given_relative(cfg: StereoConfig, depth: Path, frame: PreviewFrame) -> torch.Tensor:
    """The --depth source's map of one frame (1, H, W), as the video job reads it."""
    maps = DepthFrames(depth, zero_unknown=zero_is_unknown(cfg.depth_kind))
    if frame.index >= maps.count:
        raise UserError(
            f"--depth {depth} has {maps.count} frames; the preview needs frame {frame.index + 1}"
        )
    values, known = next(maps.stream(frame.index, frame.index + 1))
    height, width = frame.rgb.shape[:2]
    return depth_from_values(values, known, cfg.depth_kind, height, width, cfg.depth_scale)


def caption(cell: np.ndarray, text: str) -> np.ndarray:
    """The cell with a strip of text above it."""
    image = Image.new("RGB", (cell.shape[1], cell.shape[0] + LABEL_HEIGHT), "white")
    image.paste(Image.fromarray(cell), (0, LABEL_HEIGHT))
    ImageDraw.Draw(image).text((4, 3), text, fill="black")
    return np.asarray(image)


def contact_sheet(
    converter: StereoConverter,
    frames: list[PreviewFrame],
    divergences: list[float],
    convergences: list[float | str],
    cell_width: int,
    depth: Path | None = None,
) -> np.ndarray:
    """Rows: frames; columns: every (divergence, convergence); each cell the packed stereo frame
    in the configured layout, scaled to `cell_width`, its caption the frame's time and the
    setting. depth: the video's --depth source, else the depth model's estimate."""
    cfg = converter.config
    plan, layout = DisparityPlan.of(cfg, given=depth is not None), layout_of(cfg.layout)
    rows = []
    for frame in frames:
        peak = 65535.0 if frame.rgb.dtype == np.uint16 else 255.0
        x = torch.from_numpy(frame.rgb.astype(np.float32) / peak).permute(2, 0, 1)[None]
        x = x.to(converter.device)
        if depth is None:
            relative = converter.relative_disparity(x)
        else:
            relative = given_relative(cfg, depth, frame).to(converter.device)
        cells = []
        for divergence in divergences:
            for convergence in convergences:
                auto = convergence == "auto"
                setting = dataclasses.replace(
                    plan,
                    divergence=divergence,
                    convergence=cfg.convergence if auto else convergence,
                    auto_convergence=auto,
                )
                disparity = setting.still(relative)
                views = converter.views(x, disparity)
                # not capped to --max-size: each cell is scaled to cell_width below
                (packed,) = arrange(views.left, views.right, layout, None, cfg.vr180_hfov)
                scale = cell_width / packed.shape[-1]
                size = (max(1, round(packed.shape[-2] * scale)), cell_width)
                small = F.interpolate(packed, size=size, mode="bilinear", antialias=True)
                shown = "auto" if convergence == "auto" else f"{convergence:g}"
                text = f"{frame.time:.2f} s   div {divergence:g}  conv {shown}"
                cells.append(caption(to_uint8(small[0]), text))
        rows.append(np.concatenate(cells, axis=1))
    return np.concatenate(rows, axis=0)


def preview_video(
    converter: StereoConverter,
    input_path: Path,
    output: Path,
    start: float | None,
    end: float | None,
    frames: int,
    divergences: list[float],
    convergences: list[float | str],
    cell_width: int = 480,
    overwrite: bool = False,
    depth: Path | None = None,
) -> list[Path]:
    """Write the contact sheet of `frames` frames of [start, end) to `output` (PNG or JPEG);
    depth: the video's depth source (a depth video or a folder of maps), as `video` takes it."""
    layout = layout_of(converter.config.layout)
    if layout.files > 1 or layout.video_only:
        raise UserError(f"a preview shows packed frames: use a layout other than {layout.name}")
    if frames < 1 or cell_width < 16:
        raise UserError("--frames must be >= 1 and --cell-width >= 16")
    for divergence in divergences:
        if divergence < 0:
            raise UserError(f"--divergences must be >= 0, not {divergence:g}")
    for convergence in convergences:
        if convergence != "auto" and not 0 <= convergence <= 1:
            raise UserError(f"--convergences must be in [0, 1] or auto, not {convergence:g}")
    check_writable_suffix(output)
    check_output(input_path, output, overwrite)
    converter.load_models(depth_model=depth is None)
    picked = preview_frames(input_path, start, end, frames)
    sheet = contact_sheet(converter, picked, divergences, convergences, cell_width, depth)
    write_image(output, sheet)
    return [output]
