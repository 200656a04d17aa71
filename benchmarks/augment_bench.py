"""Training augmentation: how many photos one CPU core prepares per second, as shipped against the previous pipeline.

On a lent GPU machine the fits wait for their batches: the network at 160 px is small work for the GPU, so the CPU
cores that crop, paste and recolour photos set how many fits a short lease holds. Both pipelines here draw the same
random numbers for the same photos (the default recipe: crops, flips, scene mixing, white balance, light noise):

- "shipped": ``training.augment`` as it is, Pillow doing the pixel work (crop and resize, feathered pasting, one
  lookup table per channel for the colour shift), whole pixel values out;
- "previous": the same steps as the code did them before, each step a numpy array, pasting and recolouring in
  float32 over every pixel.

Rows: the median of several rounds over real photos from the shared datasets, decoded at 160 px through the core.
The verdict also checks that both give the same labels and pixels within rounding.

Run alone: ``python -m benchmarks augment``.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from training import augment

ROOT = Path(__file__).resolve().parent.parent
DATASETS = Path(os.environ.get("FIREWATCH_DATASETS", ROOT.parent / "shared" / "datasets"))
SIZE = 160  # the served model's input size
PHOTOS = 256
BATCH = 32
ROUNDS = 5
EPOCH_PHOTOS = 3943  # the served model's training split
TARGET_SPEEDUP = 1.3
ROUNDING = 2.0  # largest pixel difference allowed between the two pipelines: rounding, not another augmentation


def _photos() -> np.ndarray:
    from inference import decode_image

    paths = sorted(p for p in DATASETS.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not paths:
        raise SystemExit(f"the real photos are not at {DATASETS} (set FIREWATCH_DATASETS)")
    picked = paths[:: max(1, len(paths) // PHOTOS)][:PHOTOS]
    return np.stack([decode_image(path.read_bytes(), (SIZE, SIZE)) for path in picked])


def _resized(image: np.ndarray, box: tuple[int, int, int, int], side: int) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((side, side), Image.Resampling.BILINEAR, box=box))


def previous_batch(images, labels, others, other_labels, rng, recipe=augment.Recipe()):
    """The pipeline before Pillow did the pixel work (same random draws, in the same order)."""
    scenes, gains, offsets, out_labels = [], [], [], []
    for image, label, other, other_label in zip(images, labels, others, other_labels):
        size = image.shape[0]
        scene = _resized(image, augment._crop_box(rng, size, augment.CROP_SCALE), size)
        if rng.random() < 0.5:
            scene = scene[:, ::-1]
        if rng.random() < recipe.mix_probability:
            side = max(2, int(size * rng.uniform(*augment.PATCH_SIDE)))
            patch = _resized(other, augment._crop_box(rng, other.shape[0], augment.PATCH_CROP), side)
            top, left = (int(v) for v in rng.integers(0, size - side + 1, size=2))
            mask, scene = augment.feathered_mask(side), scene.copy()
            window = scene[top:top + side, left:left + side]
            window[:] = np.rint(window * (1.0 - mask) + patch.astype(np.float32) * mask).astype(np.uint8)
            label = max(float(label), float(other_label))
        gain, offset = augment.colour_transform(scene, rng, recipe)
        scenes.append(scene), gains.append(gain), offsets.append(offset), out_labels.append(float(label))
    x = np.stack(scenes).astype(np.float32)
    x *= np.stack(gains)[:, None, None, :]
    x += np.stack(offsets)[:, None, None, :]
    return np.clip(x, 0.0, 255.0, out=x), np.asarray(out_labels, np.float32)


PIPELINES = (("shipped", augment.augment_batch), ("previous", previous_batch))


def _batches(photos: np.ndarray):
    labels = (np.arange(len(photos)) % 2).astype(np.float32)
    partners = np.random.default_rng(0).permutation(len(photos))
    for start in range(0, len(photos) - BATCH + 1, BATCH):
        rows = slice(start, start + BATCH)
        yield start, photos[rows], labels[rows], photos[partners[rows]], labels[partners[rows]]


def _round_ms(function, photos: np.ndarray) -> float:
    started = time.perf_counter()
    for start, *batch in _batches(photos):
        function(*batch, np.random.default_rng((1337, start)))
    return (time.perf_counter() - started) * 1000.0 / len(photos)


def run() -> list[dict]:
    photos = _photos()
    print(f"  {len(photos)} photos at {SIZE} px, {ROUNDS} rounds per pipeline, alternating ...", file=sys.stderr, flush=True)
    times = {name: [] for name, _ in PIPELINES}
    for _ in range(ROUNDS):  # alternating, so a slower spell of the machine falls on both
        for name, function in PIPELINES:
            times[name].append(_round_ms(function, photos))
    largest_difference, same_labels = 0.0, True
    for start, *batch in _batches(photos):
        (x, y), (x0, y0) = (function(*batch, np.random.default_rng((1337, start))) for _, function in PIPELINES)
        largest_difference = max(largest_difference, float(np.abs(x - x0).max()))
        same_labels &= bool(np.array_equal(y, y0))
    rows = []
    for name, _ in PIPELINES:
        ms = statistics.median(times[name])
        rows.append({"pipeline": name, "ms_per_photo": ms, "photos_per_s": 1000.0 / ms,
                     "epoch_s": EPOCH_PHOTOS * ms / 1000.0, "largest_difference": largest_difference,
                     "same_labels": same_labels})
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| pipeline (one core) | ms per photo | photos/s | one epoch of 3,943 photos (s) |",
             "|---|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row['pipeline']} | {row['ms_per_photo']:.3f} | {row['photos_per_s']:.0f} | {row['epoch_s']:.1f} |")
    return "\n".join(lines)


def verdicts(rows: list[dict]) -> list[str]:
    shipped, previous = rows
    speedup = previous["ms_per_photo"] / shipped["ms_per_photo"]
    same = shipped["same_labels"] and shipped["largest_difference"] <= ROUNDING
    return [
        f"{'PASS' if speedup >= TARGET_SPEEDUP else 'MISS'}: shipped prepares {speedup:.2f}x the photos per second "
        f"of the previous pipeline (target {TARGET_SPEEDUP}x)",
        f"{'PASS' if same else 'MISS'}: the same augmentation: labels {'equal' if shipped['same_labels'] else 'DIFFER'}, "
        f"largest pixel difference {shipped['largest_difference']:.2f} of 255 (rounding to whole values; at most {ROUNDING})",
    ]


if __name__ == "__main__":
    table = run()
    print(markdown(table))
    print("\n".join(verdicts(table)))
