"""data.fit: random: a fresh window of each picture every epoch for training, the centre one for everything else."""

import numpy as np
import tensorflow as tf

from helpers import TINY, run_cli
from dcgan.core.config import load_config
from dcgan.data import pipeline as data
from dcgan.data.crops import RandomCrops, centre


def _folder(root, n=8):
    from PIL import Image

    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(root / f"{i}.png")
    return root


def _cfg(root, *sets):
    return load_config(None, ["data.name=folder", f"data.path={root}", "data.image_size=16", "data.channels=3",
                              "data.fit=random", *sets]).data


def _batches(stream, n):
    return [next(stream).numpy() for _ in range(n)]


def test_training_windows_move_every_epoch_and_resume_exactly(tmp_path):
    train = data.training_data(_cfg(_folder(tmp_path / "pics")))
    assert isinstance(train.images, RandomCrops) and len(train.images) == 8 and train.images.stored.shape[1] == 18
    strategy = tf.distribute.get_strategy()
    whole = _batches(train.batches(strategy, 8, seed=3), 4)  # 4 epochs of the 8 pictures
    assert all(b.shape == (8, 1, 16, 16, 3) for b in whole)
    stored = train.images.stored
    for batch in whole:  # every image is a 16x16 window of one stored square
        for img in batch[:, 0]:
            assert any((stored[i, y : y + 16, x : x + 16] == img).all() for i in range(8) for y in range(3) for x in range(3))
    firsts = {b[:, 0].tobytes() for b in whole}
    assert len(firsts) == 4  # a new order and new windows each epoch
    resumed = _batches(train.batches(strategy, 8, seed=3, start_batch=2), 2)
    np.testing.assert_array_equal(np.stack(resumed), np.stack(whole[2:]))
    again = _batches(data.training_data(_cfg(tmp_path / "pics")).batches(strategy, 8, seed=3), 4)
    np.testing.assert_array_equal(np.stack(again), np.stack(whole))
    assert not np.array_equal(_batches(train.batches(strategy, 8, seed=4), 1)[0], whole[0])


def test_everything_but_training_sees_the_centre_window(tmp_path):
    root = _folder(tmp_path / "pics")
    cfg = _cfg(root, "data.holdout=2")
    train, held = data.training_data(cfg).images, data.load_heldout(cfg).images
    stored = data.source_for(cfg).read("train", False).images
    np.testing.assert_array_equal(data.load_images(cfg), centre(stored, 16)[np.setdiff1d(np.arange(8), [0, 7])])
    np.testing.assert_array_equal(held, centre(stored[[0, 7]], 16))
    np.testing.assert_array_equal(train[[0, 1]], data.load_images(cfg)[:2])  # indexing the stream: centre windows
    assert data.image_subset(train, 3, seed=0).shape == (3, 16, 16, 3)


def test_a_run_trains_on_random_windows(tmp_path, capsys):
    root = _folder(tmp_path / "pics")
    sets = [*TINY, "data.name=folder", f"data.path={root}", "data.image_size=16", "data.channels=3",
            "data.fit=random", "data.batch_size=4", "train.steps=2", "train.log_every=1", "train.sample_every=2",
            "train.checkpoint_every=2", "train.select_sampler=false", f"run.dir={tmp_path / 'runs'}", "run.name=r"]
    status, _, err = run_cli(capsys, "train", "--quiet", *[f"--set={s}" for s in sets])
    assert status == 0, err
    assert "fit: random" in (tmp_path / "runs" / "r" / "config.yaml").read_text()
