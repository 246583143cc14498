"""Every setting of a conversion as one frozen dataclass, and presets (pipelines/*.toml) that
change it.

The dataclass defaults are the `default` preset: the one place where a default is written.
Precedence: those defaults, then a preset (each lists only what it changes), then the options
given on the command line. Paths, the device and flags such as --overwrite are arguments of a
job, not settings, and stay out of here, except the video job's own options (VideoOptions).

A leaf module: the choice tuples and default model ids live here, and the modules that use them
(layout, depth, diffusion, media) import them from here, so that `stereoconv --help` reads the
defaults without importing torch.
"""

from __future__ import annotations

import dataclasses
import difflib
import tomllib
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any

from stereoconv.errors import UserError
from stereoconv.fields import check_choice, check_ranges, range_error, setting
from stereoconv.layouts import RECORDS

# --- choices and default models -----------------------------------------------------------------
# stereo layouts: the names of their records (stereoconv.layouts), in the records' order
LAYOUTS = tuple(layout.name for layout in RECORDS)
DEPTH_KINDS = ("disparity-px", "relative-disparity", "depth")  # what a --depth file holds
# which --depth values mean "no value" (disparity.maps.zero_is_unknown, docs/geometry.md)
DEPTH_UNKNOWNS = ("auto", "0", "nan")
ATTENTION_MODES = ("uni", "bi", "off")  # stereo self-attention (diffusion.attention)
DEFAULT_DEPTH_MODEL = "depth-anything/Depth-Anything-V2-Small-hf"
DEFAULT_SD_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"  # image, video, text
DEFAULT_DEPTH2IMG_MODEL = "stabilityai/stable-diffusion-2-depth"  # depth
BACKENDS = ("warp", "diffusion")
CODECS = ("libx264", "libx265")
# the encoders' pixel formats: 4:2:0, 4:2:2, 4:4:4 at 8, 10, 12 bits (above 8: HEVC, encode.py)
PIX_FMTS = ("auto", *(f"yuv{c}p{b}" for b in ("", "10le", "12le") for c in ("420", "422", "444")))
# x264's and x265's speed presets, fastest first
ENCODER_PRESETS = (
    "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
    "placebo",
)  # fmt: skip
COMPOSITES = ("hybrid", "none")
FILL_STARTS = ("invert", "noise")
TEMPORAL_FILLS = ("carry", "off")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
# where a video's shots start (disparity/transnet.py, disparity/shots.py)
SHOT_DETECTORS = ("transnet", "threshold", "none")
VIEWS = ("right", "both")
# the settings that take one of a closed set of values (the CLI offers them as choices)
CHOICES = {
    "backend": BACKENDS,
    "layout": LAYOUTS,
    "views": VIEWS,
    "depth_kind": DEPTH_KINDS,
    "depth_unknown": DEPTH_UNKNOWNS,
    "attention": ATTENTION_MODES,
    "composite": COMPOSITES,
    "fill_start": FILL_STARTS,
    "temporal_fill": TEMPORAL_FILLS,
    "precision": PRECISIONS,
}


def check_setting(name: str, value: float, option: str) -> None:
    """One value of StereoConfig's field `name` inside the range the field declares, for an
    option that takes several of them (preview's --divergences): the same bounds as the
    setting's own option."""
    meta = next(f.metadata for f in fields(StereoConfig) if f.name == name)
    why = range_error(option, value, meta)
    if why:
        raise UserError(why)


@dataclass(frozen=True)
class StereoConfig:
    """The settings of a conversion; each field is the CLI option of the same name."""

    backend: str = setting("diffusion", "warp (fast) or diffusion (StereoDiffusion)")
    # the --layout help lists each layout a command makes with its record's `about`
    layout: str = setting("sbs", "how the two views are stored")
    divergence: float = setting(
        3.0, "near-to-far disparity range, % of one eye's view width", min=0, max=25
    )
    convergence: float = setting(
        0.5,
        "depth on the screen plane: 0 farthest ... 1 nearest; auto: per shot (video) or "
        "per picture, so that nothing in front touches the frame border",
        min=0,
        max=1,
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
    depth_unknown: str = setting(
        "auto",
        "which --depth values are unknown: auto (0 in a PNG or video, nan/inf in .npy/.pfm; in "
        "a relative map 0 is the farthest), 0 (0 too, in every format), nan (only nan and inf)",
    )
    depth_scale: float = setting(
        1.0, "--depth values are multiplied by this (KITTI-style PNG: 1/256)", above=0, max=1e6
    )
    depth_low_pct: float = setting(2.0, "percentile mapped to the farthest depth", min=0, max=100)
    depth_high_pct: float = setting(98.0, "percentile mapped to the nearest depth", min=0, max=100)
    fill_sigma: float = setting(
        3.0, "smoothing of warp-filled holes, pixels (0: plain extension)", min=0, max=100
    )
    batch_size: int = setting(8, "frames per batch through the models", min=1, max=1024)
    max_megapixels: float = setting(
        100.0, "pictures larger than this are refused, not tiled", above=0, max=10000
    )
    max_size: int | None = setting(
        None,
        "scale the output down (aspect kept, even sides) so that its long side (each view's for "
        "pair) is at most this many pixels",
        min=16,
        max=65536,
    )
    # --- spatial video (--layout spatial: MV-HEVC .mov for Vision Pro, docs/vision-pro.md) ---
    spatial_baseline: float = setting(
        64.0, "spatial video: camera baseline written to vexu, mm", above=0, max=1000
    )
    spatial_hfov: float = setting(
        60.0, "spatial video: horizontal field of view, degrees", above=0, below=180
    )
    vr180_hfov: float = setting(
        90.0,
        "vr180: the horizontal field of view the picture covers on the half sphere, degrees",
        above=0,
        below=180,
    )
    # --- the diffusion backend (StereoDiffusion) ---
    model: str = setting(
        "", "SD 1.x / 2.x hub id or folder; '': SD 1.5 (image, text), SD 2 depth (depth)"
    )
    vae: str = setting(
        "", "another VAE for the model's latent space (hub id or folder, e.g. TAESD); '': its own"
    )
    steps: int = setting(25, "DDIM steps", min=1, max=1000)
    shift_fraction: float = setting(
        0.2, "the shift step t', as a fraction of the steps", min=0, below=1
    )
    spsmd_every: int = setting(
        10, "SPSMD copy every k steps after t' (the paper: 10); 0: off", min=0, max=1000
    )
    deblur: bool = setting(False, "fill the shifted latent's holes with noise")
    attention: str = setting("uni", "stereo self-attention: uni | bi | off")
    null_text: bool = setting(False, "null-text inversion (slow; matters with guidance > 1)")
    null_text_steps: int = setting(10, "inner optimisation steps per timestep", min=1, max=1000)
    guidance: float = setting(
        1.0,
        "image to stereo: classifier-free guidance scale; <= 1: no unconditional batch",
        min=0,
        max=100,
    )
    text_guidance: float = setting(
        9.0,
        "text and depth to stereo: classifier-free guidance scale (the reference: 9.0)",
        min=0,
        max=100,
    )
    prompt: str = setting("", "text condition for image-to-stereo")
    composite: str = setting("hybrid", "hybrid: warped frame + generated holes; none: both decoded")
    fill_min_width: int = setting(
        12,
        "hybrid composite: holes narrower than this (pixels) keep the warp's fill",
        min=1,
        max=4096,
    )
    fill_border: bool = setting(
        True, "hybrid composite: generate the strips at the frame's edges too (else: warp fill)"
    )
    fill_margin: int = setting(
        16,
        "hybrid composite: pixels of edge-replicated margin left and right of the working image,"
        " so that the frame-edge strips are not painted at the latent's edge",
        min=0,
        max=512,
    )
    fill_start: str = setting(
        "invert",
        "hybrid composite: how both views reach t': invert (DDIM inversion) | noise (forward"
        " noise: no UNet call)",
    )
    seam: float = setting(
        2.0,
        "hybrid composite: blend width into the background side of each hole, pixels",
        min=0,
        max=256,
    )
    temporal_fill: str = setting(
        "carry",
        "video, hybrid composite: carry (what was seen or painted is carried into the next "
        "frames along the motion; only newly revealed holes are painted, on crops around "
        "them) | off (every frame painted on its own over the whole frame, as photos are)",
    )
    max_side: int = setting(
        768, "diffusion works at most at this long side (aspect kept)", min=64, max=16384
    )
    seed: int = setting(0, "random seed of the diffusion noise", min=0, max=2**63 - 1)
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
        check_choice("backend", self.backend, BACKENDS)
        check_choice("layout", self.layout, LAYOUTS)
        check_choice("views", self.views, VIEWS)
        check_choice("depth-kind", self.depth_kind, DEPTH_KINDS)
        check_choice("depth-unknown", self.depth_unknown, DEPTH_UNKNOWNS)
        check_ranges(self)  # every number inside the range its field declares
        if not self.depth_low_pct < self.depth_high_pct:
            raise UserError(
                "depth percentiles must satisfy 0 <= depth-low-pct < depth-high-pct <= 100, "
                f"not {self.depth_low_pct} and {self.depth_high_pct}"
            )
        check_choice("attention", self.attention, ATTENTION_MODES)
        check_choice("composite", self.composite, COMPOSITES)
        check_choice("fill-start", self.fill_start, FILL_STARTS)
        check_choice("temporal-fill", self.temporal_fill, TEMPORAL_FILLS)
        check_choice("precision", self.precision, PRECISIONS)
        if self.backend == "diffusion" and self.views != "right":
            raise UserError("--views both needs the warp backend (diffusion keeps the left view)")


@dataclass(frozen=True)
class VideoOptions:
    """Options of a video job besides the conversion settings; each is the CLI option of the
    same name (`preset` is --encoder-preset). None means "not set"."""

    start: float | None = setting(None, "Start time, seconds.", min=0, max=1e7)
    end: float | None = setting(None, "End time, seconds.", above=0, max=1e7)
    max_frames: int | None = setting(None, "Convert at most this many frames.", min=1, max=10**9)
    max_fps: float | None = setting(
        None,
        "Cap the frame rate at a steady cadence: every k-th frame is kept, at its own time "
        "(audio stays in sync).",
        above=0,
        max=1000,
    )
    codec: str = setting("libx264", "H.264 or HEVC; H.264 wider than 4096 or 10-bit becomes HEVC.")
    crf: int = setting(18, "Encoder quality (lower is better).", min=0, max=51)
    preset: str = setting("medium", "Encoder speed: slower is smaller.")
    pix_fmt: str = setting(
        "auto", "auto: yuv420p, or yuv420p10le for 10-bit sources; 10- and 12-bit are HEVC."
    )
    chunk_frames: int = setting(240, "Frames per chunk (the unit of resume).", min=1, max=100_000)
    shots: str = setting(
        "transnet",
        "Where shots start (the depth range and --convergence auto restart there): transnet (a "
        "trained detector, TransNetV2, over the whole range first), threshold (a large change "
        "of a grey thumbnail) or none.",
    )
    strict: bool = setting(False, "A damaged input (frames lost) is an error: nothing is written.")

    def __post_init__(self) -> None:
        check_choice("codec", self.codec, CODECS)
        check_choice("encoder-preset", self.preset, ENCODER_PRESETS)
        check_choice("shots", self.shots, SHOT_DETECTORS)
        check_choice("pix-fmt", self.pix_fmt, PIX_FMTS)
        check_ranges(self)
        if self.end is not None and self.end <= (self.start or 0):
            raise UserError(f"--end ({self.end}) must be after --start ({self.start or 0})")


VIDEO_CHOICES = {
    "codec": CODECS,
    "preset": ENCODER_PRESETS,
    "shots": SHOT_DETECTORS,
    "pix_fmt": PIX_FMTS,
}
VIDEO_FLAGS = {"preset": "encoder_preset"}  # where the option's name is not the field's


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


# settings that change how fast a run goes, never the pixels it writes (frames do not depend on
# their batch): work done under other values of them is reused, by a resumed video and by a
# photo library alike
SPEED_ONLY = ("batch_size",)


def pixel_settings(config: StereoConfig) -> dict[str, Any]:
    """The settings that decide an output's pixels: what makes finished work reusable."""
    return {k: v for k, v in dataclasses.asdict(config).items() if k not in SPEED_ONLY}
