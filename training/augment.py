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

- **Decoys** (off unless ``decoy_probability`` is set): fire's colours without fire, on *both* classes, so that
  warm colour is not evidence. One of three, each a kind of false alarm seen on everyday photos:
  a *warm object* (part of the photo repainted in a red-to-yellow hue, keeping its texture: a red sofa, a
  fire engine, orange decor), a *warm light* (a red or orange glow falling off from a point: a lamp, a red-lit
  room) and *night lights* (the scene dimmed, with small warm points of light: a street at night, string lights).
  A fire photo given a decoy is still a fire; a fire-free one is still fire-free. Measured over five seeds, they
  made models worse (more false alarms on unseen rooms, fewer unseen fires found: README, "Unseen sources"), so they
  are off.

- **Grey photos** (off unless ``grayscale_probability`` is set): a share of the photos of *both* classes loses its
  colour (then takes the white-balance shift like any other), so flame has to be told by its shape, brightness and
  smoke as well as by its colour, and a warm room in grey is still no fire.

Plus geometric and light photometric noise: flips, random crops (70 to 100 % of each side, resized back; the
recipe's ``crop_scale`` sets the smallest), brightness and contrast. No hue
rotation: an orange sky turned green is no longer a sunset. The crop comes first and the patch is pasted into
the cropped scene, so a pasted fire is always wholly in view when the label says fire.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

import numpy as np
from PIL import Image

from .options import CROP_SCALE  # a random crop covering 70-100 % of each side, resized back: zoom and shift

MIX_PROBABILITY = 0.35
WHITE_BALANCE_PROBABILITY = 0.8
WHITE_BALANCE_STRENGTH = 0.25  # red/blue gains drawn from 1 +/- this
PATCH_CROP = (0.6, 1.0)  # share of the other photo's side that is pasted, so a fire photo's flames come along
PATCH_SIDE = (0.3, 0.6)  # the pasted patch's side, as a share of the scene's
FEATHER = 0.15  # share of the patch's side over which its edges ramp to nothing
DECOY_PROBABILITY = 0.0  # off: measured worse (see the module docstring)
GRAYSCALE_PROBABILITY = 0.0  # off unless asked for
LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R BT.601, as Pillow's convert("L")
WARM_HUES = (0.0, 0.13)  # red to yellow-orange, as a share of the colour circle
DECOY_PATCH_SIDE = (0.2, 0.6)
NIGHT_DIMMING = (0.2, 0.55)
NIGHT_LIGHTS = (8, 60)
BRIGHTNESS = 0.1 * 255.0
CONTRAST = (0.85, 1.15)


@dataclass(frozen=True)
class Recipe:
    mix_probability: float = MIX_PROBABILITY
    white_balance_probability: float = WHITE_BALANCE_PROBABILITY
    white_balance_strength: float = WHITE_BALANCE_STRENGTH
    decoy_probability: float = DECOY_PROBABILITY
    grayscale_probability: float = GRAYSCALE_PROBABILITY
    crop_scale: float = CROP_SCALE  # the smallest share of each side a crop keeps

    @classmethod
    def of(cls, settings: Mapping) -> "Recipe":
        """The recipe named in ``settings`` (parsed options, or a fit's ``run.json`` settings), by field name: a field
        absent or None there keeps its default, as fits from before its option existed had."""
        return cls(**{f.name: settings[f.name] for f in fields(cls) if settings.get(f.name) is not None})


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


def warm_tint(rng: np.random.Generator) -> np.ndarray:
    """RGB (0-1) of a random saturated red, orange or amber: the colours of flame, and of much that is not."""
    hue = rng.uniform(*WARM_HUES) * 6.0  # within the first sextant of HSV: red rising to yellow
    saturation = rng.uniform(0.55, 1.0)
    return np.array([1.0, 1.0 - saturation * (1.0 - hue), 1.0 - saturation], dtype=np.float32)


def warm_object(scene: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Part of the scene repainted in a warm hue, keeping its light and texture, with feathered edges."""
    size = scene.shape[0]
    side = max(2, int(size * rng.uniform(*DECOY_PATCH_SIDE)))
    top, left = (int(v) for v in rng.integers(0, size - side + 1, size=2))
    window = scene[top:top + side, left:left + side].astype(np.float32)
    luminance = window @ LUMA
    luminance *= rng.uniform(0.8, 1.4) * 255.0 / max(1.0, float(luminance.max()))  # a bright paint, never a black one
    painted = luminance[:, :, None] * warm_tint(rng)
    mask = feathered_mask(side)
    out = scene.copy()
    out[top:top + side, left:left + side] = np.rint(np.clip(window * (1.0 - mask) + painted * mask, 0, 255)).astype(np.uint8)
    return out


def warm_light(scene: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A red or orange light falling on the scene from a point, strongest there and fading with distance."""
    size = scene.shape[0]
    cy, cx = rng.uniform(0, size, size=2)
    reach = rng.uniform(0.4, 1.2) * size
    steps = np.arange(size, dtype=np.float32)
    falloff = np.exp(-((steps[:, None] - cy) ** 2 + (steps[None, :] - cx) ** 2) / (2 * reach ** 2))[:, :, None]
    strength = rng.uniform(0.5, 1.0)
    gains = 1.0 + strength * falloff * (warm_tint(rng) * 1.6 - 1.0)  # up to 1.6 x on red, down on blue
    return np.rint(np.clip(scene * gains, 0, 255)).astype(np.uint8)


def night_lights(scene: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The scene dimmed as at night, with small warm points of light: street lamps, windows, string lights."""
    size = scene.shape[0]
    out = scene.astype(np.float32) * rng.uniform(*NIGHT_DIMMING)
    for _ in range(int(rng.integers(*NIGHT_LIGHTS))):
        sigma = rng.uniform(0.6, 2.5)
        reach = int(np.ceil(3 * sigma))
        cy, cx = (int(v) for v in rng.integers(0, size, size=2))
        offsets = np.arange(-reach, reach + 1, dtype=np.float32)
        spot = np.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / (2 * sigma ** 2))[:, :, None]
        colour = 255.0 * (warm_tint(rng) if rng.random() < 0.7 else np.ones(3, np.float32))
        top, left = max(0, cy - reach), max(0, cx - reach)
        bottom, right = min(size, cy + reach + 1), min(size, cx + reach + 1)
        out[top:bottom, left:right] += 1.5 * colour * spot[top - cy + reach:bottom - cy + reach, left - cx + reach:right - cx + reach]
    return np.rint(np.clip(out, 0, 255)).astype(np.uint8)


DECOYS = (warm_object, warm_light, night_lights)


def grey(scene: np.ndarray) -> np.ndarray:
    """The photo without its colour: its luminance in all three channels (uint8 in and out)."""
    luminance = np.rint(scene.astype(np.float32) @ LUMA).astype(np.uint8)
    return np.repeat(luminance[:, :, None], 3, axis=2)


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
    scene = crop_resize(image, _crop_box(rng, size, (recipe.crop_scale, 1.0)), size)
    if rng.random() < 0.5:
        scene = scene[:, ::-1]
    if rng.random() < recipe.mix_probability:
        scene, label = paste(scene, label, other, other_label, rng)
    if recipe.decoy_probability and rng.random() < recipe.decoy_probability:
        scene = DECOYS[int(rng.integers(len(DECOYS)))](scene, rng)
    if recipe.grayscale_probability and rng.random() < recipe.grayscale_probability:
        scene = grey(scene)
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
