"""Floating-point operations counted from a Keras model's layers (multiply-add = 2 FLOPs).

Only the layers that do the arithmetic are counted (dense, convolutions, transposed
convolutions); normalisation, activations and resizes are a few FLOPs per value
and are left out, as in the usual GAN cost tables.
"""

from __future__ import annotations

import numpy as np
from keras import layers


def _shape(tensor_shape) -> tuple:
    return tuple(int(d) for d in tensor_shape[1:])


def layer_flops(layer) -> int:
    """Forward FLOPs of one layer for one example."""
    if isinstance(layer, layers.SpectralNormalization):
        layer = layer.layer
    if isinstance(layer, layers.Dense):
        return 2 * int(layer.kernel.shape[0]) * int(layer.kernel.shape[1])
    if isinstance(layer, layers.Conv2DTranspose):
        kh, kw, _, cin = layer.kernel.shape  # (k, k, out, in)
        h, w = _shape(layer.input.shape)[:2]
        return 2 * kh * kw * int(cin) * int(layer.filters) * h * w
    if isinstance(layer, layers.Conv2D):
        kh, kw, cin, cout = layer.kernel.shape
        h, w = _shape(layer.output.shape)[:2]
        return 2 * kh * kw * int(cin) * int(cout) * h * w
    return 0


def forward_flops(model) -> int:
    """Forward FLOPs of a functional model for one example."""
    total = 0
    for layer in model.layers:
        sub = getattr(layer, "layers", None)
        total += forward_flops(layer) if sub and not isinstance(layer, layers.SpectralNormalization) else layer_flops(layer)
    return total


def training_flops_per_image(generator, discriminator) -> int:
    """FLOPs of one simultaneous GAN update per image of the batch.

    Backward passes cost about twice the forward pass. Per image: G forward and
    backward (3 G), D forward and backward on the real and on the fake image (6 D).
    """
    return 3 * forward_flops(generator) + 6 * forward_flops(discriminator)


def describe(model) -> list[tuple[str, int]]:
    """(layer name, forward FLOPs) for every counted layer, for cost tables."""
    return [(layer.name, layer_flops(layer)) for layer in model.layers if layer_flops(layer)]


def gflops(n: int) -> float:
    return float(np.round(n / 1e9, 4))
