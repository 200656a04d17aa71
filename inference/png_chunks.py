"""Count the chunks of a PNG before decoding it.

Pillow reads a PNG's chunks one by one in Python, about 10 microseconds each: a 20 MB file of
empty chunks holds 1.6 million of them and keeps it busy for 15 seconds before (or after) a
single pixel. Real encoders write image data in chunks of 8 kB or more, so a 20 MB PNG has a
few thousand chunks at most.

Compressed metadata chunks are counted apart: Pillow inflates each colour profile (iCCP) and
each compressed text (zTXt, iTXt), up to 1 MB apiece, wherever it stands in the file, and its
own 64 MB cap on text misses a zTXt without a keyword and an iTXt whose language tag is not
UTF-8. Twenty thousand 1 kB chunks that each inflate to 1 MB took Pillow 20 seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COMPRESSED_METADATA = {b"iCCP", b"zTXt", b"iTXt"}


@dataclass(frozen=True)
class PngLayout:
    chunks: int
    compressed_metadata: int  # iCCP, zTXt and iTXt chunks: real files have none to a few


def png_layout(data: bytes, stop_after: int) -> PngLayout:
    """Chunks and compressed metadata chunks of ``data`` up to IEND, counting no further than ``stop_after`` chunks; never raises
    on damage."""
    if not data.startswith(_SIGNATURE):
        return PngLayout(0, 0)
    chunks = compressed = 0
    pos, end = len(_SIGNATURE), len(data)
    while pos + 8 <= end and chunks < stop_after:
        chunks += 1
        kind = data[pos + 4 : pos + 8]
        if kind == b"IEND":
            break
        compressed += kind in _COMPRESSED_METADATA
        pos += 12 + int.from_bytes(data[pos : pos + 4], "big")  # length, type, body, CRC
    return PngLayout(chunks, compressed)
