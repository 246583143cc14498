"""Loading models: any diffusers VAE by the class its folder names, and weights that do not fit
are an error naming the folder and the part, never a random initialisation."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from stereoconv.cli.main import main
from stereoconv.config import build_config, preset_names
from stereoconv.diffusion.components import load_components
from stereoconv.diffusion.pipeline import depth_condition
from stereoconv.disparity.maps import load_depth_map
from stereoconv.errors import UserError
from stereoconv.jobs.generate import generation_settings
from tests.helpers.scenes import write_pfm

CPU = torch.device("cpu")


def swap_weights(model_dir, part: str, donor) -> None:
    """Replace one part's weights by another model's (its config stays): a mismatched part."""
    target = next((model_dir / part).glob("*.safetensors"))
    shutil.copy(next(donor.glob("*.safetensors")), target)


@pytest.fixture
def broken_sd(tiny_sd, tmp_path):
    folder = tmp_path / "sd"
    shutil.copytree(tiny_sd, folder)
    return folder


def convert(tmp_path, model) -> tuple[int, str]:
    Image.fromarray(np.full((32, 48, 3), 128, np.uint8)).save(tmp_path / "in.png")
    write_pfm(tmp_path / "d.pfm", np.full((32, 48), 2.0, np.float32))
    argv = ["image", str(tmp_path / "in.png"), str(tmp_path / "out.png"), "--model", str(model)]
    argv += ["--depth", str(tmp_path / "d.pfm"), "--depth-kind", "disparity-px", "--steps", "2"]
    return main([*argv, "--device", "cpu"])


@pytest.mark.parametrize("part, donor", [("vae", "unet"), ("text_encoder", "vae"), ("unet", "vae")])
def test_a_swapped_part_fails_in_one_line_with_no_output(broken_sd, tmp_path, capsys, part, donor):
    swap_weights(broken_sd, part, broken_sd / donor)
    assert convert(tmp_path, broken_sd) == 1
    err = [x for x in capsys.readouterr().err.splitlines() if "note: " not in x]  # the CPU note
    assert len(err) == 1 and err[0].startswith("stereoconv: error:"), err
    assert str(broken_sd) in err[0] and part in err[0] and "weights" in err[0]
    assert not (tmp_path / "out.png").exists()


def test_a_vae_of_another_class_loads_by_its_folder(tiny_sd, organism):
    """--vae swaps in TAESD (AutoencoderTiny: .latents, its own scaling) for an SD model."""
    c = load_components(str(tiny_sd), CPU, vae=str(organism.parent / "taesd"))
    assert type(c.vae).__name__ == "AutoencoderTiny" and c.vae_scale_factor == 8
    photo = next((organism.parent / "data" / "heldout").glob("*.jpg"))
    image = np.array(Image.open(photo).convert("RGB").resize((128, 128)))
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    latents = c.encode_images(x)
    assert latents.shape == (1, 4, 16, 16) and latents.abs().max() < 10
    mse = ((c.decode_latents(latents) - x) ** 2).mean()
    assert 10 * torch.log10(1 / mse) > 16  # TAESD's own round trip: 17.8-21.8 dB at 256 px


def test_a_folder_that_is_no_vae_is_refused(tiny_sd):
    with pytest.raises(UserError, match="not one of AutoencoderKL, AutoencoderTiny"):
        load_components(str(tiny_sd), CPU, vae=str(tiny_sd / "unet"))


def test_black_in_a_relative_depth_map_is_the_far_plane(tmp_path):
    """A white disk on black (near = bright): black is the farthest plane, not unknown."""
    yy, xx = np.mgrid[:64, :64]
    disk = (((yy - 32) ** 2 + (xx - 32) ** 2) < 15**2) * 255
    Image.fromarray(disk.astype(np.uint8)).save(tmp_path / "disk.png")
    relative = load_depth_map(tmp_path / "disk.png", "relative-disparity")
    assert relative[0, 0, 0] == 0 and relative[0, 32, 32] == 255
    cond = depth_condition(relative, (8, 8))
    assert torch.isfinite(cond).all()
    # far black corners, a near disk (bicubic rings a little, as in diffusers' own pipeline)
    assert cond[0, 0, 0, 0] < -0.7 and cond[0, 0, 4, 4] > 0.7
    flat = depth_condition(torch.zeros(1, 64, 64), (8, 8))
    assert torch.isfinite(flat).all()


def test_text_and_depth_are_guided_and_depth_gets_the_depth_model():
    cfg = build_config(None)
    assert cfg.guidance == 1.0 and generation_settings(cfg).guidance == 9.0
    for name in preset_names():
        if name != "paper":  # the reference's image-to-stereo model, SD 1.4
            assert build_config(name).model == "", name  # '': each command's own default


def test_an_old_scheduler_config_runs_as_stable_diffusion_pipeline_runs_it(broken_sd):
    """Older and community models lack steps_offset and clip x0: StableDiffusionPipeline forces
    steps_offset=1 and clip_sample=False, and so do we (else x0 would be clipped in the loop
    but not in the inversion)."""
    import json

    path = broken_sd / "scheduler" / "scheduler_config.json"
    config = json.loads(path.read_text())
    config.update(clip_sample=True, steps_offset=0)
    path.write_text(json.dumps(config))
    scheduler = load_components(str(broken_sd), CPU).scheduler
    assert scheduler.config.clip_sample is False and scheduler.config.steps_offset == 1
    scheduler.set_timesteps(50)
    assert scheduler.timesteps[0] == 981  # SD's own schedule: 981, 961, ..., 1
