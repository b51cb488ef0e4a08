"""dcgan/training/gan.py: the step (the EMA and its warm-up, d_steps, skipped non-finite steps, augmentation, ADA, R1, the
spectral term) and
what a checkpoint holds.

The steps here are GAN.train_step on batches shaped as the data pipeline ships them,
(global batch, d_steps, H, W, C) uint8, without the training loop around it.
"""

import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from dcgan.core.errors import DcganError
from dcgan.training.gan import GAN
from dcgan.training.restoring import restore
from helpers import blob_images


def batches(gan: GAN, n: int, seed: int = 0) -> list:
    """n real batches for gan's step: one image per row and discriminator update."""
    t, d = gan.cfg.data, gan.cfg.train.d_steps
    images = blob_images(n * t.batch_size * d, seed=seed)
    return [tf.constant(b) for b in images.reshape(n, t.batch_size, d, *images.shape[1:])]


def values(variables) -> list[np.ndarray]:
    return [np.array(v.numpy()) for v in variables]


# ---------------------------------------------------------------- the step


def test_ema_warm_up_ramps_the_decay_from_0(tiny_config):
    """At the update made when the step counter reads s, the EMA decay is ema_decay * min(s / ema_warmup, 1)."""
    decay, warmup, steps = 0.9, 3, 5
    gan = GAN(tiny_config(f"train.ema_decay={decay}", f"train.ema_warmup={warmup}"))
    for a, b in zip(gan.ema_generator.get_weights(), gan.generator.get_weights(), strict=True):  # a copy to start
        np.testing.assert_array_equal(a, b)
    raw = []
    for s, real in enumerate(batches(gan, steps)):
        gan.train_step(real)
        raw.append([w.astype(np.float64) for w in values(gan.generator.trainable_variables)])
        if s == 0:  # decay 0: the EMA is the generator just trained, whatever it started from
            for a, b in zip(values(gan.ema_generator.trainable_variables), raw[0], strict=True):
                np.testing.assert_array_equal(a, b)
    # closed form: the EMA is the average of the generators after each step with weights (1 - d_i) * prod_{j > i} d_j
    d = [decay * min(s / warmup, 1.0) for s in range(steps)]
    assert d == pytest.approx([0.0, 0.3, 0.6, 0.9, 0.9])
    w = [(1 - d[i]) * np.prod(d[i + 1:]) for i in range(steps)]
    assert sum(w) == pytest.approx(1.0)
    expected = [sum(w[i] * raw[i][k] for i in range(steps)) for k in range(len(raw[0]))]
    for got, want in zip(values(gan.ema_generator.trainable_variables), expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    assert not all(np.allclose(a, b) for a, b in zip(raw[-1], expected))  # and it is not just the last generator


@pytest.mark.parametrize("d_steps", [1, 3])
def test_the_discriminator_gets_d_steps_updates_per_step(tiny_config, d_steps):
    gan = GAN(tiny_config(f"train.d_steps={d_steps}", "train.ema_decay=0"))
    d_before = values(gan.discriminator.trainable_variables)
    for real in batches(gan, 2):
        logs = gan.train_step(real)
    assert int(gan.step.numpy()) == 2 and int(gan.g_optimizer.iterations.numpy()) == 2
    assert int(gan.d_optimizer.iterations.numpy()) == 2 * d_steps
    assert set(logs) == {"d_loss", "g_loss", "d_real", "d_fake", "d_real_sign"} and all(np.isfinite(float(v)) for v in logs.values())
    assert not any(np.array_equal(a, b) for a, b in zip(d_before, values(gan.discriminator.trainable_variables)))


def test_a_non_finite_loss_skips_the_update_and_records_its_step(tiny_config):
    gan = GAN(tiny_config("train.on_nan=skip_step"))
    good = batches(gan, 5)
    for real in good[:2]:
        gan.train_step(real)
    assert int(gan.skipped_steps.numpy()) == 0 and int(gan.first_nonfinite_step.numpy()) == -1
    kernel = gan.discriminator.get_layer("logit").kernel
    healthy = kernel.numpy()
    kernel.assign(np.full(kernel.shape, np.nan, np.float32))  # a diverged discriminator: every loss is NaN

    def state():  # the weights both networks train and the optimizers' moments and counters
        return values([*gan.generator.trainable_variables, *gan.discriminator.trainable_variables,
                       *gan.g_optimizer.variables, *gan.d_optimizer.variables])

    before = state()
    for real in good[2:4]:  # steps 3 and 4
        logs = gan.train_step(real)
        assert not np.isfinite(float(logs["d_loss"])) and not np.isfinite(float(logs["g_loss"]))
    for a, b in zip(before, state()):
        np.testing.assert_array_equal(a, b)  # NaN where it was, nothing applied
    assert int(gan.skipped_steps.numpy()) == 2 and int(gan.first_nonfinite_step.numpy()) == 3
    assert int(gan.step.numpy()) == 4 and int(gan.g_optimizer.iterations.numpy()) == int(gan.d_optimizer.iterations.numpy()) == 2

    kernel.assign(healthy)
    generator = values(gan.generator.trainable_variables)
    logs = gan.train_step(good[4])  # finite again: applied, and the first bad step stays the one recorded
    assert np.isfinite(float(logs["d_loss"])) and int(gan.g_optimizer.iterations.numpy()) == 3
    assert int(gan.skipped_steps.numpy()) == 2 and int(gan.first_nonfinite_step.numpy()) == 3
    assert not any(np.array_equal(a, b) for a, b in zip(generator, values(gan.generator.trainable_variables)))


def test_a_non_finite_extra_discriminator_update_counts_as_a_bad_step(tiny_config):
    gan = GAN(tiny_config("train.d_steps=2", "train.ema_decay=0"))
    real = batches(gan, 1)[0].numpy().astype(np.float32) / 127.5 - 1.0  # the step scales uint8 pixels the same way
    real[0, 0] = np.nan  # one image of the extra update's share of the batch
    gan.train_step(tf.constant(real))
    assert int(gan.d_optimizer.iterations.numpy()) == 1  # the bad update was skipped, the last one applied
    assert int(gan.skipped_steps.numpy()) == 1 and int(gan.first_nonfinite_step.numpy()) == 1


# ---------------------------------------------------------------- augmentation, ADA and R1 in the step

AUGMENTED = ("train.augment=translation,cutout,color", "train.ada_target=0.6", "train.ada_interval=2",
             "train.ada_speed=1000", "train.r1_gamma=1", "train.r1_every=2")


def scopes(gan: GAN, real) -> set[str]:
    """The name scopes of the step's graph that belong to augmentation, ADA, R1 and the spectral term, and the
    graph's op types (translation's shift matrices, the spectral term's FFT)."""
    graph = gan.train_step.get_concrete_function(real).graph
    found = {m.group(1) for op in graph.get_operations() for part in op.name.split("/")
             if (m := re.fullmatch(r"(augment|augment_params|ada|r1|spectral)(_\d+)?", part))}
    return found | {op.type for op in graph.get_operations() if op.type in ("OneHot", "FFT2D")}


def test_with_everything_off_none_of_it_is_in_the_graph_or_the_checkpoint(tiny_config):
    plain = GAN(tiny_config())
    assert scopes(plain, batches(plain, 1)[0]) == set()
    assert plain.augmenter is None and plain.augment_rng is None and plain.ada is None
    assert not {"augment_rng", "ada"} & set(plain.checkpointed)
    gan = GAN(tiny_config(*AUGMENTED))
    assert scopes(gan, batches(gan, 1)[0]) == {"augment", "augment_params", "ada", "r1", "OneHot"}
    assert {"augment_rng", "ada"} <= set(gan.checkpointed)


def test_the_step_is_traced_once_with_augmentation_ada_and_lazy_r1(tiny_config):
    gan = GAN(tiny_config(*AUGMENTED, "train.d_steps=2"))
    for real in batches(gan, 4):  # R1 on steps 1 and 3, p adjusted after steps 2 and 4
        logs = gan.train_step(real)
    assert gan.train_step.experimental_get_tracing_count() == 1
    assert set(logs) == {"d_loss", "g_loss", "d_real", "d_fake", "d_real_sign", "ada_p"}
    assert all(np.isfinite(float(v)) for v in logs.values())


def test_ada_p_rises_on_a_planted_overfitting_signal_and_falls_on_its_opposite(tiny_config):
    """A discriminator biased to call everything real: sign(D(real)) = 1 > target, so p rises; biased the other way, it falls."""
    gan = GAN(tiny_config("train.ada_target=0.6", "train.ada_interval=2", "train.ada_speed=1000"))
    bias = gan.discriminator.get_layer("logit").bias
    step_p = 2 * 16 / 1000  # 2 steps of 16 real images per adjustment
    bias.assign([20.0])
    ps, signs = [], []
    for real in batches(gan, 6):
        logs = gan.train_step(real)
        ps.append(float(logs["ada_p"]))
        signs.append(float(logs["d_real_sign"]))
    assert signs == [1.0] * 6
    np.testing.assert_allclose(ps, np.array([0, 1, 1, 2, 2, 3]) * step_p, rtol=1e-6)
    bias.assign([-20.0])
    for real in batches(gan, 8, seed=1):
        logs = gan.train_step(real)
        ps.append(float(logs["ada_p"]))
        assert float(logs["d_real_sign"]) == -1.0
    np.testing.assert_allclose(ps[6:], np.array([3, 2, 2, 1, 1, 0, 0, 0]) * step_p, rtol=1e-5, atol=1e-7)
    assert min(ps) == 0.0 and float(gan.ada.p.numpy()) == 0.0  # clipped at 0, not below


def test_augmentation_state_round_trips_through_a_checkpoint(tiny_config, tmp_path):
    """p, its interval's running sum and the augmentation RNG are saved; the restored GAN trains on identically."""
    cfg = tiny_config(*AUGMENTED, "train.ada_interval=3")
    a = GAN(cfg)
    a.ada.p.assign(0.5)  # about half the images augmented by each op
    real = batches(a, 6)
    for r in real[:4]:  # mid-interval: one step of the next interval is summed
        a.train_step(r)
    assert float(a.ada.p.numpy()) in (pytest.approx(0.452), pytest.approx(0.548)) and int(a.ada.steps.numpy()) == 1
    path = a.checkpoint.save(str(tmp_path / "ckpt"))
    b = GAN(cfg)
    restore(b, path)
    for x, y in zip(a.state_arrays(), b.state_arrays(), strict=True):
        np.testing.assert_array_equal(x, y)
    for r in real[4:]:
        a.train_step(r)
        b.train_step(r)
    for x, y in zip(a.state_arrays(), b.state_arrays(), strict=True):
        np.testing.assert_array_equal(x, y)


def test_augmentation_turned_on_or_off_at_resume_restores_the_rest(tiny_config, tmp_path):
    plain = GAN(tiny_config())
    plain.train_step(batches(plain, 1)[0])
    path = plain.checkpoint.save(str(tmp_path / "plain"))
    gan = GAN(tiny_config(*AUGMENTED))
    fresh = gan.augment_rng.state.numpy()
    restore(gan, path)  # no augmentation state in it: it starts as a new run's would
    assert int(gan.step.numpy()) == 1 and float(gan.ada.p.numpy()) == 0.0
    np.testing.assert_array_equal(gan.augment_rng.state.numpy(), fresh)
    gan.ada.p.assign(0.5)
    path = gan.checkpoint.save(str(tmp_path / "augmented"))
    back = GAN(tiny_config())
    restore(back, path)  # augmentation off again: its state in the checkpoint is left out
    for x, y in zip(plain.state_arrays(), back.state_arrays(), strict=True):
        np.testing.assert_array_equal(x, y)


def discriminator_update(tiny_config, *sets, step=0) -> list[np.ndarray]:
    """The change one step makes to D's weights, with SGD in place of Adam so that it is linear in D's gradient."""
    gan = GAN(tiny_config("train.ema_decay=0", *sets))
    gan.d_optimizer = keras.optimizers.SGD(0.5)
    gan.d_optimizer.build(gan.discriminator.trainable_variables)
    gan.step.assign(step)
    before = values(gan.discriminator.trainable_variables)
    logs = gan.train_step(batches(gan, 1)[0])
    assert np.isfinite(float(logs["d_loss"]))
    return [after - b for after, b in zip(values(gan.discriminator.trainable_variables), before)]


def test_r1_joins_the_discriminator_loss_scaled_by_gamma_and_k_on_every_kth_step(tiny_config):
    plain = discriminator_update(tiny_config)
    # a fresh D's input gradients are small: a large gamma makes the R1 term's share of the update plain to see
    r1 = [d - p for d, p in zip(discriminator_update(tiny_config, "train.r1_gamma=1000", "train.r1_every=1"), plain)]
    scale = max(np.abs(x).max() for x in plain)
    assert max(np.abs(x).max() for x in r1) > 0.01 * scale  # R1 moves D
    for gamma, every, factor in ((2000, 1, 2), (1000, 3, 3)):  # gamma / 2 * k
        got = discriminator_update(tiny_config, f"train.r1_gamma={gamma}", f"train.r1_every={every}")
        for g, p, one in zip(got, plain, r1):
            np.testing.assert_allclose(g - p, factor * one, rtol=0, atol=1e-4 * scale)
    off_step = discriminator_update(tiny_config, "train.r1_gamma=1000", "train.r1_every=3", step=1)  # step 2: no R1
    for a, b in zip(off_step, discriminator_update(tiny_config, step=1)):
        np.testing.assert_array_equal(a, b)


def test_the_spectral_term_is_in_the_graph_and_the_logs_only_when_on_and_traced_once(tiny_config):
    plain = GAN(tiny_config())
    assert plain.cfg.train.spectral_weight == 0
    assert not {"spectral", "FFT2D"} & scopes(plain, batches(plain, 1)[0])
    assert "spectral" not in plain.train_step(batches(plain, 1)[0])
    gan = GAN(tiny_config(*AUGMENTED, "train.d_steps=2", "train.spectral_weight=1"))
    assert {"spectral", "FFT2D"} <= scopes(gan, batches(gan, 1)[0])
    for real in batches(gan, 3):
        logs = gan.train_step(real)
    assert gan.train_step.experimental_get_tracing_count() == 1
    assert set(logs) == {"d_loss", "g_loss", "d_real", "d_fake", "d_real_sign", "ada_p", "spectral"}
    assert all(np.isfinite(float(v)) for v in logs.values()) and float(logs["spectral"]) > 0


def generator_update(tiny_config, *sets) -> tuple[list[np.ndarray], dict]:
    """The change one step makes to G's weights (SGD, so linear in G's gradient), and the step's logs."""
    gan = GAN(tiny_config("train.ema_decay=0", *sets))
    gan.g_optimizer = keras.optimizers.SGD(0.5)
    gan.g_optimizer.build(gan.generator.trainable_variables)
    before = values(gan.generator.trainable_variables)
    logs = gan.train_step(batches(gan, 1)[0])
    return [after - b for after, b in zip(values(gan.generator.trainable_variables), before)], logs


def test_the_spectral_term_moves_the_generator_and_scales_with_its_weight(tiny_config):
    plain, plain_logs = generator_update(tiny_config)
    one, logs = generator_update(tiny_config, "train.spectral_weight=1")
    two, _ = generator_update(tiny_config, "train.spectral_weight=2")
    assert float(logs["g_loss"]) == pytest.approx(float(plain_logs["g_loss"]), rel=1e-6)  # g_loss is the adversarial part
    spectral = [o - p for o, p in zip(one, plain)]
    scale = max(np.abs(x).max() for x in plain)
    assert max(np.abs(x).max() for x in spectral) > 1e-3 * scale  # the spectral gradient reaches G's weights
    tol = 1e-4 * max(np.abs(x).max() for x in two)  # float32 rounding of the sum
    for t, p, s in zip(two, plain, spectral):  # w * grad(spectral) joins G's gradient
        np.testing.assert_allclose(t - p, 2 * s, rtol=0, atol=tol)


# ---------------------------------------------------------------- checkpoints and the sampling copy


def test_checkpoint_from_before_the_sampler_choice_samples_from_the_ema_copy(tiny_config, tmp_path):
    cfg = tiny_config("train.ema_decay=0.9")
    old = GAN(cfg)
    path = tf.train.Checkpoint(**{k: v for k, v in old.checkpointed.items() if k != "sample_from_ema"}).save(str(tmp_path / "old"))
    gan = GAN(cfg)
    gan.sample_from_ema.assign(False)
    restore(gan, path)
    assert bool(gan.sample_from_ema.numpy()) is True and gan.sampling_generator() is gan.ema_generator
    for x, y in zip(old.state_arrays(), gan.state_arrays()):
        np.testing.assert_array_equal(x, y)
    del old.checkpointed["fixed_noise"]  # any other missing variable is still refused
    path = tf.train.Checkpoint(**old.checkpointed).save(str(tmp_path / "broken"))
    with pytest.raises(DcganError, match="cannot restore checkpoint .*broken"):
        restore(gan, path)


def test_sampling_generator_follows_the_saved_choice_unless_told(tiny_config):
    gan = GAN(tiny_config("train.ema_decay=0.9"))
    assert gan.sampling_generator() is gan.ema_generator and bool(gan.sample_from_ema.numpy())  # EMA until a choice says otherwise
    gan.sample_from_ema.assign(False)
    assert gan.sampling_generator() is gan.generator and gan.sampling_generator(None) is gan.generator
    assert gan.sampling_generator(True) is gan.ema_generator and gan.sampling_generator(False) is gan.generator
    plain = GAN(tiny_config("train.ema_decay=0"))
    assert plain.ema_generator is None and not bool(plain.sample_from_ema.numpy())
    assert plain.sampling_generator(True) is plain.generator and plain.sampling_generator() is plain.generator
    assert "sample_from_ema" not in plain.checkpointed  # nothing to choose: checkpoints stay as they were


# ---------------------------------------------------------------- class-conditional GANs

CLASSES = [str(k) for k in range(10)]


def conditional(tiny_config, g="cbn", d="projection", *overrides):
    return tiny_config(f"model.generator.condition={g}", f"model.discriminator.condition={d}", *overrides)


def labelled(batch, labels):
    """A real batch as the labelled pipeline ships it: (images, int32 labels (global batch, d_steps))."""
    return batch, tf.constant(np.broadcast_to(np.asarray(labels, np.int32)[:, None], batch.shape[:2]))


@pytest.mark.parametrize("g, d", [("concat", "projection"), ("cbn", "projection"), ("cbn", "concat"), ("concat", "concat")])
def test_each_conditioning_method_trains_finite_traced_once(tiny_config, g, d):
    gan = GAN(conditional(tiny_config, g, d, "train.ema_decay=0.9", "train.d_steps=2"), classes=CLASSES)
    before = values(gan.generator.trainable_variables + gan.discriminator.trainable_variables)
    for batch in batches(gan, 2):
        logs = gan.train_step(labelled(batch, np.arange(len(batch)) % 10))
    assert all(np.isfinite(float(v)) for v in logs.values())
    assert gan.train_step.experimental_get_tracing_count() == 1
    after = values(gan.generator.trainable_variables + gan.discriminator.trainable_variables)
    assert all(not np.array_equal(a, b) for a, b in zip(before, after))  # every weight learns, class embeddings included


def test_real_labels_reach_the_discriminator_and_fake_labels_are_consecutive_classes(tiny_config):
    """A projection row moves only when its class is in the step (Adam's first update of a zero gradient is 0)."""
    gan = GAN(conditional(tiny_config, "cbn", "projection", "data.batch_size=4", "train.ema_decay=0"), classes=CLASSES)
    embedding = gan.discriminator.get_layer("projection").embedding
    before = embedding.numpy()
    gan.train_step(labelled(batches(gan, 1)[0], [9, 9, 9, 9]))
    moved = {int(k) for k in np.flatnonzero(np.any(embedding.numpy() != before, axis=1))}
    runs = [{(start + i) % 10 for i in range(4)} for start in range(10)]  # 4 fake labels: 4 classes in turn
    assert 9 in moved and any(moved == run | {9} for run in runs)


def test_balanced_fake_labels_give_every_class_its_share_and_differ_from_step_to_step():
    from dcgan.training.gan import balanced_fake_labels

    rng = tf.random.Generator.from_seed(0)
    draws = [balanced_fake_labels(rng, 64, 2, 10).numpy() for _ in range(5)]
    for labels in draws:
        assert labels.shape == (64, 2) and labels.dtype == np.int32
        counts = np.bincount(labels.ravel(), minlength=10)
        assert counts.max() - counts.min() <= 1 and counts.sum() == 128
    assert len({d[0, 0] for d in draws}) > 1  # the start is drawn from the checkpointed RNG


def test_the_fixed_grid_has_one_row_per_class_with_the_same_latents(tiny_config):
    gan = GAN(conditional(tiny_config, "concat", "projection", "train.sample_grid=3"), classes=CLASSES[:4])
    assert gan.grid_shape == (4, 3)
    rows = gan.fixed_noise.numpy().reshape(4, 3, -1)
    assert all(np.array_equal(rows[0], r) for r in rows[1:]) and len(np.unique(rows[0][:, 0])) == 3
    np.testing.assert_array_equal(gan.fixed_labels, [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3])


def test_a_conditional_gan_without_classes_is_one_line(tiny_config):
    with pytest.raises(DcganError, match="needs class labels"):
        GAN(conditional(tiny_config))
