import os
import shutil

import numpy as np
import pytest
from PIL import Image, ImageSequence

from dcgan.core import viz
from dcgan.core.errors import DcganError
from dcgan.tools import sample
from dcgan.tools.latents import latents, parse_seeds, slerp
from dcgan.tools.sample import parse_grid
from helpers import cli_error, run_sample, sample_npz as npz, usage_error

SIZE = 28


@pytest.fixture(scope="module")
def reference(tiny_run, tmp_path_factory) -> dict:
    """Seeds 0..63 from the latest checkpoint's EMA generator, sampled once for the module."""
    return npz(tiny_run[0], tmp_path_factory.mktemp("ref"), "--n", 64)


# ---------------------------------------------------------------- arguments


def test_parse_seeds_lists_and_ranges():
    assert parse_seeds("0-3,42") == [0, 1, 2, 3, 42]
    assert parse_seeds(" 7 , 2-2, 5 ") == [7, 2, 5]


@pytest.mark.parametrize("text", ["", "a", "1,,2", "3-1", "-2", "1-", "1.5", "0-15;42"])
def test_parse_seeds_rejects_bad_syntax(text):
    with pytest.raises(DcganError, match="--seeds"):
        parse_seeds(text)


def test_parse_grid():
    assert parse_grid("8x4") == (8, 4)
    for bad in ("8", "0x3", "8x", "axb", "2x-1"):
        with pytest.raises(DcganError, match="--grid"):
            parse_grid(bad)


def test_numbers_too_long_for_int_are_one_clear_error():
    with pytest.raises(DcganError, match="at most 18 digits"):
        parse_seeds("9" * 5000)  # int() itself refuses more than 4300 digits
    with pytest.raises(DcganError, match="--grid"):
        parse_grid("1" * 5000 + "x1")


@pytest.mark.parametrize("kwargs, message", [
    (dict(grid="100000x100000"), "--grid 100000x100000: 10,000,000,000 images in one picture; at most 10,000"),
    (dict(grid="101x100"), "--grid 101x100: 10,100 images"),
    (dict(n=10_001), "--n 10001: 10,100 images in one picture"),  # a 101x100 layout
    (dict(seeds="0-20000", out="g.png"), "--seeds '0-20000': 20,022 images"),
    (dict(interpolate=10_000, frames=1), "--interpolate 10000 --frames 1: 10,001 images in one picture"),
    (dict(interpolate=1, frames=100_000_000), "--interpolate 1 --frames 100000000: 100,000,001 images"),
    (dict(interpolate=5_001, frames=1, out="walk.png"), "--interpolate 5001 --frames 1: 10,002 images"),  # 2 a row
])
def test_pictures_are_capped_before_seeds_are_listed(kwargs, message):
    with pytest.raises(DcganError, match=message):
        sample.parse_request(**kwargs)


def test_largest_pictures_pass():
    assert sample.parse_request(grid="100x100").picture_images() == 10_000
    request = sample.parse_request(interpolate=1, frames=9_999)
    assert request.generated() == request.picture_images() == 10_000
    request = sample.parse_request(interpolate=2, frames=3, out="walk.png")
    assert (request.generated(), request.picture_images()) == (7, 8)  # each row of the strip ends on its endpoint
    assert sample.parse_request(interpolate=5_000, frames=1, out="walk.png").picture_images() == 10_000


def test_huge_requests_are_refused_fast_through_the_cli(tmp_path, capsys):
    # the run is never looked up: each value fails in plan(), before TensorFlow builds anything
    for flags in (["--grid", "100000x100000"], ["--interpolate", 1_000_000_000], ["--interpolate", 1_000_000],
                  ["--interpolate", 1, "--frames", 100_000_000]):
        assert "images in one picture; at most 10,000" in cli_error(capsys, "sample", tmp_path / "nope", *flags)


def test_output_size_is_capped_by_the_models_image_size(tmp_path):
    grid = sample.parse_request(grid="10x10")
    sample.check_output_size(grid, 28, 1)
    with pytest.raises(DcganError, match="100 images of 1024x1024 make a 105-megapixel picture; at most 100 megapixels"):
        sample.check_output_size(grid, 1024, 3)
    many = sample.parse_request(n=2_000, out=str(tmp_path / "x.npz"))
    sample.check_output_size(many, 28, 1)
    sample.check_output_size(sample.parse_request(n=1_000, out=str(tmp_path / "x.npz")), 1024, 3)
    with pytest.raises(DcganError, match="2,000 images of 1024x1024x3 are 5.9 GiB; at most 4 GiB per call"):
        sample.check_output_size(many, 1024, 3)


@pytest.mark.parametrize("value", [1e308, 10.5, float("inf"), float("nan"), 0, -1])
def test_truncation_is_a_sane_factor(value):
    with pytest.raises(DcganError, match=r"--truncation .*: must be in \(0, 10\]"):
        sample.parse_request(truncation=value)


def test_latents_are_per_seed_and_truncation_scales():
    z = latents([3, 9, 3], 16)
    assert z.dtype == np.float32 and z.shape == (3, 16)
    np.testing.assert_array_equal(z[0], z[2])
    np.testing.assert_array_equal(latents([9], 16)[0], z[1])
    assert not np.array_equal(z[0], z[1])
    np.testing.assert_allclose(latents([3], 16, truncation=0.5)[0], 0.5 * z[0])


def test_slerp_stays_on_the_sphere_and_hits_endpoints():
    a, b = np.array([1.0, 0.0], np.float32), np.array([0.0, 1.0], np.float32)
    mid = slerp(a, b, 0.5)
    np.testing.assert_allclose(mid, [np.sqrt(0.5), np.sqrt(0.5)], rtol=1e-6)  # a line would give norm 0.71
    np.testing.assert_array_equal(slerp(a, b, 0.0), a)
    np.testing.assert_array_equal(slerp(a, b, 1.0), b)


# ---------------------------------------------------------------- images


def test_same_seed_same_pixels_whatever_else_is_asked(tiny_run, reference, tmp_path):
    run_dir, _ = tiny_run
    other = npz(run_dir, tmp_path, "--seeds", "7,70-75,5")
    np.testing.assert_array_equal(other["seeds"], [7, 70, 71, 72, 73, 74, 75, 5])
    np.testing.assert_array_equal(other["images"][[0, -1]], reference["images"][[7, 5]])
    assert not np.array_equal(other["images"][0], other["images"][1])
    assert run_sample(run_dir, "--seeds", "0,7", "--out", tmp_path / "picks") == 0
    assert sorted(p.name for p in (tmp_path / "picks").iterdir()) == ["seed_0000.png", "seed_0007.png"]
    for seed in (0, 7):
        np.testing.assert_array_equal(viz.read_png(tmp_path / "picks" / f"seed_{seed:04d}.png"), reference["images"][seed])


def test_npz_contents_match_the_ema_generator(tiny_run, tiny_gan, reference, tmp_path):
    from dcgan.models.sampling import generate_images

    run_dir, cfg = tiny_run
    images = reference["images"]
    assert images.shape == (64, SIZE, SIZE, 1) and images.dtype == np.uint8
    assert images.std() > 0 and images.max() > images.min()
    np.testing.assert_array_equal(reference["seeds"], np.arange(64))
    assert int(reference["step"]) == 6 and bool(reference["ema"])
    z = latents(range(10), cfg.model.generator.latent_dim)
    np.testing.assert_array_equal(images[:10], generate_images(tiny_gan.ema_generator, z))
    truncated = npz(run_dir, tmp_path, "--n", 10, "--truncation", 0.5)["images"]
    np.testing.assert_array_equal(truncated, generate_images(tiny_gan.ema_generator, 0.5 * z))
    assert not np.array_equal(truncated, images[:10])


def test_no_ema_uses_the_raw_generator(tiny_run, tiny_gan, reference, tmp_path):
    from dcgan.models.sampling import generate_images

    run_dir, cfg = tiny_run
    raw = npz(run_dir, tmp_path, "--n", 8, "--no-ema")
    z = latents(range(8), cfg.model.generator.latent_dim)
    np.testing.assert_array_equal(raw["images"], generate_images(tiny_gan.generator, z))
    assert not bool(raw["ema"])
    assert not np.array_equal(raw["images"], reference["images"][:8])


def test_default_is_the_copy_the_run_chose(tiny_run, tiny_gan, reference, tmp_path, capsys):
    from dcgan.training.gan import GAN
    from dcgan.models.sampling import generate_images
    from dcgan.training.restoring import restore

    run_dir, cfg = tiny_run
    chose_raw = tmp_path / "chose-raw"
    shutil.copytree(run_dir, chose_raw)
    g = GAN(cfg)
    restore(g, str(chose_raw / "checkpoints" / "ckpt-6"))
    g.sample_from_ema.assign(False)  # as train.select_sampler records it when the raw generator scored better
    g.checkpoint.write(str(chose_raw / "checkpoints" / "ckpt-6"))
    z = latents(range(8), cfg.model.generator.latent_dim)
    capsys.readouterr()
    chosen = npz(chose_raw, tmp_path, "--n", 8)
    assert "(raw generator, the run's choice)" in capsys.readouterr().out
    np.testing.assert_array_equal(chosen["images"], generate_images(tiny_gan.generator, z))
    assert not bool(chosen["ema"])
    forced = npz(chose_raw, tmp_path, "--n", 8, "--ema")
    np.testing.assert_array_equal(forced["images"], reference["images"][:8])
    assert bool(forced["ema"])
    assert "(EMA generator)" in capsys.readouterr().out
    # argparse: one or the other
    assert "argument --no-ema: not allowed with argument --ema" in usage_error(capsys, "sample", chose_raw, "--ema", "--no-ema")


def test_grid_geometry_and_cells(tiny_run, reference, tmp_path):
    run_dir = shutil.copytree(tiny_run[0], tmp_path / "run")  # the default picture goes into the run: a copy of it
    assert run_sample(run_dir) == 0  # default: 8x8 of seeds 0..63 in the run directory
    default = viz.read_png(run_dir / "sample_grid.png")
    assert default.shape == (8 * (SIZE + 2) + 2, 8 * (SIZE + 2) + 2, 1)
    np.testing.assert_array_equal(default, viz.image_grid(reference["images"], 8, 8))
    assert run_sample(run_dir, "--grid", "2x3", "--out", tmp_path / "g.png") == 0
    grid = viz.read_png(tmp_path / "g.png")
    assert grid.shape == (2 * (SIZE + 2) + 2, 3 * (SIZE + 2) + 2, 1)
    np.testing.assert_array_equal(grid, viz.image_grid(reference["images"][:6], 2, 3))


def test_interpolation_endpoints_are_the_seeds_images(tiny_run, reference, tmp_path):
    run_dir, _ = tiny_run
    ends = reference["images"][[3, 9, 4]]
    assert run_sample(run_dir, "--seeds", "3,9,4", "--interpolate", 2, "--frames", 3, "--out", tmp_path / "w.gif") == 0
    with Image.open(tmp_path / "w.gif") as gif:
        frames = [np.asarray(f.convert("L"))[..., None] for f in ImageSequence.Iterator(gif)]
    assert len(frames) == 2 * 3 + 1
    for frame, end in zip((frames[0], frames[3], frames[6]), ends):
        np.testing.assert_array_equal(frame, end)
    assert not np.array_equal(frames[1], frames[0]) and not np.array_equal(frames[1], frames[3])
    assert run_sample(run_dir, "--seeds", "3,9,4", "--interpolate", 2, "--frames", 3, "--out", tmp_path / "w.png") == 0
    strip = viz.read_png(tmp_path / "w.png")  # one row per segment, both endpoints shown
    walk = np.stack(frames)
    np.testing.assert_array_equal(strip, viz.image_grid(np.concatenate([walk[0:4], walk[3:7]]), 2, 4))


def test_checkpoint_path_and_step_pick_the_same_checkpoint(tiny_run, reference, tmp_path):
    run_dir, _ = tiny_run
    by_step = npz(run_dir, tmp_path, "--step", 3, "--n", 4)
    by_path = npz(run_dir / "checkpoints" / "ckpt-3", tmp_path, "--n", 4)
    np.testing.assert_array_equal(by_step["images"], by_path["images"])
    assert int(by_path["step"]) == 3
    assert not np.array_equal(by_step["images"], reference["images"][:4])


# ---------------------------------------------------------------- errors


def test_errors_are_one_line_and_exit_2(tiny_run, tmp_path, capsys):
    # a missing run, step or checkpoint: test_checkpoints.py, for every command that reads a run
    run_dir, _ = tiny_run
    assert "--seeds '0-x'" in cli_error(capsys, "sample", run_dir, "--seeds", "0-x")
    assert "--grid '8by8'" in cli_error(capsys, "sample", run_dir, "--grid", "8by8")
    assert "--grid 2x2 has 4 cells but 3 seeds" in cli_error(capsys, "sample", run_dir, "--grid", "2x2", "--seeds", "0-2")
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a directory")
    assert f"cannot write {blocker / 'out.npz'}" in cli_error(capsys, "sample", run_dir, "--out", blocker / "out.npz")
    assert "cannot write" in cli_error(capsys, "sample", run_dir, "--out", blocker / "pngs")
    assert "--truncation" in cli_error(capsys, "sample", run_dir, "--truncation", 0)
    assert ".gif is written for --interpolate only" in cli_error(capsys, "sample", run_dir, "--out", tmp_path / "x.gif")
    assert "walks between 3 seeds, got 2" in cli_error(capsys, "sample", run_dir, "--interpolate", 2, "--seeds", "1,2")


def test_picture_size_is_checked_before_the_generator_is_loaded(tiny_run, monkeypatch, capsys):
    def no_loading(*a, **k):
        raise AssertionError("the generator was loaded")

    import dcgan.tools.handle

    monkeypatch.setattr(dcgan.tools.handle, "load_handle", no_loading)
    monkeypatch.setattr(sample, "MAX_PICTURE_PIXELS", 3 * SIZE * SIZE)
    assert "4 images of 28x28 make a 0-megapixel picture" in cli_error(capsys, "sample", tiny_run[0], "--grid", "2x2")
    assert "--truncation 1e+308: must be in (0, 10]" in cli_error(capsys, "sample", tiny_run[0], "--truncation", 1e308)


def test_incompatible_checkpoint_is_one_clear_line(tiny_run, tmp_path, capsys):
    run_dir, _ = tiny_run
    other = tmp_path / "other"
    shutil.copytree(run_dir, other)
    text = (other / "config.yaml").read_text()
    (other / "config.yaml").write_text(text.replace("latent_dim: 8", "latent_dim: 9"))
    err = cli_error(capsys, "sample", other)
    assert "cannot restore checkpoint" in err and "ckpt-6" in err


def test_sampling_into_a_run_another_process_writes_is_refused_elsewhere_is_not(tiny_run, tmp_path, capsys):
    from dcgan.core.files import lock_run

    run_dir, _ = tiny_run
    with lock_run(run_dir, "dcgan train"):
        err = cli_error(capsys, "sample", run_dir, "--n", 4)  # the default: RUN/sample_grid.png
        assert f"in use by process {os.getpid()} (dcgan train" in err
        assert run_sample(run_dir, "--n", 4, "--out", tmp_path / "grid.png") == 0  # a reader: no lock
    assert (tmp_path / "grid.png").is_file()
