"""Class conditioning's building blocks: the label input, conditional BatchNorm's class affine, balanced labels.

A conditional pair (model.*.condition) takes a second input, the int32 class label y: the generator joins an
embedding of y to z (concat) or makes every BatchNorm's gamma and beta a function of y (cbn); the discriminator
adds <embed(y), features> to its logit (projection) or reads one-hot label maps beside the image's channels (concat).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from dcgan.core.config import Config


def label_input():
    return keras.Input((), dtype="int32", name="label")


def class_affine(x, label, classes: int, name: str):
    """x * gamma[y] + beta[y]: the class-dependent scale and shift of conditional BatchNorm (de Vries et al. 2017),
    after a BatchNormalization without its own; gamma starts near 1 and beta at 0, as BatchNorm's do.

    Built from Keras' own layers (Embedding, Reshape, Multiply, Add), so an exported generator loads without this package.
    """
    channels = x.shape[-1]
    shape = (1,) * (len(x.shape) - 2) + (channels,)  # broadcast over space
    gamma = layers.Embedding(classes, channels, embeddings_initializer=keras.initializers.RandomNormal(1.0, 0.02),
                             name=f"{name}_cbn_gamma")(label)
    beta = layers.Embedding(classes, channels, embeddings_initializer="zeros", name=f"{name}_cbn_beta")(label)
    x = layers.Multiply(name=f"{name}_cbn_scale")([x, layers.Reshape(shape, name=f"{name}_cbn_gamma_reshape")(gamma)])
    return layers.Add(name=f"{name}_cbn_shift")([x, layers.Reshape(shape, name=f"{name}_cbn_beta_reshape")(beta)])


def balanced_labels(n: int, classes: int) -> np.ndarray:
    """0, 1, ..., K-1, 0, 1, ...: n int32 labels as evenly spread over the classes as n allows."""
    return np.arange(n, dtype=np.int32) % classes


def check_classes(cfg: Config, classes: int) -> int:
    """The class count a conditional config needs (from the data), or 0 for an unconditional one."""
    if cfg.model.generator.condition == "none":
        return 0
    if classes < 1:
        raise ValueError("a conditional model needs the number of classes (from the data's labels)")
    return classes
