"""The held-out gap: D's output on its training images against unseen ones, logged at every log line."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from dcgan.data import pipeline as datalib
from dcgan.core.config import from_dict, to_dict
from dcgan.training.gan import GAN, restore
from dcgan.training.callbacks import HeldOutGap
from dcgan.training.rundir import read_metrics
from dcgan.training.loop import train
from helpers import blob_images


def test_every_log_line_has_the_gap_and_probing_leaves_the_run_unchanged(tiny_run, tiny_gan, tmp_path):
    run_dir, cfg = tiny_run
    records = read_metrics(run_dir / "metrics.jsonl", "train")
    assert [r["step"] for r in records] == [2, 4, 6]
    for r in records:
        assert 0 <= r["d_seen"] <= 1 and 0 <= r["d_unseen"] <= 1
        assert r["d_gap"] == pytest.approx(r["d_seen"] - r["d_unseen"])
    # the same run without the probe: the same weights, bit for bit (D is probed in inference mode)
    off = to_dict(cfg)
    off["train"]["heldout_probe"], off["run"] = 0, {"dir": str(tmp_path), "name": "off"}
    off = from_dict(off)
    off_dir = train(off, quiet=True)
    assert not any("d_gap" in r for r in read_metrics(off_dir / "metrics.jsonl", "train"))
    gan = GAN(off)
    restore(gan, str(off_dir / "checkpoints" / "ckpt-6"))
    for a, b in zip(gan.state_arrays(), tiny_gan.state_arrays()):
        np.testing.assert_array_equal(a, b)


def test_the_gap_opens_when_d_learns_its_training_images_by_heart(tiny_config):
    gan = GAN(tiny_config("model.discriminator.norm=none"))
    seen, unseen = blob_images(32, seed=1), blob_images(32, seed=2)  # one distribution, two draws
    probe = HeldOutGap(gan, seen, None, datalib.Labelled(unseen, np.zeros(32, np.int64), ["blob"]))
    assert len(probe) == 32
    assert abs(probe(gan)["d_gap"]) < 0.05  # a fresh D tells the two draws apart no better than chance

    # plant memorisation: D trained to call its own images real and the unseen ones fake
    x = datalib.to_float(np.concatenate([seen, unseen])).astype(np.float32)
    y = np.concatenate([np.ones(32), np.zeros(32)]).astype(np.float32)[:, None]
    optimizer = tf.keras.optimizers.Adam(0.01)
    for _ in range(60):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(y, gan.discriminator(x, training=True)))
        variables = gan.discriminator.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
    gap = probe(gan)
    assert gap["d_gap"] > 0.5 and gap["d_seen"] > 0.75 and gap["d_unseen"] < 0.25, gap


def test_the_held_out_images_are_the_other_split_whole(tiny_config):
    gan = GAN(tiny_config("data.limit=100", "train.heldout_probe=80"))
    images = datalib.load_images(gan.cfg.data)
    probe, why = HeldOutGap.for_run(gan, images, None)
    assert why is None and len(probe) == 64  # all 64 test images: fewer than asked for
    test = datalib.load_images(gan.cfg.data, split="test")
    np.testing.assert_array_equal(probe.sets["d_unseen"][0], test)
    seen = probe.sets["d_seen"][0]
    assert len(seen) == 64 and all((images == s).all(axis=(1, 2, 3)).any() for s in seen)  # among the 100 trained on


def test_a_conditional_run_probes_d_with_the_labels(tiny_config):
    gan = GAN(tiny_config("model.generator.condition=cbn", "model.discriminator.condition=projection"), classes=["a", "b"])
    labelled = datalib.load_labelled_images(gan.cfg.data)
    probe, _ = HeldOutGap.for_run(gan, labelled.images, labelled.labels)
    gap = probe(gan)
    assert np.isfinite(list(gap.values())).all() and probe.sets["d_unseen"][1] is not None


def test_no_probe_without_a_second_split(tiny_config, tmp_path):
    gan = GAN(tiny_config("train.heldout_probe=0"))
    assert HeldOutGap.for_run(gan, datalib.load_images(gan.cfg.data), None) == (None, None)
    # the test files missing: the run trains without the gap, and says why in one line
    train_only = tmp_path / "train-only"
    train_only.mkdir()
    for f in Path(gan.cfg.data.path).glob("train-*"):
        shutil.copy(f, train_only)
    gan = GAN(tiny_config(f"data.path={train_only}"))
    probe, why = HeldOutGap.for_run(gan, datalib.load_images(gan.cfg.data), None)
    assert probe is None and why.startswith("no held-out images for d_gap (") and "\n" not in why


def test_a_folder_run_probes_d_with_the_images_data_holdout_keeps_out(tiny_config, tmp_path):
    from PIL import Image

    root = tmp_path / "imgs"
    root.mkdir()
    for i, image in enumerate(blob_images(40)):
        Image.fromarray(image[..., 0]).save(root / f"{i:02d}.png")
    cfg = tiny_config("data.name=folder", f"data.path={root}", "data.holdout=8", "run.name=folder")
    run = train(cfg, quiet=True)
    records = read_metrics(run / "metrics.jsonl", "train")
    assert len(records) == 3 and all(r["d_gap"] == pytest.approx(r["d_seen"] - r["d_unseen"]) for r in records)
    gan = GAN(cfg)
    probe, _ = HeldOutGap.for_run(gan, datalib.load_images(cfg.data), None)
    assert len(probe) == 8  # all 8 held out, and 8 of the 32 trained on
    np.testing.assert_array_equal(probe.sets["d_unseen"][0], datalib.load_heldout(cfg.data).images)
