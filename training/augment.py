"""Augmentation in tf.data (not in the model, so the exported model stays lean).

Fire-safe: flips, random crops and light brightness/contrast. No hue or saturation shifts:
an orange sky turned grey, or a grey room turned orange, changes the class."""

from __future__ import annotations

import tensorflow as tf


def augment(image: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    size = tf.shape(image)[0]
    image = tf.cast(image, tf.float32)
    image = tf.image.random_flip_left_right(image)
    # Random crop covering 70-100 % of each side, resized back: zoom and shift.
    scale = tf.random.uniform([], 0.7, 1.0)
    crop = tf.cast(tf.cast(size, tf.float32) * scale, tf.int32)
    image = tf.image.random_crop(image, tf.stack([crop, crop, 3]))
    image = tf.image.resize(image, tf.stack([size, size]), method="bilinear")
    image = tf.image.random_brightness(image, max_delta=0.1 * 255.0)
    image = tf.image.random_contrast(image, 0.85, 1.15)
    return tf.clip_by_value(image, 0.0, 255.0), label


def datasets(train_x, train_y, val_x, val_y, batch_size: int, seed: int) -> tuple[tf.data.Dataset, tf.data.Dataset]:
    train = (
        tf.data.Dataset.from_tensor_slices((train_x, train_y))
        .shuffle(len(train_x), seed=seed, reshuffle_each_iteration=True)
        .map(augment, num_parallel_calls=tf.data.AUTOTUNE)
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )
    val = tf.data.Dataset.from_tensor_slices((tf.cast(val_x, tf.float32), val_y)).batch(batch_size).prefetch(tf.data.AUTOTUNE)
    return train, val
