"""Gradient accumulation: one update's gradients summed over micro-batches that run one after another.

A step's activations are kept for its backward pass, so its memory grows with the batch: at 256x256 the default
generator keeps ~82 MB per image, 5.3 GB for a batch of 64. With `train.micro_batch` the batch is cut into equal
parts and each part's forward and backward pass runs before the next part's starts, so the activations alive at
any moment are one part's. The losses are means over the whole batch (`tf.nn.compute_average_loss` with the
global batch size), so the parts' losses and gradients add up to the batch's: without BatchNorm the update is
the same as in one pass up to float rounding (tested). BatchNorm normalises each part by its own statistics, and
the spectral term, which compares batch-mean spectra, is the mean of the parts' terms (as it is over replicas).
"""

from __future__ import annotations

import tensorflow as tf


def in_micro_batches(update, inputs: dict, rows: int, parts: int):
    """update(inputs) -> (gradients, scalars), run on `parts` equal row slices of inputs one after another.

    gradients: a list of gradient lists (one per optimizer); scalars: a dict of scalar tensors. Returns their sums
    over the parts. inputs: name -> tensor with the batch's `rows` rows first (or None). With parts == 1 it is
    update(inputs) itself, the graph of the one-pass step unchanged.
    """
    if parts == 1:
        return update(inputs)
    size = rows // parts
    grads, scalars = None, None
    for k in range(parts):
        # In a graph the executor runs every op whose inputs are ready, so without this edge all the parts'
        # forward passes could run at once and hold their activations together: part k + 1 starts from its
        # slice, and its slice exists only once part k's gradients do.
        with tf.control_dependencies(_tensors(grads)):
            part = {key: None if value is None else tf.identity(value[k * size : (k + 1) * size])
                    for key, value in inputs.items()}
        part_grads, part_scalars = update(part)
        if grads is None:
            grads, scalars = part_grads, dict(part_scalars)
            continue
        grads = [[_add(a, b) for a, b in zip(total, new)] for total, new in zip(grads, part_grads)]
        scalars = {key: scalars[key] + value for key, value in part_scalars.items()}
    return grads, scalars


def _add(a, b):
    """The sum of two parts' gradients for one variable.

    An embedding's gradient is IndexedSlices, one row per image, and Keras's Adam treats it as such (it squares
    each row before rows of the same class add up), so the parts' rows are concatenated, not densified: the
    optimizer sees the very rows of the one-pass step.
    """
    if a is None or b is None:
        return b if a is None else a
    if isinstance(a, tf.IndexedSlices) and isinstance(b, tf.IndexedSlices):
        return tf.IndexedSlices(tf.concat([a.values, b.values], 0), tf.concat([a.indices, b.indices], 0), a.dense_shape)
    return tf.convert_to_tensor(a) + tf.convert_to_tensor(b)


def _tensors(grads) -> list:
    """The tensors holding gradients (so far), for a control edge."""
    out = []
    for g in (g for per_optimizer in grads or [] for g in per_optimizer if g is not None):
        out += [g.values, g.indices] if isinstance(g, tf.IndexedSlices) else [g]
    return out
