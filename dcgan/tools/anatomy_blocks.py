"""`dcgan inspect`'s view of a generator's x2 blocks in Keras: their layers (from the builder's block list),
the overlap pattern and phase spread of their upsampling, the activations and D's image gradient, in batches
whose activations stay within a memory budget. The arithmetic is described in dcgan.tools.anatomy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dcgan.core.errors import DcganError

BATCH = 64  # latents per batch, at most
ACTIVATION_BUDGET = 1 << 30  # bytes of activations one batch may hold
PERIOD = 2  # every block upsamples x2: its patterns repeat every 2 pixels


@dataclass
class Block:
    name: str
    mode: str
    ops: list  # the layers that upsample, in order (the builder's Block.layers)
    output: object  # the block's last layer (after its norm and activation)

    @property
    def kernel_size(self) -> int:
        return next((layer.kernel_size[0] for layer in self.ops if hasattr(layer, "kernel_size")), 1)


def generator_blocks(generator) -> list[Block]:
    """The x2 blocks of a generator, as its builder declared them (dcgan.models.registry), with their layers."""
    from dcgan.models.registry import blocks_of

    blocks = [Block(b.name, b.mode, [generator.get_layer(n) for n in b.layers], generator.get_layer(b.output))
              for b in blocks_of(generator)]
    if not blocks:
        raise DcganError("the generator declares no x2 blocks (its builder's Built.blocks): there is nothing to inspect")
    return blocks


def latents_per_batch(generator, discriminator, budget: int = ACTIVATION_BUDGET, batch: int = BATCH) -> int:
    """How many latents one batch may hold: every layer output of G and D per latent, float32, twice (D's
    gradient keeps its forward activations), within `budget` bytes; at least 1, at most `batch`."""
    from dcgan.models.sampling import activation_bytes

    return int(min(batch, max(1, budget // (2 * (activation_bytes(generator) + activation_bytes(discriminator))))))


def _probe_size(block: Block) -> int:
    """Side of the constant input the patterns are measured on: the crop lies a kernel away from the borders."""
    return 2 * (block.kernel_size + 2)


def _crop(output: np.ndarray, n: int, cells: int) -> np.ndarray:
    """The central `cells` x `cells` periods of a (2n, 2n, ...) output, starting on a period boundary."""
    start = n - cells * PERIOD // 2
    return output[start : start + cells * PERIOD, start : start + cells * PERIOD]


def unit_ops(block: Block) -> list:
    """The block's upsampling layers rebuilt from their configs with one channel in and out, weights 1, no bias.

    A sub-pixel conv keeps block_size^2 filters (one per phase of the one output channel), all ones: ICNR's tying.
    """
    copies = []
    for k, layer in enumerate(block.ops):
        config = {**layer.get_config(), "name": f"unit_{layer.name}", "dtype": "float32"}
        if "filters" in config:
            shuffle = next((later.block_size for later in block.ops[k + 1 :] if hasattr(later, "block_size")), 1)
            config.update(filters=shuffle**2, use_bias=False, kernel_initializer="ones",
                          kernel_regularizer=None, kernel_constraint=None)
        copies.append(type(layer).from_config(config))
    return copies


def overlap_pattern(block: Block) -> np.ndarray:
    """Kernel taps landing on each output pixel: unit-weight op on a constant input, central 4x4 (Odena et al.)."""
    n = _probe_size(block)
    x = np.ones((1, n, n, 1), np.float32)
    for layer in unit_ops(block):
        x = layer(x)
    return _crop(np.asarray(x, np.float64)[0, :, :, 0], n, 2)


def phase_spread(block: Block) -> float:
    """How much the block's own upsampling (its weights) answers a constant input differently per pixel phase."""
    n = _probe_size(block)
    x = np.ones((1, n, n, block.ops[0].input.shape[-1]), np.float32)
    for layer in block.ops:
        x = layer(x)
    r = _crop(np.asarray(x, np.float64)[0], n, 1).reshape(PERIOD * PERIOD, -1)  # (phase, channel)
    power = float(np.mean(r**2))
    return float(np.sqrt(np.mean(r.var(axis=0)) / power)) if power > 0 else 0.0


def activation_model(generator, blocks: list[Block]):
    """A model from z to every block's input and output, and the image."""
    import keras

    outputs = [b.ops[0].input for b in blocks] + [b.output.output for b in blocks] + [generator.outputs[0]]
    return keras.Model(generator.input, outputs, name="generator_anatomy")


def image_gradient(discriminator, images: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
    """dD(x)/dx at each image: the logit's gradient, D in inference mode (no batch statistics couple the images).

    labels: a conditional D's classes, those the images were generated for."""
    import tensorflow as tf

    x = tf.constant(images, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        logits = discriminator(x if labels is None else [x, tf.constant(labels, tf.int32)], training=False)
        total = tf.reduce_sum(tf.cast(logits, tf.float32))
    return tape.gradient(total, x).numpy()
