"""dcgan inspect (dcgan.tools.anatomy): overlap patterns, the per-block checkerboard score on planted generators, D's
gradient spectrum, the command's files and its one-line errors. Untrained or planted weights: deterministic and fast."""

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from dcgan.tools import anatomy
from dcgan.evaluation import metrics
from dcgan.evaluation.metrics import artifact_share, power_spectrum
from helpers import cli_error, run_cli

K3 = "model.generator.transpose_kernel_size=3"


def untrained(tiny_config, *overrides):
    """(generator, discriminator) of a tiny config, as a run starts them (train.seed 0)."""
    source = anatomy.Source(tiny_config(*overrides), None, None, "test")
    generator, discriminator, _ = anatomy.load_models(source, None)
    return generator, discriminator


def report_of(tiny_config, *overrides, n=64):
    generator, discriminator = untrained(tiny_config, *overrides)
    return anatomy.analyse(generator, discriminator, anatomy.latents(range(n), generator.input_shape[-1]))


def blocks_of(tiny_config, *overrides):
    from dcgan.models.networks import build_generator

    return anatomy.generator_blocks(build_generator(tiny_config(*overrides)))


# ---------------------------------------------------------------- the score's arithmetic (numpy)


def test_a_flat_spectrum_has_no_excess_and_a_spike_at_n2_is_all_excess_at_n2():
    flat = np.ones((16, 16))
    assert metrics.excess(flat) == {"n2": 0.0, "n4": 0.0, "total": 0.0}
    spiked = flat.copy()
    spiked[0, 0] += 100.0  # (N/2, N/2): the checkerboard itself
    ex = metrics.excess(spiked)
    assert ex["n2"] == pytest.approx(100.0 / spiked.sum()) and ex["n4"] == 0.0
    baseline = metrics.smooth_baseline(spiked)
    assert baseline[0, 0] == 1.0 and (baseline[8:, 8:] == spiked[8:, 8:]).all()  # off the lines: untouched


def test_line_shares_agree_with_the_checkerboard_metric_and_map_stats_with_its_spectrum():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 16, 16, 1)).astype(np.float64)
    stats = anatomy.MapStats()
    stats.add(images[:4])
    stats.add(images[4:])
    np.testing.assert_allclose(stats.spectrum, power_spectrum(images), rtol=1e-10)
    assert metrics.line_shares(stats.spectrum)["total"] == pytest.approx(artifact_share(stats.spectrum))
    # pixel repetition cancels exactly at N/2: a block's input, repeated, has nothing there, so the block made it
    up = anatomy.MapStats()
    up.add(anatomy.nearest_x2(images))
    assert metrics.line_shares(up.spectrum)["n2"] < 1e-20


# ---------------------------------------------------------------- overlap patterns (Odena et al. 2016)


def tiled(cell):
    return np.tile(np.array(cell, float), (2, 2))


@pytest.mark.parametrize("overrides, mode, expected", [
    (("model.generator.upsampling=transpose", K3), "transpose", tiled([[4, 2], [2, 1]])),
    (("model.generator.upsampling=transpose", "model.generator.transpose_kernel_size=4"), "transpose", np.full((4, 4), 4.0)),
    (("model.generator.upsampling=transpose", "model.generator.transpose_kernel_size=5"), "transpose", tiled([[4, 6], [6, 9]])),
    (("model.generator.upsampling=upsample",), "upsample", np.full((4, 4), 9.0)),
    (("model.generator.upsampling=upsample", "model.generator.interpolation=bilinear", "model.generator.kernel_size=5"),
     "upsample", np.full((4, 4), 25.0)),
    (("model.generator.upsampling=subpixel",), "subpixel", np.full((4, 4), 9.0)),
    # the [1,2,1] blur after a 3x3 transpose: [[4,2],[2,1]] loses its N/2 pattern and keeps its mean
    (("model.generator.upsampling=transpose", K3, "model.generator.antialias=true"), "transpose", np.full((4, 4), 2.25)),
])
def test_overlap_patterns_are_the_hand_counted_taps(tiny_config, overrides, mode, expected):
    """Taps per output pixel. Transposed, stride 2, 'same' (pad k-2 before in the forward conv's terms): with k=3 an
    even output row gets taps from two input rows, an odd one from one (2D: 4 2 / 2 1); k=5: 2 and 3 (4 6 / 6 9);
    k=4: 2 and 2. A resize-convolution or a sub-pixel conv with tied sub-kernels: all k*k taps everywhere."""
    for block in blocks_of(tiny_config, *overrides):
        assert block.mode == mode
        np.testing.assert_array_equal(anatomy.overlap_pattern(block), expected)


def test_phase_spread_is_zero_for_resize_and_icnr_at_init_not_for_an_evenly_overlapping_transpose(tiny_config):
    for mode in ("upsample", "subpixel"):  # ICNR: four equal sub-kernels answer a flat input flatly
        assert all(anatomy.phase_spread(b) < 1e-6 for b in blocks_of(tiny_config, f"model.generator.upsampling={mode}"))
    # 4x4 overlaps evenly, but its four 2x2 sub-kernels are independent draws
    k4 = blocks_of(tiny_config, "model.generator.upsampling=transpose", "model.generator.transpose_kernel_size=4")
    assert all(anatomy.phase_spread(b) > 0.3 for b in k4)


# ---------------------------------------------------------------- attribution on planted generators


def scores(report):
    return [b["score"] for b in report["blocks"]]


def test_a_last_transposed_block_gets_the_excess(tiny_config):
    report = report_of(tiny_config, "model.generator.upsampling=upsample,transpose", K3)
    first, last = scores(report)
    assert last > 0.15 and abs(first) < 0.03, scores(report)
    assert report["image"]["excess"]["n2"] > 0.02  # and it reaches the image at N/2


def test_a_first_transposed_block_gets_the_excess_and_the_image_shows_less(tiny_config):
    report = report_of(tiny_config, "model.generator.upsampling=transpose,upsample", K3)
    first, last = scores(report)
    assert first > 0.1 and abs(last) < 0.03, scores(report)  # block 0's mark, at block 1's N/4, counts once
    image = report["image"]["excess"]
    assert image["total"] < first and abs(image["n2"]) < 0.02  # resize-convolution after it: moved to N/4, smaller


def test_resize_convolution_everywhere_scores_nothing(tiny_config):
    report = report_of(tiny_config, "model.generator.upsampling=upsample")
    assert all(abs(s) < 0.03 for s in scores(report)) and report["image"]["excess"]["total"] < 0.02


# ---------------------------------------------------------------- the gradient side


def planted_discriminator(tiny_config, checkerboard: bool):
    """D whose first conv sees (-1)^(i+j) (or a flat kernel), everything after it positive, so dD/dx is that kernel
    tiled under a smooth positive envelope."""
    from dcgan.models.networks import build_discriminator

    disc = build_discriminator(tiny_config())
    for layer in disc.layers:
        if layer.weights:
            kernel = np.ones(layer.kernel.shape, np.float32)
            if checkerboard and layer.name == "block0_conv":
                i, j = np.indices(kernel.shape[:2])
                kernel *= ((-1.0) ** (i + j))[:, :, None, None]
            layer.kernel.assign(kernel)
            layer.bias.assign(np.zeros(layer.bias.shape, np.float32))
    return disc


def gradient_spectrum(disc):
    images = np.random.default_rng(0).uniform(-1, 1, (16, 28, 28, 1)).astype(np.float32)
    stats = anatomy.MapStats()
    stats.add(anatomy.image_gradient(disc, images))
    return stats.spectrum


def test_a_discriminator_sensitive_to_a_checkerboard_has_its_gradient_peak_at_n2(tiny_config):
    spectrum = gradient_spectrum(planted_discriminator(tiny_config, checkerboard=True))
    assert np.unravel_index(spectrum.argmax(), spectrum.shape) == (0, 0)  # (N/2, N/2) in a centred spectrum
    shares, white = metrics.line_shares(spectrum), metrics.white_shares(28)
    assert shares["n2"] > 5 * white["n2"], shares
    flat = metrics.line_shares(gradient_spectrum(planted_discriminator(tiny_config, checkerboard=False)))
    assert flat["n2"] < white["n2"], flat


# ---------------------------------------------------------------- the command


def test_inspect_a_run_writes_figure_json_and_table(tiny_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(tiny_run[0], run)
    status, out, _ = run_cli(capsys, "inspect", run, "--n", "16", "--no-ema")
    assert status == 0 and "ckpt-6 (raw generator)" in out
    for row in ("block0  subpixel k3", "block1  transpose k3", "image", "D gradient:"):
        assert row in out, out
    assert sorted(p.name for p in (run / "inspect").iterdir()) == ["inspect.json", "inspect.png"]
    with Image.open(run / "inspect" / "inspect.png") as img:
        img.load()
    report = json.loads((run / "inspect" / "inspect.json").read_text())
    assert [b["mode"] for b in report["blocks"]] == ["subpixel", "transpose"] and report["n"] == 16
    assert all(np.isfinite(b["score"]) for b in report["blocks"])
    assert report["blocks"][0]["phase_spread"] > 1e-4  # six steps moved ICNR's equal sub-kernels apart


def test_inspect_a_conditional_run_and_an_untrained_conditional_pair(tiny_conditional_run, tmp_path, capsys, mnist_dir):
    run = tmp_path / "run"
    shutil.copytree(tiny_conditional_run[0], run)
    status, out, _ = run_cli(capsys, "inspect", run, "--n", "20")
    assert status == 0 and "D gradient:" in out
    report = json.loads((run / "inspect" / "inspect.json").read_text())
    assert report["n"] == 20 and all(np.isfinite(b["score"]) for b in report["blocks"])
    status, out, _ = run_cli(capsys, "inspect", "--init", "--set", "data.name=mnist", "--set", f"data.path={mnist_dir}",
                             "--set", "model.generator.condition=concat", "--set", "model.discriminator.condition=concat",
                             "--set", "model.generator.base_channels=4", "--set", "model.discriminator.base_channels=4",
                             "--n", "8", "--out", str(tmp_path / "init"))
    assert status == 0 and "untrained generator" in out and (tmp_path / "init" / "inspect.json").is_file()


def test_inspect_init_writes_to_a_folder_named_after_the_config(tmp_path, capsys, monkeypatch, mnist_dir):
    monkeypatch.chdir(tmp_path)
    status, out, _ = run_cli(capsys, "inspect", "--init", "--set", "data.name=mnist", "--set", f"data.path={mnist_dir}",
                             "--set", "model.generator.base_channels=4", "--set", "model.discriminator.base_channels=4",
                             "--set", "model.generator.upsampling=transpose", "--n", "8")
    assert status == 0 and "untrained generator" in out
    assert sorted(p.name for p in (tmp_path / "inspect-mnist-transpose").iterdir()) == ["inspect.json", "inspect.png"]


def test_inspect_errors_are_one_line(tiny_run, tmp_path, capsys, monkeypatch):
    assert "run directory or checkpoint not found" in cli_error(capsys, "inspect", tmp_path / "none")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "config.yaml").write_text((tiny_run[0] / "config.yaml").read_text())
    assert "no checkpoint in" in cli_error(capsys, "inspect", empty)
    assert "--step 99: no checkpoint" in cli_error(capsys, "inspect", tiny_run[0], "--step", "99")
    assert "give a run directory, or --init" in cli_error(capsys, "inspect")
    assert "not both" in cli_error(capsys, "inspect", tiny_run[0], "--init")
    assert "--set applies to --init only" in cli_error(capsys, "inspect", tiny_run[0], "--set", "train.seed=1")
    assert "--init inspects untrained models" in cli_error(capsys, "inspect", "--init", "--no-ema")
    assert "--n 0: must be between 1" in cli_error(capsys, "inspect", "--init", "--n", "0")
    assert "config file not found" in cli_error(capsys, "inspect", "--init", tmp_path / "none.yaml")
    assert "needs 2 x2 blocks" in cli_error(capsys, "inspect", "--init", "--set", "model.generator.upsampling=transpose,upsample,subpixel")
    changed = tmp_path / "changed"
    shutil.copytree(tiny_run[0], changed)
    config = (changed / "config.yaml").read_text()
    (changed / "config.yaml").write_text(config.replace("base_channels: 4", "base_channels: 6", 1))
    assert "cannot restore checkpoint" in cli_error(capsys, "inspect", changed, "--out", tmp_path / "o")

    def refuses(*args, **kwargs):
        raise ValueError("Kernel shape must have the same length as input\nand more")

    monkeypatch.setattr("dcgan.training.gan.build_generator", refuses)
    assert "cannot build the models of" in cli_error(capsys, "inspect", "--init", "--out", tmp_path / "o")
    assert not (tmp_path / "none").exists()


def test_the_command_is_in_the_help_and_its_module_loads_no_tensorflow():
    import subprocess
    import sys

    code = ("import sys, dcgan.tools.anatomy, dcgan.cli; h = dcgan.cli.build_parser().format_help(); "
            "print('inspect' in h, 'tensorflow' in sys.modules, 'matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False", "False"]


def test_a_size_inspect_cannot_hold_is_refused_before_any_work_and_batches_fit_the_budget(tiny_config, capsys):
    from dcgan.models.networks import build_discriminator, build_generator

    error = cli_error(capsys, "inspect", "--init", "--set", "data.image_size=1024")
    assert "data.image_size 1024: inspect handles at most 256 px" in error
    cfg = tiny_config()
    gen, disc = build_generator(cfg), build_discriminator(cfg)
    per_latent = 2 * 4 * sum(int(np.prod(layer.output.shape[1:])) for m in (gen, disc) for layer in m.layers)
    assert anatomy.latents_per_batch(gen, disc, budget=3 * per_latent) == 3
    assert anatomy.latents_per_batch(gen, disc, budget=1) == 1 and anatomy.latents_per_batch(gen, disc) == anatomy.BATCH
