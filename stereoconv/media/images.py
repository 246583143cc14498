"""Still images in and out: any mode Pillow reads becomes 8-bit RGB, upright per EXIF."""

from __future__ import annotations

import contextlib
import functools
import io
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
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


def check_pixels(path: Path, width: int, height: int, max_megapixels: float) -> None:
    """Refuse pictures larger than the limit before decoding them (a 30000x30000 PNG would take
    gigabytes of memory at every stage); the limit is the --max-megapixels setting."""
    megapixels = width * height / 1e6
    if megapixels > max_megapixels:
        raise UserError(
            f"{path} is {width}x{height} ({megapixels:.0f} megapixels), over the limit of "
            f"{max_megapixels:g}: raise --max-megapixels to convert it anyway"
        )


@contextlib.contextmanager
def open_checked(path: Path, max_megapixels: float) -> Iterator[Image.Image]:
    """Open a picture, reading only its header, and refuse it before anything is decoded or
    allocated if the header claims more pixels than the limit. Pillow's own decompression-bomb
    check is held off while opening: it would refuse first, without the size or the option."""
    with open_header(path) as im:
        check_pixels(path, im.width, im.height, max_megapixels)
        yield im


def open_header(path: Path) -> Image.Image:
    """Image.open (it reads the header only) without Pillow's decompression-bomb check."""
    limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        return Image.open(path)
    finally:
        Image.MAX_IMAGE_PIXELS = limit


def read_image(path: Path, max_megapixels: float) -> np.ndarray:
    """An image file as (H, W, 3) uint8 RGB, EXIF orientation applied; larger than
    `max_megapixels` (the --max-megapixels setting) refused."""
    enable_heif()
    path = Path(path)
    if not path.exists():
        raise UserError(f"input not found: {path}")
    if path.is_dir():
        raise UserError(f"input {path} is a folder; give an image file")
    try:
        with open_checked(path, max_megapixels) as im:
            im = ImageOps.exif_transpose(im)
            return to_rgb8(im)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise UserError(f"cannot read image {path}: {exc}") from None


def check_writable_suffix(path: Path) -> None:
    if Path(path).suffix.lower() not in WRITABLE:
        folder = "" if Path(path).suffix else f", or {path}/ to write into a new folder"
        raise UserError(
            f"unsupported output format {Path(path).suffix or '(none)'!r} for {path}: "
            f"use one of {', '.join(sorted(WRITABLE))}{folder}"
        )


def write_image(path: Path, rgb: np.ndarray, **save_options) -> None:
    """Write (H, W, 3) uint8 RGB atomically; the format follows the suffix."""
    check_writable_suffix(path)
    fmt = WRITABLE[Path(path).suffix.lower()]
    if fmt == "JPEG":
        save_options.setdefault("quality", 95)
    with atomic_output(Path(path)) as tmp:
        Image.fromarray(rgb).save(tmp, format=fmt, **save_options)


# --- photo libraries: more formats in and out, metadata kept --------------------------------------

# Formats `stereoconv images` converts: (suffix of its files, Pillow format name).
PHOTO_FORMATS = {
    "jpeg": (".jpg", "JPEG"),
    "png": (".png", "PNG"),
    "webp": (".webp", "WEBP"),
    "tiff": (".tif", "TIFF"),
    "heic": (".heic", "HEIF"),
    "mpo": (".mpo", "MPO"),
}
SUFFIX_FORMATS = {
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".png": "png",
    ".webp": "webp",
    ".tif": "tiff",
    ".tiff": "tiff",
    ".heic": "heic",
    ".heif": "heic",
}
# Encoder settings; part of a library's settings hash, so a change redoes nothing silently.
QUALITY = {"jpeg": 95, "mpo": 95, "webp": 95, "heic": 90}
GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
# First-IFD EXIF tags that describe the photo (camera, author, dates), not how one file stores its
# pixels; the Exif and GPS sub-IFDs are kept whole. A TIFF's structure tags, thumbnails and XMP
# (which may hold a stale orientation) are left behind.
PHOTO_TAGS = {270, 271, 272, 274, 282, 283, 296, 305, 306, 315, 316, 531, 33432, 18246, 18249}
PHOTO_TAGS |= set(range(0x9C9B, 0x9CA0))  # Windows XPTitle ... XPSubject
EXIF_IFD, GPS_IFD, INTEROP_IFD = 0x8769, 0x8825, 0xA005
ORIENTATION, EXIF_WIDTH, EXIF_HEIGHT, MAKER_NOTE = 0x0112, 0xA002, 0xA003, 0x927C
JPEG_EXIF_MAX = 65533 - 8  # one APP1 segment, less its header


# What Pillow and its plugins raise for a damaged or foreign file (a bomb: too many pixels).
READ_ERRORS = (
    UnidentifiedImageError,
    OSError,
    SyntaxError,
    ValueError,
    struct.error,
    Image.DecompressionBombError,
)


def _why(exc: Exception) -> str:
    if isinstance(exc, UnidentifiedImageError):  # its text repeats the path
        return "not an image in a known format, or damaged"
    return getattr(exc, "strerror", None) or str(exc)


@functools.cache
def enable_heif() -> None:
    """Let Pillow open HEIC/HEIF (pillow-heif); it applies the file's rotation while decoding."""
    from pillow_heif import register_heif_opener

    register_heif_opener()


@dataclass(frozen=True)
class Metadata:
    """What a converted photo keeps of its input besides the pixels."""

    ifd0: dict = field(default_factory=dict)  # PHOTO_TAGS present in the input
    exif_ifd: dict = field(default_factory=dict)
    gps_ifd: dict = field(default_factory=dict)
    icc: bytes | None = None
    grey: bool = False  # the input was greyscale


@dataclass(frozen=True)
class Photo:
    rgb: np.ndarray  # (H, W, 3) uint8, upright
    metadata: Metadata


def _metadata(im: Image.Image) -> Metadata:
    """Read while the file is open: a TIFF's sub-IFDs are read from the file on demand."""
    exif = im.getexif()
    exif_ifd = dict(exif.get_ifd(EXIF_IFD))
    exif_ifd.pop(INTEROP_IFD, None)  # an offset into the old file
    return Metadata(
        ifd0={tag: value for tag, value in exif.items() if tag in PHOTO_TAGS},
        exif_ifd=exif_ifd,
        gps_ifd=dict(exif.get_ifd(GPS_IFD)),
        icc=im.info.get("icc_profile") or None,
        grey=im.mode in GREY_MODES,
    )


def read_photo(path: Path, max_megapixels: float) -> Photo:
    """A photo (JPEG, PNG, WebP, TIFF, HEIC, ...) as upright RGB with its metadata."""
    enable_heif()
    path = Path(path)
    try:
        with open_checked(path, max_megapixels) as im:
            metadata = _metadata(im)
            return Photo(to_rgb8(ImageOps.exif_transpose(im)), metadata)
    except FileNotFoundError:
        raise UserError(f"input not found: {path}") from None
    except READ_ERRORS as exc:
        raise UserError(f"cannot read image {path}: {_why(exc)}") from None


def upright_size(path: Path, max_megapixels: float) -> tuple[int, int]:
    """(height, width) of a photo as displayed, from its header only. A hint for grouping photos
    of one size (a reader that rotates on open, as Pillow's TIFF reader does, can make it wrong;
    nothing depends on it being right)."""
    enable_heif()
    try:
        with open_header(path) as im:
            width, height = im.size
            check_pixels(path, width, height, max_megapixels)  # reading EXIF may decode it
            rotated = im.getexif().get(ORIENTATION) in (5, 6, 7, 8)
    except READ_ERRORS as exc:
        raise UserError(f"cannot read image {path}: {_why(exc)}") from None
    return (width, height) if rotated else (height, width)


def exif_bytes(metadata: Metadata, width: int, height: int) -> bytes:
    """The output's EXIF: the input's photo tags, Orientation 1 (the pixels are upright now),
    the Exif IFD's image size set to the output's. Empty when the input had none."""
    if not (metadata.ifd0 or metadata.exif_ifd or metadata.gps_ifd):
        return b""
    exif = Image.Exif()
    exif.update(metadata.ifd0)
    exif[ORIENTATION] = 1
    if metadata.exif_ifd:
        sub = exif.get_ifd(EXIF_IFD)
        sub.update(metadata.exif_ifd)
        if EXIF_WIDTH in sub or EXIF_HEIGHT in sub:
            sub[EXIF_WIDTH], sub[EXIF_HEIGHT] = width, height
    if metadata.gps_ifd:
        exif.get_ifd(GPS_IFD).update(metadata.gps_ifd)
    return exif.tobytes()


def _icc_for(icc: bytes | None, mode: str) -> bytes | None:
    """The input's colour profile if it fits the output (its colour space at bytes 16-20): an RGB
    profile on RGB, a grey one on grey; others (CMYK, or grey turned colour) are dropped."""
    wanted = {"RGB": b"RGB ", "L": b"GRAY"}[mode]
    return icc if icc is not None and icc[16:20] == wanted else None


def _picture(rgb: np.ndarray, grey: bool) -> Image.Image:
    """A grey input stays grey while its result is (warp keeps grey grey; anaglyph does not)."""
    if grey and (rgb == rgb[..., :1]).all():
        return Image.fromarray(np.ascontiguousarray(rgb[..., 0]), mode="L")
    return Image.fromarray(rgb, mode="RGB")


def _save_options(fmt: str, picture: Image.Image, metadata: Metadata) -> dict:
    options: dict = {"format": PHOTO_FORMATS[fmt][1]}
    if fmt in QUALITY:
        options["quality"] = QUALITY[fmt]
    if fmt == "tiff":
        options["compression"] = "tiff_lzw"
    exif = exif_bytes(metadata, *picture.size)
    if fmt in ("jpeg", "mpo") and len(exif) > JPEG_EXIF_MAX:  # JPEG's limit: lose the maker note
        exif_ifd = {k: v for k, v in metadata.exif_ifd.items() if k != MAKER_NOTE}
        exif = exif_bytes(replace(metadata, exif_ifd=exif_ifd), *picture.size)
    if exif:
        options["exif"] = exif
    icc = _icc_for(metadata.icc, picture.mode)
    if icc:
        options["icc_profile"] = icc
    return options


def encode_photo(rgb: np.ndarray, fmt: str, metadata: Metadata) -> bytes:
    """(H, W, 3) uint8 -> the bytes of one picture file in `fmt` (not mpo), metadata kept."""
    if fmt == "heic":
        enable_heif()
    picture = _picture(rgb, metadata.grey)
    buffer = io.BytesIO()
    try:
        picture.save(buffer, **_save_options(fmt, picture, metadata))
    except (OSError, ValueError, TypeError, struct.error) as exc:  # e.g. an odd EXIF value
        raise UserError(f"cannot encode {fmt}: {exc}") from None
    return buffer.getvalue()


def encode_stereo_mpo(left: np.ndarray, right: np.ndarray, metadata: Metadata) -> bytes:
    """A stereo MPO of two (H, W, 3) uint8 views; each JPEG in it carries the metadata."""
    from stereoconv.media.mpo import stereo_mpo

    grey = metadata.grey and all((v == v[..., :1]).all() for v in (left, right))
    meta = replace(metadata, grey=grey)
    return stereo_mpo(encode_photo(left, "jpeg", meta), encode_photo(right, "jpeg", meta))


def write_bytes(path: Path, data: bytes) -> None:
    """Write a file atomically (under a temporary name, then renamed into place)."""
    with atomic_output(Path(path)) as tmp:
        try:
            tmp.write_bytes(data)
        except OSError as exc:
            raise UserError(f"cannot write {path}: {exc.strerror}") from None
