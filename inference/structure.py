"""What a file's structure costs to read, judged before decoding it.

Pillow reads much of a file's structure in Python as it opens it: JPEG marker segments and the bytes between them,
PNG chunks, GIF extension blocks, run-length encoded BMP pixels; libjpeg makes a pass over the image for every scan
of a progressive JPEG. A small file can hold millions of any of these. Counting them here is cheap, stops early,
and refuses such files (``too_complex``, or ``corrupt_image`` for a damaged one) before any decoder runs. Real files
are far inside every limit: none of the 5,766 photos of the project's data sets comes near one.
"""

from __future__ import annotations

from PIL import Image

from .errors import CORRUPT_IMAGE, TOO_COMPLEX, UNSUPPORTED_FORMAT, InvalidImage
from .gif_blocks import gif_blocks_before_first_frame
from .jpeg_scans import jpeg_layout
from .png_chunks import png_layout

# Real JPEGs have a few dozen marker segments (camera files with ICC and XMP blocks under a hundred);
# Pillow reads them one by one in Python, so millions of empty ones would take seconds.
MAX_JPEG_SEGMENTS = 1000
# Bytes between segments that belong to no marker (damage, or fill bytes beyond need): decoders step over them,
# Pillow one at a time in Python (about 0.2 us each); sound files have none or a few.
MAX_JPEG_STRAY_BYTES = 64 * 1024
# Exif and Photoshop segments, which Pillow joins (Exif, with a copy of all before each) or parses block by block
# (Photoshop) in Python: 320 Exif segments of 64 kB took 2.6 s. Cameras and editors write one of each.
MAX_JPEG_METADATA_SEGMENTS = 16
# Quantization table segments, whose tables Pillow parses one by one into lists: 320 segments of a thousand tables
# took 2 s. Encoders write one to four.
MAX_JPEG_QUANTIZATION_SEGMENTS = 16
# Likewise for PNG chunks (Pillow reads them in Python too): real files have a few thousand at most.
MAX_PNG_CHUNKS = 50_000
# Colour profiles and compressed texts (iCCP, zTXt, iTXt) Pillow inflates, up to 1 MB each (1 to 2 ms).
MAX_PNG_COMPRESSED_METADATA = 64
# Run-length encoded BMPs (RLE8, RLE4) are decoded by Pillow in Python, a pixel or a padding byte at a time (about
# 0.2 us a pixel: a 21 kB file of 40 MP took 6 s), and a run past the end of a row is read on to the end of the
# file (10 M of them, 20 MB, took 7 s). RLE BMPs are icons and old Windows graphics: small in both.
MAX_RLE_BMP_PIXELS = 2_000_000
MAX_RLE_BMP_BYTES = 2 * 2**20
_BMP_RLE = {1: "RLE8", 2: "RLE4"}  # the header's compression field
# Extension sub-blocks (and stray bytes) before a GIF's first frame, which Pillow reads in Python: a few in real files.
MAX_GIF_BLOCKS = 20_000


def check_structure(data: bytes, claimed: str | None, max_scans: int) -> int:
    """Refuse a file whose structure would be costly to read (``claimed``: its format by its first bytes); return a
    JPEG's scan count (0 for other formats)."""
    if claimed == "JPEG":
        return _check_jpeg(data, max_scans)
    if claimed == "PNG":
        _check_png(data)
    elif claimed == "GIF":
        _check_gif(data)
    return 0


def check_opened_structure(image: Image.Image, size_bytes: int) -> None:
    """What only the opened header tells: a run-length encoded BMP, which Pillow decodes in Python."""
    rle = _BMP_RLE.get(image.info.get("compression")) if image.format == "BMP" else None
    width, height = image.size
    if rle and (width * height > MAX_RLE_BMP_PIXELS or size_bytes > MAX_RLE_BMP_BYTES):
        raise InvalidImage(
            TOO_COMPLEX,
            f"The BMP is run-length encoded ({rle}), {width}x{height} in {size_bytes:,} bytes; such BMPs are decoded"
            f" slowly, so at most {MAX_RLE_BMP_PIXELS:,} pixels in {MAX_RLE_BMP_BYTES // 2**20} MB are accepted."
            " Send a PNG or JPEG.",
        )


def _check_jpeg(data: bytes, max_scans: int) -> int:
    layout = jpeg_layout(data, max_scans, MAX_JPEG_SEGMENTS, MAX_JPEG_STRAY_BYTES)
    if layout.stray_bytes > MAX_JPEG_STRAY_BYTES:
        raise InvalidImage(
            CORRUPT_IMAGE,
            f"The JPEG is damaged: more than {MAX_JPEG_STRAY_BYTES:,} bytes between its segments belong to no marker."
            " Save it again with an image editor.",
        )
    if layout.frame_headers > 1:
        # libjpeg refuses a second frame header; Pillow first adds every one's components to a list (7 M of them
        # from 319 headers of 64 kB took 638 MB)
        raise InvalidImage(
            CORRUPT_IMAGE, f"The JPEG is damaged: it has {layout.frame_headers:,} frame headers (SOF) before its image data, not one."
        )
    if layout.quantization_segments > MAX_JPEG_QUANTIZATION_SEGMENTS:
        raise InvalidImage(
            TOO_COMPLEX,
            f"The JPEG has {layout.quantization_segments:,} quantization table segments (encoders write one to four);"
            " reading them would take too long. Save it again with an image editor.",
        )
    if layout.metadata_segments > MAX_JPEG_METADATA_SEGMENTS:
        raise InvalidImage(
            TOO_COMPLEX,
            f"The JPEG has {layout.metadata_segments:,} Exif or Photoshop metadata segments (cameras write one);"
            " reading them would take too long. Save it again with an image editor.",
        )
    if layout.precision not in (None, 8):
        raise InvalidImage(
            UNSUPPORTED_FORMAT,
            f"The JPEG has {layout.precision}-bit samples; this service reads 8-bit JPEGs, what cameras and editors"
            " write. Save it again as an ordinary JPEG.",
        )
    if layout.scans > max_scans:
        raise InvalidImage(
            TOO_COMPLEX,
            f"The JPEG has more than {max_scans} scans (progressive passes); decoding it would take too long."
            " Save it again as a baseline or ordinary progressive JPEG.",
        )
    if layout.segments > MAX_JPEG_SEGMENTS:
        raise InvalidImage(
            TOO_COMPLEX,
            f"The JPEG has more than {MAX_JPEG_SEGMENTS:,} marker segments; decoding it would take too long."
            " Save it again with an image editor.",
        )
    return layout.scans


def _check_png(data: bytes) -> None:
    layout = png_layout(data, MAX_PNG_CHUNKS + 1)
    if layout.chunks > MAX_PNG_CHUNKS:
        raise InvalidImage(
            TOO_COMPLEX,
            f"The PNG has more than {MAX_PNG_CHUNKS:,} chunks; decoding it would take too long. Save it again with an image editor.",
        )
    if layout.compressed_metadata > MAX_PNG_COMPRESSED_METADATA:
        raise InvalidImage(
            TOO_COMPLEX,
            f"The PNG has {layout.compressed_metadata:,} compressed metadata chunks (colour profiles and texts: iCCP,"
            " zTXt, iTXt), each to be inflated before decoding; that would take too long. Save it again with an image"
            " editor.",
        )


def _check_gif(data: bytes) -> None:
    if gif_blocks_before_first_frame(data, MAX_GIF_BLOCKS) > MAX_GIF_BLOCKS:
        raise InvalidImage(
            TOO_COMPLEX,
            f"The GIF has more than {MAX_GIF_BLOCKS:,} extension blocks before its first frame; reading them would take"
            " too long. Save it again with an image editor.",
        )
