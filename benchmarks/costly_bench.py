"""Costly inputs: small files within the byte and pixel limits that are expensive to decode.

Each file is made here, then decoded in a fresh process twice: "before" as the core decoded
until bounded decoding (Pillow open, draft, load, EXIF transpose, full-size conversion to RGB,
one resize), and "after" through the core's ``decode_image``. Rows: wall time and the peak
memory of that process (VmHWM), with the outcome (``ok`` or the error code).

Run alone: ``python -m benchmarks costly``.
"""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SIZE = (160, 160)  # the served model's input size
TIMEOUT_S = 300  # the scan bomb takes about a minute "before"
FLOOD_SEGMENTS = 5_000_000  # empty JPEG comment segments: a 20 MB file
FLOOD_CHUNKS = 1_600_000  # empty private PNG chunks: a 19 MB file
FLOOD_BYTES = 20_000_000  # stray bytes in a JPEG: Pillow steps over each in Python
FLOOD_PROFILES = 19_000  # iCCP chunks of about 1 kB that each inflate to 1 MB: a 20 MB file
FLOOD_SUB_BLOCKS = 10_000_000  # 1-byte GIF comment sub-blocks: a 20 MB file
FLOOD_RATIONALS = 2_400_000  # values of an EXIF orientation tag: a 19 MB file


def costly_inputs() -> dict[str, bytes]:
    from tests.core import images  # the test suite's makers of odd files; not imported by measuring processes

    from inference import Limits
    from inference.decode_memory import WEBP_BYTES_PER_PIXEL
    from inference.jpeg_scans import jpeg_layout

    side = images.SIDE_40MP
    photo = images.encode(images.solid(size=(640, 480)), "JPEG")
    max_scans = Limits().max_scans
    usual_scans = jpeg_layout(images.progressive_scan_bomb(0, (64, 64), subsampling=0), 1000, 1000).scans
    webp_side = math.isqrt(Limits().max_decode_bytes // WEBP_BYTES_PER_PIXEL)
    frame_body = b"\x08\x00\x10\x00\x10\x03" + b"\x01\x11\x00" * 21_840  # 3 components declared, 21 k given
    frame_header = b"\xff\xc0" + (len(frame_body) + 2).to_bytes(2, "big") + frame_body
    return {
        "progressive JPEG 12 MP, last scan x5,000": images.progressive_scan_bomb(5000),
        f"progressive JPEG 4:4:4 {side}x{side}, {max_scans} scans (most accepted)":
            images.progressive_scan_bomb(max_scans - usual_scans, (side, side), subsampling=0),
        "JPEG with 5 M empty segments": photo[:2] + b"\xff\xfe\x00\x02" * FLOOD_SEGMENTS + photo[2:],
        "PNG with 1.6 M empty chunks": images.png_chunk_flood(FLOOD_CHUNKS),
        f"16-bit grey PNG {side}x{side}": images.grey16_png(side),
        f"RGBA PNG {side}x{side}": images.rgba_png(side),
        f"lossless WebP {side}x{side}": images.lossless_webp(side),
        f"lossy WebP {webp_side}x{webp_side} (largest accepted)":
            images.encode(images.solid(size=(webp_side, webp_side)), "WEBP", quality=50, method=0),
        f"palette GIF {side}x{side}": images.palette_gif(side),
        # Found by a hostile probe after bounded decoding: damage, metadata and old encodings Pillow reads in Python.
        "progressive JPEG 12 MP, last scan x1,000, a stray byte before": images.jpeg_with_before_first_scan(
            images.progressive_scan_bomb(1000), b"\x00"),
        "JPEG with 20 MB of stray bytes": images.jpeg_with_before_first_scan(photo, b"\x00" * FLOOD_BYTES),
        "PNG with 19 k colour profiles (iCCP)": images.png_with_compressed_metadata(FLOOD_PROFILES),
        "RLE8 BMP 8000x5000, one pixel a row": images.rle8_bmp(8000, 5000, b"\x01\x05\x00\x00" * 5000 + b"\x00\x01"),
        "GIF with a comment of 10 M 1-byte sub-blocks": images.gif_with_before_first_frame(images.gif_comment(FLOOD_SUB_BLOCKS)),
        "JPEG with 5 M empty segments behind an early EOI": photo[:2] + b"\xff\xd9" + b"\xff\xe0\x00\x02" * FLOOD_SEGMENTS + photo[2:],
        "JPEG with 300 frame headers of 64 kB": photo[:2] + frame_header * 300 + photo[2:],
        "PNG with 19 k keyword-less zTXt chunks": images.png_with_compressed_metadata(FLOOD_PROFILES, b"zTXt"),
        "PNG whose EXIF orientation is 2.4 M rationals": images.encode(
            images.solid(), "PNG", exif=images.exif_with_long_orientation(FLOOD_RATIONALS)),
    }


def decode_as_before(data: bytes, size: tuple[int, int]):
    """The core's decoding before bounded decoding, step for step (limits and error mapping left out)."""
    import numpy as np
    from PIL import Image, ImageOps

    image = Image.open(io.BytesIO(data))
    if image.format in ("JPEG", "MPO"):
        image.draft("RGB", size)
    image.load()
    image = ImageOps.exif_transpose(image)
    if image.mode.startswith("I"):
        values = np.asarray(image, dtype=np.float64)
        scale = 257.0 if values.max(initial=0) > 255 else 1.0
        image = Image.fromarray(np.clip(values / scale, 0, 255).astype(np.uint8), "L").convert("RGB")
    elif image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        background.alpha_composite(rgba)
        image = background.convert("RGB")
    elif image.mode != "RGB":
        image = image.convert("RGB")
    return np.asarray(image.resize(size, Image.Resampling.BILINEAR), dtype=np.uint8)


def _measure(which: str, path: str) -> dict:
    """In this (fresh) process: decode the file once; wall time, peak memory, outcome."""
    data = Path(path).read_bytes()
    if which == "before":
        decode = decode_as_before
    else:
        from inference import decode_image as decode
    started = time.perf_counter()
    try:
        decode(data, SIZE)
        outcome = "ok"
    except Exception as error:  # noqa: BLE001 - the outcome is the measurement
        outcome = getattr(error, "code", type(error).__name__)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "peak_mb": _status_kb("VmHWM") / 1024, "outcome": outcome}


def _status_kb(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":"))


def _in_fresh_process(which: str, path: Path) -> dict:
    command = [sys.executable, "-m", "benchmarks.costly_bench", "--measure", which, str(path)]
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT_S, check=True)
    except subprocess.TimeoutExpired:
        return {"seconds": float(TIMEOUT_S), "peak_mb": float("nan"), "outcome": "timeout"}
    return json.loads(done.stdout.splitlines()[-1])


def run() -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for index, (name, data) in enumerate(costly_inputs().items()):
            path = Path(folder) / f"input-{index}"
            path.write_bytes(data)
            print(f"  {name} ...", file=sys.stderr, flush=True)
            rows.append({"input": name, "bytes": len(data),
                         "before": _in_fresh_process("before", path), "after": _in_fresh_process("after", path)})
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| input | file | before: time (s) | before: peak (MB) | before | after: time (s) | after: peak (MB) | after |",
             "|---|---:|---:|---:|---|---:|---:|---|"]
    for row in rows:
        before, after = row["before"], row["after"]
        size = f"{row['bytes'] / 1024:,.0f} kB" if row["bytes"] >= 1024 else f"{row['bytes']} B"
        lines.append(f"| {row['input']} | {size} | {before['seconds']:.2f} | {before['peak_mb']:.0f} | {before['outcome']} "
                     f"| {after['seconds']:.2f} | {after['peak_mb']:.0f} | {after['outcome']} |")
    return "\n".join(lines)


def verdicts(rows: list[dict]) -> list[str]:
    """The targets: every costly input classified or refused in a few seconds and under 400 MB."""
    worst_s = max(row["after"]["seconds"] for row in rows)
    worst_mb = max(row["after"]["peak_mb"] for row in rows)
    ok = worst_s <= 5 and worst_mb <= 400
    return [f"\nafter: slowest {worst_s:.2f} s (target <= 5 s), highest peak {worst_mb:.0f} MB (target <= 400 MB): "
            f"{'ok' if ok else 'NOT MET'}"]


if __name__ == "__main__":
    if sys.argv[1:2] == ["--measure"]:
        print(json.dumps(_measure(sys.argv[2], sys.argv[3])))
    else:
        measured = run()
        print(markdown(measured))
        print("\n".join(verdicts(measured)))
