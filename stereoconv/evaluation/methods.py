"""The methods compared, by name, and one runner that makes a right view with any of them.

Names (comma-separated in --methods; sets expand):
- leave-blank, stretch, telea: the classical baselines (evaluation.classical).
- warp: the warp backend (sub-pixel z-buffered warp, background fill).
- diffusion: the diffusion backend with the run's settings; `diffusion:KEY=VALUE:...` changes
  attention (uni | bi | off), spsmd (on | off | N: a copy every N steps), deblur (on | off),
  composite (hybrid | pure), nulltext (on | off), shift (the shift fraction), guidance, steps,
  minwidth, start (invert | noise), maxside, border (on | off), margin.
- sets: classical, table2 (the paper's Table 2 technique rows, pure composite), ablation (every
  attention x SPSMD x deblur x composite combination, 24 runs), switches (each switch of the
  run's settings changed alone, for both composites), all (classical, warp, ablation).
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass

import numpy as np
import torch

from stereoconv.backends.diffusion import DiffusionBackend, HybridSettings, load_model
from stereoconv.backends.warp import WarpBackend
from stereoconv.config import ATTENTION_MODES, StereoConfig
from stereoconv.diffusion.pipeline import StereoDiffusion
from stereoconv.diffusion.settings import DiffusionSettings
from stereoconv.errors import UserError
from stereoconv.evaluation.classical import CLASSICAL_METHODS

ON_OFF = {"on": True, "off": False}
COMPOSITE_NAMES = {"hybrid": "hybrid", "pure": "none", "none": "none"}
DIFFUSION_KEYS = (
    "attention",
    "spsmd",
    "deblur",
    "composite",
    "nulltext",
    "shift",
    "guidance",
    "steps",
    "minwidth",
    "start",
    "maxside",
    "border",
    "margin",
)
# the switches beyond the paper's four: method field, config field, parser
EXTRA_SWITCHES = {
    "nulltext": ("null_text", "null_text", lambda v: ON_OFF[v]),
    "shift": ("shift", "shift_fraction", float),
    "guidance": ("guidance", "guidance", float),
    "steps": ("steps", "steps", int),
    "minwidth": ("min_width", "fill_min_width", int),
    "start": ("fill_start", "fill_start", str),
    "maxside": ("max_side", "max_side", int),
    "border": ("fill_border", "fill_border", lambda v: ON_OFF[v]),
    "margin": ("fill_margin", "fill_margin", int),
}


@dataclass(frozen=True)
class Method:
    family: str  # the classical method's name, "warp" or "diffusion"
    attention: str | None = None  # diffusion only: uni | bi | off
    spsmd: bool | None = None
    deblur: bool | None = None
    composite: str | None = None  # hybrid | none (pure: both views as decoded)
    spsmd_every: int | None = None  # with spsmd on: copy every N steps (None: the run's own)
    null_text: bool | None = None  # None: the run's own setting, and not part of the name
    shift: float | None = None
    guidance: float | None = None
    steps: int | None = None
    min_width: int | None = None  # hybrid: holes narrower than this keep the warp's fill
    fill_start: str | None = None  # hybrid: invert | noise
    max_side: int | None = None  # the diffusion working size's long side
    fill_border: bool | None = None  # hybrid: generate the frame-edge strips too
    fill_margin: int | None = None  # hybrid: edge-replicated margin of the working image, px

    @property
    def name(self) -> str:
        if self.family != "diffusion":
            return self.family
        composite = "pure" if self.composite == "none" else self.composite
        spsmd = "off" if not self.spsmd else str(self.spsmd_every or "on")
        name = (
            f"diffusion:attention={self.attention}:spsmd={spsmd}"
            f":deblur={'on' if self.deblur else 'off'}:composite={composite}"
        )
        for key, (attr, _, _) in EXTRA_SWITCHES.items():
            value = getattr(self, attr)
            if value is not None:
                value = {True: "on", False: "off"}.get(value, value)
                name += f":{key}={value}"
        return name

    def overrides(self, base: StereoConfig) -> dict:
        """The settings this method changes from the run's own, by config field name."""
        every = (self.spsmd_every or base.spsmd_every or 10) if self.spsmd else 0
        extra = {
            field: getattr(self, attr)
            for attr, field, _ in EXTRA_SWITCHES.values()
            if getattr(self, attr) is not None
        }
        return dict(
            attention=self.attention,
            spsmd_every=every,
            deblur=self.deblur,
            composite=self.composite,
            **extra,
        )

    def settings(self, base: StereoConfig) -> tuple[DiffusionSettings, HybridSettings]:
        """The diffusion method's records: the run's own settings with this method's switches."""
        changes = self.overrides(base)
        own = {f.name for f in dataclasses.fields(DiffusionSettings)}
        diffusion = DiffusionSettings.of(base, **{k: v for k, v in changes.items() if k in own})
        hybrid = HybridSettings.of(base, **{k: v for k, v in changes.items() if k not in own})
        return diffusion, hybrid


def diffusion_method(spec: str, base: StereoConfig) -> Method:
    """`diffusion` or `diffusion:key=value:...`, defaults from the run's settings."""
    values = {
        "attention": base.attention,
        "spsmd": base.spsmd_every > 0,
        "deblur": base.deblur,
        "composite": base.composite,
    }
    for part in spec.split(":")[1:]:
        key, _, value = part.partition("=")
        if key not in DIFFUSION_KEYS:
            raise UserError(
                f"unknown diffusion switch {key!r} in {spec!r}: use {', '.join(DIFFUSION_KEYS)}"
            )
        if key == "attention" and value not in ATTENTION_MODES:
            raise UserError(f"{spec!r}: attention must be uni, bi or off, not {value!r}")
        if key == "deblur" and value not in ON_OFF:
            raise UserError(f"{spec!r}: {key} must be on or off, not {value!r}")
        if key == "spsmd" and value not in ON_OFF and not value.isdigit():
            raise UserError(f"{spec!r}: spsmd must be on, off or a step count, not {value!r}")
        if key == "composite" and value not in COMPOSITE_NAMES:
            raise UserError(f"{spec!r}: composite must be hybrid or pure, not {value!r}")
        if key in EXTRA_SWITCHES:
            attr, _, parse = EXTRA_SWITCHES[key]
            try:
                values[attr] = parse(value)
            except (KeyError, ValueError):
                raise UserError(f"{spec!r}: bad value {value!r} for {key}") from None
            continue
        if key == "spsmd" and value.isdigit():
            values["spsmd"], values["spsmd_every"] = int(value) > 0, int(value) or None
            continue
        values[key] = {
            "attention": value,
            "spsmd": ON_OFF.get(value),
            "deblur": ON_OFF.get(value),
            "composite": COMPOSITE_NAMES.get(value),
        }[key]
    return Method("diffusion", **values)


def table2() -> list[Method]:
    """The paper's Table 2 technique rows (attention, SPSMD, deblur), both views as decoded."""
    rows = [("off", 0, 0), ("off", 1, 0), ("uni", 0, 0), ("uni", 1, 0), ("uni", 1, 1)]
    return [Method("diffusion", a, bool(s), bool(d), "none") for a, s, d in rows]


def ablation() -> list[Method]:
    grid = itertools.product(("off", "uni", "bi"), (True, False), (False, True), ("hybrid", "none"))
    return [Method("diffusion", a, s, d, c) for a, s, d, c in grid]


def switches(base: StereoConfig) -> list[Method]:
    """The run's own diffusion method for each composite, then each switch changed alone: the
    ablation of the organism evaluation (docs/evaluation.md)."""
    found = []
    for composite in ("hybrid", "none"):
        own = diffusion_method(f"diffusion:composite={composite}", base)
        found.append(own)
        found += [dataclasses.replace(own, attention=a) for a in ATTENTION_MODES]
        found.append(dataclasses.replace(own, deblur=not own.deblur))
        found += [dataclasses.replace(own, shift=f) for f in (0.1, 0.22, 0.3)]
        if composite == "hybrid":
            found += [dataclasses.replace(own, min_width=k) for k in (3, 8, 16)]
        if composite == "none":
            found += [dataclasses.replace(own, spsmd=False)]
            found += [dataclasses.replace(own, spsmd=True, spsmd_every=1)]  # own: every 10
            found += [dataclasses.replace(own, guidance=7.5, null_text=n) for n in (False, True)]
    unique: list[Method] = []
    return [m for m in found if m not in unique and not unique.append(m)]


def parse_methods(text: str, base: StereoConfig) -> list[Method]:
    """Method names and sets, comma-separated -> methods in order, each once."""
    methods: list[Method] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        if item in CLASSICAL_METHODS or item == "warp":
            found = [Method(item)]
        elif item == "diffusion" or item.startswith("diffusion:"):
            found = [diffusion_method(item, base)]
        elif item == "classical":
            found = [Method(name) for name in CLASSICAL_METHODS]
        elif item in ("table2", "ablation"):
            found = table2() if item == "table2" else ablation()
        elif item == "switches":
            found = switches(base)
        elif item == "all":
            found = [Method(name) for name in (*CLASSICAL_METHODS, "warp")] + ablation()
        else:
            known = [*CLASSICAL_METHODS, "warp", "diffusion[:...]", "classical", "table2"]
            raise UserError(
                f"unknown method {item!r}: use {', '.join(known)}, ablation or all "
                "(comma-separated)"
            )
        methods += [m for m in found if m not in methods]
    if not methods:
        raise UserError("--methods names no method")
    return methods


class MethodRunner:
    """Right views of any method; models are loaded on first use and shared by all methods."""

    def __init__(self, config: StereoConfig, device: torch.device):
        self.config = config
        self.device = torch.device(device)
        self._components = None
        self._backends: dict[Method, object] = {}

    def backend(self, method: Method):
        if method not in self._backends:
            if method.family == "warp":
                backend = WarpBackend(views="right", fill_sigma=self.config.fill_sigma)
            else:
                diffusion, hybrid = method.settings(self.config)
                backend = DiffusionBackend(StereoDiffusion(self.components, diffusion), hybrid)
            self._backends[method] = backend
        return self._backends[method]

    @property
    def components(self):
        if self._components is None:
            self._components = load_model(self.config, self.device)
        return self._components

    def right_view(self, method: Method, left: np.ndarray, disparity: np.ndarray) -> np.ndarray:
        """left (H, W, 3) uint8 and disparity (H, W) pixels -> the right view, (H, W, 3) uint8."""
        if method.family in CLASSICAL_METHODS:
            return CLASSICAL_METHODS[method.family](left, disparity)
        frames = torch.from_numpy(np.array(left)).permute(2, 0, 1)[None].float() / 255.0
        d = torch.from_numpy(np.array(disparity, dtype=np.float32))[None]
        with torch.inference_mode(method.family == "warp"):
            _, right = self.backend(method)(frames.to(self.device), d.to(self.device))
        return (right[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()
