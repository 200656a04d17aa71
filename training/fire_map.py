"""The served model's second output: a coarse map of where in the photo the network sees fire.

A class activation map (Zhou et al., 2016, "Learning Deep Features for Discriminative Localization"), computed in
the same forward pass as the verdict. The networks here end in global average pooling and one sigmoid unit:

    logit = b + w . mean_ij f_ij = mean_ij (b + w . f_ij)

where f_ij is the last feature map's vector at cell (i, j). So ``z_ij = b + w . f_ij`` is each cell's share of the
fire logit (their mean *is* the logit), and ``sigmoid(z_ij)`` reads as 0..1 fire evidence per cell. With flip
averaging, the mirrored pass's cell logits are mirrored back before the two passes' logits are averaged; for an
ensemble (several networks, their verdicts averaged), each network's cell logits are averaged.

The probability output is built from the very layers (and weights) of the trained model, so it stays what the
single-output model computed; nothing is retrained.
"""

from __future__ import annotations

import numpy as np

from inference import CELL_LOGITS_OUTPUT, MAP_OUTPUT, PROBABILITY_OUTPUT

from . import quiet

quiet.import_keras()
import keras  # noqa: E402  (after the quiet import above)
from keras import layers  # noqa: E402

from .backbones import HorizontalFlip  # noqa: E402
DEFINITION = (
    "sigmoid(b + w . f_ij) per cell of the last feature map, where w, b are the final dense layer's weights and bias "
    "for the fire logit and f_ij is the feature vector of cell (i, j), before global average pooling (the mean of "
    "the cell logits is the photo's logit); with flip averaging, the mirrored pass's cell logits are mirrored back "
    "and the two passes' logits averaged before the sigmoid; for an ensemble, the networks' cell logits are averaged "
    "before the sigmoid. Row 0 is the top of the photo, column 0 its left."
)


class MapUnsupported(ValueError):
    """The network does not end in global average pooling and one sigmoid unit, so it has no class activation map."""


def _passes(model: keras.Model) -> list[tuple[keras.Model, bool]]:
    """The single-pass networks whose verdicts ``model`` averages, each with whether it sees the mirrored photo:
    one network (plain), one network twice (flip averaging), or several networks once each (an ensemble)."""
    nested = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    averaged = isinstance(model.layers[-1], layers.Average)
    if averaged and any(isinstance(layer, HorizontalFlip) for layer in model.layers) and len(nested) == 1:
        return [(nested[0], False), (nested[0], True)]
    if averaged and len(nested) > 1 and len(model.layers) == len(nested) + 2:  # input, members, mean
        return [(network, False) for network in nested]
    return [(model, False)]


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
    passes = _passes(model)
    inputs = keras.Input(model.input_shape[1:], name="image")
    networks = list(dict.fromkeys(network for network, _ in passes))  # flip averaging runs one network twice
    heads = {network: _Head(network, i if len(networks) > 1 else None) for i, network in enumerate(networks)}
    probabilities, logits = [], []
    for network, mirrored in passes:
        head = heads[network]
        probability, cell = head(HorizontalFlip(name=f"mirror{head.suffix}")(inputs) if mirrored else inputs)
        probabilities.append(probability)
        logits.append(HorizontalFlip(name=f"unmirror{head.suffix}")(cell) if mirrored else cell)
    for head in heads.values():
        head.set_cell_weights()
    rows, columns = logits[0].shape[1:3]
    if len(passes) > 1:
        probability = layers.Average(name="mean_probability")(probabilities)
        logit_map = layers.Average(name="mean_cell_logits")(logits)
    else:
        probability, logit_map = probabilities[0], logits[0]
    evidence = layers.Activation("sigmoid", name="cell_evidence")(logit_map)
    fire_map = layers.Reshape((rows, columns), name="map_grid")(evidence)
    # The outputs are named by their keys (the network's own dense layer already bears the name fire_probability).
    return keras.Model(inputs, {PROBABILITY_OUTPUT: probability, MAP_OUTPUT: fire_map}, name=f"{model.name}_with_map")


def ensemble_fits(model: keras.Model) -> list[keras.Model]:
    """The networks an ensemble averages, in order; [] for any other model (one network, flip averaging)."""
    passes = _passes(model)
    return [network for network, _ in passes] if len(passes) > 1 and not any(m for _, m in passes) else []


def with_cell_logits(network: keras.Model) -> keras.Model:
    """One network alone, as a cascade runs it (inference.cascade): its probability and its cell logits
    (``fire_cell_logits``, (n, rows, columns): the fire map before the sigmoid, which a cascade averages over fits)."""
    head = _Head(network, 0)
    inputs = keras.Input(network.input_shape[1:], name="image")
    probability, cells = head(inputs)
    head.set_cell_weights()
    rows, columns = cells.shape[1:3]
    cell_logits = layers.Reshape((rows, columns), name="cell_grid")(cells)
    return keras.Model(inputs, {PROBABILITY_OUTPUT: probability, CELL_LOGITS_OUTPUT: cell_logits}, name=f"{network.name}_alone")


class _Head:
    """One network's probability and cell logits from one pass. A single network's own pooling and dense layers sit in
    the served graph, under the names they always had; an ensemble's networks are each one nested model
    (``member_i``), since their layers share names."""

    def __init__(self, network: keras.Model, index: int | None):
        self.suffix = "" if index is None else f"_{index}"
        self.pooling, self.dense = _head(network)
        self.member = index is not None
        outputs = [network.output, self.pooling.input] if self.member else self.pooling.input
        self.features = keras.Model(network.inputs, outputs, name=f"member_{index}" if self.member else "features")
        # The dense layer applied to each cell: a 1x1 convolution with its weights, without the sigmoid.
        self.cell_logits = layers.Conv2D(1, 1, name=f"cell_logits{self.suffix}")

    def __call__(self, images):
        if self.member:
            probability, seen = self.features(images)
        else:
            seen = self.features(images)
            probability = self.dense(self.pooling(seen))
        return probability, self.cell_logits(seen)

    def set_cell_weights(self) -> None:
        kernel, bias = self.dense.get_weights()
        self.cell_logits.set_weights([kernel.reshape(1, 1, -1, 1), np.asarray(bias).reshape(1)])


def grid_of(model: keras.Model) -> list[int]:
    """[rows, columns] of a :func:`with_fire_map` model's map."""
    return [int(n) for n in model.output[MAP_OUTPUT].shape[1:3]]
