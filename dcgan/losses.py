"""GAN losses, per example, so the caller decides how to average (one device or many).

Each loss takes discriminator logits and returns a vector with one loss per
example. `real_target` < 1 is one-sided label smoothing (Salimans et al. 2016).
`r1_penalty` is the R1 regulariser's per-example squared gradient norm (Mescheder et al. 2018).
"""

import tensorflow as tf


def discriminator_loss(kind: str, real_logits, fake_logits, real_target: float = 1.0):
    real_logits = tf.reshape(tf.cast(real_logits, tf.float32), [-1])
    fake_logits = tf.reshape(tf.cast(fake_logits, tf.float32), [-1])
    if kind == "bce":
        real = tf.nn.sigmoid_cross_entropy_with_logits(tf.fill(tf.shape(real_logits), real_target), real_logits)
        fake = tf.nn.sigmoid_cross_entropy_with_logits(tf.zeros_like(fake_logits), fake_logits)
    elif kind == "hinge":
        real = tf.nn.relu(1.0 - real_logits)
        fake = tf.nn.relu(1.0 + fake_logits)
    elif kind == "lsgan":
        real = 0.5 * tf.square(real_logits - real_target)
        fake = 0.5 * tf.square(fake_logits)
    else:
        raise ValueError(f"unknown loss {kind!r}")
    return real + fake


def generator_loss(kind: str, fake_logits):
    fake_logits = tf.reshape(tf.cast(fake_logits, tf.float32), [-1])
    if kind == "bce":  # non-saturating: maximise log D(G(z))
        return tf.nn.sigmoid_cross_entropy_with_logits(tf.ones_like(fake_logits), fake_logits)
    if kind == "hinge":
        return -fake_logits
    if kind == "lsgan":
        return 0.5 * tf.square(fake_logits - 1.0)
    raise ValueError(f"unknown loss {kind!r}")


def r1_penalty(discriminator, real):
    """Per example ||grad_x D(x)||^2 on the real images x, differentiable in D's weights (the R1 regulariser).

    It runs its own forward pass (training=True, as D's loss does). Each logit must depend on its own image
    only, so the sum's gradient is each image's own: no batch norm in D.
    """
    with tf.GradientTape() as tape:
        tape.watch(real)
        total = tf.reduce_sum(tf.cast(discriminator(real, training=True), tf.float32))
    grads = tf.cast(tape.gradient(total, real), tf.float32)
    return tf.reduce_sum(tf.square(tf.reshape(grads, [tf.shape(grads)[0], -1])), axis=1)
