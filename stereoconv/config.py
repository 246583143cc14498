"""Every setting of a conversion as one frozen dataclass, and presets (pipelines/*.toml) that
fill it.

Precedence: the dataclass defaults, then the preset (the `default` preset unless another is
named), then the options given on the command line. Paths, the device and flags such as
--overwrite are arguments of a job, not settings, and stay out of here.
"""

from __future__ import annotations

import dataclasses
import difflib
import tomllib
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

from stereoconv.depth import DEFAULT_DEPTH_MODEL, DEPTH_KINDS
from stereoconv.diffusion.attention import ATTENTION_MODES
from stereoconv.errors import UserError
from stereoconv.layout import LAYOUTS

BACKENDS = ("warp", "diffusion")
COMPOSITES = ("hybrid", "none")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
VIEWS = ("right", "both")
# the settings that take one of a closed set of values (the CLI offers them as choices)
CHOICES = {
    "backend": BACKENDS,
    "layout": LAYOUTS,
    "views": VIEWS,
    "depth_kind": DEPTH_KINDS,
    "attention": ATTENTION_MODES,
    "composite": COMPOSITES,
    "precision": PRECISIONS,
}


def setting(default, help: str):
    """A config field with its command-line help."""
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class StereoConfig:
    """The settings of a conversion; each field is the CLI option of the same name."""

    backend: str = setting("warp", "warp (fast) or diffusion (StereoDiffusion)")
    layout: str = setting(
        "sbs",
        "sbs, half-sbs, tb, half-tb, anaglyph, pair (two files), spatial (video, .mov) or sbs-rl "
        "(eyes swapped: cross-eyed)",
    )
    divergence: float = setting(3.0, "near-to-far disparity range, % of one eye's view width")
    convergence: float = setting(
        0.5,
        "depth on the screen plane: 0 farthest ... 1 nearest; auto: per shot (video) or "
        "per picture, so that nothing in front touches the frame border",
    )
    auto_convergence: bool = setting(
        False, "the screen plane per shot or picture (--convergence auto on the command line)"
    )
    views: str = setting(
        "right", "right: keep the input as the left eye; both: split the disparity"
    )
    depth_model: str = setting(DEFAULT_DEPTH_MODEL, "depth model: hub id or local folder")
    depth_kind: str = setting(
        "relative-disparity", "what --depth holds: disparity-px, relative-disparity or depth"
    )
    depth_scale: float = setting(
        1.0, "--depth values are multiplied by this (KITTI-style PNG: 1/256)"
    )
    depth_low_pct: float = setting(2.0, "percentile mapped to the farthest depth")
    depth_high_pct: float = setting(98.0, "percentile mapped to the nearest depth")
    fill_sigma: float = setting(
        3.0, "warp backend: smoothing of filled holes, pixels (0: plain extension)"
    )
    batch_size: int = setting(8, "frames per batch through the models")
    max_megapixels: float = setting(100.0, "pictures larger than this are refused, not tiled")
    # --- spatial video (--layout spatial: MV-HEVC .mov for Vision Pro, docs/vision-pro.md) ---
    spatial_baseline: float = setting(64.0, "spatial video: camera baseline written to vexu, mm")
    spatial_hfov: float = setting(60.0, "spatial video: horizontal field of view, degrees")
    # --- the diffusion backend (StereoDiffusion) ---
    model: str = setting(
        "", "SD 1.x / 2.x hub id or folder; '': SD 1.5 (image, text), SD 2 depth (depth)"
    )
    vae: str = setting(
        "", "another VAE for the model's latent space (hub id or folder, e.g. TAESD); '': its own"
    )
    steps: int = setting(50, "DDIM steps")
    shift_fraction: float = setting(0.2, "the shift step t', as a fraction of the steps")
    spsmd_every: int = setting(10, "SPSMD copy every k steps after t' (the paper: 10); 0: off")
    deblur: bool = setting(False, "fill the shifted latent's holes with noise")
    attention: str = setting("uni", "stereo self-attention: uni | bi | off")
    null_text: bool = setting(False, "null-text inversion (slow; matters with guidance > 1)")
    null_text_steps: int = setting(10, "inner optimisation steps per timestep")
    guidance: float = setting(
        1.0, "image to stereo: classifier-free guidance scale; <= 1: no unconditional batch"
    )
    text_guidance: float = setting(
        9.0, "text and depth to stereo: classifier-free guidance scale (the reference: 9.0)"
    )
    prompt: str = setting("", "text condition for image-to-stereo")
    composite: str = setting("hybrid", "hybrid: warped frame + generated holes; none: both decoded")
    fill_min_width: int = setting(
        12, "hybrid composite: holes narrower than this (pixels) keep the warp's fill"
    )
    seam: float = setting(
        2.0, "hybrid composite: blend width into the background side of each hole, pixels"
    )
    max_side: int = setting(1024, "diffusion works at most at this long side (aspect kept)")
    seed: int = setting(0, "random seed of the diffusion noise")
    precision: str = setting("auto", "auto (bf16/fp16 on GPUs, fp32 on CPU) | fp32 | fp16 | bf16")
    compile: bool = setting(False, "torch.compile the UNet: faster for videos, minutes to start")
    skip_pre_shift: bool = setting(
        False, "start at t' from the inversion (fewer UNet calls; changes the output)"
    )

    @property
    def shift_step(self) -> int:
        """The loop index of the shift step t'."""
        return min(self.steps - 1, max(0, round(self.shift_fraction * self.steps)))

    def __post_init__(self) -> None:
        _check_choice("backend", self.backend, BACKENDS)
        _check_choice("layout", self.layout, LAYOUTS)
        _check_choice("views", self.views, VIEWS)
        _check_choice("depth-kind", self.depth_kind, DEPTH_KINDS)
        if not self.divergence >= 0:
            raise UserError(f"--divergence must be >= 0 (% of view width), not {self.divergence}")
        if not 0 <= self.convergence <= 1:
            raise UserError(f"--convergence must be between 0 and 1, not {self.convergence}")
        if not 0 <= self.depth_low_pct < self.depth_high_pct <= 100:
            raise UserError(
                "depth percentiles must satisfy 0 <= depth-low-pct < depth-high-pct <= 100, "
                f"not {self.depth_low_pct} and {self.depth_high_pct}"
            )
        if not self.depth_scale > 0:
            raise UserError(f"--depth-scale must be > 0, not {self.depth_scale}")
        if self.fill_sigma < 0:
            raise UserError(f"--fill-sigma must be >= 0, not {self.fill_sigma}")
        if not self.max_megapixels > 0:
            raise UserError(f"--max-megapixels must be > 0, not {self.max_megapixels}")
        if self.batch_size < 1:
            raise UserError(f"--batch-size must be >= 1, not {self.batch_size}")
        if not 0 < self.spatial_baseline <= 1000:
            raise UserError(
                f"--spatial-baseline must be in (0, 1000] mm, not {self.spatial_baseline}"
            )
        if not 0 < self.spatial_hfov < 180:
            raise UserError(f"--spatial-hfov must be in (0, 180) degrees, not {self.spatial_hfov}")
        _check_choice("attention", self.attention, ATTENTION_MODES)
        _check_choice("composite", self.composite, COMPOSITES)
        _check_choice("precision", self.precision, PRECISIONS)
        for name in ("steps", "null_text_steps"):
            if getattr(self, name) < 1:
                raise UserError(
                    f"--{name.replace('_', '-')} must be >= 1, not {getattr(self, name)}"
                )
        if self.max_side < 64:
            raise UserError(f"--max-side must be at least 64 pixels, not {self.max_side}")
        if not 0 <= self.shift_fraction < 1:
            raise UserError(f"--shift-fraction must be in [0, 1), not {self.shift_fraction}")
        if self.spsmd_every < 0:
            raise UserError(f"--spsmd-every must be >= 0, not {self.spsmd_every}")
        if self.fill_min_width < 1:
            raise UserError(f"--fill-min-width must be >= 1, not {self.fill_min_width}")
        if self.seam < 0:
            raise UserError(f"--seam must be >= 0, not {self.seam}")
        if self.backend == "diffusion" and self.views != "right":
            raise UserError("--views both needs the warp backend (diffusion keeps the left view)")


def _check_choice(option: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise UserError(f"--{option} must be one of {', '.join(choices)}, not {value!r}")


def field_names() -> list[str]:
    return [f.name for f in fields(StereoConfig)]


def presets_folder():
    """The shipped presets: installed as stereoconv.pipelines, or the source tree's pipelines/
    when the package runs from a checkout on PYTHONPATH without being installed."""
    try:
        return resources.files("stereoconv.pipelines")
    except ModuleNotFoundError:
        return Path(__file__).resolve().parent.parent / "pipelines"


def preset_names() -> list[str]:
    """Names of the presets that ship with the package."""
    folder = presets_folder()
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def load_preset(name_or_path: str) -> dict[str, Any]:
    """A preset's settings: a shipped name (see preset_names) or a path to a TOML file."""
    path = Path(name_or_path)
    if name_or_path.endswith(".toml") or path.exists():
        if not path.is_file():
            raise UserError(f"preset file not found: {name_or_path}")
        text, origin = path.read_text(), str(path)
    else:
        resource = presets_folder() / f"{name_or_path}.toml"
        if not resource.is_file():
            raise UserError(
                f"unknown preset {name_or_path!r}: use one of {', '.join(preset_names())} "
                "or a path to a .toml file"
            )
        text, origin = resource.read_text(), f"preset {name_or_path!r}"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{origin}: not valid TOML ({exc})") from None
    data.pop("description", None)
    known = field_names()
    for key in data:
        if key not in known:
            hint = difflib.get_close_matches(key, known, n=1)
            extra = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise UserError(f"{origin}: unknown setting {key!r}{extra}")
    return data


def build_config(preset: str | None = None, **options: Any) -> StereoConfig:
    """Defaults, then the preset, then the given options (None means not given)."""
    settings = load_preset(preset or "default")
    settings.update({k: v for k, v in options.items() if v is not None})
    types = {f.name: f.type for f in fields(StereoConfig)}
    for key, value in settings.items():
        if types[key] == "float" and isinstance(value, int) and not isinstance(value, bool):
            settings[key] = float(value)
        expected = {"float": float, "int": int, "str": str, "bool": bool}.get(types[key])
        if expected and not isinstance(settings[key], expected):
            raise UserError(f"setting {key!r} must be a {types[key]}, not {value!r}")
    return StereoConfig(**settings)


def to_dict(config: StereoConfig) -> dict[str, Any]:
    return dataclasses.asdict(config)
