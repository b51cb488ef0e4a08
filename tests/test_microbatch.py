"""dcgan/training/microbatch.py: train.micro_batch sums each update's gradients over passes of part of the batch.

Without BatchNorm the losses are per-image means over the whole batch, so the parts add up to the one-pass step:
the same logs and, after a few steps, the same weights up to float rounding, with extra D updates, R1,
augmentation and conditioning on. With BatchNorm each part is normalised by its own statistics.
"""

import numpy as np
import pytest
import tensorflow as tf

from dcgan.core.errors import ConfigError
from dcgan.training.gan import GAN
from dcgan.training.microbatch import in_micro_batches
from helpers import blob_images

NO_BATCHNORM = ("model.generator.norm=none", "model.discriminator.norm=none")


def real_batches(gan: GAN, n: int) -> list:
    t, d = gan.cfg.data, gan.cfg.train.d_steps
    images = blob_images(n * t.batch_size * d, seed=3)
    batches = [tf.constant(b) for b in images.reshape(n, t.batch_size, d, *images.shape[1:])]
    if gan.num_classes:
        labels = np.arange(n * t.batch_size * d, dtype=np.int32).reshape(n, t.batch_size, d) % gan.num_classes
        batches = [(b, tf.constant(y)) for b, y in zip(batches, labels)]
    return batches


def trained(cfg, steps: int = 3, classes=None):
    gan = GAN(cfg, classes=classes)
    logs = [{k: float(v) for k, v in gan.train_step(real).items()} for real in real_batches(gan, steps)]
    return gan, logs


@pytest.mark.parametrize("extra", [
    (),
    ("train.d_steps=2", "train.r1_gamma=1", "train.r1_every=1", "train.augment=[translation,cutout]"),
    ("model.generator.condition=concat", "model.discriminator.condition=projection"),
], ids=["plain", "d_steps-r1-augment", "conditional"])
def test_micro_batches_without_batchnorm_give_the_one_pass_update(tiny_config, extra):
    classes = ["a", "b", "c"] if extra and "condition" in extra[0] else None
    one_pass, one_logs = trained(tiny_config(*NO_BATCHNORM, *extra), classes=classes)
    parts, part_logs = trained(tiny_config(*NO_BATCHNORM, *extra, "train.micro_batch=4"), classes=classes)
    for a, b in zip(one_logs, part_logs, strict=True):
        assert a.keys() == b.keys()
        for key in a.keys() - {"d_real_sign"}:  # a sign counts logits near 0, which float rounding can flip
            assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-6), key
    for a, b in zip(one_pass.state_arrays(), parts.state_arrays(), strict=True):
        np.testing.assert_allclose(b, a, rtol=2e-4, atol=2e-6)
    assert int(parts.d_optimizer.iterations.numpy()) == 3 * parts.cfg.train.d_steps  # one update per D step, not per part


def test_with_batchnorm_each_part_has_its_own_statistics(tiny_config):
    """The default generator's BatchNorm sees 4 images at a time: the step trains, traced once, and differs."""
    _, one_logs = trained(tiny_config())
    gan, part_logs = trained(tiny_config("train.micro_batch=4", "train.spectral_weight=1"))
    assert all(np.isfinite(list(logs.values())).all() for logs in part_logs)
    assert gan.train_step.experimental_get_tracing_count() == 1
    assert part_logs[-1]["g_loss"] != pytest.approx(one_logs[-1]["g_loss"], rel=1e-6)


def test_the_parts_run_one_after_another():
    """Part k + 1's slice waits for part k's gradients (else a graph could run every forward pass at once)."""
    parts, grads = [], []

    def update(part):
        parts.append(part["x"])
        grads.append(2.0 * part["x"])
        return [[tf.reduce_sum(grads[-1])]], {"loss": tf.reduce_sum(part["x"] ** 2)}

    @tf.function(autograph=False)
    def step(x):
        return in_micro_batches(update, {"x": x, "labels": None}, rows=6, parts=3)

    (total,), scalars = step(tf.range(6, dtype=tf.float32))
    assert float(total[0]) == 2.0 * 15 and float(scalars["loss"]) == sum(i * i for i in range(6))
    assert [p.shape[0] for p in parts] == [2, 2, 2]
    assert not {g.op for g in grads} & upstream(parts[0].op)
    for k in (1, 2):  # part k's slice is computed after part k - 1's gradient, through a control edge
        assert grads[k - 1].op in upstream(parts[k].op) and grads[k].op not in upstream(parts[k].op)
        assert grads[k - 1].op not in upstream(parts[k].op, control=False)


def upstream(op, control: bool = True) -> set:
    """Every op whose output op waits for: through data inputs, and control inputs where `control`."""
    seen, todo = set(), [op]
    while todo:
        current = todo.pop()
        for before in [t.op for t in current.inputs] + (list(current.control_inputs) if control else []):
            if before not in seen:
                seen.add(before)
                todo.append(before)
    return seen


@pytest.mark.parametrize("micro,batch", [(5, 16), (32, 16)])
def test_a_micro_batch_that_does_not_divide_the_batch_is_one_line(tiny_config, micro, batch):
    with pytest.raises(ConfigError, match=rf"^train.micro_batch: {micro} does not divide data.batch_size {batch}"):
        tiny_config(f"train.micro_batch={micro}", f"data.batch_size={batch}")
    # a replica's share must divide too: tests/test_distribute.py checks it under a real two-replica strategy
