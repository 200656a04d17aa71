"""Bytes people upload -> an RGB array of the model's input size.

This is the only preprocessing in the project: training decodes its data through
the same function, and the model itself holds its normalisation layers, so what
the model saw in training is exactly what it sees in serving.
"""

from __future__ import annotations

import io
import math
import warnings

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from .decode_memory import WEBP_BYTES_PER_PIXEL, decode_bytes
from .errors import CORRUPT_IMAGE, EMPTY_FILE, TOO_MANY_PIXELS, UNSUPPORTED_FORMAT, InvalidImage
from .resizing import to_model_rgb
from .settings import Limits
from .structure import check_opened_structure, check_structure

# The JPEG opener also returns camera JPEGs with a multi-picture extension, as format "MPO".
DECODERS = ("JPEG", "PNG", "WEBP", "GIF", "BMP")
SUPPORTED_FORMATS_TEXT = "JPEG, PNG, WebP, GIF or BMP"
# File name endings of those formats: what the CLI picks up when it walks a folder, and training too.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".gif", ".bmp", ".dib"})

# Magic numbers of the formats above: a file that starts like one of them but that
# Pillow cannot open is a damaged image, not an unsupported one.
_SIGNATURES = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
)
# Formats people do upload that this service does not decode, named in the error.
_KNOWN_UNSUPPORTED = (
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"%PDF", "PDF"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
)
_ISO_MEDIA_BRANDS = {b"heic": "HEIC", b"heix": "HEIC", b"mif1": "HEIF", b"msf1": "HEIF", b"avif": "AVIF"}

# Truncated files must fail, not be padded with grey.
ImageFile.LOAD_TRUNCATED_IMAGES = False


def sniff_format(data: bytes) -> str | None:
    """The supported image format ``data`` claims to be by its first bytes, if any."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    for magic, name in _SIGNATURES:
        if data.startswith(magic):
            return name
    return None


def _unsupported_name(data: bytes) -> str | None:
    for magic, name in _KNOWN_UNSUPPORTED:
        if data.startswith(magic):
            return name
    if data[4:8] == b"ftyp":
        return _ISO_MEDIA_BRANDS.get(data[8:12], "ISO media (video or HEIF)")
    return None


def _open(data: bytes, limits: Limits) -> Image.Image:
    try:
        with warnings.catch_warnings():
            # Our own pixel limit below is the one that counts; Pillow's bomb warning is noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=DECODERS)
    except Image.DecompressionBombError:
        raise InvalidImage(TOO_MANY_PIXELS, f"The image has more pixels than the limit of {limits.max_pixels:,}.") from None
    except (UnidentifiedImageError, SyntaxError, OSError, ValueError) as exc:
        _refuse_inflated_metadata(exc)
        claimed = sniff_format(data)
        if claimed:
            raise InvalidImage(CORRUPT_IMAGE, f"The file looks like {claimed} but its header is damaged.") from None
        other = _unsupported_name(data)
        kind = f"a {other} file" if other else "not an image this service can read"
        raise InvalidImage(UNSUPPORTED_FORMAT, f"The file is {kind}; send a {SUPPORTED_FORMATS_TEXT} image.") from None
    width, height = image.size
    if width <= 0 or height <= 0:
        raise InvalidImage(CORRUPT_IMAGE, f"The image header gives an impossible size {width}x{height}.")
    if width * height > limits.max_pixels:
        raise InvalidImage(
            TOO_MANY_PIXELS,
            f"The image is {width}x{height} ({width * height:,} pixels); the limit is {limits.max_pixels:,} pixels.",
        )
    return image


def _refuse_inflated_metadata(exc: Exception) -> None:
    """Pillow's refusal of a PNG text or colour profile chunk that inflates past 1 MB, wherever it stands: the
    pixels may be sound, so say it is the metadata rather than a damaged header."""
    if isinstance(exc, ValueError) and str(exc).lower().startswith("decompressed data too large"):
        raise InvalidImage(
            CORRUPT_IMAGE,
            "The PNG's metadata (a compressed text or colour profile chunk) inflates to more than 1 MB, which no "
            "photo's does; save the image again without it.",
        ) from None


def _detail(exc: Exception) -> str:
    """Pillow's own words when they help a person ("image file is truncated"), never internals."""
    text = str(exc)
    return f" ({text})" if text and "0x" not in text and "<" not in text and len(text) < 120 else ""


def decode_image(data: bytes, size: tuple[int, int], limits: Limits | None = None) -> np.ndarray:
    """Decode ``data`` and resize it to ``size`` (width, height): uint8 array of shape (height, width, 3).

    Raises :class:`InvalidImage` with a contract error code for anything that is not
    a readable image within ``limits``; never another exception for bad input. Whatever is
    costly to decode (too many pixels, too much memory for its format, a structure costly
    to read: see ``inference.structure``) is refused from the headers, before decoding.
    """
    limits = limits or Limits()
    if not data:
        raise InvalidImage(EMPTY_FILE, "The file is empty.")
    limits.check_size(len(data))
    scans = check_structure(data, sniff_format(data), limits.max_scans)
    image = _open(data, limits)
    full_size = image.size
    check_opened_structure(image, len(data))
    try:
        if image.format in ("JPEG", "MPO"):
            # DCT scaling: decode a large photo at 1/2, 1/4 or 1/8 size, never below the target.
            image.draft("RGB", size)
        _check_decode_memory(image, full_size, scans, limits)
        image.load()
        _fit_transparency_to_palette(image)
        # Inside the try too: Pillow checks some of what a header claims only when it converts the pixels.
        return np.asarray(to_model_rgb(image, size), dtype=np.uint8)
    except InvalidImage:
        raise
    except Image.DecompressionBombError:
        raise InvalidImage(TOO_MANY_PIXELS, f"The image has more pixels than the limit of {limits.max_pixels:,}.") from None
    except Exception as exc:  # Pillow's decoders raise many types for damaged data.
        _refuse_inflated_metadata(exc)
        raise InvalidImage(CORRUPT_IMAGE, f"The {image.format} image data is truncated or damaged{_detail(exc)}.") from None


def _fit_transparency_to_palette(image: Image.Image) -> None:
    """A palette image's transparency (PNG tRNS) that names more entries than a palette has: libpng ignores the
    excess, as here; Pillow keeps it and refuses to convert the image ("palette index out of range")."""
    transparency = image.info.get("transparency")
    if image.mode != "P" or transparency is None:
        return
    if isinstance(transparency, bytes) and len(transparency) > 256:
        image.info["transparency"] = transparency[:256]
    elif isinstance(transparency, int) and not 0 <= transparency < 256:
        del image.info["transparency"]


def _check_decode_memory(image: Image.Image, full_size: tuple[int, int], scans: int, limits: Limits) -> None:
    needed = decode_bytes(image, full_size, scans)
    if needed <= limits.max_decode_bytes:
        return
    width, height = full_size
    mb, limit_mb = math.ceil(needed / 2**20), limits.max_decode_bytes // 2**20
    hint = ""
    if image.format == "WEBP":
        hint = f" WebP images are decoded whole: send at most {limits.max_decode_bytes // WEBP_BYTES_PER_PIXEL:,} pixels, or a JPEG or PNG."
    raise InvalidImage(
        TOO_MANY_PIXELS,
        f"The {image.format} image is {width}x{height} ({width * height:,} pixels); decoding it would need about"
        f" {mb:,} MB, more than the limit of {limit_mb:,} MB.{hint or ' Send a smaller image.'}",
    )
