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

from inference import IMAGE_SUFFIXES, InvalidImage, decode_image

CLASS_FOLDERS = {"nofire": 0, "fire": 1}

# Photos a source files under the wrong class folder, found by eye among the photos the served model disagreed with
# most (the README's "What the sources show"). Keyed by content, so every copy of the photo is corrected, whatever its
# name. The label given here wins over the folder's.
LABEL_CORRECTIONS: dict[str, tuple[int, str]] = {
    "9add0507e2ceb8c91bed6beb98c55a3b55a0602f472f8033b0cde71f3866a2d2":
        (1, "fire-dataset/nofire/non_fire.133.jpg shows a forest burning: fire filed under nofire"),
}


class DataError(ValueError):
    """The training data cannot be used as given (missing folder, no images, unknown source)."""


@dataclass(frozen=True)
class Sample:
    path: Path
    source: str  # the class folder's parent, relative to its data root
    label: int  # 1 fire, 0 nofire
    sha256: str


def file_sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()  # in blocks: a large file is never whole in memory


def discover(roots: list[Path], limit_per_class: int | None = None) -> list[Sample]:
    """Every image under a ``fire``/``nofire`` folder of each root, labelled by its folder unless ``LABEL_CORRECTIONS``
    says otherwise, duplicates by content removed."""
    samples: list[Sample] = []
    for root in roots:
        if not root.is_dir():
            raise DataError(f"data folder not found: {root}")
        class_dirs = sorted(p for p in root.rglob("*") if p.is_dir() and p.name in CLASS_FOLDERS)
        if not class_dirs and root.name in CLASS_FOLDERS:
            class_dirs = [root]
        for class_dir in class_dirs:
            source = class_dir.parent.relative_to(root.parent).as_posix()
            files = sorted(p for p in class_dir.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if limit_per_class:
                files = files[:limit_per_class]
            for path in files:
                digest = file_sha256(path)
                samples.append(Sample(path, source, corrected(digest, CLASS_FOLDERS[class_dir.name]), digest))
    if not samples:
        raise DataError(f"no images under fire/ or nofire/ folders in {', '.join(map(str, roots))}")
    return deduplicate(samples)


def corrected(digest: str, filed_as: int) -> int:
    """A photo's label: its correction, if its content has one, else the label of the class folder it is filed in."""
    return LABEL_CORRECTIONS.get(digest, (filed_as,))[0]


def folder_label(path: Path) -> int | None:
    """The label of the nearest class folder above ``path``; None if no class folder is."""
    return next((CLASS_FOLDERS[folder.name] for folder in path.parents if folder.name in CLASS_FOLDERS), None)


def corrections_applied(samples: list[Sample]) -> list[dict]:
    """The label corrections that changed one of these samples, for the model card."""
    return [{"file": s.path.as_posix(), "sha256": s.sha256, "label": "fire" if s.label else "nofire", "why": LABEL_CORRECTIONS[s.sha256][1]}
            for s in samples if s.sha256 in LABEL_CORRECTIONS and s.label != folder_label(s.path)]


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


def split(samples: list[Sample], val_fraction: float, seed: int, groups: dict[str, str] | None = None) -> tuple[list[Sample], list[Sample]]:
    """Deterministic split keyed on content hash and seed: a file's side never depends on other files,
    and copies of one file (already merged) can never straddle it. ``groups`` maps a file's hash to its
    group's key (see :func:`near_duplicate_groups`), so near-twins land on the same side too."""
    groups = groups or {}
    train, val = [], []
    for sample in samples:
        group = groups.get(sample.sha256, sample.sha256)
        key = hashlib.sha256(f"{seed}:{group}".encode()).digest()
        (val if int.from_bytes(key[:8], "big") / 2**64 < val_fraction else train).append(sample)
    return train, val


def hold_out(samples: list[Sample], sources: list[str]) -> tuple[list[Sample], list[Sample]]:
    """(kept, held out): whole sources set aside, never trained on and never used to pick the threshold,
    so their metrics say how the model does on photos from a place it has never seen."""
    def within(sample: Sample, name: str) -> bool:
        return sample.source == name or sample.source.startswith(name.rstrip("/") + "/")

    unknown = [name for name in sources if not any(within(s, name) for s in samples)]
    if unknown:
        known = ", ".join(sorted({s.source for s in samples}))
        raise DataError(f"no source named {', '.join(unknown)}; the sources are {known}")

    def held(sample: Sample) -> bool:
        return any(within(sample, name) for name in sources)

    return [s for s in samples if not held(s)], [s for s in samples if held(s)]


def difference_hashes(images: np.ndarray) -> np.ndarray:
    """64-bit difference hash (dHash) of each decoded image: survives resizing and re-encoding."""
    from PIL import Image

    hashes = np.empty(len(images), dtype=np.uint64)
    weights = (1 << np.arange(64, dtype=np.uint64)).astype(np.uint64)
    for i, image in enumerate(images):
        grey = np.asarray(Image.fromarray(image).convert("L").resize((9, 8), Image.Resampling.BILINEAR), dtype=np.int16)
        bits = (grey[:, 1:] > grey[:, :-1]).reshape(-1).astype(np.uint64)
        hashes[i] = np.sum(bits * weights, dtype=np.uint64)
    return hashes


def _thumbnails(images: np.ndarray, side: int = 16) -> np.ndarray:
    from PIL import Image

    return np.stack([np.asarray(Image.fromarray(image).resize((side, side), Image.Resampling.BOX), dtype=np.int16) for image in images])


def near_duplicate_groups(samples: list[Sample], images: np.ndarray, max_distance: int = 6, max_mean_difference: float = 8.0) -> dict[str, str]:
    """Group resized or re-encoded copies; returns each file's hash -> its group's key (the smallest hash in it).

    Two images are copies when their difference hashes differ in at most ``max_distance`` of 64 bits *and* their
    16x16 colour thumbnails differ by at most ``max_mean_difference`` grey levels on average. The hash alone
    would join different photos of smooth scenes (skies, sunsets: a bright top over a dark horizon), and a split
    that puts half the sunsets in one group starves training of them."""
    hashes = difference_hashes(images)
    thumbs = _thumbnails(images)
    parent = list(range(len(samples)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for start in range(0, len(hashes), 512):
        distances = np.bitwise_count(hashes[start : start + 512, None] ^ hashes[None, :])
        for a, b in zip(*np.nonzero(distances <= max_distance)):
            a, b = int(a) + start, int(b)
            if a >= b or np.abs(thumbs[a] - thumbs[b]).mean() > max_mean_difference:
                continue
            a, b = root(a), root(b)
            if a != b:
                parent[max(a, b)] = min(a, b)
    members: dict[int, list[str]] = defaultdict(list)
    for i, sample in enumerate(samples):
        members[root(i)].append(sample.sha256)
    return {sha: min(group) for group in members.values() for sha in group}


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


@dataclass
class Decoded:
    """Every decodable photo at one size, split: near-duplicate groups are found over all photos (held-out
    sources too), so a held-out fold's split is the full run's split without that source."""

    train: list[Sample]
    val: list[Sample]
    held: list[Sample]
    images: dict[str, np.ndarray]  # by sha256

    def arrays(self, part: list[Sample]) -> tuple[np.ndarray, np.ndarray]:
        size = next(iter(self.images.values())).shape if self.images else (0, 0, 3)
        if not part:
            return np.zeros((0, *size), np.uint8), np.zeros(0, np.float32)
        return np.stack([self.images[s.sha256] for s in part]), np.asarray([s.label for s in part], dtype=np.float32)


def decode_and_split(samples: list[Sample], held: list[Sample], size: int, val_fraction: float, seed: int,
                     log=lambda message: None) -> Decoded:
    log(f"decoding {len(samples) + len(held)} unique images at {size}x{size} through the inference core")
    all_x, _, decoded = decode_all(samples + held, size)
    groups = near_duplicate_groups(decoded, all_x)
    log(f"{len(decoded)} images in {len(set(groups.values()))} near-duplicate groups")
    held_hashes = {s.sha256 for s in held}
    kept = [s for s in decoded if s.sha256 not in held_hashes]
    train, val = split(kept, val_fraction, seed, groups)
    return Decoded(train, val, [s for s in decoded if s.sha256 in held_hashes],
                   {s.sha256: x for s, x in zip(decoded, all_x)})
