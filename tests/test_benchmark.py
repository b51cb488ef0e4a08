import numpy as np
import pytest

from dcgan.tools import benchmark
from helpers import cli_error


def test_benchmark_reports_every_variant_and_ratio(tiny_config):
    cfg = tiny_config("train.ema_decay=0.9")
    images = benchmark.load_or_synthesize(cfg, synthetic=True)
    assert images.shape[1:] == (28, 28, 1) and images.dtype == np.uint8
    res = benchmark.benchmark_training(cfg, images, window_steps=2, windows=2, warmup_steps=1)
    assert set(res["images_per_s"]) == {"reference", "app_synthetic", "app_pipeline"}
    assert all(v > 0 for v in res["images_per_s"].values())
    # the ratio is of the unrounded rates; the reported rates are rounded to 0.1 images/s
    assert res["ratio_app_pipeline"] == pytest.approx(res["images_per_s"]["app_pipeline"] / res["images_per_s"]["reference"], abs=2e-3)
    assert all(len(w) == 2 for w in res["window_seconds"].values())
    assert res["train_gflops_per_image"] > res["generator_gflops_per_image"] > 0
    report = benchmark.format_report(cfg, res, peak=100.0)
    assert "reference loop" in report and "% " not in report.split("\n")[0]


def test_a_conditional_config_is_timed_against_its_unconditional_twin(tiny_config):
    cfg = tiny_config("model.generator.condition=cbn", "model.discriminator.condition=projection")
    images = benchmark.load_or_synthesize(cfg, synthetic=True)
    res = benchmark.benchmark_training(cfg, images, window_steps=2, windows=2, warmup_steps=1)
    assert set(res["images_per_s"]) == {"reference", "app_synthetic", "app_pipeline", "app_unconditional"}
    ips = res["images_per_s"]
    assert res["ratio_conditional"] == pytest.approx(ips["app_synthetic"] / ips["app_unconditional"], abs=2e-3)
    assert res["ratio_conditional"] > 0
    assert "conditional/unconditional" in benchmark.format_report(cfg, res, peak=100.0)
    assert benchmark.benchmark_sampling(cfg, n=600) > 0


def test_matmul_peak_is_positive():
    assert benchmark.matmul_peak_gflops(n=256, repeats=2) > 0.1


@pytest.mark.parametrize("flag, value", [("--windows", 0), ("--windows", -1), ("--window-steps", 0)])
def test_window_counts_are_checked_before_any_work(flag, value, monkeypatch, capsys):
    monkeypatch.setattr(benchmark, "matmul_peak_gflops", lambda: pytest.fail("the benchmark started"))
    assert f"{flag} {value}: must be at least 1" in cli_error(capsys, "benchmark", f"{flag}={value}")
