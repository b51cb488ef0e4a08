"""GAN losses, per example, so the caller decides how to average (one device or many).

Each loss takes discriminator logits and returns a vector with one loss per
example. `real_target` < 1 is one-sided label smoothing (Salimans et al. 2016).
`r1_penalty` is the R1 regulariser's per-example squared gradient norm (Mescheder et al. 2018).
`spectral_loss` compares the batch-mean radial log power spectra of generated and real images (after Durall
et al. 2020, "Watch your up-convolution", but differentiable in the generated images).
"""

import numpy as np
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


def r1_penalty(critic, real):
    """Per example ||grad_x D(x)||^2 on the real images x, differentiable in D's weights (the R1 regulariser).

    critic: images -> logits (the discriminator, with its labels bound for a conditional one). It runs its own
    forward pass (training=True, as D's loss does). Each logit must depend on its own image only, so the sum's
    gradient is each image's own: no batch norm in D.
    """
    with tf.GradientTape() as tape:
        tape.watch(real)
        total = tf.reduce_sum(tf.cast(critic(real), tf.float32))
    grads = tf.cast(tape.gradient(total, real), tf.float32)
    return tf.reduce_sum(tf.square(tf.reshape(grads, [tf.shape(grads)[0], -1])), axis=1)


# ---------------------------------------------------------------- the spectral term (Durall et al. 2020)

SPECTRAL_EPS = 1e-8  # inside the log: |F|^2 of a constant image is 0 away from DC (and DC is 0 after the mean is removed)


def radial_bins(height: int, width: int) -> np.ndarray:
    """(H, W) int32: each pixel's integer distance (rounded down) from the centre of the fftshifted spectrum."""
    y, x = np.meshgrid(np.arange(height) - height // 2, np.arange(width) - width // 2, indexing="ij")
    return np.floor(np.sqrt(y.astype(np.float64) ** 2 + x.astype(np.float64) ** 2)).astype(np.int32)


def radial_log_spectrum(images):
    """(N, H, W, C) images -> (N, R) azimuthally averaged log power spectra over the integer radii 1 .. R.

    Per image: grayscale (the mean over channels), its mean subtracted, |FFT2|^2, fftshifted, averaged over each
    ring of integer radius, then log(. + eps). Radius 0 (DC, nothing but rounding once the mean is gone) is left out. Differentiable in the images; the ring map is a constant built from
    the static image size. Computed in float32 / complex64 whatever the images' dtype.
    """
    images = tf.cast(images, tf.float32)
    height, width = int(images.shape[1]), int(images.shape[2])
    gray = tf.reduce_mean(images, axis=-1)
    gray = gray - tf.reduce_mean(gray, axis=[1, 2], keepdims=True)
    spectrum = tf.signal.fft2d(tf.complex(gray, tf.zeros_like(gray)))
    power = tf.square(tf.math.real(spectrum)) + tf.square(tf.math.imag(spectrum))  # |F|^2 without |.|'s kink at 0
    power = tf.signal.fftshift(power, axes=[1, 2])
    bins = radial_bins(height, width)
    radii = int(bins.max()) + 1
    one_hot = np.eye(radii, dtype=np.float32)[bins.reshape(-1)][:, 1:]  # (H*W, R): a pixel -> its ring, DC dropped
    ring_mean = tf.constant(one_hot / one_hot.sum(axis=0, keepdims=True))
    profile = tf.matmul(tf.reshape(power, [-1, height * width]), ring_mean)
    return tf.math.log(profile + SPECTRAL_EPS)


def spectral_loss(fake, real):
    """Mean squared difference of the batch-mean radial log power spectra of fake and real (a scalar).

    Each image's profile has its own mean subtracted first, so the term compares the spectrum's shape, not its
    overall level. The real side carries no gradient; the fake side does (unlike the authors' code, which detaches it).
    """
    def mean_profile(images):
        profile = radial_log_spectrum(images)
        return tf.reduce_mean(profile - tf.reduce_mean(profile, axis=1, keepdims=True), axis=0)

    return tf.reduce_mean(tf.square(mean_profile(fake) - tf.stop_gradient(mean_profile(real))))
