"""The served model's second output: a coarse map of where in the photo the network sees fire.

A class activation map (Zhou et al., 2016, "Learning Deep Features for Discriminative Localization"), computed in
the same forward pass as the verdict. The networks here end in global average pooling and one sigmoid unit:

    logit = b + w . mean_ij f_ij = mean_ij (b + w . f_ij)

where f_ij is the last feature map's vector at cell (i, j). So ``z_ij = b + w . f_ij`` is each cell's share of the
fire logit (their mean *is* the logit), and ``sigmoid(z_ij)`` reads as 0..1 fire evidence per cell. With flip
averaging, the mirrored pass's cell logits are mirrored back before the two passes' logits are averaged.

The probability output is built from the very layers (and weights) of the trained model, so it stays what the
single-output model computed; nothing is retrained.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from .backbones import HorizontalFlip

PROBABILITY_OUTPUT = "fire_probability"
MAP_OUTPUT = "fire_map"
DEFINITION = (
    "sigmoid(b + w . f_ij) per cell of the last feature map, where w, b are the final dense layer's weights and bias "
    "for the fire logit and f_ij is the feature vector of cell (i, j), before global average pooling (the mean of "
    "the cell logits is the photo's logit); with flip averaging, the mirrored pass's cell logits are mirrored back "
    "and the two passes' logits averaged before the sigmoid. Row 0 is the top of the photo, column 0 its left."
)


class MapUnsupported(ValueError):
    """The network does not end in global average pooling and one sigmoid unit, so it has no class activation map."""


def _split_flip_averaging(model: keras.Model) -> tuple[keras.Model, bool]:
    """The single-pass network inside ``model``, and whether ``model`` averages it over the photo and its mirror."""
    flips = [layer for layer in model.layers if isinstance(layer, HorizontalFlip)]
    nested = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    if flips and len(nested) == 1 and isinstance(model.layers[-1], layers.Average):
        return nested[0], True
    return model, False


def _head(network: keras.Model) -> tuple[layers.GlobalAveragePooling2D, layers.Dense]:
    """The pooling layer and the final dense layer; only dropout may sit between them."""
    dense = network.layers[-1]
    if not (isinstance(dense, layers.Dense) and dense.units == 1 and dense.activation is keras.activations.sigmoid):
        raise MapUnsupported(f"{network.name} does not end in one sigmoid unit, so it has no fire map")
    for layer in reversed(network.layers[:-1]):
        if isinstance(layer, layers.GlobalAveragePooling2D):
            return layer, dense
        if not isinstance(layer, layers.Dropout):
            break
    raise MapUnsupported(f"{network.name} does not pool its last feature map with GlobalAveragePooling2D before its "
                         "dense layer, so it has no fire map")


def with_fire_map(model: keras.Model) -> keras.Model:
    """A two-output model (``fire_probability``, ``fire_map``) over the same layers and weights as ``model``.

    ``fire_probability`` is (n, 1) as before; ``fire_map`` is (n, rows, columns), rows and columns those of the last
    feature map (10 x 10 for the compact network at 160 px). Raises :class:`MapUnsupported` for other heads.
    """
    network, flip_averaged = _split_flip_averaging(model)
    pooling, dense = _head(network)
    features = keras.Model(network.inputs, pooling.input, name="features")
    kernel, bias = dense.get_weights()
    # The dense layer applied to each cell: a 1x1 convolution with its weights, without the sigmoid.
    cell_logits = layers.Conv2D(1, 1, name="cell_logits")
    rows, columns = features.output.shape[1:3]

    inputs = keras.Input(model.input_shape[1:], name="image")
    passes = [features(inputs)]
    if flip_averaged:
        passes.append(features(HorizontalFlip(name="mirror")(inputs)))
    probabilities = [dense(pooling(f)) for f in passes]
    logits = [cell_logits(f) for f in passes]
    if flip_averaged:
        probability = layers.Average(name="mean_probability")(probabilities)
        logit_map = layers.Average(name="mean_cell_logits")([logits[0], HorizontalFlip(name="unmirror")(logits[1])])
    else:
        probability = probabilities[0]
        logit_map = logits[0]
    evidence = layers.Activation("sigmoid", name="cell_evidence")(logit_map)
    fire_map = layers.Reshape((rows, columns), name="map_grid")(evidence)
    cell_logits.set_weights([kernel.reshape(1, 1, -1, 1), np.asarray(bias).reshape(1)])
    # The outputs are named by their keys (the network's own dense layer already bears the name fire_probability).
    return keras.Model(inputs, {PROBABILITY_OUTPUT: probability, MAP_OUTPUT: fire_map}, name=f"{model.name}_with_map")


def grid_of(model: keras.Model) -> list[int]:
    """[rows, columns] of a :func:`with_fire_map` model's map."""
    return [int(n) for n in model.output[MAP_OUTPUT].shape[1:3]]
