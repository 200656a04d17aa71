"""Count the scans and segments of a JPEG from its markers, before any decoding.

A progressive JPEG holds its pixels in several scans, and libjpeg makes one pass over
every block of the image per scan. Encoders write about ten; a crafted file can repeat
a tiny scan thousands of times and keep a decoder busy for minutes. Likewise, millions
of empty segments keep Pillow's marker loop (in Python) busy for seconds. Counting both
here is cheap, stops early, and tells such files apart before anything decodes them.

The walk reads markers as the decoders do, so that no marker can hide what follows it.
Up to the first scan, Pillow reads the file in Python, and the walk follows Pillow's marker
table: bytes that are not a marker are skipped to the next 0xFF (one by one, in Python), a
length field under 2 covers only itself, and the markers it gives no handler (SOI, EOI, the
restart markers, JPG and JPG0-JPG13) are two bytes long and read past. From the first scan
on, libjpeg reads the file, in C, and an EOI ends the image. The walk also notes what Pillow
keeps per segment: frame headers (each adds its components to a list), quantization tables
(parsed one by one) and Exif or Photoshop metadata, and the sample precision.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_EOI, _SOS, _DQT = 0xD9, 0xDA, 0xDB
# Up to the first scan (Pillow's table): markers without a handler, so without a length field.
_NO_LENGTH_FOR_PILLOW = {0xC8, *range(0xD0, 0xDA), *range(0xF0, 0xFE)}
# From the first scan on (libjpeg): markers without a length field, TEM and RST0-RST7.
_STANDALONE = {0x01, *range(0xD0, 0xD8)}
# Frame headers as Pillow reads them: SOF0-SOF15 but DHT, JPG and DAC, and DHP.
_SOF = (set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}) | {0xDE}
# Metadata segments Pillow joins or parses in Python as it opens the file: Exif (APP1; each one is appended to the
# ones before, so many of them copy quadratically) and Photoshop resources (APP13; parsed block by block).
_METADATA = {0xE1: b"Exif\x00\x00", 0xED: b"Photoshop 3.0\x00"}
# Inside entropy-coded data, 0xFF is followed by 0x00 (a stuffed byte) or a restart marker;
# anything else (fill bytes 0xFF aside) starts the next marker.
_NEXT_MARKER = re.compile(rb"\xff(?=[^\x00\xd0-\xd7\xff])")
_FILL = re.compile(rb"\xff+")  # any number of 0xFF may pad the space before a marker


@dataclass(frozen=True)
class JpegLayout:
    scans: int  # SOS segments: 1 for a baseline JPEG, about 10 for a progressive one
    segments: int  # every marker segment, scans included
    # bytes between segments that belong to no marker, fill bytes beyond the one a marker needs included: a sound
    # file has none or a few, and Pillow steps over each in Python
    stray_bytes: int = 0
    precision: int | None = None  # bits per sample of the first frame header: 8 for ordinary JPEGs
    metadata_segments: int = 0  # Exif (APP1) and Photoshop (APP13) segments: cameras and editors write one of each
    frame_headers: int = 0  # SOF segments before the first scan: exactly one in a sound file
    quantization_segments: int = 0  # DQT segments before the first scan: one to four in real files


def jpeg_layout(data: bytes, max_scans: int, max_segments: int, max_stray_bytes: int = 2**16) -> JpegLayout:
    """Scans, segments and stray bytes of the first image in ``data``, counting no further than past any maximum.

    The walk never raises: where the data runs out, or at a marker Pillow does not know, it
    returns what it counted so far and leaves the verdict on the damage to the decoder.
    """
    scans = segments = stray = metadata = frames = tables = 0
    precision = None
    pos, end = 2, len(data)
    if data[:2] != b"\xff\xd8":
        return JpegLayout(0, 0)
    while pos + 1 < end and scans <= max_scans and segments <= max_segments and stray <= max_stray_bytes:
        if data[pos] != 0xFF:
            found_ff = data.find(b"\xff", pos)
            found_ff = end if found_ff < 0 else found_ff
            stray, pos = stray + found_ff - pos, found_ff
            continue
        fill_end = _FILL.match(data, pos).end()  # type: ignore[union-attr]  (data[pos] is 0xFF)
        stray, pos = stray + fill_end - pos - 1, fill_end - 1
        if pos + 1 >= end:
            break
        marker = data[pos + 1]
        if marker == 0x00:  # an escaped 0xFF where no entropy-coded data is: skipped, as Pillow does
            stray, pos = stray + 2, pos + 2
            continue
        if scans and marker == _EOI:
            break
        if not scans and marker < 0xC0:  # not in Pillow's table: it stops with "no marker found"
            break
        segments += 1
        if marker in (_STANDALONE if scans else _NO_LENGTH_FOR_PILLOW):
            pos += 2
            continue
        if pos + 4 > end:  # the length field itself is cut off
            break
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if not scans:
            frames += marker in _SOF
            tables += marker == _DQT
            if marker in _SOF and precision is None and pos + 4 < end:
                precision = data[pos + 4]
        signature = _METADATA.get(marker)
        metadata += signature is not None and data.startswith(signature, pos + 4)
        pos += 2 + max(length, 2)  # a length under 2 covers only itself, for libjpeg and Pillow alike
        if marker == _SOS:
            scans += 1
            found = _NEXT_MARKER.search(data, pos)
            if found is None:
                break
            pos = found.start()
    return JpegLayout(scans, segments, stray, precision, metadata, frames, tables)
