"""A preset is a promise: every value a shipped preset states is pinned here, so a change of the
product's defaults can never silently change `paper` or `fast`, and a preset file that gains
or loses a setting fails until its promise is written down here too."""

from __future__ import annotations

import tomllib

import pytest

from stereoconv.config import build_config, preset_names, presets_folder
from stereoconv.diffusion.settings import DiffusionSettings

# what each preset file sets, exactly
PRESETS = {
    "default": {},
    "fast": {
        "composite": "hybrid",
        "steps": 8,
        "attention": "off",
        "max_side": 512,
        "vae": "madebyollin/taesd",
        "batch_size": 16,
    },
    "paper": {
        "steps": 50,
        "spsmd_every": 10,
        "attention": "uni",
        "null_text_steps": 10,
        "deblur": False,
        "prompt": "",
        "model": "CompVis/stable-diffusion-v1-4",
        "depth_model": "Intel/dpt-hybrid-midas",
        "depth_low_pct": 0.0,
        "depth_high_pct": 100.0,
        "divergence": 8.0,
        "convergence": 0.0,
        "shift_fraction": 0.22,
        "null_text": True,
        "guidance": 7.5,
        "composite": "none",
    },
    "preview": {"backend": "warp", "layout": "half-sbs"},
    "vision-pro": {"layout": "spatial", "divergence": 2.5, "convergence": 0.8},
}
# what the default preset's description promises (its values are StereoConfig's defaults)
DEFAULT_PROMISES = {
    "backend": "diffusion",
    "composite": "hybrid",
    "steps": 25,
    "max_side": 768,
    "null_text": False,
    "guidance": 1.0,
    "spsmd_every": 10,
    "attention": "uni",
    "layout": "sbs",
    "divergence": 3.0,
    "convergence": 0.5,
    "temporal_fill": "carry",
}


def preset_file(name: str) -> dict:
    data = tomllib.loads((presets_folder() / f"{name}.toml").read_text())
    data.pop("description")
    return data


def test_every_shipped_preset_is_pinned():
    assert sorted(PRESETS) == preset_names()


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_a_preset_sets_exactly_what_it_promises(name):
    assert preset_file(name) == PRESETS[name]
    config = build_config(name)
    for key, value in {**DEFAULT_PROMISES, **PRESETS[name]}.items():
        if name == "default" or key in PRESETS[name]:
            assert getattr(config, key) == value, f"{name}: {key}"


def test_paper_runs_the_papers_schedule():
    """50 DDIM steps, the shift at loop step 11 (t = 761, after the UNet call of step 10),
    SPSMD copies at 20, 30 and 40, null-text inversion with CFG 7.5 and 10 inner steps."""
    settings = DiffusionSettings.of(build_config("paper"))
    assert settings.steps == 50 and settings.shift_step == 11
    assert [i for i in range(50) if settings.schedule.copies_at(i)] == [20, 30, 40]
    assert settings.null_text and settings.null_text_steps == 10 and settings.guidance == 7.5
    assert settings.attention == "uni" and not settings.deblur and settings.prompt == ""


def test_fast_runs_8_steps_with_the_shift_at_step_2():
    settings = DiffusionSettings.of(build_config("fast"))
    assert settings.steps == 8 and settings.shift_step == 2 and settings.attention == "off"


def test_the_default_finds_shots_with_transnet():
    """The default preset's description promises TransNetV2 for a video's shots (a job
    option, VideoOptions, not a setting of StereoConfig)."""
    from stereoconv.config import VideoOptions

    assert VideoOptions().shots == "transnet"
