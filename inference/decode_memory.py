"""How much memory decoding an opened (not yet loaded) image will take, judged from its header.

A pixel count alone does not bound memory: Pillow holds a 16-bit grey pixel in 2 bytes
and an RGB one in 4, libwebp decodes into several full-size canvases, and libjpeg keeps
every DCT coefficient of a progressive JPEG until its last scan, whatever the output
scale. These estimates, checked against ``Limits.max_decode_bytes``, refuse what would
not fit before any of it is allocated.
"""

from __future__ import annotations

import math

from PIL import Image

# Bytes per pixel of Pillow's own raster: 8-bit single-band modes take 1 byte, 16-bit grey 2,
# and every other mode (RGB included) 4.
_ONE_BYTE_MODES = {"1", "L", "P"}
_TWO_BYTE_MODES = {"I;16", "I;16L", "I;16B", "I;16N"}
# Measured with Pillow 13 / libwebp 1.6 (lossy and lossless alike): libwebp's WebPAnimDecoder keeps two
# full RGBA canvases, Pillow copies the frame into a bytes object, then into its own raster.
WEBP_BYTES_PER_PIXEL = 16
# libjpeg stores a coefficient as a 16-bit integer: 64 per 8x8 block of each component.
_JPEG_BLOCK_BYTES = 64 * 2


def raster_bytes(mode: str, size: tuple[int, int]) -> int:
    per_pixel = 1 if mode in _ONE_BYTE_MODES else 2 if mode in _TWO_BYTE_MODES else 4
    return size[0] * size[1] * per_pixel


def jpeg_coefficient_bytes(size: tuple[int, int], components: list[tuple[int, int, int, int]]) -> int:
    """The whole-image coefficient buffer libjpeg allocates for a JPEG with more than one scan.

    ``components`` is Pillow's ``JpegImageFile.layer``: (id, horizontal sampling, vertical sampling, table).
    """
    if not components:
        return 0
    max_h = max(h for _, h, _, _ in components) or 1
    max_v = max(v for _, _, v, _ in components) or 1
    blocks = 0
    for _, h, v, _ in components:
        blocks += math.ceil(size[0] * h / max_h / 8) * math.ceil(size[1] * v / max_v / 8)
    return blocks * _JPEG_BLOCK_BYTES


def decode_bytes(image: Image.Image, full_size: tuple[int, int], scans: int) -> int:
    """Peak bytes the decoder allocates for ``image`` (after any JPEG draft), from its header.

    ``full_size`` is the size in the header, ``image.size`` the (possibly DCT-scaled) size it
    will be decoded at, and ``scans`` a JPEG's scan count (0 for other formats).
    """
    if image.format == "WEBP":
        return full_size[0] * full_size[1] * WEBP_BYTES_PER_PIXEL
    total = raster_bytes(image.mode, image.size)
    if image.format in ("JPEG", "MPO") and scans > 1:
        total += jpeg_coefficient_bytes(full_size, getattr(image, "layer", []))
    return total
