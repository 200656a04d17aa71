"""Model architectures. Every model takes uint8-range RGB (0..255) and embeds its own normalisation,
so serving only decodes and resizes."""

from __future__ import annotations

from . import quiet

quiet.import_keras()
import keras  # noqa: E402  (after the quiet import above)
from keras import layers  # noqa: E402

from .options import BACKBONES, BATCH_NORM_MOMENTUM, DEFAULT_SIZES  # noqa: F401  re-exported: the names predate training.options


class WeightsUnavailable(RuntimeError):
    pass


@keras.saving.register_keras_serializable(package="firewatch")
class HorizontalFlip(layers.Layer):
    """Mirror images left to right (deterministic, unlike RandomFlip). Registered, so a saved model loads
    wherever ``training.backbones`` is imported; LiteRT runs it as a builtin REVERSE op."""

    def call(self, images):
        return keras.ops.flip(images, axis=2)


def with_flip_averaging(model: keras.Model) -> keras.Model:
    """Test-time augmentation inside the model: the mean of the verdicts on the photo and its mirror image.
    Serving stays one call of one file, and the threshold is chosen on exactly what serving computes."""
    inputs = keras.Input(model.input_shape[1:], name="image")
    plain = model(inputs)
    mirrored = model(HorizontalFlip(name="mirror")(inputs))
    outputs = layers.Average(name="fire_probability")([plain, mirrored])
    return keras.Model(inputs, outputs, name=f"{model.name}_flip_averaged")


def ensemble(members: list[keras.Model]) -> keras.Model:
    """The mean of several networks' verdicts on the same photo (networks of one recipe fitted with different seeds),
    as one model: serving stays one call of one file, and the threshold is chosen on exactly what it computes."""
    inputs = keras.Input(members[0].input_shape[1:], name="image")
    verdicts = [keras.Model(m.inputs, m.output, name=f"member_{i}")(inputs) for i, m in enumerate(members)]  # unique names
    outputs = layers.Average(name="fire_probability")(verdicts)
    return keras.Model(inputs, outputs, name=f"{members[0].name}_ensemble_of_{len(members)}")


def _separable_block(x, filters: int, stride: int, bn_momentum: float):
    """Depthwise 3x3 + pointwise 1x1, MobileNet style: cheap on a CPU, enough for colour and texture."""
    x = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization(momentum=bn_momentum)(x)
    x = layers.ReLU(6.0)(x)
    x = layers.Conv2D(filters, 1, use_bias=False)(x)
    x = layers.BatchNormalization(momentum=bn_momentum)(x)
    return layers.ReLU(6.0)(x)


def compact(size: int, width: float = 1.0, dropout: float = 0.3, bn_momentum: float = BATCH_NORM_MOMENTUM) -> keras.Model:
    """A small CNN trained from scratch: strided stem, 7 separable blocks, about 35 M multiply-adds at 128 px.

    ``bn_momentum`` is how slowly the batch-norm statistics used outside training (validation, serving) follow the
    batches; it changes no training step."""
    channels = lambda n: max(8, int(n * width))  # noqa: E731
    inputs = keras.Input((size, size, 3), name="image")
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="normalise")(inputs)
    x = layers.Conv2D(channels(24), 3, strides=2, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization(momentum=bn_momentum)(x)
    x = layers.ReLU(6.0)(x)
    for filters, stride in ((48, 1), (64, 2), (64, 1), (128, 2), (128, 1), (256, 2), (256, 1)):
        x = _separable_block(x, channels(filters), stride, bn_momentum)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(1, activation="sigmoid", name="fire_probability")(x)
    return keras.Model(inputs, outputs, name="firewatch_compact")


def xception(size: int, weights: str | None, dropout: float = 0.3, bn_momentum: float = BATCH_NORM_MOMENTUM) -> keras.Model:
    """The original study's backbone. ``weights='imagenet'`` downloads ImageNet weights (needs internet)."""
    try:
        # Pooled here rather than inside the base, so the export can reach the last feature map (the fire map).
        base = keras.applications.Xception(include_top=False, weights=weights, input_shape=(size, size, 3))
    except Exception as exc:  # keras raises a bare Exception("URL fetch failure ...") offline
        raise WeightsUnavailable(
            f"could not load {weights} weights for Xception ({exc}). They are downloaded on first use and need "
            "internet access; train with --weights none, or place xception_weights_tf_dim_ordering_tf_kernels_notop.h5 "
            "in ~/.keras/models/."
        ) from None
    for layer in base.layers:  # Keras builds them; the momentum is read only once a fit is traced
        if isinstance(layer, layers.BatchNormalization):
            layer.momentum = bn_momentum
    inputs = keras.Input((size, size, 3), name="image")
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="normalise")(inputs)
    x = layers.GlobalAveragePooling2D()(base(x))
    x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(1, activation="sigmoid", name="fire_probability")(x)
    return keras.Model(inputs, outputs, name="firewatch_xception")


def build(backbone: str, size: int, weights: str | None, width: float = 1.0,
          bn_momentum: float = BATCH_NORM_MOMENTUM) -> keras.Model:
    if backbone == "compact":
        if weights:
            raise WeightsUnavailable("the compact backbone has no pretrained weights; use --weights none")
        return compact(size, width=width, bn_momentum=bn_momentum)
    if backbone == "xception":
        return xception(size, weights, bn_momentum=bn_momentum)
    raise ValueError(f"unknown backbone {backbone!r}; choose one of {', '.join(BACKBONES)}")
