"""dcgan/models/losses.py: each loss kind's per-example values on known logits, against the formulas written out; R1 on
discriminators whose input gradient is known by hand; the spectral term on planted spectra."""

import numpy as np
import pytest
import tensorflow as tf

from dcgan.models.losses import discriminator_loss, generator_loss, r1_penalty, radial_bins, radial_log_spectrum, spectral_loss

REAL = np.array([-3.0, -1.0, 0.0, 0.5, 2.0, 4.0], np.float32)
FAKE = np.array([2.0, 1.0, 0.0, -0.5, -2.0, -4.0], np.float32)


def softplus(x):
    return np.log1p(np.exp(x))


def bce(target, logits):
    """Sigmoid cross-entropy written out: -t log(sigmoid(x)) - (1 - t) log(1 - sigmoid(x))."""
    p = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
    return -target * np.log(p) - (1.0 - target) * np.log(1.0 - p)


def d_loss(kind, real=REAL, fake=FAKE, real_target=1.0):
    return discriminator_loss(kind, tf.constant(real), tf.constant(fake), real_target).numpy()


def g_loss(kind, fake=FAKE):
    return generator_loss(kind, tf.constant(fake)).numpy()


def test_known_values_at_zero_logits():
    zero = np.zeros(1, np.float32)
    np.testing.assert_allclose(d_loss("bce", zero, zero), [2 * np.log(2)], rtol=1e-6)  # D unsure of both: log 2 each
    np.testing.assert_allclose(g_loss("bce", zero), [np.log(2)], rtol=1e-6)
    np.testing.assert_allclose(d_loss("hinge", zero, zero), [2.0])  # inside both margins by 1
    np.testing.assert_allclose(g_loss("hinge", zero), [0.0])
    np.testing.assert_allclose(d_loss("lsgan", zero, zero), [0.5])  # 0.5 (0 - 1)^2 + 0.5 0^2
    np.testing.assert_allclose(g_loss("lsgan", zero), [0.5])


def test_bce_discriminator_and_non_saturating_generator():
    np.testing.assert_allclose(d_loss("bce"), bce(1.0, REAL) + bce(0.0, FAKE), rtol=1e-5)
    np.testing.assert_allclose(d_loss("bce"), softplus(-REAL) + softplus(FAKE), rtol=1e-5)
    # non-saturating: -log D(G(z)), not log(1 - D(G(z))); large while D rejects the fakes
    np.testing.assert_allclose(g_loss("bce"), softplus(-FAKE), rtol=1e-5)
    assert g_loss("bce", np.array([-10.0], np.float32))[0] == pytest.approx(10.0, abs=1e-3)


def test_hinge_losses():
    np.testing.assert_allclose(d_loss("hinge"), np.maximum(0, 1 - REAL) + np.maximum(0, 1 + FAKE))
    np.testing.assert_allclose(d_loss("hinge", [4.0, 1.0], [-4.0, -1.0]), [0.0, 0.0])  # beyond the margins: no loss
    np.testing.assert_allclose(g_loss("hinge"), -FAKE)


def test_least_squares_losses():
    np.testing.assert_allclose(d_loss("lsgan"), 0.5 * (REAL - 1) ** 2 + 0.5 * FAKE**2, rtol=1e-6)
    np.testing.assert_allclose(g_loss("lsgan"), 0.5 * (FAKE - 1) ** 2, rtol=1e-6)


def test_label_smoothing_is_one_sided():
    """real_target < 1 softens the real term of bce and lsgan; the fake term and the generator's loss are unchanged."""
    smoothed = d_loss("bce", real_target=0.9)
    np.testing.assert_allclose(smoothed, bce(0.9, REAL) + bce(0.0, FAKE), rtol=1e-5)  # the fakes' target stays 0
    np.testing.assert_allclose(smoothed - d_loss("bce"), bce(0.9, REAL) - bce(1.0, REAL), rtol=1e-4, atol=1e-6)
    # the smoothed real term is smallest at logit(0.9), no longer growing ever more confident
    logits = np.linspace(-1, 5, 601).astype(np.float32)
    best = logits[np.argmin(d_loss("bce", logits, np.full_like(logits, -50.0), real_target=0.9))]
    assert best == pytest.approx(np.log(0.9 / 0.1), abs=0.01)
    np.testing.assert_allclose(d_loss("lsgan", real_target=0.9), 0.5 * (REAL - 0.9) ** 2 + 0.5 * FAKE**2, rtol=1e-6)
    np.testing.assert_allclose(d_loss("hinge", real_target=0.9), d_loss("hinge"))  # hinge has no target to smooth


@pytest.mark.parametrize("kind", ["bce", "hinge", "lsgan"])
def test_losses_are_per_example_float32_whatever_the_logits_shape_and_dtype(kind):
    for dtype in (tf.float32, tf.float16, tf.bfloat16):
        real = tf.cast(tf.reshape(tf.constant(REAL), [6, 1]), dtype)  # a discriminator's (batch, 1) logits
        fake = tf.cast(tf.reshape(tf.constant(FAKE), [6, 1]), dtype)
        d, g = discriminator_loss(kind, real, fake, 0.9), generator_loss(kind, fake)
        assert d.shape == (6,) and g.shape == (6,) and d.dtype == g.dtype == tf.float32, dtype
        # the half-precision logits hold these values exactly, so the losses match float32's
        np.testing.assert_allclose(d.numpy(), d_loss(kind, real_target=0.9), rtol=1e-6)
        np.testing.assert_allclose(g.numpy(), g_loss(kind), rtol=1e-6)


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="unknown loss 'wgan'"):
        discriminator_loss("wgan", REAL, FAKE)
    with pytest.raises(ValueError, match="unknown loss 'wgan'"):
        generator_loss("wgan", FAKE)


def test_r1_penalty_is_each_images_squared_input_gradient_norm():
    """D(x) = sum(w * x) (a Keras Dense layer without bias) has grad_x D = w: the penalty is sum(w^2) for every image."""
    import keras

    rng = np.random.default_rng(0)
    w = rng.normal(size=(4 * 4 * 2, 1)).astype(np.float32)
    linear = keras.Sequential([keras.Input((4, 4, 2)), keras.layers.Flatten(), keras.layers.Dense(1, use_bias=False)])
    linear.layers[-1].kernel.assign(w)
    x = tf.constant(rng.uniform(-1, 1, (3, 4, 4, 2)).astype(np.float32))
    np.testing.assert_allclose(r1_penalty(linear, x).numpy(), [np.sum(w**2)] * 3, rtol=1e-5)
    # differentiable in D's weights (D's update needs it): d sum(w^2) / dw = 2w
    with tf.GradientTape() as tape:
        penalty = r1_penalty(linear, x)[0]
    np.testing.assert_allclose(tape.gradient(penalty, linear.trainable_variables)[0].numpy(), 2 * w, rtol=1e-5)
    # a nonlinear D: D(x) = sum(v * x^2) / 2 has grad v * x, so each image gets its own sum(v^2 x^2)
    v = tf.constant(rng.uniform(0.5, 2, (1, 4, 4, 2)).astype(np.float32))
    square = lambda images: tf.reduce_sum(v * images**2, axis=[1, 2, 3])[:, None] / 2  # noqa: E731
    np.testing.assert_allclose(r1_penalty(square, x).numpy(), np.sum((v * x).numpy() ** 2, axis=(1, 2, 3)), rtol=1e-5)


# ---------------------------------------------------------------- the spectral term


def checkerboard(size: int, channels: int = 1) -> np.ndarray:
    """(1, size, size, channels) float32 +-1 checkerboard: all its power at the Nyquist corner."""
    board = np.fromfunction(lambda i, j: (-1.0) ** (i + j), (size, size))
    return np.repeat(board[None, :, :, None], channels, axis=-1).astype(np.float32)


@pytest.mark.parametrize("size, channels", [(28, 1), (32, 3), (16, 1)])
def test_a_checkerboards_radial_log_spectrum_peaks_at_the_top_radius(size, channels):
    profile = radial_log_spectrum(checkerboard(size, channels)).numpy()
    assert profile.shape == (1, int(radial_bins(size, size).max()))  # radii 1 .. max: DC left out
    assert profile[0].argmax() == profile.shape[1] - 1  # the corner of the shifted spectrum is the farthest ring
    assert profile[0, -1] > profile[0, :-1].max() + 10  # and nothing else has any power


def test_a_constant_image_has_no_power_and_a_single_frequency_sits_at_its_radius():
    flat = radial_log_spectrum(np.full((1, 16, 16, 1), 0.7, np.float32)).numpy()
    np.testing.assert_allclose(flat, np.log(1e-8), atol=1e-3)  # the mean is removed: nothing left
    wave = np.cos(2 * np.pi * 4 * np.arange(16) / 16)[None, None, :, None] * np.ones((1, 16, 1, 1))
    assert radial_log_spectrum(wave.astype(np.float32)).numpy()[0].argmax() == 3  # radius 4, the profile starts at 1


def test_spectral_loss_is_zero_for_the_same_batch_and_positive_otherwise():
    rng = np.random.default_rng(0)
    a = tf.constant(rng.normal(size=(4, 16, 16, 3)).astype(np.float32))
    b = tf.constant(np.repeat(checkerboard(16, 3), 4, axis=0) + 0.1 * rng.normal(size=(4, 16, 16, 3)).astype(np.float32))
    assert float(spectral_loss(a, a)) == 0.0
    assert float(spectral_loss(a, b)) > 0.1 and float(spectral_loss(b, a)) > 0.1
    # scaling an image scales its power, a constant in log space, and each profile's own mean is subtracted
    np.testing.assert_allclose(float(spectral_loss(a, 3.0 * a)), 0.0, atol=1e-8)


def test_spectral_loss_has_a_finite_non_zero_gradient_in_the_fake_images_only():
    rng = np.random.default_rng(1)
    fake = tf.constant(rng.normal(size=(4, 16, 16, 1)).astype(np.float32))
    real = tf.constant(np.repeat(checkerboard(16), 4, axis=0))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([fake, real])
        loss = spectral_loss(fake, real)
    grad = tape.gradient(loss, fake).numpy()
    assert np.isfinite(grad).all() and np.abs(grad).max() > 0
    assert tape.gradient(loss, real) is None  # the real side is a target: no gradient


@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16])
def test_spectral_loss_is_float32_for_mixed_precision_images(dtype):
    rng = np.random.default_rng(2)
    a, b = (tf.constant(rng.normal(size=(2, 8, 8, 1)).astype(np.float32)) for _ in range(2))
    loss = spectral_loss(tf.cast(a, dtype), tf.cast(b, dtype))
    assert loss.dtype == tf.float32 and np.isfinite(float(loss)) and float(loss) > 0
