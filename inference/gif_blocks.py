"""Count the blocks a GIF holds before its first frame, before decoding it.

Pillow reads a GIF's extensions in Python, one sub-block (at most 255 bytes) at a time, and keeps
every sub-block of a comment as a bytes object of its own: a 20 MB comment of 1-byte sub-blocks
took a gigabyte of memory, and millions of empty extensions seconds, before the first pixel. It
steps over stray bytes between blocks one at a time too. Real GIFs have a handful of blocks
before the first frame (a graphic control block, a loop count, perhaps a comment or an XMP
packet of a few hundred sub-blocks).
"""

from __future__ import annotations

import re

_EXTENSION, _IMAGE, _TRAILER = 0x21, 0x2C, 0x3B
_NEXT_BLOCK = re.compile(rb"[\x21\x2c\x3b]")


def gif_blocks_before_first_frame(data: bytes, stop_after: int) -> int:
    """Extension sub-blocks and stray bytes of ``data`` before its first image, counting no further than
    ``stop_after``; never raises on damage."""
    if not data.startswith((b"GIF87a", b"GIF89a")) or len(data) < 13:
        return 0
    flags = data[10]
    palette = 3 << ((flags & 7) + 1) if flags & 0x80 else 0  # the global colour table
    pos, end = 13 + palette, len(data)
    count = 0
    while pos < end and count <= stop_after:
        kind = data[pos]
        if kind in (_IMAGE, _TRAILER):
            break
        if kind != _EXTENSION:
            found = _NEXT_BLOCK.search(data, pos)
            following = end if found is None else found.start()
            count, pos = count + following - pos, following
            continue
        pos += 2  # the introducer and the label
        while pos < end and count <= stop_after:
            count += 1
            length = data[pos]
            pos += 1 + length
            if not length:
                break
    return count
