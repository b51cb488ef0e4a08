"""The builtin architecture, registered as `dcgan` (Radford et al. 2015), with swappable upsampling.

The generator projects z to an s x s feature map, then doubles the resolution once per block until it reaches the
image size (dcgan.models.upsampling: one of the modes dcgan.core.upsampling declares), then draws the image with a
tanh convolution. The discriminator mirrors it: strided convolutions (or pooling or blur before them: model.discriminator.downsampling)
halve the image down to s x s, then one logit.
Conditioning (model.*.condition): see dcgan.models.conditioning.
"""

from __future__ import annotations

import keras
from keras import layers

from dcgan.core.config import Config
from dcgan.core.upsampling import block_antialias, block_modes, upsampling_plan
from dcgan.models.conditioning import label_input
from dcgan.models.layers import Blur, LabelMaps, MinibatchStd, Projection, weight_init
from dcgan.models.spec import Block, Built
from dcgan.models.upsampling import norm_relu, upsampling_block


def channel_plan(base: int, cap: int, blocks: int) -> list[int]:
    """Channels of the projection and each generator block: base*2^k ... base."""
    return [min(base * 2 ** (blocks - i), cap) for i in range(blocks + 1)]


def build_generator(cfg: Config, sync_batchnorm: bool, classes: int) -> Built:
    """sync_batchnorm: BatchNorm statistics over all replicas' batches (only matters under a multi-replica strategy).

    classes: the number of classes of a conditional config (model.generator.condition), whose model takes [z, label].
    """
    gcfg, size = cfg.model.generator, cfg.data.image_size
    start, n_blocks = upsampling_plan(size)
    channels = channel_plan(gcfg.base_channels, gcfg.max_channels, n_blocks)
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
    x = norm_relu(x, gcfg.norm, "project", sync_batchnorm, cbn, classes)
    blocks = []
    for i, (mode, antialias) in enumerate(zip(block_modes(gcfg, n_blocks), block_antialias(gcfg, n_blocks))):
        x, block = upsampling_block(x, mode, channels[i + 1], gcfg, name=f"block{i}", sync_batchnorm=sync_batchnorm,
                                    label=cbn, classes=classes, antialias=antialias)
        blocks.append(block)
    # float32 output so images stay exact under a mixed-precision policy
    image = layers.Conv2D(cfg.data.channels, gcfg.kernel_size, padding="same", activation="tanh",
                          kernel_initializer=weight_init(), dtype="float32", name="to_image")(x)
    return Built(keras.Model([z, label] if classes else z, image, name="generator"), tuple(blocks))


def build_discriminator(cfg: Config, sync_batchnorm: bool, classes: int) -> Built:
    dcfg, size = cfg.model.discriminator, cfg.data.image_size
    _, n_blocks = upsampling_plan(size)
    image = keras.Input((size, size, cfg.data.channels), name="image")
    label = label_input() if classes else None
    x = LabelMaps(classes, name="label_maps")([image, label]) if dcfg.condition == "concat" else image
    blocks = []
    for i in range(n_blocks):
        channels = min(dcfg.base_channels * 2**i, dcfg.max_channels)
        x, ops = downsample(x, dcfg, channels, f"block{i}")
        if i > 0 and dcfg.norm == "batch":
            x = layers.BatchNormalization(synchronized=sync_batchnorm, name=f"block{i}_bn")(x)
        elif i > 0 and dcfg.norm == "layer":
            x = layers.LayerNormalization(name=f"block{i}_ln")(x)
        last = layers.LeakyReLU(0.2, name=f"block{i}_lrelu")
        x = last(x)
        if dcfg.dropout > 0:
            last = layers.Dropout(dcfg.dropout, name=f"block{i}_dropout")
            x = last(x)
        blocks.append(Block(f"block{i}", DOWNSAMPLING_KINDS[dcfg.downsampling], tuple(op.name for op in ops), last.name,
                            int(x.shape[1])))
    if dcfg.minibatch_std:
        x = MinibatchStd(name="minibatch_std")(x)
    x = layers.Flatten(name="flatten")(x)
    logit = _spectral(layers.Dense(1, kernel_initializer=weight_init(), dtype="float32", name="logit"), dcfg.spectral_norm)(x)
    if dcfg.condition == "projection":
        logit = layers.Add(dtype="float32", name="logit_and_projection")(
            [logit, Projection(classes, dtype="float32", name="projection")([x, label])])
    return Built(keras.Model([image, label] if classes else image, logit, name="discriminator"), tuple(blocks))


DOWNSAMPLING_KINDS = {"strided": "strided_conv", "avgpool": "avgpool_conv", "blurpool": "blur_strided_conv"}


def downsample(x, dcfg, channels: int, name: str):
    """(output, layers): one halving of D (model.discriminator.downsampling). strided: a stride-2 convolution;
    avgpool: 2x2 average pooling, then a convolution at the lower resolution; blurpool: the Blur low-pass, then the
    stride-2 convolution (Zhang 2019's anti-aliased stride, as StyleGAN2's D downsamples). Schwarz et al. 2021:
    how D downsamples decides which frequencies it can see, and so the spectrum G learns."""
    ops = []
    if dcfg.downsampling == "avgpool":
        ops.append(layers.AveragePooling2D(2, name=f"{name}_pool"))
    elif dcfg.downsampling == "blurpool":
        ops.append(Blur(name=f"{name}_blur"))
    stride = 1 if dcfg.downsampling == "avgpool" else 2
    conv = _spectral(layers.Conv2D(channels, dcfg.kernel_size, stride, "same", kernel_initializer=weight_init(),
                                   name=f"{name}_conv"), dcfg.spectral_norm)
    for op in (*ops, conv):
        x = op(x)
    return x, [*ops, conv]


def _spectral(layer, enabled: bool):
    return layers.SpectralNormalization(layer, name=f"{layer.name}_sn") if enabled else layer
