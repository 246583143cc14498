"""Stereo datasets with a real right view: scenes of left view, right view and the left view's
ground-truth disparity in pixels (NaN where unknown).

Layouts, recognised from the folder given:
- Middlebury 2014: one folder per scene with im0.png, im1.png, disp0.pfm and calib.txt (or the
  folder of one scene itself).
- KITTI 2015: image_2/, image_3/ and disp_occ_0/ (the `training` folder or its parent); disparity
  is a 16-bit PNG of pixels x 256, 0 = unknown; only the `_10` frames have it.
- Any folder with left/ and right/ subfolders of images matched by name, and optionally
  disparity/ (.pfm or .npy in pixels, inf or nan = unknown; 16-bit .png in pixels x 256 and
  8-bit .png in pixels, 0 = unknown).
- A stereo video: a folder with left.* and right.* video files (mp4, mkv, mov) and optionally
  disparity.* (a grey video: 16-bit in pixels x 256, 8-bit in pixels, 0 = unknown); each frame
  is a scene, in order, and the report adds the temporal flicker of every method.
- `skimage:motorcycle`: Middlebury 2014 Motorcycle as bundled with scikit-image (741 x 500).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from stereoconv.config import StereoConfig
from stereoconv.disparity.maps import read_depth_values
from stereoconv.errors import UserError
from stereoconv.media.images import read_image

# the benchmarks' own pictures are read under the product's default limit
MAX_MEGAPIXELS = StereoConfig.max_megapixels

MOTORCYCLE = "skimage:motorcycle"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm")
DISPARITY_SUFFIXES = (".pfm", ".npy", ".png")
LAYOUT_HELP = (
    "expected Middlebury 2014 scene folders (im0.png, im1.png, disp0.pfm, calib.txt), Middlebury "
    "2001/2003 ones (imL.png, imR.png, groundtruth.png, info.txt), KITTI 2015 "
    "(image_2/, image_3/, disp_occ_0/), a folder with left/ and right/ subfolders, left.* and "
    f"right.* videos, or {MOTORCYCLE}"
)


@dataclass
class Scene:
    name: str
    left: np.ndarray  # (H, W, 3) uint8
    right: np.ndarray  # (H, W, 3) uint8, the real right view
    disparity: np.ndarray | None  # (H, W) float32 pixels of the left view, NaN = unknown
    meta: dict = field(default_factory=dict)


@dataclass(frozen=True)
class SceneSource:
    """A scene not read yet: datasets are listed first and read one scene at a time."""

    name: str
    load: Callable[[], Scene]


@dataclass(frozen=True)
class Dataset:
    name: str
    layout: str  # middlebury | kitti | folder | video | skimage
    scenes: tuple[SceneSource, ...]

    @property
    def sequence(self) -> bool:
        """Scenes are consecutive frames of a video: temporal measures apply."""
        return self.layout == "video"


# --- readers -----------------------------------------------------------------------------------


def read_disparity(path: Path, scale: float | None = None) -> np.ndarray:
    """A disparity file as float32 pixels, NaN where unknown. PNG: `scale` if given, otherwise
    1/256 for 16-bit files (KITTI's convention) and 1 for 8-bit ones."""
    values, known = read_depth_values(path)
    if path.suffix.lower() == ".png" and scale is None:
        with Image.open(path) as im:
            scale = 1 / 256 if im.mode.startswith("I") else 1.0
    values = values * (scale or 1.0)
    return np.where(known, values, np.nan).astype(np.float32)


def read_calib(path: Path) -> dict[str, str]:
    """Middlebury's calib.txt: `key=value` lines (cam0, cam1, doffs, baseline, width, height,
    ndisp, vmin, vmax ...)."""
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs}


def checked(scene: Scene) -> Scene:
    """The views and the disparity must have one size: a mismatched file is a user error."""
    shapes = {scene.left.shape[:2], scene.right.shape[:2]}
    if scene.disparity is not None:
        shapes.add(scene.disparity.shape)
    if len(shapes) > 1:
        raise UserError(f"scene {scene.name}: left, right and disparity differ in size {shapes}")
    return scene


def _load_files(name: str, left: Path, right: Path, disparity: Path | None, **meta) -> Scene:
    d = read_disparity(disparity) if disparity is not None else None
    return checked(
        Scene(name, read_image(left, MAX_MEGAPIXELS), read_image(right, MAX_MEGAPIXELS), d, meta)
    )


def _source(name: str, *args, **meta) -> SceneSource:
    return SceneSource(name, lambda: _load_files(name, *args, **meta))


# --- layouts -----------------------------------------------------------------------------------


def middlebury_scene(folder: Path) -> SceneSource:
    calib_path = folder / "calib.txt"
    calib = read_calib(calib_path) if calib_path.is_file() else {}
    args = (folder / "im0.png", folder / "im1.png", folder / "disp0.pfm")
    for path in args:
        if not path.is_file():
            raise UserError(f"Middlebury scene {folder} lacks {path.name}")
    return _source(folder.name, *args, calib=calib)


def middlebury(root: Path) -> list[SceneSource]:
    if (root / "im0.png").is_file():
        return [middlebury_scene(root)]
    folders = sorted(p for p in root.iterdir() if (p / "im0.png").is_file())
    return [middlebury_scene(p) for p in folders]


def middlebury2003_scene(folder: Path) -> SceneSource:
    """A Middlebury 2001/2003 scene: imL.png, imR.png and groundtruth.png, the left view's
    disparity as 8-bit values divided by the scale that opens info.txt (0 = unknown)."""
    paths = [folder / n for n in ("imL.png", "imR.png", "groundtruth.png", "info.txt")]
    for path in paths:
        if not path.is_file():
            raise UserError(f"Middlebury 2003 scene {folder} lacks {path.name}")
    try:
        scale = float(paths[3].read_text().split()[0])
    except (IndexError, ValueError):
        raise UserError(f"{paths[3]}: expected the disparity scale as its first number") from None

    def load() -> Scene:
        raw = np.asarray(Image.open(paths[2]).convert("L"), dtype=np.float32)
        disparity = np.where(raw > 0, raw / scale, np.nan).astype(np.float32)
        left, right = read_image(paths[0], MAX_MEGAPIXELS), read_image(paths[1], MAX_MEGAPIXELS)
        return checked(Scene(folder.name, left, right, disparity, {"disparity_scale": scale}))

    return SceneSource(folder.name, load)


def middlebury2003(root: Path) -> list[SceneSource]:
    if (root / "imL.png").is_file():
        return [middlebury2003_scene(root)]
    folders = sorted(p for p in root.iterdir() if (p / "imL.png").is_file())
    return [middlebury2003_scene(p) for p in folders]


def kitti(root: Path) -> list[SceneSource]:
    if not (root / "image_2").is_dir():
        root = root / "training"
    disp = root / "disp_occ_0"
    if not disp.is_dir():
        raise UserError(f"KITTI folder {root} has no disp_occ_0/ (ground truth disparity)")
    scenes = []
    for path in sorted(disp.glob("*.png")):
        left, right = root / "image_2" / path.name, root / "image_3" / path.name
        if left.is_file() and right.is_file():
            scenes.append(_source(path.stem, left, right, path))
    return scenes


def _by_stem(folder: Path, suffixes: Sequence[str]) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in suffixes}


def triplets(root: Path) -> list[SceneSource]:
    lefts = _by_stem(root / "left", IMAGE_SUFFIXES)
    rights = _by_stem(root / "right", IMAGE_SUFFIXES)
    disparities = _by_stem(root / "disparity", DISPARITY_SUFFIXES)
    names = [n for n in lefts if n in rights]
    return [_source(n, lefts[n], rights[n], disparities.get(n)) for n in names]


def motorcycle() -> list[SceneSource]:
    def load() -> Scene:
        from skimage import data

        left, right, disparity = data.stereo_motorcycle()
        disparity = np.where(np.isfinite(disparity), disparity, np.nan).astype(np.float32)
        meta = {"source": "scikit-image data.stereo_motorcycle (Middlebury 2014, quarter size)"}
        left, right = np.ascontiguousarray(left), np.ascontiguousarray(right)
        return Scene("Motorcycle", left, right, disparity, meta)

    return [SceneSource("Motorcycle", load)]


VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".m4v", ".avi", ".webm")


def _video(root: Path, stem: str) -> Path | None:
    return next(
        (p for p in sorted(root.glob(f"{stem}.*")) if p.suffix.lower() in VIDEO_SUFFIXES), None
    )


def stereo_video(root: Path) -> list[SceneSource]:
    """Frames of left.*, right.* and disparity.* videos as scenes, decoded once, in order."""
    from stereoconv.media.video import decode_range, frame_timestamps, probe

    def frames(path: Path, channels: bool = True) -> list[np.ndarray]:
        info, pts = probe(path), frame_timestamps(path)
        return [f if channels else f[..., 0] for _, f in decode_range(path, pts[0], pts[-1], info)]

    left, right = frames(_video(root, "left")), frames(_video(root, "right"))
    depth_path = _video(root, "disparity")
    disparities: list = [None] * len(left)
    if depth_path is not None:
        raw = frames(depth_path, channels=False)
        scale = 1 / 256 if raw and raw[0].dtype == np.uint16 else 1.0
        disparities = [np.where(d > 0, d * scale, np.nan).astype(np.float32) for d in raw]
    count = min(len(left), len(right), len(disparities))
    if count < len(left) or count < len(right):
        raise UserError(f"{root}: the left, right and disparity videos have different lengths")
    to8 = lambda f: (f >> 8).astype(np.uint8) if f.dtype == np.uint16 else f  # noqa: E731
    return [
        SceneSource(
            f"frame-{i:06d}",
            lambda i=i: Scene(
                f"frame-{i:06d}", to8(left[i]), to8(right[i]), disparities[i], {"frame": i}
            ),
        )
        for i in range(count)
    ]


def detect_layout(root: Path) -> str:
    if (root / "im0.png").is_file() or any((p / "im0.png").is_file() for p in root.iterdir()):
        return "middlebury"
    if (root / "imL.png").is_file() or any((p / "imL.png").is_file() for p in root.iterdir()):
        return "middlebury2003"
    if (root / "image_2").is_dir() or (root / "training" / "image_2").is_dir():
        return "kitti"
    if (root / "left").is_dir() and (root / "right").is_dir():
        return "folder"
    if _video(root, "left") and _video(root, "right"):
        return "video"
    raise UserError(f"{root}: not a stereo dataset I know: {LAYOUT_HELP}")


def open_dataset(spec: str, only: Sequence[str] = (), limit: int | None = None) -> Dataset:
    """The dataset at `spec` (a folder or `skimage:motorcycle`); `only` keeps the named scenes,
    `limit` the first n."""
    if spec == MOTORCYCLE:
        name, layout, scenes = "Motorcycle", "skimage", motorcycle()
    else:
        root = Path(spec)
        if not root.exists():
            raise UserError(f"dataset not found: {spec} ({LAYOUT_HELP})")
        if not root.is_dir():
            raise UserError(f"dataset {spec} is a file; give a folder ({LAYOUT_HELP})")
        layout = detect_layout(root)
        readers = {
            "middlebury": middlebury,
            "middlebury2003": middlebury2003,
            "kitti": kitti,
            "folder": triplets,
            "video": stereo_video,
        }
        scenes = readers[layout](root)
        name = root.resolve().name
    if only:
        unknown = sorted(set(only) - {s.name for s in scenes})
        if unknown:
            raise UserError(f"no scene {', '.join(unknown)} in {spec}")
        scenes = [s for s in scenes if s.name in only]
    scenes = scenes[:limit] if limit else scenes
    if not scenes:
        raise UserError(f"{spec}: no complete scene found ({LAYOUT_HELP})")
    return Dataset(name, layout, tuple(scenes))
