"""A decoded image -> RGB at the model's input size, never holding a second full-size copy of a large image.

Ordinary photos take the plain path: EXIF orientation, conversion to RGB (transparency on
white), one bilinear resize. That path copies the image at every step, which costs nothing
for a photo but up to a gigabyte for a 40 MP RGBA or 16-bit PNG. So grey images are resized
as grey (16-bit ones scaled to 8 bits band by band), which gives the same pixels; and large
images that need a conversion or a rotation are first converted band by band and box-reduced
to a few times the target size (as Pillow's ``reducing_gap`` does), then finished the same way,
which gives pixels within a few levels of the plain path.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import ExifTags, Image

# Above this many pixels, full-size copies are no longer cheap (a 4 MP RGBA copy is 16 MB).
LARGE_IMAGE_PIXELS = 4_000_000
# Reduce to no less than this many times the target size, so the final bilinear resize still averages
# several pixels. Measured on 12 MP RGBA and palette versions of real photos: pixels within a few levels
# of the plain path, fire probabilities within 0.006 (0.012 with Pillow's usual gap of 3).
REDUCING_GAP = 6
# Rows converted at a time on the large path: bands of about this many bytes.
BAND_BYTES = 8 * 1024 * 1024

_WHITE = (255, 255, 255, 255)
# EXIF orientation -> the transposition that displays the image upright (as ImageOps.exif_transpose).
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SWAPS_AXES = {5, 6, 7, 8}
# EXIF larger than this is not read for the orientation: Pillow decodes every value of the orientation tag, whatever
# its type and count, in Python (a 20 MB PNG eXIf or WebP EXIF chunk with 2.5 M rational values took 11 s and
# 800 MB). A JPEG's EXIF fits one 64 kB segment; cameras write a few kB. Such an image is classified as stored.
MAX_EXIF_BYTES = 256 * 1024


def to_model_rgb(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """``image`` upright, in RGB, resized to ``size`` (width, height) with bilinear filtering."""
    orientation = _orientation(image)
    if image.mode.startswith("I") or (image.mode in ("1", "L") and not has_alpha(image)):
        # Grey is resized as grey, then made RGB: the same pixels as resizing three equal channels,
        # without the full-size RGB copy.
        return _resized(_upright(to_grey(image), orientation), size).convert("RGB")
    if image.width * image.height > LARGE_IMAGE_PIXELS and (image.mode != "RGB" or orientation in _UPRIGHT):
        image = _reduced_rgb(image, size[::-1] if orientation in _SWAPS_AXES else size)
    return _resized(to_rgb(_upright(image, orientation)), size)


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode but 16/32-bit grey to RGB, compositing transparency onto white instead of dropping it to black."""
    if image.mode == "RGB":
        return image
    if not has_alpha(image):
        return image.convert("RGB")
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, _WHITE)
    background.alpha_composite(rgba)
    return background.convert("RGB")


def to_grey(image: Image.Image) -> Image.Image:
    """A grey image ("1", "L", 16/32-bit "I") in 8-bit "L", converting 16/32-bit rows a band at a time.

    Pillow's own conversion clips every 16-bit value above 255 to white: 16-bit grey is scaled down
    instead, in integers (floor division, as the float division and truncation this replaces).
    """
    if not image.mode.startswith("I"):
        return image if image.mode == "L" else image.convert("L")
    _, high = image.getextrema()
    divisor = 257 if high > 255 else 1
    grey = Image.new("L", image.size)
    rows = max(1, BAND_BYTES // (image.width * 4))
    for top in range(0, image.height, rows):
        band = np.asarray(image.crop((0, top, image.width, min(image.height, top + rows))))
        grey.paste(Image.fromarray(np.clip(band // divisor, 0, 255).astype(np.uint8), "L"), (0, top))
    return grey


def has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info


def _upright(image: Image.Image, orientation: int) -> Image.Image:
    return image.transpose(_UPRIGHT[orientation]) if orientation in _UPRIGHT else image


def _resized(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    return image if image.size == size else image.resize(size, Image.Resampling.BILINEAR)


def _orientation(image: Image.Image) -> int:
    exif = image.info.get("exif")
    as_hex = image.info.get("Raw profile type exif")  # PNG's older form: hex digits in a text chunk
    if (exif is not None and len(exif) > MAX_EXIF_BYTES) or (as_hex is not None and len(as_hex) > 2 * MAX_EXIF_BYTES):
        return 1
    try:
        orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception:  # A broken EXIF block should not cost the photo its verdict.
        return 1
    return orientation if isinstance(orientation, int) else 1


def _reduced_rgb(image: Image.Image, target: tuple[int, int]) -> Image.Image:
    """``image`` in RGB, box-reduced by whole factors to no less than REDUCING_GAP x ``target``.

    Converts bands of rows, so besides ``image`` only a band and the reduced result are in memory.
    Transparent images are reduced in RGBA (Pillow averages them premultiplied, so colour under
    transparent pixels does not bleed) and composited on white once small.
    """
    width, height = image.size
    factor_x = max(1, width // (target[0] * REDUCING_GAP))
    factor_y = max(1, height // (target[1] * REDUCING_GAP))
    transparent = has_alpha(image)
    # Bands are whole multiples of the vertical factor, so reducing band by band equals reducing at once.
    rows = max(1, BAND_BYTES // (width * 4) // factor_y) * factor_y
    reduced = Image.new("RGBA" if transparent else "RGB", (math.ceil(width / factor_x), math.ceil(height / factor_y)))
    for top in range(0, height, rows):
        band = image.crop((0, top, width, min(height, top + rows)))
        band = band.convert("RGBA") if transparent else to_rgb(band)
        reduced.paste(band.reduce((factor_x, factor_y)), (0, top // factor_y))
    return to_rgb(reduced)
