"""BatchNorm recalibration (for the EMA generator) in bounded chunks.

The EMA copy's weights are an average, so the moving statistics the raw generator accumulated do not match
them. What they should be is each BatchNorm's batch statistics over a large set of latents, as one forward pass
in training mode measures them; but that pass holds every activation of the whole set at once (~440 MB for 512
latents of the default 28 px model, tens of GB at 256 px).

Here the same statistics are measured layer by layer, `chunk` latents per forward: BatchNorm k's input moments
are accumulated over all chunks (Chan et al.'s pairwise combination, in float64) with every earlier BatchNorm
already set to the full set's statistics and run in inference mode, which normalises exactly as the one-pass
training mode did. The result equals the one pass to float rounding; it costs one pass per BatchNorm layer.
(Inference mode also turns off dropout, which a one-pass training call would have applied.)
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from dcgan.models.sampling import latents_per_pass

CHUNK = 64  # latents per forward pass at most (fewer where their activations would pass the sampling budget)


class BatchNormRecalibration:
    """Callable on a model's inputs (z, or [z, labels]); traced once per model."""

    def __init__(self, model, chunk: int = CHUNK):
        self.model, self.chunk = model, latents_per_pass(model, chunk)
        self.bns = [layer for layer in model.layers if isinstance(layer, layers.BatchNormalization)]
        self._moments = None

    def _trace(self):
        probe = keras.Model(self.model.inputs, [bn.input for bn in self.bns])
        axes = [[i for i in range(len(bn.input.shape)) if i != bn.axis % len(bn.input.shape)] for bn in self.bns]
        specs = [tf.TensorSpec([None, *x.shape[1:]], x.dtype) for x in self.model.inputs]

        def moments(*xs):
            outs = probe(list(xs) if len(xs) > 1 else xs[0], training=False)
            outs = outs if isinstance(outs, (list, tuple)) else [outs]
            return [tf.nn.moments(tf.cast(o, tf.float32), a) for o, a in zip(outs, axes)]

        return tf.function(moments, input_signature=specs)

    def __call__(self, inputs) -> None:
        if not self.bns:
            return
        if self._moments is None:
            self._moments = self._trace()
        xs = [np.asarray(x) for x in (inputs if isinstance(inputs, (list, tuple)) else [inputs])]
        n = len(xs[0])
        for k, bn in enumerate(self.bns):  # in layer order: every BatchNorm before k is already set
            parts = [self._moments(*(x[i : i + self.chunk] for x in xs))[k] for i in range(0, n, self.chunk)]
            counts = [min(self.chunk, n - i) for i in range(0, n, self.chunk)]
            mean, variance = combine_moments([(c, m.numpy(), v.numpy()) for c, (m, v) in zip(counts, parts)])
            bn.moving_mean.assign(mean.astype(np.float32))
            bn.moving_variance.assign(variance.astype(np.float32))


def combine_moments(parts) -> tuple[np.ndarray, np.ndarray]:
    """(count, mean, variance) of equal-weight parts -> the whole's (mean, variance): population variance, as
    BatchNorm's. Each part's count is its number of latents; every latent holds the same number of values."""
    total = sum(c for c, _, _ in parts)
    mean = sum(c * np.asarray(m, np.float64) for c, m, _ in parts) / total
    variance = sum(c * (np.asarray(v, np.float64) + (np.asarray(m, np.float64) - mean) ** 2) for c, m, v in parts) / total
    return mean, variance


def recalibrate_batchnorm(model, inputs, chunk: int = CHUNK) -> None:
    """Set every BatchNorm's moving statistics to its batch statistics over `inputs` (see the module's note)."""
    BatchNormRecalibration(model, chunk)(inputs)
