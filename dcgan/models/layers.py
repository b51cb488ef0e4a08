"""The project's own Keras layers and initialisers, registered under package "dcgan".

Their registered names ("dcgan>DepthToSpace", ...) are what a saved generator.keras refers to: a file written by
any earlier version loads once this module is imported (dcgan.models.networks imports it).
"""

from __future__ import annotations

import keras
from keras import layers, ops


def weight_init(seed=None):
    return keras.initializers.RandomNormal(0.0, 0.02, seed=seed)


@keras.saving.register_keras_serializable(package="dcgan")
class ICNR(keras.initializers.Initializer):
    """Sub-pixel kernel init whose 4 sub-kernels are equal (Aitken et al. 2017).

    With equal sub-kernels, conv + depth-to-space equals nearest upsampling
    followed by that conv, so the block starts free of checkerboard patterns.
    """

    def __init__(self, scale: int = 2, stddev: float = 0.02, seed=None):
        self.scale, self.stddev, self.seed = scale, stddev, seed

    def __call__(self, shape, dtype=None):
        *kernel, out = shape
        sub = keras.initializers.RandomNormal(0.0, self.stddev, seed=self.seed)(
            (*kernel, out // self.scale**2), dtype=dtype
        )
        # depth_to_space reads channel (dy * scale + dx) * C + c: repeat the whole block
        return ops.tile(sub, [1] * len(kernel) + [self.scale**2])

    def get_config(self):
        return {"scale": self.scale, "stddev": self.stddev, "seed": self.seed}


@keras.saving.register_keras_serializable(package="dcgan")
class DepthToSpace(layers.Layer):
    """(B, H, W, s*s*C) -> (B, s*H, s*W, C), the same layout as tf.nn.depth_to_space."""

    def __init__(self, block_size: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.block_size = block_size

    def call(self, x):
        s = self.block_size
        _, h, w, c = x.shape
        x = ops.reshape(x, (-1, h, w, s, s, c // (s * s)))
        x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
        return ops.reshape(x, (-1, h * s, w * s, c // (s * s)))

    def compute_output_shape(self, shape):
        b, h, w, c = shape
        s = self.block_size
        return (b, h * s, w * s, c // (s * s))

    def get_config(self):
        return {**super().get_config(), "block_size": self.block_size}


BINOMIAL = (1.0, 2.0, 1.0)


@keras.saving.register_keras_serializable(package="dcgan")
class Blur(layers.Layer):
    """A fixed low-pass filter: the [1, 2, 1] binomial along each axis, per channel, borders reflected.

    Its gain is 0 at the Nyquist frequency, so the N/2 pattern a stride-2 op leaves (the checkerboard) cannot
    pass it, and after nearest-neighbour x2 it is exactly bilinear upsampling. Odd and symmetric, it shifts
    nothing (StyleGAN's [1, 3, 3, 1] relies on the half-pixel offset of its zero-insertion upsampling, which a
    transposed convolution or a resize does not have). No weights: the same filter in every run, and nothing
    new in a checkpoint. Zhang 2019 ("Making convolutional networks shift-invariant again"); Karras et al. 2019.
    """

    def call(self, x):
        taps = ops.convert_to_tensor(BINOMIAL, dtype=x.dtype)
        kernel = ops.outer(taps, taps) / ops.square(ops.sum(taps))
        kernel = ops.tile(kernel[:, :, None, None], (1, 1, x.shape[-1], 1))
        x = ops.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="reflect")
        return ops.depthwise_conv(x, kernel, strides=1, padding="valid")

    def compute_output_shape(self, shape):
        return shape


@keras.saving.register_keras_serializable(package="dcgan")
class MinibatchStd(layers.Layer):
    """Appends one feature map: the standard deviation of each feature across the batch, averaged to one number.

    A discriminator that sees only one image at a time cannot tell a batch of near-copies from a varied one;
    this number can, so a generator that collapses onto a few outputs is penalised for it (Karras et al. 2018,
    ProGAN, over the whole minibatch as there). No weights.
    """

    def call(self, x):
        deviation = ops.sqrt(ops.var(ops.cast(x, "float32"), axis=0) + 1e-8)  # per feature and position
        spread = ops.cast(ops.mean(deviation), x.dtype)
        return ops.concatenate([x, ops.ones_like(x[..., :1]) * spread], axis=-1)

    def compute_output_shape(self, shape):
        return (*shape[:-1], shape[-1] + 1)


@keras.saving.register_keras_serializable(package="dcgan")
class Projection(layers.Layer):
    """<embed(y), phi(x)>: the projection discriminator's class term (Miyato & Koyama 2018), added to its logit."""

    def __init__(self, classes: int, **kwargs):
        super().__init__(**kwargs)
        self.classes = classes

    def build(self, input_shape):
        self.embedding = self.add_weight((self.classes, input_shape[0][-1]), weight_init(), name="embedding")

    def call(self, inputs):
        features, y = inputs
        embedded = ops.cast(ops.take(self.embedding, y, axis=0), features.dtype)
        return ops.sum(embedded * features, axis=-1, keepdims=True)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], 1)

    def get_config(self):
        return {**super().get_config(), "classes": self.classes}


@keras.saving.register_keras_serializable(package="dcgan")
class LabelMaps(layers.Layer):
    """(image, y) -> the image with one constant one-hot map per class joined to its channels."""

    def __init__(self, classes: int, **kwargs):
        super().__init__(**kwargs)
        self.classes = classes

    def call(self, inputs):
        image, y = inputs
        maps = ops.one_hot(y, self.classes, dtype=image.dtype)[:, None, None, :]
        maps = ops.broadcast_to(maps, (ops.shape(image)[0], image.shape[1], image.shape[2], self.classes))
        return ops.concatenate([image, maps], axis=-1)

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape[0]
        return (b, h, w, c + self.classes)

    def get_config(self):
        return {**super().get_config(), "classes": self.classes}
