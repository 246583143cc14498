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
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any

from stereoconv.depth import DEFAULT_DEPTH_MODEL, DEPTH_KINDS
from stereoconv.errors import UserError
from stereoconv.layout import LAYOUTS

BACKENDS = ("warp", "diffusion")
VIEWS = ("right", "both")


@dataclass(frozen=True)
class StereoConfig:
    """The settings of a conversion; each field is the CLI option of the same name."""

    backend: str = "warp"  # warp | diffusion
    layout: str = "sbs"  # see layout.LAYOUTS
    divergence: float = 3.0  # near-to-far disparity range, % of one eye's view width
    convergence: float = 0.5  # depth on the screen plane: 0 farthest ... 1 nearest
    views: str = "right"  # right: keep the input as the left eye; both: split the disparity
    depth_model: str = DEFAULT_DEPTH_MODEL  # hub id or local folder
    depth_kind: str = "relative-disparity"  # what a --depth file holds
    depth_scale: float = 1.0  # --depth values are multiplied by this (KITTI-style PNG: 1/256)
    depth_low_pct: float = 2.0  # percentile mapped to the farthest depth
    depth_high_pct: float = 98.0  # percentile mapped to the nearest depth
    fill_sigma: float = 3.0  # warp backend: smoothing of filled holes, pixels (0: plain extension)
    batch_size: int = 8  # frames per batch through the models

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
        if self.batch_size < 1:
            raise UserError(f"--batch-size must be >= 1, not {self.batch_size}")
        if self.backend == "diffusion" and self.views != "right":
            raise UserError("--views both needs the warp backend (diffusion keeps the left view)")


def _check_choice(option: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise UserError(f"--{option} must be one of {', '.join(choices)}, not {value!r}")


def field_names() -> list[str]:
    return [f.name for f in fields(StereoConfig)]


def preset_names() -> list[str]:
    """Names of the presets that ship with the package."""
    folder = resources.files("stereoconv.pipelines")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def load_preset(name_or_path: str) -> dict[str, Any]:
    """A preset's settings: a shipped name (see preset_names) or a path to a TOML file."""
    path = Path(name_or_path)
    if name_or_path.endswith(".toml") or path.exists():
        if not path.is_file():
            raise UserError(f"preset file not found: {name_or_path}")
        text, origin = path.read_text(), str(path)
    else:
        resource = resources.files("stereoconv.pipelines") / f"{name_or_path}.toml"
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
