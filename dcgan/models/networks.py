"""Generator and discriminator (Radford et al. 2015), with swappable upsampling.

The generator projects z to an s x s feature map, then doubles the resolution
once per block until it reaches the image size, then draws the image with a tanh
convolution. Each block upsamples in one of three ways:

    transpose  Conv2DTranspose, stride 2 (can leave checkerboard artifacts when
               the kernel is not divisible by the stride: Odena et al. 2016)
    upsample   UpSampling2D (nearest or bilinear) then Conv2D at the higher
               resolution: resize-convolution, artifact-free, ~4x the conv cost
    subpixel   Conv2D to 4x channels then depth-to-space (Shi et al. 2016),
               ICNR-initialised so it starts as nearest-neighbour upsampling

A conditional pair (model.*.condition) takes a second input, the int32 class label y: the
generator joins an embedding of y to z (concat) or makes every BatchNorm's gamma and beta a
function of y (cbn); the discriminator adds <embed(y), features> to its logit (projection) or
reads one-hot label maps beside the image's channels (concat).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from dcgan.core.config import Config, block_modes, upsampling_plan


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


def channel_plan(base: int, cap: int, blocks: int) -> list[int]:
    """Channels of the projection and each generator block: base*2^k ... base."""
    return [min(base * 2 ** (blocks - i), cap) for i in range(blocks + 1)]


def upsampling_block(x, mode: str, channels: int, gcfg, name: str, sync_batchnorm: bool = False, label=None, classes: int = 0):
    k = gcfg.kernel_size
    bias = gcfg.norm == "none"
    if mode == "transpose":
        kt = gcfg.transpose_kernel_size or k
        x = layers.Conv2DTranspose(channels, kt, 2, "same", use_bias=bias, kernel_initializer=weight_init(), name=f"{name}_deconv")(x)
    elif mode == "upsample":
        x = layers.UpSampling2D(2, interpolation=gcfg.interpolation, name=f"{name}_resize")(x)
        x = layers.Conv2D(channels, k, padding="same", use_bias=bias, kernel_initializer=weight_init(), name=f"{name}_conv")(x)
    elif mode == "subpixel":
        x = layers.Conv2D(4 * channels, k, padding="same", use_bias=bias, kernel_initializer=ICNR(), name=f"{name}_conv")(x)
        x = DepthToSpace(2, name=f"{name}_shuffle")(x)
    else:
        raise ValueError(f"unknown upsampling mode {mode!r}")
    return _norm_relu(x, gcfg.norm, name, sync_batchnorm, label, classes)


def _norm_relu(x, norm: str, name: str, sync_batchnorm: bool, label=None, classes: int = 0):
    """BatchNorm (conditional when a label is given: its gamma and beta come from ClassAffine) and ReLU."""
    if norm == "batch" and label is not None:
        x = layers.BatchNormalization(center=False, scale=False, synchronized=sync_batchnorm, name=f"{name}_bn")(x)
        x = class_affine(x, label, classes, name)
    elif norm == "batch":
        x = layers.BatchNormalization(gamma_initializer=keras.initializers.RandomNormal(1.0, 0.02), synchronized=sync_batchnorm,
                                      name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


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


def label_input():
    return keras.Input((), dtype="int32", name="label")


def is_conditional(model) -> bool:
    """A conditional generator or discriminator takes (input, label)."""
    return len(model.inputs) == 2


def balanced_labels(n: int, classes: int) -> np.ndarray:
    """0, 1, ..., K-1, 0, 1, ...: n int32 labels as evenly spread over the classes as n allows."""
    return np.arange(n, dtype=np.int32) % classes


def num_classes(model) -> int:
    """The classes a conditional generator or discriminator knows (0: unconditional)."""
    for layer in model.layers:
        if isinstance(layer, (Projection, LabelMaps)):
            return layer.classes
        if isinstance(layer, layers.Embedding):  # the generator's class embedding, or conditional BatchNorm's gamma
            return layer.input_dim
    return 0


def check_classes(cfg: Config, classes: int) -> int:
    """The class count a conditional config needs (from the data), or 0 for an unconditional one."""
    if cfg.model.generator.condition == "none":
        return 0
    if classes < 1:
        raise ValueError("a conditional model needs the number of classes (from the data's labels)")
    return classes


def build_generator(cfg: Config, sync_batchnorm: bool = False, classes: int = 0) -> keras.Model:
    """sync_batchnorm: BatchNorm statistics over all replicas' batches (only matters under a multi-replica strategy).

    classes: the number of classes of a conditional config (model.generator.condition), whose model takes [z, label].
    """
    gcfg, size = cfg.model.generator, cfg.data.image_size
    classes = check_classes(cfg, classes)
    start, blocks = upsampling_plan(size)
    channels = channel_plan(gcfg.base_channels, gcfg.max_channels, blocks)
    z = keras.Input((gcfg.latent_dim,), name="z")
    label = label_input() if classes else None
    x = z
    if gcfg.condition == "concat":
        embedded = layers.Embedding(classes, gcfg.embed_dim, embeddings_initializer=keras.initializers.RandomNormal(0.0, 1.0),
                                    name="class_embedding")(label)
        x = layers.Concatenate(name="z_and_class")([z, embedded])
    cbn = label if gcfg.condition == "cbn" else None
    x = layers.Dense(start * start * channels[0], use_bias=gcfg.norm == "none", kernel_initializer=weight_init(), name="project")(x)
    x = layers.Reshape((start, start, channels[0]), name="project_reshape")(x)
    x = _norm_relu(x, gcfg.norm, "project", sync_batchnorm, cbn, classes)
    for i, mode in enumerate(block_modes(gcfg, blocks)):
        x = upsampling_block(x, mode, channels[i + 1], gcfg, name=f"block{i}", sync_batchnorm=sync_batchnorm, label=cbn, classes=classes)
    # float32 output so images stay exact under a mixed-precision policy
    image = layers.Conv2D(cfg.data.channels, gcfg.kernel_size, padding="same", activation="tanh",
                          kernel_initializer=weight_init(), dtype="float32", name="to_image")(x)
    return keras.Model([z, label] if classes else z, image, name="generator")


def build_discriminator(cfg: Config, sync_batchnorm: bool = False, classes: int = 0) -> keras.Model:
    dcfg, size = cfg.model.discriminator, cfg.data.image_size
    classes = check_classes(cfg, classes)
    _, blocks = upsampling_plan(size)
    image = keras.Input((size, size, cfg.data.channels), name="image")
    label = label_input() if classes else None
    x = LabelMaps(classes, name="label_maps")([image, label]) if dcfg.condition == "concat" else image
    for i in range(blocks):
        channels = min(dcfg.base_channels * 2**i, dcfg.max_channels)
        conv = layers.Conv2D(channels, dcfg.kernel_size, 2, "same", kernel_initializer=weight_init(), name=f"block{i}_conv")
        x = _spectral(conv, dcfg.spectral_norm)(x)
        if i > 0 and dcfg.norm == "batch":
            x = layers.BatchNormalization(synchronized=sync_batchnorm, name=f"block{i}_bn")(x)
        elif i > 0 and dcfg.norm == "layer":
            x = layers.LayerNormalization(name=f"block{i}_ln")(x)
        x = layers.LeakyReLU(0.2, name=f"block{i}_lrelu")(x)
        if dcfg.dropout > 0:
            x = layers.Dropout(dcfg.dropout, name=f"block{i}_dropout")(x)
    x = layers.Flatten(name="flatten")(x)
    logit = _spectral(layers.Dense(1, kernel_initializer=weight_init(), dtype="float32", name="logit"), dcfg.spectral_norm)(x)
    if dcfg.condition == "projection":
        logit = layers.Add(dtype="float32", name="logit_and_projection")(
            [logit, Projection(classes, dtype="float32", name="projection")([x, label])])
    return keras.Model([image, label] if classes else image, logit, name="discriminator")


def _spectral(layer, enabled: bool):
    return layers.SpectralNormalization(layer, name=f"{layer.name}_sn") if enabled else layer


def clone_generator(generator: keras.Model) -> keras.Model:
    """A copy with the same architecture and weights (for the EMA generator)."""
    copy = keras.models.clone_model(generator)
    copy.set_weights(generator.get_weights())
    return copy


def recalibrate_batchnorm(model: keras.Model, latents, forward=None) -> None:
    """Set every BatchNorm's moving statistics to the batch statistics of `latents`.

    The EMA generator's weights are an average, so the moving statistics that the
    raw generator accumulated don't match them; one large forward pass in training
    mode with momentum 0 measures the right ones. forward: that pass, x -> model(x, training=True),
    compiled (a `tf.function` is traced here, while the momentum is 0); default: eager.
    """
    bns = [layer for layer in model.layers if isinstance(layer, layers.BatchNormalization)]
    if not bns:
        return
    momenta = [bn.momentum for bn in bns]
    try:
        for bn in bns:
            bn.momentum = 0.0
        (forward or (lambda x: model(x, training=True)))(latents)
    finally:
        for bn, m in zip(bns, momenta):
            bn.momentum = m


def count_params(model: keras.Model) -> int:
    return int(sum(np.prod(v.shape) for v in model.trainable_variables))
