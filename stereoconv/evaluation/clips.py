"""Stereo clips with ground truth, made from still stereo scenes by moving a camera over them.

Every frame of a clip is the scene seen through a window: output pixel p = (x, y) shows scene
point W_t p, W_t = [[1/s, 0, cx - ox / s], [0, 1/s, cy - oy / s]] (zoom s about the window's
centre (cx, cy), o the frame's centre). The left view, the real right view and the disparity
are rendered through the same window, so they stay a true stereo pair: the right view is the
real one, and the disparity is the scene's, times s (a zoom scales it). Integer pans are plain
crops (exact); a zoom resamples bilinearly.

The motion of every frame is known exactly: frame t-1's pixel p is frame t's pixel
W_t^-1 W_(t-1) p, for both views (they share the window); it drives the temporal metric
(evaluation.video_protocol). A cut has no motion.

Kinds: pan-right and pan-left (the window moves `pan_step` pixels a frame, so the content moves
the other way), zoom (the zoom grows by `zoom_step` a frame about the scene's centre), static
(a still window, independent Gaussian sensor noise on every frame of both views) and cut (a pan
right over one scene, then over another, of the same size).

On disk (write_clip), a clip is a stereo-video dataset folder (evaluation.datasets): left.mkv
and right.mkv (FFV1, 8-bit RGB, lossless), disparity.mkv (FFV1, 16-bit grey, pixels x 256: what
`video --depth ... --depth-kind disparity-px --depth-scale 0.00390625` reads) and clip.json
(kind, scenes, sizes, and the motion of every frame).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import av
import cv2
import numpy as np

from stereoconv.errors import UserError
from stereoconv.evaluation.datasets import Scene, middlebury2003, motorcycle
from stereoconv.evaluation.protocols import filled_disparity
from stereoconv.fileio import atomic_output

CLIP_KINDS = ("pan-right", "pan-left", "zoom", "static", "cut")
SCENE_NAMES = ("motorcycle", "teddy", "tsukuba", "venus")
# video:standard: the baseline set of docs/evaluation.md
STANDARD_PANS = SCENE_NAMES
STANDARD_OTHERS = ("teddy",)  # zoom, static and cut
DISPARITY_CODE = 256  # the disparity video holds round(pixels x 256), 16-bit; 0 = unknown
DEPTH_SCALE = 1 / DISPARITY_CODE  # what --depth-scale undoes
MIDDLEBURY2003_ENV = "STEREOCONV_MIDDLEBURY2003"


@dataclass(frozen=True)
class ClipSpec:
    """The size and motion of the clips made."""

    width: int = 320
    height: int = 240
    frames: int = 12
    pan_step: int = 2  # pixels a frame
    zoom_step: float = 0.01  # the zoom grows by this fraction a frame (1 % : 1.0 -> 1.12 in 12)
    noise_sigma: float = 2.0  # static: sensor noise, grey levels (standard deviation)
    fps: int = 24
    seed: int = 0

    def __post_init__(self) -> None:
        if self.width < 16 or self.height < 16 or self.width % 2 or self.height % 2:
            raise UserError(
                f"a clip must be at least 16 x 16 with even sides, not {self.width} x {self.height}"
            )
        if self.frames < 2:
            raise UserError(f"a clip needs at least 2 frames, not {self.frames}")
        if self.pan_step < 0:
            raise UserError(f"the pan step must be >= 0 pixels, not {self.pan_step}")


@dataclass
class StereoStill:
    """A stereo scene to film: views (H, W, 3) uint8, disparity (H, W) float32 pixels of the
    left view, unknown values filled (evaluation.protocols.filled_disparity)."""

    name: str
    left: np.ndarray
    right: np.ndarray
    disparity: np.ndarray

    @classmethod
    def of(cls, scene: Scene, name: str) -> StereoStill:
        if scene.disparity is None:
            raise UserError(f"scene {scene.name} has no ground-truth disparity")
        filled, _ = filled_disparity(scene.disparity)
        return cls(name, scene.left, scene.right, filled)


@dataclass
class Clip:
    name: str
    kind: str
    scenes: tuple[str, ...]
    left: np.ndarray  # (N, H, W, 3) uint8
    right: np.ndarray  # (N, H, W, 3) uint8, the real right view
    disparity: np.ndarray  # (N, H, W) float32 pixels, as the disparity video holds them
    motion: list[np.ndarray | None]  # per frame: 2x3, frame t-1 pixel -> frame t pixel
    meta: dict = field(default_factory=dict)

    @property
    def size(self) -> tuple[int, int]:
        return self.left.shape[1], self.left.shape[2]  # (H, W)

    @property
    def spec(self) -> ClipSpec:
        return ClipSpec(**self.meta["spec"])

    @property
    def cuts(self) -> list[int]:
        """Frames with no motion from the frame before (the first, and any cut)."""
        return [t for t, m in enumerate(self.motion) if m is None]


# --- the camera --------------------------------------------------------------------------------


def window(x0: float, y0: float, scale: float, width: int, height: int) -> np.ndarray:
    """3x3: output pixel -> scene point, a window whose top-left pixel is scene (x0, y0) at zoom
    1, zoomed by `scale` about its centre."""
    ox, oy = (width - 1) / 2, (height - 1) / 2
    cx, cy = x0 + ox, y0 + oy
    return np.array([[1 / scale, 0, cx - ox / scale], [0, 1 / scale, cy - oy / scale], [0, 0, 1]])


def frame_motion(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """2x3: a pixel of the frame seen through window `before` -> the same scene point in the
    frame seen through `after`."""
    return (np.linalg.inv(after) @ before)[:2]


def motions(views: list[np.ndarray]) -> list[np.ndarray | None]:
    """The motion of each frame of one shot from the frame before (None for its first)."""
    return [None] + [frame_motion(p, q) for p, q in zip(views[:-1], views[1:], strict=True)]


def render(image: np.ndarray, view: np.ndarray, width: int, height: int) -> np.ndarray:
    """The scene image seen through `view` (3x3, output pixel -> scene point): a crop where it is
    an integer translation at zoom 1, bilinear resampling otherwise."""
    a, tx, ty = view[0, 0], view[0, 2], view[1, 2]
    if a == 1 and float(tx).is_integer() and float(ty).is_integer():
        x, y = int(tx), int(ty)
        return np.ascontiguousarray(image[y : y + height, x : x + width])
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    map_x = (view[0, 0] * xs + view[0, 2]).astype(np.float32)
    map_y = (view[1, 1] * ys + view[1, 2]).astype(np.float32)
    out = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return np.ascontiguousarray(out)


def coded_disparity(disparity: np.ndarray) -> np.ndarray:
    """Pixels -> the disparity video's 16-bit values (x 256; at least 1, as 0 means unknown)."""
    if disparity.max() * DISPARITY_CODE > 65535:
        raise UserError(f"disparity up to {disparity.max():.0f} px: too large for the clip video")
    return np.clip(np.round(disparity * DISPARITY_CODE), 1, 65535).astype(np.uint16)


def film(
    still: StereoStill, views: list[np.ndarray], scales: list[float], spec: ClipSpec
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Left views, right views and disparity (as the video codes it) through each window."""
    w, h = spec.width, spec.height
    left = np.stack([render(still.left, v, w, h) for v in views])
    right = np.stack([render(still.right, v, w, h) for v in views])
    disparity = np.stack(
        [render(still.disparity, v, w, h) * s for v, s in zip(views, scales, strict=True)]
    )
    return left, right, coded_disparity(disparity).astype(np.float32) / DISPARITY_CODE


def pan_windows(still: StereoStill, frames: int, step: int, spec: ClipSpec) -> list[np.ndarray]:
    """Windows moving `step` pixels a frame (negative: to the left), the path centred."""
    scene_h, scene_w = still.disparity.shape
    span = spec.width + abs(step) * (frames - 1)
    if span > scene_w or spec.height > scene_h:
        raise UserError(
            f"scene {still.name} ({scene_w} x {scene_h}) is too small for {frames} frames of "
            f"{spec.width} x {spec.height} panning {abs(step)} px a frame ({span} px wide)"
        )
    x_start, y0 = (scene_w - span) // 2, (scene_h - spec.height) // 2
    first = x_start if step >= 0 else x_start + span - spec.width
    return [window(first + step * t, y0, 1.0, spec.width, spec.height) for t in range(frames)]


def centred(still: StereoStill, spec: ClipSpec) -> tuple[int, int]:
    scene_h, scene_w = still.disparity.shape
    if spec.width > scene_w or spec.height > scene_h:
        raise UserError(
            f"scene {still.name} ({scene_w} x {scene_h}) is smaller than the clip "
            f"({spec.width} x {spec.height})"
        )
    return (scene_w - spec.width) // 2, (scene_h - spec.height) // 2


def with_noise(frames: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    noisy = frames.astype(np.float64) + rng.normal(0.0, sigma, frames.shape)
    return np.clip(np.round(noisy), 0, 255).astype(np.uint8)


def make_clip(kind: str, still: StereoStill, spec: ClipSpec, other: StereoStill | None = None):
    """One clip of `kind` over `still` (and `other`, the second scene of a cut)."""
    n, w, h = spec.frames, spec.width, spec.height
    rng = np.random.default_rng(spec.seed)
    meta: dict = {"spec": asdict(spec)}
    if kind in ("pan-right", "pan-left"):
        step = spec.pan_step if kind == "pan-right" else -spec.pan_step
        views, scales = pan_windows(still, n, step, spec), [1.0] * n
        meta["pan_px_per_frame"] = step
    elif kind == "zoom":
        x0, y0 = centred(still, spec)
        scales = [(1 + spec.zoom_step) ** t for t in range(n)]
        views = [window(x0, y0, s, w, h) for s in scales]
        meta["zoom"] = [scales[0], scales[-1]]
    elif kind == "static":
        x0, y0 = centred(still, spec)
        views, scales = [window(x0, y0, 1.0, w, h)] * n, [1.0] * n
        meta["noise_sigma"] = spec.noise_sigma
    elif kind == "cut":
        if other is None:
            raise ValueError("a cut needs a second scene")
        first = n // 2
        a_views = pan_windows(still, first, spec.pan_step, spec)
        b_views = pan_windows(other, n - first, spec.pan_step, spec)
        a = film(still, a_views, [1.0] * first, spec)
        b = film(other, b_views, [1.0] * (n - first), spec)
        left, right, disparity = (np.concatenate(pair) for pair in zip(a, b, strict=True))
        meta.update(cut_frame=first, pan_px_per_frame=spec.pan_step)
        name = f"{still.name}-cut-{other.name}"
        motion = motions(a_views) + motions(b_views)
        return Clip(name, kind, (still.name, other.name), left, right, disparity, motion, meta)
    else:
        raise UserError(f"unknown clip kind {kind!r}: use {', '.join(CLIP_KINDS)}")
    left, right, disparity = film(still, views, scales, spec)
    if kind == "static":
        left = with_noise(left, spec.noise_sigma, rng)
        right = with_noise(right, spec.noise_sigma, rng)
    motion = motions(views)
    return Clip(f"{still.name}-{kind}", kind, (still.name,), left, right, disparity, motion, meta)


# --- scenes and clip sets ----------------------------------------------------------------------


def default_middlebury2003() -> Path:
    """$STEREOCONV_MIDDLEBURY2003, or shared/data/middlebury2003 beside the project."""
    env = os.environ.get(MIDDLEBURY2003_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "shared" / "data" / "middlebury2003"


def load_still(name: str, middlebury_dir: Path | None = None) -> StereoStill:
    """motorcycle (scikit-image's Middlebury 2014 pair) or a Middlebury 2003 scene by name."""
    if name == "motorcycle":
        return StereoStill.of(motorcycle()[0].load(), name)
    folder = Path(middlebury_dir or default_middlebury2003())
    if not (folder / name / "imL.png").is_file():
        raise UserError(
            f"no Middlebury 2003 scene {name!r} in {folder} (scenes: {', '.join(SCENE_NAMES)}; "
            f"set {MIDDLEBURY2003_ENV} to the folder that holds teddy/, tsukuba/, venus/)"
        )
    return StereoStill.of(middlebury2003(folder / name)[0].load(), name)


@dataclass(frozen=True)
class ClipPlan:
    """A clip to make: its kind, scene and the cut's second scene."""

    kind: str
    scene: str
    other: str | None = None

    @property
    def name(self) -> str:
        return (
            f"{self.scene}-cut-{self.other}" if self.kind == "cut" else f"{self.scene}-{self.kind}"
        )


def cut_partner(scene: str) -> str:
    """The second scene of a cut: the next one of SCENE_NAMES."""
    i = SCENE_NAMES.index(scene) if scene in SCENE_NAMES else -1
    return SCENE_NAMES[(i + 1) % len(SCENE_NAMES)]


def plan_clips(spec: str, kinds: tuple[str, ...] = CLIP_KINDS) -> list[ClipPlan]:
    """`video:all` (every kind on every scene), `video:standard` (the pans on every scene; zoom,
    static and cut on teddy) or `video:NAME,NAME` (every kind on those scenes); `kinds` keeps
    some kinds."""
    unknown = [k for k in kinds if k not in CLIP_KINDS]
    if unknown:
        raise UserError(f"unknown clip kind {unknown[0]!r}: use {', '.join(CLIP_KINDS)}")
    what = spec.split(":", 1)[1] if ":" in spec else spec
    if what == "standard":
        plans = [ClipPlan(k, s) for s in STANDARD_PANS for k in ("pan-right", "pan-left")]
        others = [k for k in CLIP_KINDS if k not in ("pan-right", "pan-left")]
        plans += [ClipPlan(k, s) for s in STANDARD_OTHERS for k in others]
    else:
        names = SCENE_NAMES if what == "all" else [n.strip() for n in what.split(",") if n.strip()]
        bad = [n for n in names if n not in SCENE_NAMES]
        if bad or not names:
            raise UserError(
                f"unknown scene {bad[0] if bad else what!r} in {spec!r}: use video:all, "
                f"video:standard or video:NAME[,NAME] with {', '.join(SCENE_NAMES)}"
            )
        plans = [ClipPlan(k, s) for s in names for k in CLIP_KINDS]
    plans = [
        ClipPlan(p.kind, p.scene, cut_partner(p.scene) if p.kind == "cut" else None)
        for p in plans
        if p.kind in kinds
    ]
    if not plans:
        raise UserError(f"{spec}: no clip of the kinds {', '.join(kinds)}")
    return plans


class Stills:
    """Scenes loaded once, on first use."""

    def __init__(self, middlebury_dir: Path | None = None):
        self.middlebury_dir = middlebury_dir
        self.loaded: dict[str, StereoStill] = {}

    def __getitem__(self, name: str) -> StereoStill:
        if name not in self.loaded:
            self.loaded[name] = load_still(name, self.middlebury_dir)
        return self.loaded[name]

    def clip(self, plan: ClipPlan, spec: ClipSpec) -> Clip:
        other = self[plan.other] if plan.other else None
        return make_clip(plan.kind, self[plan.scene], spec, other)


# --- on disk -----------------------------------------------------------------------------------


def write_video(path: Path, frames: np.ndarray, fps: int) -> None:
    """Lossless FFV1 in Matroska: RGB frames (N, H, W, 3) uint8 as 8-bit RGB, grey ones (N, H, W)
    uint16 as 16-bit grey."""
    rgb = frames.ndim == 4
    with atomic_output(path) as tmp, av.open(str(tmp), "w", format="matroska") as out:
        stream = out.add_stream("ffv1", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "bgr0" if rgb else "gray16le"
        for picture in frames:
            fmt = "rgb24" if rgb else "gray16le"
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(picture), fmt)))
        out.mux(stream.encode())


def read_video(path: Path) -> np.ndarray:
    """Every frame of a video: RGB (N, H, W, 3) uint8, or a 16-bit grey one as (N, H, W) uint16."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        grey = stream.codec_context.pix_fmt == "gray16le"
        fmt = "gray16le" if grey else "rgb24"
        return np.stack([f.to_ndarray(format=fmt) for f in container.decode(stream)])


def clip_files(folder: Path) -> dict[str, Path]:
    return {k: Path(folder) / f"{k}.mkv" for k in ("left", "right", "disparity")}


def clip_json(clip: Clip) -> dict:
    return {
        "name": clip.name,
        "kind": clip.kind,
        "scenes": list(clip.scenes),
        "frames": int(clip.left.shape[0]),
        "height": clip.size[0],
        "width": clip.size[1],
        "depth_kind": "disparity-px",
        "depth_scale": DEPTH_SCALE,
        "motion": [None if m is None else np.asarray(m).tolist() for m in clip.motion],
        **clip.meta,
    }


def write_clip(clip: Clip, folder: Path) -> dict[str, Path]:
    """The clip's videos and clip.json in `folder`; returns the videos' paths by name."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = clip_files(folder)
    fps = clip.meta.get("spec", {}).get("fps", ClipSpec.fps)
    write_video(paths["left"], clip.left, fps)
    write_video(paths["right"], clip.right, fps)
    write_video(paths["disparity"], coded_disparity(clip.disparity), fps)
    with atomic_output(folder / "clip.json") as tmp:
        tmp.write_text(json.dumps(clip_json(clip), indent=1) + "\n")
    return paths
