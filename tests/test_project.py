"""`dcgan project`: a generated picture, whose latent is known, projects closer than a random one; the latent it
writes draws the projection again exactly; conditional runs search their classes; bad input is one line."""

import json

import numpy as np
from PIL import Image

from dcgan.core.video import count_frames
from dcgan.core.viz import read_png
from helpers import cli_error, run_cli


def _pictures(run_dir, tmp_path, capsys, *sample_args):
    """seed 5 as the run draws it, and a picture of noise of another size (resized as the dataset is)."""
    status, _, err = run_cli(capsys, "sample", run_dir, "--seeds", "5", *sample_args, "--out", tmp_path / "gen/")
    assert status == 0, err
    generated = next((tmp_path / "gen").iterdir())
    noise = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (40, 56), dtype=np.uint8)).save(noise)
    return generated, noise


def test_a_generated_picture_projects_closer_than_noise_and_its_latent_draws_it_again(tiny_run, tmp_path, capsys):
    run_dir, _ = tiny_run
    generated, noise = _pictures(run_dir, tmp_path, capsys)
    out = tmp_path / "proj"
    status, said, err = run_cli(capsys, "project", run_dir, generated, noise, "--steps", 60, "--starts", 3, "--out", out,
                                "--video", "gif")
    assert status == 0, err
    near, far = (json.loads((out / name / "projection.json").read_text()) for name in (generated.stem, noise.stem))
    assert near["pixel_mse"] < far["pixel_mse"] / 5 and near["feature"] < far["feature"]
    assert len(near["losses"]) == 60 and near["losses"][-1] < near["losses"][0] and near["class"] is None
    assert near["feature_network"].startswith("classifier-mnist") and 0 <= near["start"] < 3
    side = read_png(out / generated.stem / "target_vs_projection.png")
    assert side.shape[1] > side.shape[0]  # the target and the projection side by side
    # the latent file draws the projection again, exactly
    status, _, err = run_cli(capsys, "sample", run_dir, "--latents", out / generated.stem / "latent.npz",
                             "--out", tmp_path / "again.npz")
    assert status == 0, err
    with np.load(tmp_path / "again.npz") as f:
        again = f["images"][0]
    with np.load(out / generated.stem / "latent.npz") as f:
        z = f["z"]
    assert z.shape == (1, 8)
    from dcgan.api import load

    np.testing.assert_array_equal(again, load(run_dir).generate(z)[0])
    size = again.shape[0]  # and it is the projection the side-by-side PNG shows (enlarged, right half)
    factor = side.shape[0] // (size + 4)
    shown = side[::factor, ::factor]
    np.testing.assert_array_equal(shown[2 : 2 + size, 4 + size : 4 + 2 * size], again)
    with Image.open(out / generated.stem / "optimisation.gif") as gif:
        assert gif.n_frames >= 50


def test_a_conditional_run_searches_its_classes_or_keeps_to_one(tiny_conditional_run, tmp_path, capsys):
    run_dir, _ = tiny_conditional_run
    generated, _ = _pictures(run_dir, tmp_path, capsys, "--class", "sneaker")
    status, _, err = run_cli(capsys, "project", run_dir, generated, "--steps", 20, "--starts", 2, "--out",
                             tmp_path / "all")
    assert status == 0, err
    status, _, err = run_cli(capsys, "project", run_dir, generated, "--steps", 20, "--starts", 2, "--class", "bag",
                             "--out", tmp_path / "bag", "--video")
    assert status == 0, err
    searched, kept = (json.loads((tmp_path / d / generated.stem / "projection.json").read_text()) for d in ("all", "bag"))
    assert searched["class"] in json.loads((run_dir / "classes.json").read_text())["classes"] and kept["class"] == "Bag"
    assert searched["total"] <= kept["total"] + 1e-6  # the search includes Bag
    assert count_frames(tmp_path / "bag" / generated.stem / "optimisation.mp4") == 20
    with np.load(tmp_path / "bag" / generated.stem / "latent.npz") as f:
        assert f["labels"].tolist() == [8]
    status, said, err = run_cli(capsys, "sample", run_dir, "--latents", tmp_path / "bag" / generated.stem / "latent.npz",
                                "--out", tmp_path / "again.png")
    assert status == 0 and "1 images of class Bag" in said, err


def test_bad_input_is_one_line(tiny_run, tmp_path, capsys):
    run_dir, _ = tiny_run
    generated, noise = _pictures(run_dir, tmp_path, capsys)
    assert "IMAGE: " in cli_error(capsys, "project", run_dir, tmp_path / "missing.png", "--out", tmp_path / "o")
    (tmp_path / "bad.png").write_bytes(b"not a picture")
    assert "not a usable PNG or JPEG" in cli_error(capsys, "project", run_dir, tmp_path / "bad.png", "--out", tmp_path / "o")
    assert "unconditional" in cli_error(capsys, "project", run_dir, generated, "--class", "0", "--out", tmp_path / "o")
    assert run_cli(capsys, "project", run_dir, noise, "--steps", 2, "--starts", 1, "--out", tmp_path / "o").status == 0
    assert "pass --force" in cli_error(capsys, "project", run_dir, noise, "--steps", 2, "--out", tmp_path / "o")
    assert "--latents" in cli_error(capsys, "sample", run_dir, "--latents", tmp_path / "o" / noise.stem / "latent.npz",
                                    "--n", 4)
    np.savez(tmp_path / "wrong.npz", z=np.zeros((2, 3), np.float32))
    assert "this run takes float (N, 8) latents" in cli_error(capsys, "sample", run_dir, "--latents", tmp_path / "wrong.npz")
