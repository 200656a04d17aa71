"""Augmentation in tf.data (not in the model, so the exported model stays lean).

Two augmentations teach the model what a fire is, rather than what colour a fire photo has:

- **White balance** shifts (warmer or cooler) on *both* classes: a warm-lit room stays "no fire", a
  blue-tinted blaze stays "fire", so warm colour alone stops being evidence.
- **Scene mixing**: with probability ``mix_probability`` most of another training photo, shrunk to
  30-60 % of the side, is pasted into the scene with feathered edges. The label is fire if either photo
  shows fire. Fires pasted into kitchens and bedrooms break the "interior means no fire" shortcut that
  outdoor-only fire data teaches; fire-free photos are pasted as often, so a pasted patch by itself is no
  evidence either way.

Plus geometric and light photometric noise: flips, random crops, brightness and contrast. No hue
rotation: an orange sky turned green is no longer a sunset.
"""

from __future__ import annotations

import tensorflow as tf

MIX_PROBABILITY = 0.35
WHITE_BALANCE_PROBABILITY = 0.8
WHITE_BALANCE_STRENGTH = 0.25  # red/blue gains drawn from 1 +/- this


def white_balance(image: tf.Tensor, strength: float = WHITE_BALANCE_STRENGTH) -> tf.Tensor:
    """A random colour-temperature shift: red up and blue down (warmer) or the reverse (cooler)."""
    shift = tf.random.uniform([], -strength, strength)
    green = tf.random.uniform([], -strength / 4, strength / 4)  # a little tint, as camera white balance has
    gains = tf.stack([1.0 + shift, 1.0 + green, 1.0 - shift])
    return tf.clip_by_value(image * gains, 0.0, 255.0)


def _feathered_mask(side: tf.Tensor, feather: float = 0.15) -> tf.Tensor:
    """A (side, side, 1) mask that is 1 inside and ramps to 0 over the outer ``feather`` of each edge,
    so a pasted patch has no hard seam for the model to key on."""
    steps = tf.cast(tf.range(side), tf.float32)
    distance = tf.minimum(steps + 1.0, tf.cast(side, tf.float32) - steps)
    ramp = tf.clip_by_value(distance / tf.maximum(1.0, feather * tf.cast(side, tf.float32)), 0.0, 1.0)
    return (ramp[:, None] * ramp[None, :])[:, :, None]


def paste(scene: tf.Tensor, label: tf.Tensor, other: tf.Tensor, other_label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Most of ``other`` (60-100 % of each side, so a fire photo's flames come along), shrunk to
    30-60 % of the scene's side, pasted at a random place. Fire if either photo shows fire."""
    size = tf.shape(scene)[0]
    full = tf.cast(size, tf.float32)
    crop = tf.cast(full * tf.random.uniform([], 0.6, 1.0), tf.int32)
    patch = tf.image.random_crop(other, tf.stack([crop, crop, 3]))
    side = tf.cast(full * tf.random.uniform([], 0.3, 0.6), tf.int32)
    patch = tf.image.resize(patch, tf.stack([side, side]), method="bilinear")
    top = tf.random.uniform([], 0, size - side + 1, dtype=tf.int32)
    left = tf.random.uniform([], 0, size - side + 1, dtype=tf.int32)
    padding = tf.stack([[top, size - side - top], [left, size - side - left], [0, 0]])
    mask = tf.pad(_feathered_mask(side), padding)
    patch = tf.pad(patch, padding)
    return scene * (1.0 - mask) + patch * mask, tf.maximum(label, other_label)


def augment(image: tf.Tensor, label: tf.Tensor, other: tf.Tensor, other_label: tf.Tensor,
            mix_probability: float = MIX_PROBABILITY,
            white_balance_probability: float = WHITE_BALANCE_PROBABILITY) -> tuple[tf.Tensor, tf.Tensor]:
    size = tf.shape(image)[0]
    image = tf.cast(image, tf.float32)
    image, label = tf.cond(
        tf.random.uniform([]) < mix_probability,
        lambda: paste(image, label, tf.cast(other, tf.float32), other_label),
        lambda: (image, label),
    )
    image = tf.cond(tf.random.uniform([]) < white_balance_probability, lambda: white_balance(image), lambda: image)
    image = tf.image.random_flip_left_right(image)
    # Random crop covering 70-100 % of each side, resized back: zoom and shift.
    scale = tf.random.uniform([], 0.7, 1.0)
    crop = tf.cast(tf.cast(size, tf.float32) * scale, tf.int32)
    image = tf.image.random_crop(image, tf.stack([crop, crop, 3]))
    image = tf.image.resize(image, tf.stack([size, size]), method="bilinear")
    image = tf.image.random_brightness(image, max_delta=0.1 * 255.0)
    image = tf.image.random_contrast(image, 0.85, 1.15)
    return tf.clip_by_value(image, 0.0, 255.0), label


def datasets(train_x, train_y, val_x, val_y, batch_size: int, seed: int,
             mix_probability: float = MIX_PROBABILITY,
             white_balance_probability: float = WHITE_BALANCE_PROBABILITY) -> tuple[tf.data.Dataset, tf.data.Dataset]:
    def shuffled(offset: int) -> tf.data.Dataset:
        return tf.data.Dataset.from_tensor_slices((train_x, train_y)).shuffle(
            len(train_x), seed=seed + offset, reshuffle_each_iteration=True
        )

    # Each scene is paired with another photo drawn from an independently shuffled copy of the training set.
    train = (
        tf.data.Dataset.zip(shuffled(0), shuffled(1))
        .map(lambda a, b: augment(a[0], a[1], b[0], b[1], mix_probability, white_balance_probability), num_parallel_calls=tf.data.AUTOTUNE)
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )
    val = tf.data.Dataset.from_tensor_slices((tf.cast(val_x, tf.float32), val_y)).batch(batch_size).prefetch(tf.data.AUTOTUNE)
    return train, val
