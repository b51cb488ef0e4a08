"""128x128 colour, end to end through the command line: train, sample, inspect, evaluate and export with tiny widths.

The other tests stop at small sizes; this one makes sure nothing on the way (the block plan, the pipeline, the
EMA recalibration, the grids, the inspect figures, the evaluator's resizing) assumes a small picture.
"""

import json

import keras
import numpy as np
import pytest
from PIL import Image

from helpers import blob_images, run_cli

SIZE = 128
TINY = ["model.generator.latent_dim=8", "model.generator.base_channels=2", "model.generator.max_channels=8",
        "model.discriminator.base_channels=2", "model.discriminator.max_channels=8", "data.batch_size=4",
        "train.steps=2", "train.log_every=1", "train.sample_every=2", "train.checkpoint_every=2", "train.sample_grid=2",
        "train.select_sampler=false", "train.heldout_probe=0", "train.ema_warmup=0"]


@pytest.fixture(scope="module")
def highres_run(tmp_path_factory):
    """(run directory, work folder) of one 2-step 128x128 RGB run on a folder of PNGs."""
    from dcgan.cli import main

    work = tmp_path_factory.mktemp("highres")
    pictures = work / "pictures"
    pictures.mkdir()
    for i, image in enumerate(blob_images(12, size=SIZE, channels=3, seed=3)):
        Image.fromarray(image).save(pictures / f"{i:02d}.png")
    sets = [f"data.path={pictures}", "data.name=folder", f"data.image_size={SIZE}", "data.channels=3",
            f"run.dir={work / 'runs'}", "run.name=hr", *TINY]
    assert main(["train", "--quiet", *[a for s in sets for a in ("--set", s)]]) == 0
    return work / "runs" / "hr", work


def test_train_writes_128px_grids_and_a_128px_generator(highres_run):
    run, _ = highres_run
    grid = np.asarray(Image.open(sorted((run / "samples").glob("step_*.png"))[-1]))
    assert grid.shape[0] >= 2 * SIZE and grid.shape[2] == 3  # a 2x2 grid of 128 px tiles
    generator = keras.saving.load_model(run / "generator.keras", safe_mode=True)
    assert generator.output_shape == (None, SIZE, SIZE, 3)


def test_sample_gives_128px_images(highres_run, tmp_path, capsys):
    run, _ = highres_run
    out = tmp_path / "s.npz"
    assert run_cli(capsys, "sample", run, "--seeds", "0-2", "--out", out).status == 0
    images = np.load(out)["images"]
    assert images.shape == (3, SIZE, SIZE, 3) and images.dtype == np.uint8 and images.std() > 0


def test_inspect_covers_every_block_at_128px(highres_run, tmp_path, capsys):
    run, _ = highres_run
    result = run_cli(capsys, "inspect", run, "--n", "4", "--out", tmp_path / "inspect")
    assert result.status == 0, result.err
    report = json.loads(next((tmp_path / "inspect").glob("*.json")).read_text())
    assert len(report["blocks"]) == 5  # 4 -> 8 -> 16 -> 32 -> 64 -> 128
    assert list((tmp_path / "inspect").glob("*.png"))


def test_evaluate_scores_128px_samples(highres_run, tmp_path, capsys):
    run, _ = highres_run
    inputs = keras.Input((32, 32, 3))  # the network's own size: the evaluator resizes 128 px images down to it
    x = keras.layers.Conv2D(4, 3, name="conv", kernel_initializer=keras.initializers.GlorotUniform(seed=0))(inputs)
    keras.Model(inputs, keras.layers.GlobalAveragePooling2D(name="pool")(x)).save(tmp_path / "net.keras")
    result = run_cli(capsys, "evaluate", run, "--n", "8", "--metrics", "fid,checkerboard",
                     "--feature-model", tmp_path / "net.keras")
    assert result.status == 0, result.err
    scores = {r["metric"]: r["value"] for r in json.loads((run / "eval.json").read_text())}
    assert set(scores) == {"fid", "checkerboard"} and all(np.isfinite(v) for v in scores.values())


def test_export_writes_a_128px_keras_file(highres_run, tmp_path, capsys):
    run, _ = highres_run
    out = tmp_path / "g.keras"
    assert run_cli(capsys, "export", run, "--out", out).status == 0
    generator = keras.saving.load_model(out, safe_mode=True)
    assert generator.predict(np.zeros((1, 8), np.float32), verbose=0).shape == (1, SIZE, SIZE, 3)
