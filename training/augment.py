"""Augmentation of training batches, in numpy and Pillow: no TensorFlow, so the same code feeds a fit on any Keras
backend (TensorFlow on a CPU here, JAX on a lent GPU) and the exported model stays lean.

Two augmentations teach the model what a fire is, rather than what colour a fire photo has:

- **White balance** shifts (warmer or cooler) on *both* classes: a warm-lit room stays "no fire", a
  blue-tinted blaze stays "fire", so warm colour alone stops being evidence.
- **Scene mixing**: with probability ``mix_probability`` most of another training photo, shrunk to
  30-60 % of the side, is pasted into the scene with feathered edges. The label is fire if either photo
  shows fire. Fires pasted into kitchens and bedrooms break the "interior means no fire" shortcut that
  outdoor-only fire data teaches; fire-free photos are pasted as often, so a pasted patch by itself is no
  evidence either way.

Plus geometric and light photometric noise: flips, random crops, brightness and contrast. No hue
rotation: an orange sky turned green is no longer a sunset. The crop comes first and the patch is pasted into
the cropped scene, so a pasted fire is always wholly in view when the label says fire.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

MIX_PROBABILITY = 0.35
WHITE_BALANCE_PROBABILITY = 0.8
WHITE_BALANCE_STRENGTH = 0.25  # red/blue gains drawn from 1 +/- this
CROP_SCALE = (0.7, 1.0)  # a random crop covering 70-100 % of each side, resized back: zoom and shift
PATCH_CROP = (0.6, 1.0)  # share of the other photo's side that is pasted, so a fire photo's flames come along
PATCH_SIDE = (0.3, 0.6)  # the pasted patch's side, as a share of the scene's
FEATHER = 0.15  # share of the patch's side over which its edges ramp to nothing
BRIGHTNESS = 0.1 * 255.0
CONTRAST = (0.85, 1.15)


@dataclass(frozen=True)
class Recipe:
    mix_probability: float = MIX_PROBABILITY
    white_balance_probability: float = WHITE_BALANCE_PROBABILITY
    white_balance_strength: float = WHITE_BALANCE_STRENGTH


def white_balance_gains(rng: np.random.Generator, strength: float = WHITE_BALANCE_STRENGTH) -> np.ndarray:
    """Red, green and blue gains of a random colour-temperature shift: red up and blue down (warmer) or the
    reverse (cooler), and a little green tint, as camera white balance has."""
    shift = rng.uniform(-strength, strength)
    green = rng.uniform(-strength / 4, strength / 4)
    return np.array([1.0 + shift, 1.0 + green, 1.0 - shift], dtype=np.float32)


def feathered_mask(side: int, feather: float = FEATHER) -> np.ndarray:
    """A (side, side, 1) mask that is 1 inside and ramps to 0 over the outer ``feather`` of each edge,
    so a pasted patch has no hard seam for the model to key on."""
    steps = np.arange(side, dtype=np.float32)
    distance = np.minimum(steps + 1.0, side - steps)
    ramp = np.clip(distance / max(1.0, feather * side), 0.0, 1.0)
    return (ramp[:, None] * ramp[None, :])[:, :, None]


def _crop_box(rng: np.random.Generator, size: int, scale: tuple[float, float]) -> tuple[int, int, int, int]:
    crop = max(1, int(size * rng.uniform(*scale)))
    top, left = rng.integers(0, size - crop + 1, size=2)
    return int(left), int(top), int(left) + crop, int(top) + crop


def crop_resize(image: np.ndarray, box: tuple[int, int, int, int], side: int) -> np.ndarray:
    """The ``box`` (left, top, right, bottom) of a uint8 image, resized bilinearly to ``side`` x ``side`` (uint8)."""
    return np.asarray(Image.fromarray(image).resize((side, side), Image.Resampling.BILINEAR, box=box))


def paste(scene: np.ndarray, label: float, other: np.ndarray, other_label: float,
          rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Most of ``other``, shrunk to 30-60 % of the scene's side, pasted at a random place with feathered edges
    (uint8 in and out). Fire if either photo shows fire."""
    size = scene.shape[0]
    side = max(2, int(size * rng.uniform(*PATCH_SIDE)))
    patch = crop_resize(other, _crop_box(rng, other.shape[0], PATCH_CROP), side).astype(np.float32)
    top, left = (int(v) for v in rng.integers(0, size - side + 1, size=2))
    mask = feathered_mask(side)
    mixed = scene.copy()
    window = mixed[top:top + side, left:left + side]
    window[:] = np.rint(window * (1.0 - mask) + patch * mask).astype(np.uint8)
    return mixed, max(label, other_label)


def colour_transform(scene: np.ndarray, rng: np.random.Generator, recipe: Recipe) -> tuple[np.ndarray, np.ndarray]:
    """White balance, brightness and contrast of one photo, folded into one gain and one offset per channel:
    contrast scales about the channel's mean after the shift, so ``out = x * gain + offset``."""
    gains = (white_balance_gains(rng, recipe.white_balance_strength) if rng.random() < recipe.white_balance_probability
             else np.ones(3, np.float32))
    brightness = rng.uniform(-BRIGHTNESS, BRIGHTNESS)
    contrast = rng.uniform(*CONTRAST)
    mean = scene[::4, ::4].reshape(-1, 3).mean(axis=0) * gains + brightness  # every 16th pixel: the centre, cheaply
    return gains * contrast, ((brightness - mean) * contrast + mean).astype(np.float32)


def augment(image: np.ndarray, label: float, other: np.ndarray, other_label: float, rng: np.random.Generator,
            recipe: Recipe = Recipe()) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
    """One training photo (uint8, square), cropped, flipped and perhaps given a pasted photo (``other``), still
    uint8; with the gain and offset per channel its colours get (see :func:`colour_transform`)."""
    size = image.shape[0]
    scene = crop_resize(image, _crop_box(rng, size, CROP_SCALE), size)
    if rng.random() < 0.5:
        scene = scene[:, ::-1]
    if rng.random() < recipe.mix_probability:
        scene, label = paste(scene, label, other, other_label, rng)
    gain, offset = colour_transform(scene, rng, recipe)
    return scene, label, gain, offset


def augment_batch(images: np.ndarray, labels: np.ndarray, others: np.ndarray, other_labels: np.ndarray,
                  rng: np.random.Generator, recipe: Recipe = Recipe()) -> tuple[np.ndarray, np.ndarray]:
    """A batch of uint8 photos, each paired with another photo that may be pasted in; float32 0-255 out."""
    done = [augment(x, float(y), o, float(oy), rng, recipe) for x, y, o, oy in zip(images, labels, others, other_labels)]
    scenes = np.stack([d[0] for d in done]).astype(np.float32)
    gains = np.stack([d[2] for d in done])[:, None, None, :]
    offsets = np.stack([d[3] for d in done])[:, None, None, :]
    scenes *= gains
    scenes += offsets
    return np.clip(scenes, 0.0, 255.0, out=scenes), np.asarray([d[1] for d in done], dtype=np.float32)
