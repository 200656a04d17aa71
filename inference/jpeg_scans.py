"""Count the scans and segments of a JPEG from its markers, before any decoding.

A progressive JPEG holds its pixels in several scans, and libjpeg makes one pass over
every block of the image per scan. Encoders write about ten; a crafted file can repeat
a tiny scan thousands of times and keep a decoder busy for minutes. Likewise, millions
of empty segments keep Pillow's marker loop (in Python) busy for seconds. Counting both
here is cheap, stops early, and tells such files apart before anything decodes them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SOI, _EOI, _SOS = 0xD8, 0xD9, 0xDA
# Markers without a length field: TEM and the restart markers RST0-RST7.
_STANDALONE = {0x01, *range(0xD0, 0xD8)}
# Inside entropy-coded data, 0xFF is followed by 0x00 (a stuffed byte) or a restart marker;
# anything else (fill bytes 0xFF aside) starts the next marker.
_NEXT_MARKER = re.compile(rb"\xff(?=[^\x00\xd0-\xd7\xff])")


@dataclass(frozen=True)
class JpegLayout:
    scans: int  # SOS segments: 1 for a baseline JPEG, about 10 for a progressive one
    segments: int  # every marker segment, scans included


def jpeg_layout(data: bytes, max_scans: int, max_segments: int) -> JpegLayout:
    """Scans and segments of the first image in ``data``, counting no further than one past either maximum.

    The walk never raises: on a damaged marker structure it returns what it counted so
    far and leaves the verdict on the damage to the decoder.
    """
    scans = segments = 0
    pos, end = 2, len(data)
    if data[:2] != b"\xff\xd8":
        return JpegLayout(0, 0)
    while pos + 1 < end and scans <= max_scans and segments <= max_segments:
        if data[pos] != 0xFF:
            break
        marker = data[pos + 1]
        if marker == 0xFF:  # a fill byte before a marker
            pos += 1
            continue
        if marker == _EOI:
            break
        segments += 1
        if marker in _STANDALONE or marker == _SOI:
            pos += 2
            continue
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if length < 2:
            break
        pos += 2 + length
        if marker == _SOS:
            scans += 1
            found = _NEXT_MARKER.search(data, pos)
            if found is None:
                break
            pos = found.start()
    return JpegLayout(scans, segments)
