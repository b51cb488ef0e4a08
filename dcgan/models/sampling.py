"""Pictures from a generator: uint8 images for latents (and a conditional generator's labels), in fixed batches."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from dcgan.data import pipeline as datalib
from dcgan.models.registry import is_conditional, latent_dim


def generate_images(model, latents, labels=None, batch_size: int = 500) -> np.ndarray:
    """uint8 images for latents (and, for a conditional generator, one class label per latent)."""
    latents = np.asarray(latents, np.float32)
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
