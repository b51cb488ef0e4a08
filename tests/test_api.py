"""The Python API: dcgan.load's generator alone, its pixels equal to `dcgan sample`'s, gradients, train and
evaluate returning values and printing nothing, and docs/api.md's example run as it is written."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import dcgan
from dcgan.core import viz
from dcgan.core.config import load_config
from dcgan.core.errors import DcganError
from dcgan.data.mnist import CLASS_NAMES
from dcgan.tools.latents import latents
from helpers import mnist_sets, run_sample, sample_npz, write_mnist

DOCS = Path(__file__).resolve().parent.parent / "docs" / "api.md"


@pytest.fixture(scope="module")
def api_run(tmp_path_factory):
    """A tiny run trained through dcgan.train, named as docs/api.md's example expects: runs/smoke."""
    root = tmp_path_factory.mktemp("api")
    cfg = load_config(None, mnist_sets(write_mnist(root / "mnist")))
    return dcgan.train(cfg, [f"run.dir={root / 'runs'}", "run.name=smoke", "train.ema_decay=0.9"], quiet=True)


def test_import_and_help_stay_free_of_tensorflow():
    code = "import sys, dcgan; assert callable(dcgan.load) and 'load' in dir(dcgan); print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    with pytest.raises(AttributeError, match="no attribute 'lod'"):
        dcgan.lod  # noqa: B018


def test_train_returns_the_run_directory_and_load_restores_only_its_generator(api_run, monkeypatch, capsys):
    import dcgan.training.gan as ganlib

    monkeypatch.setattr(ganlib.GAN, "__init__", lambda *a, **k: pytest.fail("load built the whole GAN"))
    g = dcgan.load(api_run)
    assert api_run == Path(api_run) and api_run.name == "smoke" and (api_run / "generator.keras").is_file()
    assert (g.step, g.latent_dim, g.classes, g.ema, g.chosen) == (6, 8, None, True, True)
    assert g.config.train.ema_decay == 0.9 and g.model.name == "generator"
    raw = dcgan.load(api_run, step=3, ema=False)
    assert (raw.step, raw.ema, raw.describe()) == (3, False, "ckpt-3 (raw generator)")
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("kwargs, flags", [
    ({}, []), ({"n": 5}, ["--n", 5]), ({"seeds": "3,9,3"}, ["--seeds", "3,9,3"]), ({"seeds": [12, 4]}, ["--seeds", "12,4"]),
    ({"n": 4, "truncation": 0.5}, ["--n", 4, "--truncation", 0.5]),
], ids=["default", "n", "seed-text", "seed-list", "truncated"])
def test_sample_gives_the_pixels_dcgan_sample_writes(api_run, tmp_path, kwargs, flags):
    images = dcgan.load(api_run).sample(**kwargs)
    expected = sample_npz(api_run, tmp_path, *flags)
    assert images.dtype == np.uint8 and images.ndim == 4
    np.testing.assert_array_equal(images, expected["images"])


def test_a_conditional_runs_classes_by_name_index_or_all(tiny_conditional_run, tmp_path):
    run = tiny_conditional_run[0]
    g = dcgan.load(run)
    assert g.classes == CLASS_NAMES["fashion_mnist"]
    np.testing.assert_array_equal(g.sample(), sample_npz(run, tmp_path)["images"])  # every class, seeds 0..7
    sneaker = sample_npz(run, tmp_path, "--class", "sneaker,0", "--n", 3)
    for classes in ("sneaker,0", ["Sneaker", 0], [7, 0]):
        np.testing.assert_array_equal(g.sample(n=3, classes=classes), sneaker["images"])
    with pytest.raises(DcganError, match="unknown class 'sneakr'"):
        g.sample(classes="sneakr")


def test_walk_gives_the_frames_of_dcgan_samples_walk(api_run, tmp_path):
    frames = dcgan.load(api_run).walk(seeds="3,9,4", frames=3)
    assert frames.shape == (7, 28, 28, 1)
    assert run_sample(api_run, "--seeds", "3,9,4", "--interpolate", 2, "--frames", 3, "--out", tmp_path / "w.png") == 0
    strip = viz.read_png(tmp_path / "w.png")  # lossless, one row per segment with both endpoints
    np.testing.assert_array_equal(strip, viz.image_grid(np.concatenate([frames[0:4], frames[3:7]]), 2, 4))
    with pytest.raises(DcganError, match="at least 2 seeds"):
        dcgan.load(api_run).walk(seeds=[3])


def test_calling_the_handle_gives_differentiable_images_in_minus_one_to_one(api_run, tiny_conditional_run):
    from dcgan.data.pipeline import to_uint8

    g = dcgan.load(api_run)
    z = tf.Variable(latents(range(4), g.latent_dim))
    with tf.GradientTape() as tape:
        images = g(z)
        loss = tf.reduce_mean(images)
    grad = tape.gradient(loss, z)
    assert images.shape == (4, 28, 28, 1) and -1 <= float(tf.reduce_min(images)) and float(tf.reduce_max(images)) <= 1
    assert grad is not None and float(tf.reduce_sum(tf.abs(grad))) > 0
    assert np.abs(to_uint8(images.numpy()).astype(int) - g.sample(n=4)).max() <= 1  # the sampled pixels, unrounded
    conditional = dcgan.load(tiny_conditional_run[0])
    assert conditional(z, labels=[0, 1, 7, 9]).shape == (4, 28, 28, 1)
    with pytest.raises(DcganError, match="one label per latent"):
        conditional(z)
    with pytest.raises(DcganError, match="takes no labels"):
        g(z, labels=[0, 0, 0, 0])


def test_evaluate_returns_scores_and_prints_nothing(api_run, capsys):
    scores = dcgan.evaluate(api_run, n=64, metrics="checkerboard")
    assert capsys.readouterr().out == ""
    assert [r["metric"] for r in scores] == ["checkerboard"] and scores[0]["checkpoint_step"] == 6
    assert scores.values == {"checkerboard": scores[0]["value"]} and scores.path == api_run / "eval.json"
    assert "checkerboard" in scores.table()


def test_the_docs_example_runs_as_written(api_run, monkeypatch, capsys):
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(), re.S)
    assert len(blocks) == 1 and 'run = "runs/smoke"' in blocks[0]
    monkeypatch.chdir(api_run.parent.parent)  # where runs/smoke is
    names = {}
    exec(compile(blocks[0], str(DOCS), "exec"), names)
    out = capsys.readouterr().out
    assert "step 6, z of 8, classes None" in out and "distance to the target:" in out and "checkerboard" in out
    assert len(names["found"].report["blocks"]) == 2 and "D gradient:" in out
    assert names["found"].figure == Path("inspected/inspect.png") and names["found"].figure.is_file()
    assert names["losses"][-1] < names["losses"][0]  # the gradient moved z towards the target
