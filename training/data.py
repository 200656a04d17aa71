"""Find labelled photos, deduplicate them, split them deterministically, decode them once.

Any folder named ``fire`` or ``nofire`` below a data root is a class folder; its parent
is the *source* (``forest-fire/train``, ``weather``...), which metrics are reported by.
Decoding goes through the inference core, so training sees exactly what serving sees.
"""

from __future__ import annotations

import hashlib
import sys
from collections import Counter, defaultdict
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inference import InvalidImage, decode_image
from inference.cli import IMAGE_SUFFIXES

CLASS_FOLDERS = {"nofire": 0, "fire": 1}


@dataclass(frozen=True)
class Sample:
    path: Path
    source: str  # the class folder's parent, relative to its data root
    label: int  # 1 fire, 0 nofire
    sha256: str


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def discover(roots: list[Path], limit_per_class: int | None = None) -> list[Sample]:
    """Every image under a ``fire``/``nofire`` folder of each root, duplicates by content removed."""
    samples: list[Sample] = []
    for root in roots:
        if not root.is_dir():
            raise SystemExit(f"error: data folder not found: {root}")
        class_dirs = sorted(p for p in root.rglob("*") if p.is_dir() and p.name in CLASS_FOLDERS)
        if not class_dirs and root.name in CLASS_FOLDERS:
            class_dirs = [root]
        for class_dir in class_dirs:
            source = class_dir.parent.relative_to(root.parent).as_posix()
            files = sorted(p for p in class_dir.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if limit_per_class:
                files = files[:limit_per_class]
            samples += [Sample(p, source, CLASS_FOLDERS[class_dir.name], _sha256(p)) for p in files]
    if not samples:
        raise SystemExit(f"error: no images under fire/ or nofire/ folders in {', '.join(map(str, roots))}")
    return deduplicate(samples)


def deduplicate(samples: list[Sample]) -> list[Sample]:
    """Keep one copy of byte-identical files; drop files whose copies disagree on the label."""
    by_hash: dict[str, list[Sample]] = defaultdict(list)
    for sample in samples:
        by_hash[sample.sha256].append(sample)
    kept = []
    conflicts = 0
    for copies in by_hash.values():
        if len({c.label for c in copies}) > 1:
            conflicts += 1
            continue
        kept.append(copies[0])
    dropped = len(samples) - len(kept)
    if dropped:
        print(f"data: dropped {dropped} duplicate files ({conflicts} with conflicting labels)", file=sys.stderr)
    return sorted(kept, key=lambda s: (s.source, -s.label, s.path.name))


def split(samples: list[Sample], val_fraction: float, seed: int) -> tuple[list[Sample], list[Sample]]:
    """Deterministic split keyed on content hash and seed: a file's side never depends on other files,
    and copies of one file (already merged) can never straddle it."""
    train, val = [], []
    for sample in samples:
        key = hashlib.sha256(f"{seed}:{sample.sha256}".encode()).digest()
        (val if int.from_bytes(key[:8], "big") / 2**64 < val_fraction else train).append(sample)
    return train, val


def _decode(args: tuple[Path, int]) -> np.ndarray | str:
    path, size = args
    try:
        return decode_image(path.read_bytes(), (size, size))
    except InvalidImage as error:
        return f"{error.code}: {error.message}"


def decode_all(samples: list[Sample], size: int, workers: int = 2) -> tuple[np.ndarray, np.ndarray, list[Sample]]:
    """Decode every sample at ``size`` through the inference core; unreadable files are reported and left out."""
    # spawn, not fork: TensorFlow's threads may already be running in this process.
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        decoded = list(pool.map(_decode, [(s.path, size) for s in samples], chunksize=32))
    images, labels, kept = [], [], []
    for sample, result in zip(samples, decoded):
        if isinstance(result, str):
            print(f"data: skipped {sample.path}: {result}", file=sys.stderr)
            continue
        images.append(result)
        labels.append(sample.label)
        kept.append(sample)
    return np.stack(images), np.asarray(labels, dtype=np.float32), kept


def describe(samples: list[Sample]) -> dict[str, dict[str, int]]:
    counts = Counter((s.source, "fire" if s.label else "nofire") for s in samples)
    table: dict[str, dict[str, int]] = defaultdict(dict)
    for (source, label), n in sorted(counts.items()):
        table[source][label] = n
    return dict(table)
