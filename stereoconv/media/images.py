"""Still images in and out: any mode Pillow reads becomes 8-bit RGB, upright per EXIF."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from stereoconv.errors import UserError
from stereoconv.fileio import atomic_output

WRITABLE = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
}


def to_rgb8(image: Image.Image) -> np.ndarray:
    """A Pillow image of any mode as (H, W, 3) uint8 RGB. 16-bit greys keep their top 8 bits;
    alpha is dropped (the stereo views are opaque); CMYK and palettes are converted."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") or arr.max() > 255 else 255.0
        grey = np.clip(np.round(arr / peak * 255.0), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if image.mode == "F":
        arr = np.asarray(image, dtype=np.float64)
        grey = np.clip(np.round(arr * 255.0), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    return np.array(image.convert("RGB"), dtype=np.uint8)


def read_image(path: Path) -> np.ndarray:
    """An image file as (H, W, 3) uint8 RGB, EXIF orientation applied."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"input not found: {path}")
    if path.is_dir():
        raise UserError(f"input {path} is a folder; give an image file")
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            return to_rgb8(im)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise UserError(f"cannot read image {path}: {exc}") from None


def check_writable_suffix(path: Path) -> None:
    if Path(path).suffix.lower() not in WRITABLE:
        raise UserError(
            f"unsupported output format {Path(path).suffix or '(none)'!r} for {path}: "
            f"use one of {', '.join(sorted(WRITABLE))}"
        )


def write_image(path: Path, rgb: np.ndarray, **save_options) -> None:
    """Write (H, W, 3) uint8 RGB atomically; the format follows the suffix."""
    check_writable_suffix(path)
    fmt = WRITABLE[Path(path).suffix.lower()]
    if fmt == "JPEG":
        save_options.setdefault("quality", 95)
    with atomic_output(Path(path)) as tmp:
        Image.fromarray(rgb).save(tmp, format=fmt, **save_options)
