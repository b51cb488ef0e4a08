"""dcgan/models/augment.py: each DiffAugment op (shape, range, what it does, gradients), the pipeline's RNG and gates, ADA's p."""

import numpy as np
import pytest
import tensorflow as tf

from dcgan.models import augment
from dcgan.models.augment import OPS, UNIFORMS, AdaptiveP, Pipeline, adjust, color, cutout, translation


def images(n=8, size=28, channels=1, seed=0):
    """Images in [-1, 1] with both ends of the range in every image."""
    x = np.random.default_rng(seed).uniform(-1, 1, (n, size, size, channels)).astype(np.float32)
    x[:, 0, 0], x[:, -1, -1] = -1.0, 1.0
    return tf.constant(x)


def uniforms(op, n=8, seed=1):
    return tf.constant(np.random.default_rng(seed).uniform(0, 1, (n, UNIFORMS[op])).astype(np.float32))


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("size, channels", [(28, 1), (32, 3)])
def test_each_op_keeps_shape_dtype_and_range_and_changes_the_images(op, size, channels):
    x = images(size=size, channels=channels)
    y = augment.FUNCTIONS[op](x, uniforms(op))
    assert y.shape == x.shape and y.dtype == x.dtype
    assert float(tf.reduce_min(y)) >= -1.0 and float(tf.reduce_max(y)) <= 1.0
    changed = np.any(y.numpy() != x.numpy(), axis=(1, 2, 3))
    assert changed.sum() >= 6  # random per image: (nearly) every image is transformed, each its own way
    assert len({y.numpy()[i].tobytes() for i in range(len(x))}) == len(x)


@pytest.mark.parametrize("op", OPS)
def test_gradients_flow_through_each_op_to_its_input(op):
    x = images(channels=3)
    weights = tf.constant(np.random.default_rng(2).normal(size=x.shape).astype(np.float32))
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(augment.FUNCTIONS[op](x, uniforms(op)) * weights)
    grad = tape.gradient(loss, x).numpy()
    assert np.all(np.isfinite(grad))
    assert np.all(np.abs(grad).sum(axis=(1, 2, 3)) > 0)  # every image gets a gradient


def test_translation_shifts_by_whole_pixels_up_to_an_eighth_with_zero_padding():
    x = images(n=1, size=32)
    # u = 0 shifts by -reach (4 px at 32), u -> 1 by +reach, u = 0.5 not at all
    rows_down = translation(x, tf.constant([[1 - 1e-7, 0.5]])).numpy()
    np.testing.assert_array_equal(rows_down[0, 4:], x.numpy()[0, :-4])
    np.testing.assert_array_equal(rows_down[0, :4], 0.0)
    cols_left = translation(x, tf.constant([[0.5, 0.0]])).numpy()
    np.testing.assert_array_equal(cols_left[0, :, :-4], x.numpy()[0, :, 4:])
    np.testing.assert_array_equal(cols_left[0, :, -4:], 0.0)
    np.testing.assert_array_equal(translation(x, tf.constant([[0.5, 0.5]])).numpy(), x.numpy())
    # over many draws every shift in [-3, 3] (28 // 8 = 3) occurs, and nothing further; d sum / d x counts what stays in
    x = tf.ones([2000, 28, 28, 1])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = translation(x, tf.random.stateless_uniform([2000, 2], seed=[0, 1]))
        total = tf.reduce_sum(y)
    kept = tape.gradient(total, x).numpy()
    assert set(np.unique(kept)) == {0.0, 1.0}
    kept_rows = kept[:, :, 14, 0].sum(axis=1)  # 28 - |dy|
    assert set(kept_rows.astype(int)) == {25, 26, 27, 28}
    np.testing.assert_array_equal(y.numpy().sum(axis=(1, 2, 3)), kept.sum(axis=(1, 2, 3)))


def test_cutout_zeroes_a_half_size_square_that_may_hang_over_an_edge():
    x = tf.ones([1, 28, 28, 1])
    centred = cutout(x, tf.constant([[0.5, 0.5]])).numpy()[0, ..., 0]
    assert (centred == 0).sum() == 14 * 14 and np.all(centred[7:21, 7:21] == 0)
    corner = cutout(x, tf.constant([[0.0, 0.0]])).numpy()[0, ..., 0]  # centre at (0, 0): a quarter of the square
    assert (corner == 0).sum() == 7 * 7 and np.all(corner[:7, :7] == 0)
    many = cutout(tf.ones([500, 28, 28, 1]), tf.random.stateless_uniform([500, 2], seed=[0, 2])).numpy()
    holes = (many == 0).sum(axis=(1, 2, 3))
    assert holes.max() == 14 * 14 and holes.min() >= 7 * 7
    assert set(np.unique(many)) == {0.0, 1.0}  # the rest is untouched


def test_color_is_brightness_and_contrast_on_one_channel_and_saturation_too_on_rgb():
    gray = images(n=4, channels=1)
    u = uniforms("color", n=4)
    other_saturation = tf.concat([u[:, :1], 1.0 - u[:, 1:2], u[:, 2:]], axis=1)
    np.testing.assert_array_equal(color(gray, u).numpy(), color(gray, other_saturation).numpy())
    rgb = images(n=4, channels=3)
    assert not np.array_equal(color(rgb, u).numpy(), color(rgb, other_saturation).numpy())
    # the neutral draw (no brightness shift, saturation x1, contrast x1) leaves the images as they are
    neutral = tf.constant([[0.5, 0.5, 0.5]] * 4)
    np.testing.assert_allclose(color(rgb, neutral).numpy(), rgb.numpy(), atol=1e-6)


def test_the_same_rng_state_gives_the_same_augmented_batch():
    x = images(channels=3)
    a = augment.augment(x, OPS, tf.random.Generator.from_seed(7))
    rng = tf.random.Generator.from_seed(7)
    b = augment.augment(x, OPS, rng)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert not np.array_equal(augment.augment(x, OPS, rng).numpy(), b.numpy())  # the state moved on
    gated = [augment.augment(x, OPS, tf.random.Generator.from_seed(7), p=0.5).numpy() for _ in range(2)]
    np.testing.assert_array_equal(*gated)


def test_with_ada_each_op_is_applied_per_image_with_probability_p():
    x = images(n=400, size=16, channels=3)
    plain = Pipeline(OPS)
    always = plain(x, plain.draw(tf.random.Generator.from_seed(3), [400]))
    ada = Pipeline(OPS, adaptive=True)
    assert ada.n_params == plain.n_params + len(OPS)
    for p, expected in ((0.0, x), (1.0, always)):  # the same uniforms come first: p = 1 is the plain pipeline
        got = ada(x, ada.draw(tf.random.Generator.from_seed(3), [400], p=p))
        np.testing.assert_array_equal(got.numpy(), expected.numpy())
    params = ada.draw(tf.random.Generator.from_seed(4), [400], p=0.3)
    gates = params[:, plain.n_params :].numpy()
    assert set(np.unique(gates)) == {0.0, 1.0} and 0.22 < gates.mean() < 0.38
    out = ada(x, params).numpy()
    untouched = np.all(out == x.numpy(), axis=(1, 2, 3))
    picked = gates.any(axis=1)
    assert untouched[~picked].all()  # an image no gate picked is exactly as it was
    assert (~untouched[picked]).mean() > 0.9  # (a translation by (0, 0) alone leaves one as it was)


def test_pipeline_refuses_unknown_ops_and_policy_defaults():
    with pytest.raises(ValueError, match="augmentation ops must be some of translation, cutout, color"):
        Pipeline(["flip"])
    assert augment.policy([], adaptive=False) == ()
    assert augment.policy([], adaptive=True) == ("translation", "cutout", "color")
    assert augment.policy(["cutout"], adaptive=True) == ("cutout",)


# ---------------------------------------------------------------- ADA's p


def test_p_rises_while_r_t_is_above_the_target_falls_below_and_stays_in_0_1():
    ada = AdaptiveP(target=0.6, interval=3, speed=1000, images_per_step=16)

    def feed(*signs):
        return [float(ada.update(tf.constant(s))) for s in signs]

    assert feed(1.0, 1.0) == [0.0, 0.0]  # nothing moves inside an interval
    assert feed(1.0) == [pytest.approx(0.048)]  # 3 steps x 16 images / 1000
    assert feed(1.0, 0.5, 0.5)[-1] == pytest.approx(0.096)  # r_t = 0.667: the mean decides, not each step
    assert feed(0.2, 0.2, 0.2)[-1] == pytest.approx(0.048)  # overfitting gone: p falls
    assert feed(*[-1.0] * 9)[-1] == 0.0  # ... and stops at 0
    assert feed(0.6, 0.6, 0.6)[-1] == 0.0  # exactly on target: no change
    fast = AdaptiveP(target=0.6, interval=1, speed=10, images_per_step=16)
    assert [float(fast.update(tf.constant(1.0))) for _ in range(3)] == [1.0, 1.0, 1.0]  # clipped at 1
    assert float(adjust(0.5, 0.1, 0.6, 100, 1000)) == pytest.approx(0.4)
