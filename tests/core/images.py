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


def with_exif_orientation(image: Image.Image, orientation: int, fmt: str = "JPEG") -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(image, fmt, exif=exif.tobytes(), **({"quality": 95} if fmt == "JPEG" else {}))


def exif_with_long_orientation(values: int) -> bytes:
    """An EXIF block whose orientation tag holds ``values`` rationals, not one short: Pillow decodes every one."""
    header = b"MM\x00\x2a" + (8).to_bytes(4, "big")
    entry = (0x0112).to_bytes(2, "big") + (5).to_bytes(2, "big") + values.to_bytes(4, "big") + (26).to_bytes(4, "big")
    return header + (1).to_bytes(2, "big") + entry + bytes(4) + b"\x00\x00\x00\x06\x00\x00\x00\x01" * values


# Costly inputs: small files within the byte and pixel limits that cost much time or memory to decode.
SIDE_40MP = 6324  # 6324 x 6324 = 39,992,976 pixels, just under the 40 MP limit


def jpeg_markers(data: bytes) -> list[tuple[int, int]]:
    """(marker, offset) of every segment of a JPEG, entropy-coded data skipped (test helper, not the core's)."""
    found, pos = [], 2
    while pos < len(data) - 1:
        marker = data[pos + 1]
        found.append((marker, pos))
        if marker == 0xD9:
            break
        length = struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        pos += 2 + length
        if marker == 0xDA:  # entropy-coded data runs to the next marker that is not a stuffed byte or a restart
            while not (data[pos] == 0xFF and data[pos + 1] not in (0x00, *range(0xD0, 0xD8))):
                pos += 1
    return found


def progressive_scan_bomb(repeats: int, size=(4000, 3000), subsampling: int = 2) -> bytes:
    """A valid progressive JPEG whose last scan is repeated ``repeats`` more times: small, but each scan is a pass
    over every block of the image, so decoding time grows with the repeats."""
    data = encode(Image.new("RGB", size, (90, 120, 60)), "JPEG", quality=90, progressive=True, subsampling=subsampling)
    markers = jpeg_markers(data)
    last_sos = max(pos for marker, pos in markers if marker == 0xDA)
    eoi = markers[-1][1]
    return data[:eoi] + data[last_sos:eoi] * repeats + data[eoi:]


def jpeg_with_before_first_scan(jpeg: bytes, extra: bytes) -> bytes:
    """``jpeg`` with ``extra`` bytes just before its first scan (SOS marker)."""
    sos = jpeg.index(b"\xff\xda")
    return jpeg[:sos] + extra + jpeg[sos:]


def grey16_png(side: int = SIDE_40MP) -> bytes:
    """A 16-bit greyscale PNG (Pillow mode I;16): tiny when flat, 2 bytes per pixel once decoded."""
    return encode(Image.new("I;16", (side, side), 30000), "PNG")


def rgba_png(side: int = SIDE_40MP) -> bytes:
    """A half-transparent RGBA PNG: compositing it on white at full size would copy it several times."""
    return encode(Image.new("RGBA", (side, side), (220, 40, 20, 128)), "PNG")


def lossless_webp(side: int = SIDE_40MP) -> bytes:
    """A flat lossless WebP: a kilobyte or two that libwebp and Pillow decode into several full-size buffers."""
    return encode(Image.new("RGB", (side, side), (220, 40, 20)), "WEBP", lossless=True, quality=0, method=0)


def palette_gif(side: int = SIDE_40MP) -> bytes:
    return encode(Image.new("P", (side, side), 3), "GIF")


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


# Compressed metadata chunks of about 1 kB that inflate to just under 1 MB (Pillow's cap per chunk); the zTXt has
# no keyword and the iTXt a language tag that is not UTF-8, which Pillow's 64 MB cap on text does not see.
PILLOW_METADATA_CAP = 2**20
COMPRESSED_METADATA_HEADS = {b"iCCP": b"icc\x00\x00", b"zTXt": b"\x00\x00", b"iTXt": b"k\x00\x01\x00\xff\x00\x00"}


def png_with_compressed_metadata(
    count: int, kind: bytes = b"iCCP", after_pixels: bool = False, inflates_to: int = PILLOW_METADATA_CAP - 1
) -> bytes:
    """A small valid PNG with ``count`` compressed metadata chunks of ``kind`` (see COMPRESSED_METADATA_HEADS), each
    inflating to ``inflates_to`` zeros: Pillow inflates every one, before or after the pixels."""
    data = encode(solid(), "PNG")
    at = data.index(b"IEND") - 4 if after_pixels else 8 + 25
    body = COMPRESSED_METADATA_HEADS[kind] + zlib.compress(b"\x00" * inflates_to, 9)
    return data[:at] + png_chunk(kind, body) * count + data[at:]


def rle8_bmp(width: int, height: int, runs: bytes) -> bytes:
    """A BMP whose 8-bit pixels are run-length encoded (RLE8): ``runs`` is the pixel data, (count, index) pairs and
    escapes; a grey ramp palette."""
    palette = b"".join(bytes([i, i, i, 0]) for i in range(256))
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 8, 1, len(runs), 2835, 2835, 256, 0)
    offset = 14 + 40 + len(palette)
    return b"BM" + struct.pack("<IHHI", offset + len(runs), 0, 0, offset) + info + palette + runs


def gif_with_before_first_frame(extra: bytes) -> bytes:
    """A small valid GIF (a solid red-ish frame) with ``extra`` bytes between its header and its first frame."""
    data = encode(solid(), "GIF")
    flags = data[10]
    header = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)  # and the global colour table
    return data[:header] + extra + data[header:]


def gif_comment(sub_blocks: int, size: int = 1) -> bytes:
    """A comment extension of ``sub_blocks`` sub-blocks of ``size`` bytes each."""
    return b"\x21\xfe" + (bytes([size]) + b"c" * size) * sub_blocks + b"\x00"


def png_chunk_flood(chunks: int) -> bytes:
    """A small valid PNG with ``chunks`` empty private chunks after its header: Pillow reads each in Python."""
    data = encode(solid(), "PNG")
    header_end = 8 + 25  # signature, then the IHDR chunk
    return data[:header_end] + png_chunk(b"zzZz", b"") * chunks + data[header_end:]
