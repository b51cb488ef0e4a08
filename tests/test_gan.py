"""The GAN's state: what a checkpoint holds and how it restores."""

import numpy as np
import pytest
import tensorflow as tf

from dcgan.errors import DcganError
from dcgan.gan import GAN, restore


def test_checkpoint_from_before_the_sampler_choice_samples_from_the_ema_copy(tiny_config, tmp_path):
    cfg = tiny_config("train.ema_decay=0.9")
    old = GAN(cfg)
    path = tf.train.Checkpoint(**{k: v for k, v in old.checkpointed.items() if k != "sample_from_ema"}).save(str(tmp_path / "old"))
    gan = GAN(cfg)
    gan.sample_from_ema.assign(False)
    restore(gan, path)
    assert bool(gan.sample_from_ema.numpy()) is True and gan.sampler is gan.ema_generator
    for x, y in zip(old.state_arrays(), gan.state_arrays()):
        np.testing.assert_array_equal(x, y)
    del old.checkpointed["fixed_noise"]  # any other missing variable is still refused
    path = tf.train.Checkpoint(**old.checkpointed).save(str(tmp_path / "broken"))
    with pytest.raises(DcganError, match="cannot restore checkpoint .*broken"):
        restore(gan, path)


def test_pick_follows_the_saved_choice_unless_told(tiny_config):
    gan = GAN(tiny_config("train.ema_decay=0.9"))
    assert gan.sampler is gan.ema_generator and bool(gan.sample_from_ema.numpy())  # EMA until a choice says otherwise
    gan.sample_from_ema.assign(False)
    assert gan.sampler is gan.generator and gan.pick(None) is gan.generator
    assert gan.pick(True) is gan.ema_generator and gan.pick(False) is gan.generator
    plain = GAN(tiny_config("train.ema_decay=0"))
    assert plain.ema_generator is None and not bool(plain.sample_from_ema.numpy())
    assert plain.pick(True) is plain.generator and plain.sampler is plain.generator
    assert "sample_from_ema" not in plain.checkpointed  # nothing to choose: checkpoints stay as they were
