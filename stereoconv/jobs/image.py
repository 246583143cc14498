"""Convert one image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from stereoconv.config import StereoConfig
from stereoconv.converter import StereoConverter
from stereoconv.disparity.maps import load_depth_map
from stereoconv.disparity.plan import DisparityPlan
from stereoconv.errors import UserError
from stereoconv.fileio import check_output
from stereoconv.layout import arrange
from stereoconv.layouts import Layout, layout_of
from stereoconv.media.images import WRITABLE, check_writable_suffix, read_image, write_image


def pair_paths(output: Path) -> tuple[Path, Path]:
    """Output names of the `pair` layout: OUT_L.ext and OUT_R.ext."""
    return (
        output.with_name(f"{output.stem}_L{output.suffix}"),
        output.with_name(f"{output.stem}_R{output.suffix}"),
    )


def picture_output_name(input_path: Path, tag: str) -> str:
    """The output's name when OUT is a folder: the input's name with the stereo tag, in the
    input's format where it is one we write (JPEG otherwise: HEIC, MPO, ...)."""
    suffix = input_path.suffix if input_path.suffix.lower() in WRITABLE else ".jpg"
    return f"{input_path.stem}{tag}{suffix}"


def refuse_video_only(layout: Layout) -> None:
    """A layout that only a video can hold (spatial): refused for pictures before any work."""
    if layout.video_only:
        raise UserError(f"--layout {layout.name} is {layout.about}: use it with `stereoconv video`")


def output_paths(output: Path, layout: Layout) -> list[Path]:
    return list(pair_paths(output)) if layout.files == 2 else [output]


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) float in [0, 1] -> (H, W, 3) uint8."""
    return (image.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()


def frame_disparity(
    converter: StereoConverter, rgb: np.ndarray, depth: Path | None
) -> torch.Tensor:
    """Pixel disparity (1, H, W) of one RGB frame: from the --depth file or the depth model."""
    height, width = rgb.shape[:2]
    cfg = converter.config
    if depth is None:
        relative = converter.relative_disparity(torch.from_numpy(rgb)[None])
    else:
        relative = load_depth_map(
            depth, cfg.depth_kind, height, width, cfg.depth_scale, cfg.depth_unknown
        )
        relative = relative.to(converter.device)
    return DisparityPlan.of(cfg, given=depth is not None).still(relative)


def convert_image(
    converter: StereoConverter,
    input_path: Path,
    output: Path,
    depth: Path | None = None,
    overwrite: bool = False,
) -> list[Path]:
    """Convert one image file; returns the files written."""
    layout = layout_of(converter.config.layout)
    refuse_video_only(layout)
    outputs = output_paths(Path(output), layout)
    for out in outputs:
        check_writable_suffix(out)
        check_output(input_path, out, overwrite)
    if depth is not None and Path(depth).resolve() in {o.resolve() for o in outputs}:
        raise UserError(f"output {output} is the depth map; choose another name")
    rgb = read_image(input_path, converter.config.max_megapixels)
    converter.load_models(depth_model=depth is None)
    disparity = frame_disparity(converter, rgb, depth)
    views = converter.views(torch.from_numpy(rgb)[None], disparity)
    write_views(outputs, views.left, views.right, converter.config)
    return outputs


def write_views(
    outputs: list[Path], left: torch.Tensor, right: torch.Tensor, cfg: StereoConfig
) -> None:
    """Write one stereo pair, (1, 3, H, W) views, in the config's layout (two files for `pair`),
    scaled down to --max-size."""
    pictures = arrange(left, right, layout_of(cfg.layout), cfg.max_size, cfg.vr180_hfov)
    for output, picture in zip(outputs, pictures, strict=True):
        write_image(output, to_uint8(picture[0]))
