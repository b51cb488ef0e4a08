"""Pictures from a generator: uint8 images for latents (and a conditional generator's labels), in batches whose
activations fit a memory budget."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from dcgan.data import pipeline as datalib
from dcgan.models.registry import is_conditional, latent_dim


ACTIVATION_BUDGET = 1 << 30  # bytes of layer outputs one forward pass may hold


def activation_bytes(model) -> int:
    """Bytes of every layer output of one example (float32): an upper bound of what a forward pass holds per example."""
    import keras

    return 4 * sum(int(np.prod(t.shape[1:])) for layer in model.layers for t in keras.tree.flatten(layer.output))


def latents_per_pass(model, cap: int, budget: int = ACTIVATION_BUDGET) -> int:
    """How many latents one forward pass may take: their activation_bytes within `budget`; at least 1, at most
    `cap`. At 28-64 px this is the cap; a 256 px generator holds ~82 MB per latent, so 500 at once would be 41 GB."""
    return int(min(cap, max(1, budget // max(1, activation_bytes(model)))))


def generate_images(model, latents, labels=None, batch_size: int = 500) -> np.ndarray:
    """uint8 images for latents (and, for a conditional generator, one class label per latent), batch_size at a
    time or fewer where the activations of that many would pass ACTIVATION_BUDGET."""
    latents = np.asarray(latents, np.float32)
    batch_size = latents_per_pass(model, batch_size)
    conditional = is_conditional(model)
    if conditional != (labels is not None):
        raise ValueError("a conditional generator needs one label per latent; an unconditional one takes none")
    labels = np.asarray(labels, np.int32) if conditional else None
    if conditional and labels.shape != latents.shape[:1]:
        raise ValueError(f"{len(latents)} latents but labels of shape {labels.shape}")
    predict = _compiled_predict(model)
    outs = []
    for i in range(0, len(latents), batch_size):
        z = tf.constant(latents[i : i + batch_size])
        outs.append((predict(z, tf.constant(labels[i : i + batch_size])) if conditional else predict(z)).numpy())
    return datalib.to_uint8(np.concatenate(outs) if outs else np.zeros((0, *model.output_shape[1:]), np.float32))


def _compiled_predict(model):
    fn = getattr(model, "_dcgan_predict", None)
    if fn is None:
        # any batch size, one trace: a grid, an eval set and its last partial batch share the graph
        spec = tf.TensorSpec([None, latent_dim(model)], tf.float32)
        if is_conditional(model):
            fn = tf.function(lambda z, y: model([z, y], training=False), input_signature=[spec, tf.TensorSpec([None], tf.int32)])
        else:
            fn = tf.function(lambda z: model(z, training=False), input_signature=[spec])
        model._dcgan_predict = fn
    return fn
