"""The generator's x2 blocks: one op per upsampling mode (dcgan.core.upsampling declares them), then norm and ReLU.

Layers are named <block>_<role> (block0_deconv, block1_resize, block1_conv, block2_shuffle, block0_blur, block0_bn,
block0_relu):
checkpoints and saved files of earlier runs refer to them. Each mode's layers are created and applied in one order,
which fixes the draw order of their initialisers' seeds and so the initial weights.
"""

from __future__ import annotations

import keras
from keras import layers

from dcgan.core.upsampling import UPSAMPLING_MODES
from dcgan.models.conditioning import class_affine
from dcgan.models.layers import ICNR, Blur, DepthToSpace, weight_init
from dcgan.models.spec import Block


def _transpose(x, channels: int, gcfg, name: str, bias: bool):
    deconv = layers.Conv2DTranspose(channels, gcfg.transpose_kernel_size or gcfg.kernel_size, 2, "same", use_bias=bias,
                                    kernel_initializer=weight_init(), name=f"{name}_deconv")
    return deconv(x), [deconv]


def _upsample(x, channels: int, gcfg, name: str, bias: bool):
    resize = layers.UpSampling2D(2, interpolation=gcfg.interpolation, name=f"{name}_resize")
    x = resize(x)
    conv = layers.Conv2D(channels, gcfg.kernel_size, padding="same", use_bias=bias, kernel_initializer=weight_init(),
                         name=f"{name}_conv")
    return conv(x), [resize, conv]


def _subpixel(x, channels: int, gcfg, name: str, bias: bool):
    conv = layers.Conv2D(4 * channels, gcfg.kernel_size, padding="same", use_bias=bias, kernel_initializer=ICNR(),
                         name=f"{name}_conv")
    x = conv(x)
    shuffle = DepthToSpace(2, name=f"{name}_shuffle")
    return shuffle(x), [conv, shuffle]


UPSAMPLING_OPS = {"transpose": _transpose, "upsample": _upsample, "subpixel": _subpixel}
if tuple(UPSAMPLING_OPS) != UPSAMPLING_MODES:  # a mode declared without its layers, or layers for an undeclared one
    raise ImportError(f"dcgan.models.upsampling builds {tuple(UPSAMPLING_OPS)}, dcgan.core.upsampling declares {UPSAMPLING_MODES}")


def upsampling_block(x, mode: str, channels: int, gcfg, name: str, sync_batchnorm: bool = False, label=None,
                     classes: int = 0, antialias: bool = False):
    """(output, Block): the block's x2 op for `mode` (low-passed by a Blur when antialias), then its norm
    (conditional with a label) and ReLU."""
    if mode not in UPSAMPLING_OPS:
        raise ValueError(f"unknown upsampling mode {mode!r}")
    x, ops = UPSAMPLING_OPS[mode](x, channels, gcfg, name, gcfg.norm == "none")
    if antialias:
        blur = Blur(name=f"{name}_blur")
        x, ops = blur(x), [*ops, blur]
    x = norm_relu(x, gcfg.norm, name, sync_batchnorm, label, classes)
    return x, Block(name, mode, tuple(op.name for op in ops), f"{name}_relu", int(x.shape[1]))


def norm_relu(x, norm: str, name: str, sync_batchnorm: bool, label=None, classes: int = 0):
    """BatchNorm (conditional when a label is given: its gamma and beta come from class_affine) and ReLU."""
    if norm == "batch" and label is not None:
        x = layers.BatchNormalization(center=False, scale=False, synchronized=sync_batchnorm, name=f"{name}_bn")(x)
        x = class_affine(x, label, classes, name)
    elif norm == "batch":
        x = layers.BatchNormalization(gamma_initializer=keras.initializers.RandomNormal(1.0, 0.02), synchronized=sync_batchnorm,
                                      name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)
