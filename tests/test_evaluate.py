import json

import numpy as np
import pytest

from conftest import TINY, blob_images, write_idx
from dcgan import evaluate as E
from dcgan.cli import main
from dcgan.config import load_config
from dcgan.errors import DcganError
from dcgan.rundir import read_metrics, write_config
from dcgan.train import CHECKPOINT_DIR, train
from dcgan.viz import read_png


@pytest.fixture(autouse=True)
def cache(cache_dir, monkeypatch):
    monkeypatch.setenv("DCGAN_CACHE", str(cache_dir))  # one cache: the tiny dataset's classifier is trained once
    return cache_dir


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, cache_dir):
    """One tiny run for the module, trained with periodic evaluation (steps 2 and 4)."""
    root = tmp_path_factory.mktemp("evaluate")
    data = root / "mnist"
    data.mkdir()
    for prefix, n, seed in (("train", 256, 1), ("t10k", 64, 2)):
        write_idx(data / f"{prefix}-images-idx3-ubyte.gz", blob_images(n, seed=seed)[..., 0])
        write_idx(data / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 2)
    cfg = load_config(None, ["data.name=mnist", f"data.path={data}", f"run.dir={root / 'runs'}", *TINY, "train.steps=4",
                             "train.eval_every=2", "train.eval_samples=32", "train.ema_decay=0.9"])
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DCGAN_CACHE", str(cache_dir))
        return train(cfg, quiet=True)


def test_evaluate_a_trained_run(trained_run, capsys):
    run = trained_run
    records = E.evaluate(run, n=64)
    assert [r["metric"] for r in records] == list(E.METRICS)
    saved = json.loads((run / E.EVAL_FILE).read_text())
    assert saved == records
    by_name = {r["metric"]: r for r in saved}
    for r in saved:
        assert r["n"] == 64 and r["dataset_split"] == "mnist:test" and r["checkpoint_step"] == 4 and r["ema"] is True
        assert np.isfinite(r["value"])
    assert by_name["fid"]["feature_network"].startswith("classifier-mnist-")
    assert by_name["checkerboard"]["feature_network"] is None
    assert by_name["fid"]["value"] > 0 and by_name["checkerboard"]["value"] > 0
    assert 0 <= by_name["precision"]["value"] <= 1 and 0 <= by_name["recall"]["value"] <= 1
    assert by_name["kid"]["std"] >= 0
    spectrum = read_png(run / E.SPECTRUM_FILE)
    assert spectrum.shape[0] > 100 and spectrum.shape[1] > 100
    table = capsys.readouterr().out
    assert "metric" in table and "checkerboard" in table and "±" in table

    # a subset of metrics, an explicit step, the raw generator: same latents, so FID is reproducible
    again = E.evaluate(run, n=64, metrics="fid,checkerboard", step=4, quiet=True)
    assert [r["metric"] for r in again] == ["fid", "checkerboard"]
    assert again[0]["value"] == pytest.approx(by_name["fid"]["value"], rel=1e-5)
    raw = E.evaluate(run, n=64, metrics=["fid"], use_ema=False, quiet=True)
    assert raw[0]["ema"] is False and raw[0]["value"] != pytest.approx(again[0]["value"], rel=1e-6)
    capsys.readouterr()
    assert main(["evaluate", str(run), "--n", "32", "--metrics", "checkerboard", "--step", "3"]) == 0
    assert "checkerboard" in capsys.readouterr().out
    assert json.loads((run / E.EVAL_FILE).read_text())[0]["checkpoint_step"] == 3


def test_errors_are_one_clear_line(tiny_config, tmp_path, capsys):
    with pytest.raises(DcganError, match="unknown metric 'fdi'; valid metrics: fid, kid, precision, recall, checkerboard"):
        E.evaluate(tmp_path, metrics="fid,fdi")
    run = tmp_path / "empty-run"
    write_config(run, tiny_config())
    with pytest.raises(DcganError, match=r"no checkpoint in .*checkpoints; train the run first"):
        E.evaluate(run, n=8)
    with pytest.raises(DcganError, match="no best checkpoint"):
        E.evaluate(run, step="best")
    with pytest.raises(DcganError, match=r"no checkpoint in .*checkpoints; train the run first"):
        E.evaluate(run, step="all")
    with pytest.raises(DcganError, match="run directory not found"):
        E.evaluate(tmp_path / "nowhere")
    assert main(["evaluate", str(run), "--metrics", "fid,is"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("dcgan evaluate: error: unknown metric 'is'") and "\n" not in err


def test_missing_step_lists_the_available_ones(trained_run):
    with pytest.raises(DcganError, match=r"--step 7: no checkpoint ckpt-7 .*available steps: 3, 4"):
        E.evaluate(trained_run, step=7, metrics="checkerboard")


def test_step_all_scores_every_kept_checkpoint_oldest_first(trained_run, capsys):
    assert main(["evaluate", str(trained_run), "--n", "32", "--metrics", "fid,checkerboard", "--step", "all"]) == 0
    out = capsys.readouterr().out
    assert "step 3: fid" in out and "step 4: fid" in out
    records = json.loads((trained_run / E.EVAL_FILE).read_text())
    assert [(r["checkpoint_step"], r["metric"]) for r in records] == [(3, "fid"), (3, "checkerboard"), (4, "fid"), (4, "checkerboard")]
    one = E.evaluate(trained_run, n=32, metrics="fid", step=3, quiet=True)
    assert one[0]["value"] == pytest.approx(records[0]["value"], rel=1e-5)  # restoring in turn leaks nothing between steps
    curve = read_png(trained_run / E.CURVE_FILE)
    assert curve.shape[1] > 400  # one panel per metric
    with pytest.raises(SystemExit) as exit_:  # argparse rejects it before any work
        main(["evaluate", str(trained_run), "--step", "al"])
    assert exit_.value.code == 2
    assert "expected a step number, 'best' or 'all', got 'al'" in capsys.readouterr().err


def test_training_with_eval_every_logs_and_keeps_the_best_checkpoint(trained_run):
    run = trained_run
    evals = [r for r in read_metrics(run / "metrics.jsonl") if "eval" in r]
    assert [r["step"] for r in evals] == [2, 4]
    for r in evals:
        assert set(r["eval"]) == {"fid", "kid", "kid_std", "checkerboard"} and np.isfinite(r["eval"]["fid"])
    best = min(evals, key=lambda r: r["eval"]["fid"])
    best_dir = run / CHECKPOINT_DIR / E.BEST_DIR
    info = json.loads((best_dir / E.BEST_FILE).read_text())
    assert info["step"] == best["step"] and info["fid"] == pytest.approx(best["eval"]["fid"])
    assert [p.name for p in best_dir.glob("*.index")] == [f"ckpt-{best['step']}.index"]
    # the regular checkpoints are untouched, and the best one evaluates to the logged FID
    assert (run / CHECKPOINT_DIR / "ckpt-4.index").is_file()
    scored = E.evaluate(run, n=32, metrics="fid", step="best", quiet=True)
    assert scored[0]["checkpoint_step"] == best["step"]
    assert scored[0]["value"] == pytest.approx(best["eval"]["fid"], rel=1e-4)
