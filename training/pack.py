"""``python -m training.pack``: the decoded, split training photos in one small file, for training elsewhere.

A lent GPU machine has no TensorFlow, no inference core's dependencies and no copy of the datasets, and takes at most
64 MiB of files. The pack is every photo decoded here through the inference core at the model's input size, then
stored as WebP (quality 90 by default: a mean difference of about 2 of 255 levels, 35 MiB for the shared data),
with its label, source, content hash and side of the split. ``python -m training.accelerated`` trains from it;
``python -m training --trained`` then chooses the threshold, exports and evaluates here, on the exact decoded photos.
The pack holds the data it was made from: keep it out of the repository (``*.pack.npz`` is ignored).
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

SUFFIX = ".pack.npz"


@dataclass
class Pack:
    meta: dict
    images: np.ndarray  # uint8 (n, size, size, 3)
    labels: np.ndarray  # float32 (n,)
    sources: np.ndarray  # str (n,)
    splits: np.ndarray  # "train" or "val"
    sha256: np.ndarray  # str (n,)

    def fold(self, holdout: list[str]) -> dict[str, np.ndarray]:
        """Row masks of train, val and held out, with whole sources (and their sub-sources) set aside."""
        held = np.zeros(len(self.labels), bool)
        for name in holdout:
            name = name.rstrip("/")
            matches = (self.sources == name) | np.char.startswith(self.sources.astype(str), name + "/")
            if not matches.any():
                raise SystemExit(f"error: no source named {name} in the pack; its sources are {', '.join(sorted(set(self.sources)))}")
            held |= matches
        return {"train": (self.splits == "train") & ~held, "val": (self.splits == "val") & ~held, "held": held}


def encode(image: np.ndarray, quality: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "WEBP", quality=quality, method=4)
    return buffer.getvalue()


def decode(blob: bytes, size: int) -> np.ndarray:
    """One packed photo; its header must say ``size`` x ``size`` before a pixel is decoded, so a damaged or forged
    pack cannot make a fit decode (and hold) photos of any other size."""
    image = Image.open(io.BytesIO(blob))
    if image.size != (size, size):
        raise ValueError(f"a photo of {image.size[0]}x{image.size[1]} in a pack of {size}x{size} photos")
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def write(path: Path, meta: dict, samples_by_split: dict[str, list], images: dict[str, np.ndarray], quality: int) -> int:
    rows = [(split, s) for split, part in samples_by_split.items() for s in part]
    blobs = [encode(images[s.sha256], quality) for _, s in rows]
    offsets = np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64)
    meta = meta | {"quality": quality, "count": len(rows)}
    with path.open("wb") as handle:
        np.savez(handle, blob=np.frombuffer(b"".join(blobs), np.uint8), offsets=offsets,
                 labels=np.asarray([s.label for _, s in rows], np.uint8), sources=np.asarray([s.source for _, s in rows]),
                 splits=np.asarray([split for split, _ in rows]), sha256=np.asarray([s.sha256 for _, s in rows]),
                 meta=np.asarray(json.dumps(meta)))
    return path.stat().st_size


def read(path: Path) -> Pack:
    """The pack at ``path``, its photos decoded; a file that is not a whole pack is a clear error, not a traceback."""
    try:
        with np.load(path, allow_pickle=False) as stored:
            blob, offsets, meta = stored["blob"], stored["offsets"], json.loads(str(stored["meta"]))
            images = np.stack([decode(blob[offsets[i]:offsets[i + 1]].tobytes(), meta["size"]) for i in range(len(offsets) - 1)])
            return Pack(meta, images, stored["labels"].astype(np.float32), stored["sources"],
                        stored["splits"], stored["sha256"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:  # Pillow's UnidentifiedImageError is an OSError
        raise SystemExit(f"error: {path} is not a whole pack from python -m training.pack ({exc})") from None


def main(argv: list[str] | None = None) -> int:
    from .options import DEFAULT_DATA, DEFAULT_SIZES, DEFAULT_SOURCES, image_side

    p = argparse.ArgumentParser(prog="python -m training.pack", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("output", type=Path, help=f"the pack to write (name ending in {SUFFIX})")
    p.add_argument("data", nargs="*", type=Path, help=f"folders holding fire/ and nofire/ subfolders (default: {DEFAULT_DATA})")
    p.add_argument("--image-size", type=image_side, default=DEFAULT_SIZES["compact"], help="photo side in pixels, 32 to 1024 (default %(default)s)")
    p.add_argument("--val-fraction", type=float, default=0.3)
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--quality", type=int, default=90, help="WebP quality, 1-100 (default 90)")
    args = p.parse_args(argv)
    if not args.output.name.endswith(SUFFIX):
        p.error(f"the pack's name must end in {SUFFIX}, so the repository ignores it")
    from . import data

    roots = args.data or [DEFAULT_DATA / name for name in DEFAULT_SOURCES]
    try:
        samples = data.discover(roots)
    except data.DataError as exc:
        raise SystemExit(f"error: {exc}") from None
    decoded = data.decode_and_split(samples, [], args.image_size, args.val_fraction, args.seed,
                                    lambda m: print(m, file=sys.stderr, flush=True))
    meta = {"size": args.image_size, "val_fraction": args.val_fraction, "seed": args.seed, "folders": [str(r) for r in roots]}
    size = write(args.output, meta, {"train": decoded.train, "val": decoded.val}, decoded.images, args.quality)
    print(f"wrote {args.output}: {len(decoded.train) + len(decoded.val)} photos, {size / 2**20:.1f} MiB", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
