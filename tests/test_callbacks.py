"""The training callbacks: a probe of one's own, the held-out gap, the capped grid and the progress GIF."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from dcgan.core import viz
from dcgan.data import pipeline as datalib
from dcgan.core.config import from_dict, to_dict
from dcgan.training.artifacts import MAX_GRID_ROWS, SampleGrid, finish, grid_classes
from dcgan.training.gan import GAN
from dcgan.models.sampling import generate_images
from dcgan.training.restoring import restore
from dcgan.training.callbacks import Callback, Run, HeldOutGap
from dcgan.training.rundir import read_metrics
from dcgan.training.loop import train
from helpers import blob_images, event_steps


class GeneratorNorm(Callback):
    """A probe of a test's own: the generator's weight norm at every log line, and what it was told when."""

    shown = {"g_norm": ("|G|", ".3f")}

    def __init__(self):
        self.events = []

    def on_start(self, run):
        self.gan = run.gan
        self.events.append(("start", run.start, run.steps))

    def on_log(self, step, logs):
        assert {"d_loss", "d_gap"} <= set(logs)  # the step's values and the built-in probe's come first
        return {"g_norm": float(tf.linalg.global_norm(self.gan.generator.trainable_variables))}

    def on_checkpoint(self, step, due):
        self.events.append(("checkpoint", step, due.sample, due.checkpoint, due.last))

    def on_end(self):
        self.events.append(("end",))


def test_a_probe_of_ones_own_is_one_class_and_reaches_metrics_tensorboard_and_the_log(tiny_config, capsys):
    probe = GeneratorNorm()
    run = train(tiny_config("run.name=probe"), quiet=True, callbacks=[probe])
    records = read_metrics(run / "metrics.jsonl", "train")
    assert [r["step"] for r in records] == [2, 4, 6] and all(r["g_norm"] > 0 for r in records)
    assert sorted(step for tag, step in event_steps(run / "tb", tags=True) if tag == "g_norm") == [2, 4, 6]
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("step ")]
    assert len(lines) == 3 and all(" gap " in line and " |G| " in line for line in lines)
    assert probe.events == [("start", 0, 6), ("checkpoint", 3, True, True, False), ("checkpoint", 6, True, True, True),
                            ("end",)]


def test_a_conditional_grid_shows_at_most_32_classes_spread_from_first_to_last(tiny_config, tmp_path):
    assert grid_classes(10) == list(range(10))
    many = grid_classes(20_000)
    assert len(many) == len(set(many)) == MAX_GRID_ROWS == 32 and many == sorted(many) and (many[0], many[-1]) == (0, 19_999)
    cfg = tiny_config("model.generator.condition=cbn", "model.discriminator.condition=projection")
    gan = GAN(cfg, classes=[f"c{i}" for i in range(40)])
    grid = SampleGrid(gan, tmp_path)
    assert grid.note() == "sample grids: 32 of the 40 classes, one row each (classes 0, 1, 2, ..., 39)"
    grid.on_start(Run(gan, tmp_path, 0, 3, None, tf.summary.create_noop_writer()))
    grid.draw(3)
    picture = viz.read_png(tmp_path / "samples" / "step_0000003.png")
    assert picture.shape == grid.picture_shape() == ((32 * 30 + 2) * 2, (2 * 30 + 2) * 2, 1)
    np.testing.assert_array_equal(picture, grid.drawn[3])
    last_row = generate_images(gan.sampling_generator(), gan.fixed_noise.numpy()[:2], [39, 39])  # the last class
    np.testing.assert_array_equal(picture[-64:], viz.upscale(viz.image_grid(last_row, 1, 2), 2))  # the bottom row


def test_finish_makes_the_gif_of_the_drawn_grids_and_reads_back_only_its_own_pictures(tiny_run, tiny_gan, tmp_path):
    run = shutil.copytree(tiny_run[0], tmp_path / "run")
    samples = run / "samples"
    # a header claiming 30000x30000 pixels (Pillow would refuse it as a decompression bomb), and a link
    (samples / "step_0000007.png").write_bytes(viz.png_bytes(np.zeros((4, 4, 1), np.uint8))[:16]
                                                + (30000).to_bytes(4, "big") * 2 + b"\0" * 64)
    (samples / "step_0000008.png").symlink_to(samples / "step_0000006.png")
    grid = SampleGrid(tiny_gan, run)
    grid.drawn[6] = np.full(grid.picture_shape(), 255, np.uint8)  # this session drew step 6: its array is the frame
    finish(tiny_gan, run, grid)
    frames = gif_frames(run / "progress.gif")
    assert len(frames) == 2  # step 3 read back, step 6 as drawn; the bomb and the link left out
    np.testing.assert_array_equal(frames[0], viz.read_png(samples / "step_0000003.png"))
    assert (frames[1] == 255).all()


def gif_frames(path) -> list[np.ndarray]:
    from PIL import Image, ImageSequence

    with Image.open(path) as gif:
        return [np.asarray(f.convert("L"))[..., None] for f in ImageSequence.Iterator(gif)]


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
