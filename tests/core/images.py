"""Odd and broken image files, made in memory with Pillow."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def solid(color=(220, 40, 20), size=(64, 48), mode="RGB") -> Image.Image:
    return Image.new(mode, size, color)


def png_with_header_size(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims ``width`` x ``height`` but whose data is a few bytes: a forged header."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b"")


def png_zlib_bomb(side: int) -> bytes:
    """A real PNG of side x side black pixels: compresses ~1000:1, so a small file expands hugely."""
    return encode(Image.new("L", (side, side), 0), "PNG", optimize=True)


def jpeg_with_header_size(width: int, height: int) -> bytes:
    """A valid small JPEG whose SOF0 frame header is rewritten to claim another size."""
    data = bytearray(encode(solid(size=(16, 16)), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def with_exif_orientation(image: Image.Image, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(image, "JPEG", exif=exif.tobytes(), quality=95)
