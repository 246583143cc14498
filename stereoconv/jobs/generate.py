"""Text to stereo and depth to stereo: pictures that did not exist before, in stereo."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from stereoconv.backends.diffusion import (
    HybridSettings,
    hybrid_composite,
    load_model,
    warp_and_fill,
)
from stereoconv.config import DEFAULT_DEPTH2IMG_MODEL, DEFAULT_SD_MODEL, StereoConfig
from stereoconv.converter import StereoConverter
from stereoconv.diffusion.pipeline import StereoDiffusion, StereoOutput
from stereoconv.diffusion.settings import DiffusionSettings
from stereoconv.disparity.maps import load_depth_map
from stereoconv.disparity.plan import DisparityPlan
from stereoconv.errors import UserError
from stereoconv.fileio import check_output
from stereoconv.jobs.image import output_paths, refuse_video_only, write_views
from stereoconv.layouts import layout_of
from stereoconv.media.images import check_writable_suffix, read_image


def check_size(height: int, width: int) -> None:
    for name, value in (("--height", height), ("--width", width)):
        if value < 64 or value % 8:
            raise UserError(f"{name} must be a multiple of 8 and at least 64, not {value}")


def finish(cfg: StereoConfig, out: StereoOutput) -> tuple[torch.Tensor, torch.Tensor]:
    """The configured composite of a generated pair: the generated left view is the frame."""
    if cfg.composite == "none":
        return out.left, out.right
    settings = HybridSettings.of(cfg)
    plan = warp_and_fill(out.left, out.disparity, settings)
    return out.left, hybrid_composite(plan, out.right, settings.seam)


def generation_settings(cfg: StereoConfig) -> DiffusionSettings:
    """Text and depth to stereo sample from noise: unguided SD samples are incoherent, so they
    take their own guidance scale (text_guidance), not image to stereo's."""
    return DiffusionSettings.of(cfg, guidance=cfg.text_guidance)


def generator(converter: StereoConverter, default_model: str) -> StereoDiffusion:
    """StereoDiffusion for text and depth to stereo on the configured (or the command's
    default) model."""
    cfg = converter.config
    components = load_model(cfg, converter.device, default_model)
    return StereoDiffusion(components, generation_settings(cfg), converter.progress)


def prepare_outputs(output: Path, layout: str, overwrite: bool, inputs: list[Path]) -> list[Path]:
    record = layout_of(layout)
    refuse_video_only(record)
    outputs = output_paths(Path(output), record)
    for out in outputs:
        check_writable_suffix(out)
        for source in inputs:
            check_output(source, out, overwrite)
    return outputs


def text_to_stereo(
    converter: StereoConverter,
    prompt: str,
    output: Path,
    height: int | None = None,
    width: int | None = None,
    overwrite: bool = False,
) -> list[Path]:
    """Generate a stereo picture from a prompt: the left image first, its depth, then the right
    view from the shift step on."""
    cfg = converter.config
    outputs = prepare_outputs(output, cfg.layout, overwrite, [])
    if height or width:  # a bad size fails before the model loads
        check_size(height or 64, width or 64)
    pipeline = generator(converter, DEFAULT_SD_MODEL)
    _ = converter.depth_estimator  # every model found before the diffusion starts
    size = pipeline.components.default_size
    height, width = height or size, width or size

    def disparity_of(image: torch.Tensor) -> torch.Tensor:
        return DisparityPlan.of(cfg).still(converter.relative_disparity(image))

    out = pipeline.text_to_stereo(prompt, height, width, disparity_of)
    write_views(outputs, *finish(cfg, out), cfg)
    return outputs


def depth_to_stereo(
    converter: StereoConverter,
    prompt: str,
    output: Path,
    depth_map: Path | None = None,
    from_image: Path | None = None,
    size: int | None = None,
    overwrite: bool = False,
) -> list[Path]:
    """Generate a stereo picture with the SD 2 depth model from a depth map (near = bright) or
    from the depth of a photo; the map is both the condition and the disparity source."""
    cfg = converter.config
    source = Path(from_image if from_image is not None else depth_map)
    outputs = prepare_outputs(output, cfg.layout, overwrite, [source])
    device = converter.device
    if from_image is not None:
        rgb = read_image(from_image, cfg.max_megapixels)
        _ = converter.depth_estimator  # every model found before any work
    else:
        relative = load_depth_map(source, "relative-disparity")
    pipeline = generator(converter, DEFAULT_DEPTH2IMG_MODEL)
    components = pipeline.components
    if not components.depth_conditioned:
        raise UserError(
            f"--model {cfg.model or DEFAULT_DEPTH2IMG_MODEL!r} is not depth-conditioned: "
            "the depth command needs an SD 2 depth model"
        )
    if from_image is not None:
        relative = converter.relative_disparity(torch.from_numpy(rgb)[None])
    long_side = size or components.default_size
    height, width = relative.shape[-2:]
    scale = long_side / max(height, width)
    gh, gw = (max(64, round(v * scale / 8) * 8) for v in (height, width))
    relative = F.interpolate(relative[None].float(), size=(gh, gw), mode="bilinear")[0]
    relative = relative.to(device)
    disparity = DisparityPlan.of(cfg).still(relative)
    out = pipeline.depth_to_stereo(relative, disparity, prompt)
    write_views(outputs, *finish(cfg, out), cfg)
    return outputs
