import json

import keras
import numpy as np
import pytest
from PIL import Image

from dcgan.evaluation import featurenet
from dcgan.evaluation import evaluator
from dcgan.tools import evaluate
from dcgan.training.callbacks import SamplerChoice
from dcgan.cli import main
from dcgan.core.config import load_config
from dcgan.data.pipeline import load_images
from dcgan.core.errors import DcganError
from dcgan.training.rundir import read_metrics, read_run_config, write_config
from dcgan.training.checkpoints import BEST_DIR, BEST_FILE, CHECKPOINT_DIR
from dcgan.training.loop import train
from dcgan.core.viz import read_png
from helpers import TINY, blob_images, cli_error, mnist_sets, usage_error, write_mnist


@pytest.fixture(autouse=True)
def cache(cache_dir, monkeypatch):
    monkeypatch.setenv("DCGAN_CACHE", str(cache_dir))  # one cache: the tiny dataset's classifier is trained once
    return cache_dir


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, cache_dir):
    """One tiny run for the module, trained with periodic evaluation and a sampler choice (steps 2 and 4)."""
    root = tmp_path_factory.mktemp("evaluate")
    data = write_mnist(root / "mnist", two_classes=True)
    cfg = load_config(None, [*mnist_sets(data), f"run.dir={root / 'runs'}", "train.steps=4", "train.eval_every=2",
                             "train.eval_samples=32", "train.ema_decay=0.9", "train.select_sampler=true",
                             "train.select_samples=48"])
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DCGAN_CACHE", str(cache_dir))
        return train(cfg, quiet=True)


def test_a_metric_is_one_row_of_the_table(trained_run, tmp_path, monkeypatch):
    """docs/extending.md's example: a row added to METRIC_TABLE is taken by name, scored and saved like the rest."""
    import shutil

    from dcgan.evaluation import metrics

    def score_nearest(ev, images, feats, labels, seed):
        return float(metrics.nearest_distances(feats, ev.real["features"]).mean())

    monkeypatch.setitem(evaluator.METRIC_TABLE, "nearest", evaluator.Metric(True, score_nearest, default=False))
    run = shutil.copytree(trained_run, tmp_path / "run", symlinks=True)
    records = evaluate.evaluate(run, n=32, metrics="nearest,fid")
    assert [r["metric"] for r in records] == ["nearest", "fid"] and records[0]["value"] > 0
    assert records[0]["feature_network"] == records[1]["feature_network"]  # the same features as FID's
    assert "nearest" not in evaluator.default_metrics(load_config(run / "config.yaml"))  # default=False


def final_choice(run) -> str:
    return [r for r in read_metrics(run / "metrics.jsonl", "all") if "sampler" in r][-1]["sampler"]["choice"]


def test_evaluate_a_trained_run(trained_run, capsys):
    run = trained_run
    records = evaluate.evaluate(run, n=64)
    assert [r["metric"] for r in records] == ["fid", "kid", "precision", "recall", "checkerboard"]  # no class metrics
    saved = json.loads((run / evaluator.EVAL_FILE).read_text())
    assert saved == records
    by_name = {r["metric"]: r for r in saved}
    for r in saved:
        assert r["n"] == 64 and r["dataset_split"] == "mnist:test" and r["checkpoint_step"] == 4
        assert r["ema"] is (final_choice(run) == "ema")  # the copy the run chose to sample from
        assert np.isfinite(r["value"])
    assert by_name["fid"]["feature_network"].startswith("classifier-mnist-")
    assert by_name["checkerboard"]["feature_network"] is None
    assert by_name["fid"]["value"] > 0 and by_name["checkerboard"]["value"] > 0
    assert 0 <= by_name["precision"]["value"] <= 1 and 0 <= by_name["recall"]["value"] <= 1
    assert by_name["kid"]["std"] >= 0
    spectrum = read_png(run / evaluator.SPECTRUM_FILE)
    assert spectrum.shape[0] > 100 and spectrum.shape[1] > 100
    assert "checkerboard" not in capsys.readouterr().out  # a library function returns its table: the command prints it
    table = records.table()
    assert "metric" in table and "checkerboard" in table and "±" in table
    assert records.values == {r["metric"]: r["value"] for r in saved} and records.by_step() == {4: records.values}
    assert records.summary() == f"64 samples x 1 checkpoint(s) scored in {records.seconds:.1f} s -> {run / evaluator.EVAL_FILE}"

    # memorisation is asked for by name: the run's own training images against the unseen test split
    (mem,) = evaluate.evaluate(run, n=64, metrics="memorisation", quiet=True)
    cfg = read_run_config(run)
    assert mem["train_images"] == len(load_images(cfg.data)) and 0 <= mem["copies"] <= 1 and mem["value"] > 0

    # a subset of metrics, an explicit step, either copy: same latents, so FID is reproducible
    again = evaluate.evaluate(run, n=64, metrics="fid,checkerboard", step=4, quiet=True)
    assert [r["metric"] for r in again] == ["fid", "checkerboard"]
    assert again[0]["value"] == pytest.approx(by_name["fid"]["value"], rel=1e-5)
    ema = evaluate.evaluate(run, n=64, metrics=["fid"], use_ema=True, quiet=True)
    raw = evaluate.evaluate(run, n=64, metrics=["fid"], use_ema=False, quiet=True)
    assert ema[0]["ema"] is True and raw[0]["ema"] is False
    assert raw[0]["value"] != pytest.approx(ema[0]["value"], rel=1e-6)
    assert again[0]["value"] == pytest.approx((ema if final_choice(run) == "ema" else raw)[0]["value"], rel=1e-5)
    capsys.readouterr()
    assert main(["evaluate", str(run), "--n", "32", "--metrics", "checkerboard", "--step", "3"]) == 0
    assert "checkerboard" in capsys.readouterr().out
    assert json.loads((run / evaluator.EVAL_FILE).read_text())[0]["checkpoint_step"] == 3


def test_errors_are_one_clear_line(tiny_config, tmp_path, capsys):
    with pytest.raises(DcganError, match="unknown metric 'fdi'; valid metrics: fid, kid, precision, recall, checkerboard, "
                                         "class_accuracy, intra_fid, memorisation"):
        evaluate.evaluate(tmp_path, metrics="fid,fdi")
    run = tmp_path / "empty-run"
    write_config(run, tiny_config())
    with pytest.raises(DcganError, match=r"no checkpoint in .*checkpoints; train the run first"):
        evaluate.evaluate(run, n=8)
    with pytest.raises(DcganError, match="no best checkpoint"):
        evaluate.evaluate(run, step="best")
    with pytest.raises(DcganError, match=r"no checkpoint in .*checkpoints; train the run first"):
        evaluate.evaluate(run, step="all")
    with pytest.raises(DcganError, match="run directory not found"):
        evaluate.evaluate(tmp_path / "nowhere")
    assert cli_error(capsys, "evaluate", run, "--metrics", "fid,is").startswith("dcgan evaluate: error: unknown metric 'is'")


def test_arguments_are_checked_before_the_run_is_read(tmp_path, capsys):
    nowhere = tmp_path / "nowhere"  # its error would come next
    with pytest.raises(DcganError, match="--n: 1000000000 is too many; at most 100000 generated images"):
        evaluate.evaluate(nowhere, n=1_000_000_000)
    assert "--n: 100001 is too many" in cli_error(capsys, "evaluate", nowhere, "--n", 100_001)
    (tmp_path / "dir.keras").mkdir()
    with pytest.raises(DcganError, match="--feature-model: .*dir.keras is a directory, not a .keras file"):
        evaluate.evaluate(nowhere, feature_model=str(tmp_path / "dir.keras"))
    (tmp_path / "text.keras").write_text("not a zip")
    assert "text.keras is not a .keras (zip) file" in cli_error(capsys, "evaluate", nowhere, "--feature-model",
                                                                tmp_path / "text.keras")


def test_step_all_scores_every_kept_checkpoint_oldest_first(trained_run, capsys):
    assert main(["evaluate", str(trained_run), "--n", "32", "--metrics", "fid,checkerboard", "--step", "all"]) == 0
    progress = capsys.readouterr().err  # log lines go to stderr; stdout carries the table
    assert "step 3: fid" in progress and "step 4: fid" in progress
    records = json.loads((trained_run / evaluator.EVAL_FILE).read_text())
    assert [(r["checkpoint_step"], r["metric"]) for r in records] == [(3, "fid"), (3, "checkerboard"), (4, "fid"), (4, "checkerboard")]
    one = evaluate.evaluate(trained_run, n=32, metrics="fid", step=3, quiet=True)
    assert one[0]["value"] == pytest.approx(records[0]["value"], rel=1e-5)  # restoring in turn leaks nothing between steps
    curve = read_png(trained_run / evaluator.CURVE_FILE)
    assert curve.shape[1] > 400  # one panel per metric
    # argparse rejects it before any work
    assert "expected a step number, 'best' or 'all', got 'al'" in usage_error(capsys, "evaluate", trained_run, "--step", "al")


def test_training_with_eval_every_logs_and_keeps_the_best_checkpoint(trained_run):
    run = trained_run
    evals = [r for r in read_metrics(run / "metrics.jsonl", "all") if "eval" in r]
    assert [r["step"] for r in evals] == [2, 4]
    for r in evals:
        assert set(r["eval"]) == {"fid", "kid", "kid_std", "checkerboard"} and np.isfinite(r["eval"]["fid"])
    best = min(evals, key=lambda r: r["eval"]["fid"])
    best_dir = run / CHECKPOINT_DIR / BEST_DIR
    info = json.loads((best_dir / BEST_FILE).read_text())
    assert info["step"] == best["step"] and info["fid"] == pytest.approx(best["eval"]["fid"])
    assert [p.name for p in best_dir.glob("*.index")] == [f"ckpt-{best['step']}.index"]
    # the regular checkpoints are untouched, and the best one evaluates to the logged FID
    assert (run / CHECKPOINT_DIR / "ckpt-4.index").is_file()
    scored = evaluate.evaluate(run, n=32, metrics="fid", step="best", quiet=True)
    assert scored[0]["checkpoint_step"] == best["step"]
    assert scored[0]["value"] == pytest.approx(best["eval"]["fid"], rel=1e-4)


# ---------------------------------------------------------------- the sampler choice


def test_training_samples_from_the_copy_with_the_lower_fid(trained_run):
    from dcgan.training.gan import GAN
    from dcgan.training.restoring import restore

    run = trained_run
    choices = [r for r in read_metrics(run / "metrics.jsonl", "all") if "sampler" in r]
    assert [r["step"] for r in choices] == [2, 4]  # at each evaluation and at the last step
    cfg = read_run_config(run)
    gan = GAN(cfg)
    for r in choices:
        c = r["sampler"]
        assert c["choice"] == ("ema" if c["fid_ema"] <= c["fid_raw"] else "raw") and c["n"] == c["real"] == 48
    restore(gan, str(run / CHECKPOINT_DIR / "ckpt-4"))
    assert bool(gan.sample_from_ema.numpy()) is (choices[-1]["sampler"]["choice"] == "ema")
    z = np.random.default_rng(0).standard_normal((4, 8)).astype(np.float32)
    chosen = gan.ema_generator if choices[-1]["sampler"]["choice"] == "ema" else gan.generator
    saved = keras.saving.load_model(run / "generator.keras", safe_mode=True)
    np.testing.assert_allclose(saved(z, training=False).numpy(), chosen(z, training=False).numpy(), atol=1e-6)
    restore(gan, str(run / CHECKPOINT_DIR / "ckpt-3"))  # no choice made at step 3: the EMA copy
    assert bool(gan.sample_from_ema.numpy()) is True


def test_choice_follows_the_scores_both_ways(trained_run):
    from dcgan.training.gan import GAN
    from dcgan.training.restoring import restore

    cfg = read_run_config(trained_run)
    gan = GAN(cfg)
    restore(gan, str(trained_run / CHECKPOINT_DIR / "ckpt-4"))
    choose, log = SamplerChoice(gan, load_images(cfg.data)), Recorder()
    line = choose(gan, 4, log, decide=True)
    first = log.records[-1]["sampler"]
    assert "sampling from the" in line and "against training images" in line
    ema, raw = gan.ema_generator.get_weights(), gan.generator.get_weights()
    gan.ema_generator.set_weights(raw)  # swap the copies: the scores swap and so does the choice
    gan.generator.set_weights(ema)
    choose(gan, 4, log, decide=True)
    second = log.records[-1]["sampler"]
    assert second["fid_ema"] == pytest.approx(first["fid_raw"], rel=1e-5)
    assert second["fid_raw"] == pytest.approx(first["fid_ema"], rel=1e-5)
    assert {first["choice"], second["choice"]} == {"ema", "raw"}
    assert bool(gan.sample_from_ema.numpy()) is (second["choice"] == "ema")
    assert choose(gan, 5, log, decide=False) is None and bool(gan.sample_from_ema.numpy()) is True
    assert len(log.records) == 2  # an undecided step logs nothing


def test_no_feature_network_keeps_the_ema_copy_and_finishes(tmp_path, monkeypatch, capsys):
    from dcgan.evaluation import features
    from dcgan.training.gan import GAN
    from dcgan.training.restoring import restore

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setattr(features, "INCEPTION_URL", "http://127.0.0.1:9/inception_notop.h5")  # nothing listens there
    folder = tmp_path / "images"
    folder.mkdir()
    for i, image in enumerate(blob_images(40, size=16, channels=3, seed=3)):
        Image.fromarray(image).save(folder / f"{i}.png")
    cfg = load_config(None, ["data.name=folder", f"data.path={folder}", "data.image_size=16", "data.channels=3",
                             f"run.dir={tmp_path / 'runs'}", *TINY, "train.steps=2", "train.ema_decay=0.9",
                             "train.select_sampler=true", "train.feature_network=inception"])
    run = train(cfg, quiet=True)
    err = capsys.readouterr().err
    assert "sampling from the EMA copy: the raw generator cannot be compared with it (" in err
    assert not [r for r in read_metrics(run / "metrics.jsonl", "all") if "sampler" in r]
    gan = GAN(cfg)
    restore(gan, str(run / CHECKPOINT_DIR / "ckpt-2"))
    assert bool(gan.sample_from_ema.numpy()) is True and (run / "generator.keras").is_file()


class Recorder:
    """A metrics log that keeps what it is given."""

    def __init__(self):
        self.records = []

    def write(self, kind, record):
        self.records.append({"kind": kind, **record})


def test_sampler_choice_script_replays_the_choice_and_judges_it(trained_run, capsys):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "scripts" / "sampler_choice.py"
    spec = importlib.util.spec_from_file_location("sampler_choice", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main([str(trained_run), "--n", "32"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    results = [json.loads(line) for line in lines[:-1]]
    assert [r["step"] for r in results] == [3, 4]
    logged = [r["sampler"] for r in read_metrics(trained_run / "metrics.jsonl", "all") if "sampler" in r and r["step"] == 4][-1]
    assert results[1]["choice"] == logged["choice"] and results[1]["fid_ema"] == pytest.approx(logged["fid_ema"], rel=1e-4)
    scored = evaluate.evaluate(trained_run, n=32, metrics="fid", step=4, use_ema=False, quiet=True)
    assert results[1]["test_fid_raw"] == pytest.approx(scored[0]["value"], rel=1e-5)
    agreed = sum(r[f"test_fid_{r['choice']}"] <= min(r["test_fid_ema"], r["test_fid_raw"]) for r in results)
    assert lines[-1].startswith(f"choice agreed with the test split at {agreed} of 2 checkpoints")
    assert script.main([str(trained_run), "--steps", "9"]) == 2
    assert "--step 9: no checkpoint ckpt-9" in capsys.readouterr().err


# ---------------------------------------------------------------- conditional runs: class accuracy and intra-FID

CLASS_METRICS = ("class_accuracy", "intra_fid")
CONDITIONAL = ["model.generator.condition=cbn", "model.discriminator.condition=projection"]


@pytest.fixture(scope="module")
def labelled(tmp_path_factory, cache_dir):
    """A conditional config on two easy classes (discs and their negatives) and its classifier, trained for 4 epochs."""
    from dcgan.evaluation.features import train_classifier

    root = tmp_path_factory.mktemp("labelled")
    data = write_mnist(root / "mnist", n_train=384, n_test=128, invert_class_1=True)
    cfg = load_config(None, [*mnist_sets(data), f"run.dir={root / 'runs'}", *CONDITIONAL])
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DCGAN_CACHE", str(cache_dir))
        _, info = train_classifier("mnist", str(data), epochs=4, quiet=True)
    return cfg, info


def test_real_images_with_their_labels_score_the_classifiers_accuracy(labelled):
    cfg, info = labelled
    ev = evaluator.Evaluator(cfg.data, CLASS_METRICS, quiet=True)
    images, labels = _test_split(cfg)
    np.testing.assert_array_equal(labels, ev.real_labels)
    assert len(images) == 128 and ev.classes[:2] == ["0", "1"]
    assert info["test_accuracy"] > 0.9  # the planted classes are learnable: a judge worth asking
    right = ev.score(images, labels=labels)
    assert right["class_accuracy"] == pytest.approx(info["test_accuracy"], abs=1e-4)  # the same images, the same verdicts
    assert right.fields["class_accuracy"]["classifier_test_accuracy"] == info["test_accuracy"]
    flipped = ev.score(images, labels=1 - labels)  # two classes: every verdict turns
    assert flipped["class_accuracy"] == pytest.approx(1 - right["class_accuracy"])
    shuffled = ev.score(images, labels=np.random.default_rng(0).permutation(labels))
    assert abs(shuffled["class_accuracy"] - 0.5) < 0.15  # about 1 / classes
    # intra-FID: each class against itself is ~0; classes swapped, far from it
    per_class = right.fields["intra_fid"]["per_class"]
    assert set(per_class) == {"0", "1"}  # the test split's classes; the eight absent ones are not scored
    assert right["intra_fid"] == pytest.approx(np.mean(list(per_class.values())))
    assert abs(right["intra_fid"]) < 1e-3 * flipped["intra_fid"]
    assert flipped["intra_fid"] > 1 and shuffled["intra_fid"] > abs(right["intra_fid"])
    with pytest.raises(DcganError, match="class_accuracy, intra_fid: needs the class label each image was generated for"):
        ev.score(images)


def test_the_real_side_per_class_is_computed_once_and_cached(labelled, cache, monkeypatch):
    from dcgan.evaluation.metrics import feature_stats, fid

    cfg, _ = labelled
    ev = evaluator.Evaluator(cfg.data, ("intra_fid",), quiet=True)
    assert len(list((cache / "stats" / ev.feature_network).glob("mnist-test-*.npz"))) == 1
    mu, sigma = ev.real_classes[1]
    images, labels = _test_split(cfg)
    real_feats = ev.net(images)[labels == 1]
    np.testing.assert_allclose(mu, real_feats.mean(axis=0), rtol=1e-5, atol=1e-5)
    fake, labels = images[:64], labels[:64]  # half of each class
    scored = ev.score(fake, labels=labels).fields["intra_fid"]["per_class"]["1"]
    assert scored == pytest.approx(fid(*feature_stats(ev.net(fake)[labels == 1]), mu, sigma), rel=1e-6)
    monkeypatch.setattr(featurenet.FeatureNet, "__call__", lambda *a, **k: pytest.fail("the real images went through the network again"))
    again = evaluator.Evaluator(cfg.data, ("intra_fid",), quiet=True)
    np.testing.assert_array_equal(again.real_classes[1][1], sigma)


def _test_split(cfg):
    """The split the Evaluator scored against (it keeps only its statistics, not the images)."""
    from dcgan.data.pipeline import load_labelled_images

    real = load_labelled_images(cfg.data, split="test")
    return real.images, real.labels


def test_class_metrics_belong_to_conditional_runs(labelled, tmp_path):
    cfg, _ = labelled
    assert evaluator.default_metrics(cfg) == (*evaluator.METRICS[:5], *CLASS_METRICS)
    assert evaluator.default_metrics(cfg, evaluator.TRAINING_METRICS) == ("fid", "kid", "checkerboard", *CLASS_METRICS)
    plain = load_config(None, ["data.name=mnist"])
    assert evaluator.default_metrics(plain) == ("fid", "kid", "precision", "recall", "checkerboard")
    assert evaluator.default_metrics(plain, evaluator.TRAINING_METRICS) == evaluator.TRAINING_METRICS
    # a folder has labels (its subfolders) but no test split to train and test a judge on: intra-FID only
    folder = load_config(None, ["data.name=folder", f"data.path={tmp_path}", *CONDITIONAL])
    assert evaluator.default_metrics(folder)[-1:] == ("intra_fid",)
    with pytest.raises(DcganError, match=r"--metrics class_accuracy: needs a classifier trained on a labelled train and test "
                                         r"split \(mnist, fashion_mnist, cifar10\); data.name=folder has none"):
        evaluator.check_metrics(["class_accuracy"], folder, tmp_path)


def test_an_unconditional_run_refuses_class_metrics_in_one_line(trained_run, capsys):
    with pytest.raises(DcganError, match=r"--metrics intra_fid: only for a conditional run \(model.generator.condition\); "
                                         r".* is unconditional"):
        evaluate.evaluate(trained_run, n=32, metrics="fid,intra_fid")
    err = cli_error(capsys, "evaluate", trained_run, "--metrics", "class_accuracy")
    assert "--metrics class_accuracy: only for a conditional run" in err
    ev = evaluator.Evaluator(read_run_config(trained_run).data, ("class_accuracy",), quiet=True)
    from dcgan.training.gan import run_gan

    with pytest.raises(DcganError, match="class_accuracy: only for a conditional generator; this one is unconditional"):
        ev.evaluate_model(run_gan(trained_run).generator, 8)


def test_evaluate_a_conditional_run_writes_both_class_metrics(tiny_conditional_run, capsys):
    run, cfg = tiny_conditional_run
    assert main(["evaluate", str(run), "--n", "60", "--metrics", "fid,class_accuracy,intra_fid"]) == 0
    table = capsys.readouterr().out
    assert "class_accuracy" in table and "(real test images: " in table and "intra_fid" in table
    records = evaluate.evaluate(run, n=60, quiet=True)  # the default list: every metric, the class ones too
    assert [r["metric"] for r in records] == [m for m in evaluator.METRICS if evaluator.METRIC_TABLE[m].default]
    assert json.loads((run / evaluator.EVAL_FILE).read_text()) == records
    by_name = {r["metric"]: r for r in records}
    accuracy, intra = by_name["class_accuracy"], by_name["intra_fid"]
    assert 0 <= accuracy["value"] <= 1 and 0 <= accuracy["classifier_test_accuracy"] <= 1
    assert accuracy["feature_network"].startswith("classifier-fashion_mnist-") and accuracy["feature_network"].endswith("-logits")
    assert accuracy["dataset_split"] == "fashion_mnist:test" and accuracy["checkpoint_step"] == 6
    assert intra["feature_network"] == by_name["fid"]["feature_network"]  # FID's feature space
    assert set(intra["per_class"]) == {"T-shirt/top", "Trouser"}  # the classes the tiny test split holds
    assert intra["value"] == pytest.approx(np.mean(list(intra["per_class"].values()))) and intra["value"] > 0
    with pytest.raises(DcganError, match=r"--n: 19 is too few for intra_fid, which needs 2 generated images per class "
                                         r"\(at least 20 for 10 classes\)"):
        evaluate.evaluate(run, n=19, metrics="intra_fid")
    assert evaluate.evaluate(run, n=19, metrics="class_accuracy", quiet=True)[0]["n"] == 19


def test_training_evaluation_of_a_conditional_run_logs_the_class_metrics(tiny_conditional_run, tmp_path):
    import shutil

    import tensorflow as tf

    from dcgan.training.gan import GAN
    from dcgan.training.restoring import restore
    from dcgan.training.callbacks import Due, Run, TrainingEval
    from helpers import event_steps

    source, cfg = tiny_conditional_run
    run = shutil.copytree(source, tmp_path / "run")  # TrainingEval keeps a best checkpoint in it
    gan = GAN(cfg, classes=json.loads((run / "classes.json").read_text())["classes"])
    restore(gan, str(run / CHECKPOINT_DIR / "ckpt-6"))
    import dataclasses

    real_cfg, gan.cfg = gan.cfg, dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, eval_samples=12))
    with pytest.raises(DcganError, match="train.eval_samples: 12 is too few for intra_fid"):  # before training, not at step N
        TrainingEval(gan, run)
    gan.cfg = real_cfg
    hook, log = TrainingEval(gan, run), Recorder()
    hook.n = 40
    writer = tf.summary.create_file_writer(str(tmp_path / "tb"))
    hook.on_start(Run(gan, run, 0, 6, log, writer))
    assert hook.on_checkpoint(5, Due(sample=True, checkpoint=True)) is None and not log.records  # no evaluation due
    line = hook.on_checkpoint(6, Due(eval=True))  # what train() calls: metrics.jsonl and TensorBoard
    writer.flush()
    assert line.startswith("eval step 6: fid ") and "intra_fid" in line
    scores = log.records[-1]["eval"]
    assert set(scores) == {"fid", "kid", "kid_std", "checkerboard", "class_accuracy", "intra_fid"}
    assert all(isinstance(v, float) and np.isfinite(v) for v in scores.values())
    assert {("eval/class_accuracy", 6), ("eval/intra_fid", 6)} <= set(event_steps(tmp_path / "tb", tags=True))
