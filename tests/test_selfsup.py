"""The self-supervised feature network: views, loss, deterministic training, its cache, and choosing it."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dcgan.evaluation import featurenet
from dcgan.evaluation import features
from dcgan.evaluation import selfsup
from dcgan.core.config import load_config
from dcgan.core.errors import DcganError
from dcgan.training.rundir import read_metrics
from helpers import TINY, blob_images, cli_error, mnist_sets, one_line_config_error, run_cli, usage_error, write_mnist

TINY_STEPS = 3


def offline(mp, cache):
    """A cache of our own, a tiny step count, and no InceptionV3 to be had: what selfsup must do without."""
    mp.setenv("DCGAN_CACHE", str(cache))
    mp.delenv(selfsup.STEPS_ENV, raising=False)
    mp.setattr(selfsup, "STEPS", TINY_STEPS)
    mp.setenv("KERAS_HOME", str(cache / "keras"))
    mp.setattr(features, "INCEPTION_URL", "http://127.0.0.1:9/inception_notop.h5")  # nothing listens there


@pytest.fixture(autouse=True)
def cache(cache_dir, monkeypatch):
    offline(monkeypatch, cache_dir)
    return cache_dir


def write_folder(folder: Path, n: int = 40, size: int = 16) -> Path:
    folder.mkdir(parents=True)
    for i, image in enumerate(blob_images(n, size=size, channels=3, seed=3)):
        Image.fromarray(image).save(folder / f"{i}.png")
    return folder


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory, cache_dir):
    """A tiny colour-folder run with the default train.feature_network (auto), offline: an evaluation and a sampler
    choice at step 2, both scored by the folder's selfsup encoder since InceptionV3's weights are not on disk."""
    from dcgan.training.loop import train

    root = tmp_path_factory.mktemp("selfsup-run")
    folder = write_folder(root / "images")
    cfg = load_config(None, ["data.name=folder", f"data.path={folder}", "data.image_size=16", "data.channels=3",
                             f"run.dir={root / 'runs'}", *TINY, "train.steps=2", "train.ema_decay=0.9",
                             "train.select_sampler=true", "train.select_samples=16", "train.eval_every=2",
                             "train.eval_samples=16"])
    with pytest.MonkeyPatch.context() as mp:
        offline(mp, cache_dir)
        return train(cfg, quiet=True), cfg


# ---------------------------------------------------------------- views, loss, training


def test_two_views_keep_shape_dtype_and_range_and_differ():
    for channels in (3, 1):
        images = blob_images(8, size=32, channels=channels, seed=1)
        v1, v2 = (v.numpy() for v in selfsup.two_views(images, 0, 5))
        for v in (v1, v2):
            assert v.shape == images.shape and v.dtype == np.float32
            assert v.min() >= 0 and v.max() <= 255 and v.max() > 100  # pixels, not [0, 1]
        assert np.abs(v1 - v2).mean() > 1  # two different views of each image
        again, _ = selfsup.two_views(images, 0, 5)
        np.testing.assert_array_equal(again.numpy(), v1)  # stateless: the same seed and step, the same view
        other, _ = selfsup.two_views(images, 0, 6)
        assert not np.array_equal(other.numpy(), v1)
    # any input size comes out at SIZE: the crop is resized
    assert selfsup.augment(blob_images(2, size=28), [0, 1]).shape == (2, selfsup.SIZE, selfsup.SIZE, 1)


def test_nt_xent_matches_a_hand_computation():
    a = np.pi / 3  # z2[0] is z1[0] turned by 60 degrees; z2[1] = z1[1] scaled (the loss is on directions)
    z1 = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    z2 = np.array([[np.cos(a), np.sin(a)], [0.0, 3.0]], np.float32)
    t = 0.5
    views = np.concatenate([z1, z2])
    views /= np.linalg.norm(views, axis=1, keepdims=True)
    partner = [2, 3, 0, 1]
    losses = []
    for i in range(4):
        others = [np.exp(views[i] @ views[k] / t) for k in range(4) if k != i]
        losses.append(-np.log(np.exp(views[i] @ views[partner[i]] / t) / sum(others)))
    # by hand for view 0: cos to its partner 0.5, to z1[1] 0, to z2[1] 0 -> -log(e^1 / (e^1 + 2))
    assert losses[0] == pytest.approx(-np.log(np.e / (np.e + 2)))
    assert float(selfsup.nt_xent(z1, z2, t)) == pytest.approx(np.mean(losses), rel=1e-6)


def test_the_same_seed_trains_the_same_encoder():
    images = blob_images(48, size=32, channels=3, seed=2)
    a, losses_a = selfsup.train_encoder(images, 3, seed=0, batch_size=16)
    b, losses_b = selfsup.train_encoder(images, 3, seed=0, batch_size=16)
    assert len(losses_a) == 3 and all(np.isfinite(losses_a)) and losses_a == losses_b
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    c, _ = selfsup.train_encoder(images, 3, seed=1, batch_size=16)
    assert not np.array_equal(c.get_weights()[0], a.get_weights()[0])
    assert a.get_layer(featurenet.FEATURE_LAYER).output.shape == (None, selfsup.WIDTHS[-1])
    assert a.input_shape == (None, selfsup.SIZE, selfsup.SIZE, 3)


# ---------------------------------------------------------------- the cache


def test_the_encoder_is_cached_by_content(cache, monkeypatch, capsys):
    images = blob_images(48, size=32, channels=1, seed=4)
    path, info = selfsup.train_cached("mnist", images, n_steps=TINY_STEPS)
    err = capsys.readouterr().err
    assert f"features: training a self-supervised encoder on 48 images of mnist ({TINY_STEPS} steps) -> {path.parent}" in err
    assert path.name == selfsup.ENCODER_FILE and path.parent.parent == cache / "features"
    assert path.parent.name == f"selfsup-mnist-{info['hash']}" and info["cached"] is False
    saved = json.loads((path.parent / selfsup.INFO_FILE).read_text())
    assert saved["steps"] == TINY_STEPS and saved["train_images"] == 48 and saved["recipe_version"] == selfsup.RECIPE_VERSION
    mtime = path.stat().st_mtime_ns

    monkeypatch.setattr(selfsup, "train_encoder", lambda *a, **k: pytest.fail("the encoder was trained again"))
    again, info2 = selfsup.train_cached("mnist", images, n_steps=TINY_STEPS, quiet=True)
    assert again == path and path.stat().st_mtime_ns == mtime and info2["cached"] is True
    changed = images.copy()
    changed[0, 0, 0, 0] ^= 1
    assert selfsup.encoder_dir("mnist", changed, TINY_STEPS) != path.parent  # other images: another encoder
    assert selfsup.encoder_dir("mnist", images, TINY_STEPS + 1) != path.parent  # another step count too
    (path.parent / selfsup.INFO_FILE).unlink()  # no info.json: an incomplete entry, trained again
    with pytest.raises(pytest.fail.Exception, match="trained again"):
        selfsup.train_cached("mnist", images, n_steps=TINY_STEPS, quiet=True)


def test_a_damaged_encoder_entry_is_trained_again_in_one_line(cache, capsys):
    images = blob_images(16, size=32, channels=1, seed=5)
    path, info = selfsup.train_cached("mnist", images, n_steps=1, quiet=True)
    info_file = path.parent / selfsup.INFO_FILE
    for what, text in {"garbage": "{not json", "a list": "[]", "no hash": json.dumps({"steps": 1})}.items():
        info_file.write_text(text)
        capsys.readouterr()
        _, again = selfsup.train_cached("mnist", images, n_steps=1)
        err = capsys.readouterr().err.splitlines()
        assert err[0].startswith(f"features: the cached self-supervised encoder in {path.parent} is damaged ("), (what, err)
        assert again["cached"] is False and json.loads(info_file.read_text())["hash"] == info["hash"]


def test_steps_come_from_the_environment(monkeypatch):
    assert selfsup.steps() == TINY_STEPS
    monkeypatch.setenv(selfsup.STEPS_ENV, "7")
    assert selfsup.steps() == 7
    for bad in ("abc", "0", "-3"):
        monkeypatch.setenv(selfsup.STEPS_ENV, bad)
        with pytest.raises(DcganError, match=f"{selfsup.STEPS_ENV}: .* is not a positive whole number of steps"):
            selfsup.steps()


def test_training_images_are_the_whole_train_split_at_most_max_images(tmp_path, monkeypatch):
    cfg = load_config(None, mnist_sets(write_mnist(tmp_path / "mnist"), "data.limit=10"))  # 256 train, 64 test images
    images = selfsup.training_images(cfg.data)
    assert images.shape == (256, selfsup.SIZE, selfsup.SIZE, 1) and images.dtype == np.uint8  # not data.limit's 10
    monkeypatch.setattr(selfsup, "MAX_IMAGES", 100)
    subset = selfsup.training_images(cfg.data)
    assert subset.shape == (100, selfsup.SIZE, selfsup.SIZE, 1)
    np.testing.assert_array_equal(selfsup.training_images(cfg.data), subset)  # seeded: the same subset


def test_a_prepared_dataset_is_read_as_a_subset(tmp_path, monkeypatch):
    from dcgan.data import prepared
    from dcgan.tools.prepare import prepare

    prepare(write_folder(tmp_path / "images", n=30), tmp_path / "prepared", size=16, channels=3, quiet=True)
    cfg = load_config(None, ["data.name=prepared", f"data.path={tmp_path / 'prepared'}", "data.image_size=16",
                             "data.channels=3"])
    monkeypatch.setattr(prepared.PreparedImages, "to_array", lambda self: pytest.fail("the whole dataset was read"))
    monkeypatch.setattr(selfsup, "MAX_IMAGES", 20)
    assert selfsup.training_images(cfg.data).shape == (20, selfsup.SIZE, selfsup.SIZE, 3)


# ---------------------------------------------------------------- choosing it


def test_a_folder_run_is_scored_offline_by_its_selfsup_encoder(folder_run, cache, capsys):
    run, cfg = folder_run
    encoders = sorted((cache / "features").glob("selfsup-folder-*"))
    assert len(encoders) == 1  # trained once, for the evaluation and the sampler choice alike
    key = encoders[0].name
    records = read_metrics(run / "metrics.jsonl", "all")
    assert [r["step"] for r in records if "eval" in r] == [2]
    assert np.isfinite([r["eval"]["fid"] for r in records if "eval" in r]).all()
    assert [r["step"] for r in records if "sampler" in r] == [2]  # the choice was made: no Inception needed

    net = features.feature_net_for(cfg.data, network="selfsup", quiet=True)
    assert net.key == key and net.key.startswith("selfsup-folder-")
    capsys.readouterr()
    assert features.feature_net_for(cfg.data, quiet=False).key == key  # auto, offline: the same encoder, said once
    note = capsys.readouterr().err.strip()
    assert note.startswith("feature network: InceptionV3's weights are not in") and "\n" not in note
    assert "train.feature_network=inception" in note
    assert net(blob_images(5, size=16, channels=3)).shape == (5, selfsup.WIDTHS[-1])

    status, _, err = run_cli(capsys, "evaluate", run, "--n", 32, "--metrics", "fid,kid", "--features", "selfsup")
    assert status == 0, err
    saved = json.loads((run / "eval.json").read_text())
    assert {r["feature_network"] for r in saved} == {key} and all(np.isfinite(r["value"]) for r in saved)
    # without --features: the run's train.feature_network
    assert run_cli(capsys, "evaluate", run, "--n", 32, "--metrics", "fid").status == 0
    assert json.loads((run / "eval.json").read_text())[0]["feature_network"] == key
    assert len(list((cache / "features").glob("selfsup-folder-*"))) == 1


def test_a_classifier_for_a_folder_is_one_line(folder_run, capsys, tmp_path):
    run, _ = folder_run
    err = cli_error(capsys, "evaluate", run, "--features", "classifier")
    assert "--features: classifier: only mnist and fashion_mnist have a feature classifier" in err
    assert "invalid choice: 'nope'" in usage_error(capsys, "evaluate", run, "--features", "nope")
    text = one_line_config_error(load_config, None, ["data.name=folder", f"data.path={tmp_path}",
                                                     "train.feature_network=classifier"])
    assert text.startswith("train.feature_network: classifier: only mnist and fashion_mnist") and "data.name=folder" in text
    assert "choose auto, inception or selfsup" in text
    assert "train.feature_network: 'selfsupp' is not allowed" in one_line_config_error(
        load_config, None, ["train.feature_network=selfsupp"])
    assert load_config(None, ["train.feature_network=classifier"]).train.feature_network == "classifier"  # fashion_mnist


# ---------------------------------------------------------------- scripts/judge_agreement.py


def _judge_script():
    path = Path(__file__).resolve().parent.parent / "scripts" / "judge_agreement.py"
    spec = importlib.util.spec_from_file_location("judge_agreement", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def test_judge_agreement_rank_correlation():
    script = _judge_script()
    np.testing.assert_array_equal(script.rank([3.0, 1.0, 3.0, 2.0, 3.0]), [4, 1, 4, 2, 4])  # ties: the mean of 3, 4, 5
    np.testing.assert_array_equal(script.rank([0.5, 0.5]), [1.5, 1.5])
    assert script.spearman([1, 2, 3, 4], [10, 40, 90, 160]) == pytest.approx(1.0)  # monotone, not linear
    assert script.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # by hand: ranks a = 1 2 3 4, b = 2 1 4 3 -> centred (-1.5 -.5 .5 1.5) . (-.5 -1.5 1.5 .5) / 5 = 3 / 5
    assert script.spearman([1, 2, 3, 4], [20, 10, 40, 30]) == pytest.approx(0.6)
    assert np.isnan(script.spearman([1, 2, 3], [5, 5, 5])) and np.isnan(script.spearman([1], [2]))
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 5, 30).astype(float), rng.normal(size=30)  # many ties in a
    assert script.spearman(a, b) == pytest.approx(scipy_stats.spearmanr(a, b).statistic, rel=1e-12)
