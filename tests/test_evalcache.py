"""Evaluation's caches under hostile or damaged input: names never come from data, stale or damaged entries are
rebuilt (one line), NaN is never a score; and the real side is computed in bounded batches."""

import json
import shutil
import tracemalloc

import keras
import numpy as np
import pytest
from helpers import (
    blob_images,
    cli_error,
    deadline,
    fifo,
    mnist_sets,
    write_idx,
    write_mnist,
)

from dcgan.core.config import load_config
from dcgan.core.errors import DcganError
from dcgan.data import pipeline as datalib
from dcgan.evaluation import cachefiles, featurenet, features
from dcgan.evaluation.evaluator import Evaluator
from dcgan.evaluation.metrics import feature_stats, power_spectrum
from dcgan.tools import prepare


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DCGAN_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _feature_model(path, seed=0):
    inputs = keras.Input((16, 16, 1))
    x = keras.layers.Conv2D(4, 3, name="conv", kernel_initializer=keras.initializers.GlorotUniform(seed))(inputs / 255.0)
    keras.Model(inputs, keras.layers.GlobalAveragePooling2D(name="pool")(x)).save(path)
    return path


def _prepared(root, seed):
    images = blob_images(60, 16, 1, seed=seed)
    (root / "idx").mkdir(parents=True)
    write_idx(root / "idx" / "train-images-idx3-ubyte", images[..., 0])
    write_idx(root / "idx" / "train-labels-idx1-ubyte", np.arange(60) % 2)
    prepare.prepare(root / "idx", root / "out", 16, 1, quiet=True)
    return root / "out", images


def _prepared_cfg(path):
    return load_config(None, ["data.name=prepared", f"data.path={path}", "data.image_size=16", "data.channels=1"]).data


def _set_manifest(path, **fields):
    manifest = json.loads((path / "manifest.json").read_text())
    (path / "manifest.json").write_text(json.dumps({**manifest, **fields}))


@pytest.fixture(scope="module")
def two_datasets(tmp_path_factory):
    root = tmp_path_factory.mktemp("prepared")
    a, images_a = _prepared(root / "a", seed=1)
    b, images_b = _prepared(root / "b", seed=2)
    return a, images_a, b, images_b, _feature_model(root / "features.keras")


# ---------------------------------------------------------------- cache names are never taken from data


def test_a_manifest_hash_that_is_not_a_hex_digest_never_becomes_a_path(two_datasets, tmp_path, cache):
    a, _, _, _, model = two_datasets
    crafted = tmp_path / "crafted"
    shutil.copytree(a, crafted)
    _set_manifest(crafted, content_sha256="x/../../../PWNED")
    before = set(tmp_path.rglob("*"))
    with pytest.raises(DcganError) as e:
        Evaluator(_prepared_cfg(crafted), ("fid", "checkerboard"), feature_model=str(model), quiet=True)
    assert str(e.value).startswith(f"{crafted / 'manifest.json'}: content_sha256 'x/../../../PWNED' is not a sha256")
    assert "\n" not in str(e.value)
    assert not [p for p in set(tmp_path.rglob("*")) - before if "PWNED" in p.name]  # nothing written, in or out


def test_a_dataset_claiming_another_ones_hash_cannot_poison_its_statistics(two_datasets, tmp_path, cache):
    a, images_a, b, _, model = two_datasets
    impostor = tmp_path / "impostor"
    shutil.copytree(b, impostor)
    _set_manifest(impostor, content_sha256=json.loads((a / "manifest.json").read_text())["content_sha256"])
    with pytest.raises(DcganError, match="do not match the manifest's content_sha256"):
        Evaluator(_prepared_cfg(impostor), ("fid", "checkerboard"), feature_model=str(model), quiet=True)
    assert not list((cache / "stats").rglob("*.npz"))  # nothing stored under the claimed name
    real = Evaluator(_prepared_cfg(a), ("fid", "checkerboard"), feature_model=str(model), quiet=True)
    np.testing.assert_allclose(real.real_spectrum, power_spectrum(images_a), rtol=1e-12)


def test_statistics_are_keyed_by_the_networks_weights_not_its_name(tmp_path):
    """Two classifier files under one name (`features train` retrains in place): two statistics files."""
    first, second = _feature_model(tmp_path / "one.keras", seed=1), _feature_model(tmp_path / "two.keras", seed=2)
    nets = [featurenet.sub_model(featurenet.load_keras(p, "classifier"), "pool", p, key="classifier-mnist-0123")
            for p in (first, second)]
    assert cachefiles.stats_file(nets[0], "mnist-test-x") != cachefiles.stats_file(nets[1], "mnist-test-x")
    copy = shutil.copy(first, tmp_path / "copy.keras")  # the same content under another name: the same key
    same = featurenet.sub_model(featurenet.load_keras(copy, "classifier"), "pool", copy, key="classifier-mnist-0123")
    assert cachefiles.stats_file(same, "mnist-test-x") == cachefiles.stats_file(nets[0], "mnist-test-x")
    images = blob_images(30, 16, seed=4)
    stats = [features.real_statistics(net, images, "mnist", "test", quiet=True) for net in nets]
    assert not np.allclose(stats[0]["mu"], stats[1]["mu"])  # the second network's own, not the first's from the cache


def test_a_retrained_classifier_does_not_reuse_the_old_ones_statistics(tmp_path):
    data = write_mnist(tmp_path / "mnist", n_train=128, n_test=32, invert_class_1=True)
    images = blob_images(20, seed=3)
    features.train_classifier("mnist", str(data), epochs=1, quiet=True)
    old = features.classifier_net("mnist", str(data), quiet=True)
    old_stats = features.real_statistics(old, images, "mnist", "test", quiet=True)
    features.train_classifier("mnist", str(data), epochs=2, quiet=True)  # `dcgan features train --epochs 2`: in place
    new = features.classifier_net("mnist", str(data), quiet=True)
    assert new.key == old.key  # the name eval.json reports is the same...
    new_stats = features.real_statistics(new, images, "mnist", "test", quiet=True)
    np.testing.assert_allclose(new_stats["features"], new(images), rtol=1e-6)  # ...its statistics are its own
    assert not np.allclose(new_stats["features"], old_stats["features"])


# ---------------------------------------------------------------- damaged entries are rebuilt, said in one line


def _user_net(tmp_path):
    return featurenet.user_net(_feature_model(tmp_path / "net.keras"), "pool")


def _damage_npz(path, how):
    if how == "truncated":
        path.write_bytes(path.read_bytes()[:100])
    else:
        with np.load(path) as f:
            arrays = dict(f)
        if how == "nan":
            arrays["mu"][0] = np.nan
        elif how == "no features":
            del arrays["features"]
        np.savez(path, **arrays)


@pytest.mark.parametrize("how", ["nan", "truncated", "no features"])
def test_damaged_in_memory_statistics_are_rebuilt(tmp_path, cache, capsys, how):
    net, images = _user_net(tmp_path), blob_images(30, 16, seed=4)
    stats = features.real_statistics(net, images, "mnist", "test")
    [path] = (cache / "stats").rglob("*.npz")
    _damage_npz(path, how)
    capsys.readouterr()
    again = features.real_statistics(net, images, "mnist", "test")
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"real statistics: {path} is damaged (") and "computing them again" in err[0]
    for k in stats:
        np.testing.assert_array_equal(again[k], stats[k])
    assert features.real_statistics(net, images, "mnist", "test", quiet=True)["mu"][0] == stats["mu"][0]  # stored again


@pytest.mark.parametrize("how", ["nan", "truncated", "no features"])
def test_damaged_prepared_statistics_are_rebuilt(two_datasets, cache, capsys, how):
    a, _, _, _, model = two_datasets
    first = Evaluator(_prepared_cfg(a), ("fid", "checkerboard"), feature_model=str(model), quiet=True)
    [path] = (cache / "stats").rglob("*.npz")
    _damage_npz(path, how)
    capsys.readouterr()
    again = Evaluator(_prepared_cfg(a), ("fid", "checkerboard"), feature_model=str(model))
    err = [line for line in capsys.readouterr().err.splitlines() if "damaged" in line]
    assert len(err) == 1 and err[0].startswith(f"real statistics: {path} is damaged (")
    np.testing.assert_array_equal(again.real["mu"], first.real["mu"])
    assert np.isfinite(again.score(blob_images(20, 16, seed=7))["fid"])


def test_damaged_classifier_entries_are_trained_again(tmp_path, capsys):
    data = write_mnist(tmp_path / "mnist", n_train=128, n_test=32, invert_class_1=True)
    model_file, info = features.train_classifier("mnist", str(data), epochs=1, quiet=True)
    info_file = model_file.parent / "info.json"
    good = info_file.read_text()
    damages = {"garbage": "{not json", "a list": "[1, 2]", "no hash": json.dumps({"epochs": 1, "test_accuracy": 0.5}),
               "another hash": good.replace(info["hash"], "0" * 16)}
    for what, text in damages.items():
        info_file.write_text(text)
        capsys.readouterr()
        _, rebuilt = features.train_classifier("mnist", str(data))
        err = capsys.readouterr().err.splitlines()
        assert err[0].startswith(f"features: the cached classifier in {model_file.parent} is damaged ("), (what, err)
        assert err[0].endswith("training it again") and "Traceback" not in "\n".join(err)
        assert rebuilt["cached"] is False and rebuilt["hash"] == info["hash"]
        assert json.loads(info_file.read_text())["hash"] == info["hash"]
    model_file.write_bytes(model_file.read_bytes()[:200])  # a truncated model beside a good info.json
    capsys.readouterr()
    _, rebuilt = features.train_classifier("mnist", str(data))
    assert "is not a .keras (zip) file); training it again" in capsys.readouterr().err
    assert features.classifier_net("mnist", str(data), quiet=True)(blob_images(2)).shape == (2, 128)


# ---------------------------------------------------------------- NaN is never a score


def test_a_nan_score_is_an_error_not_a_number(two_datasets, tmp_path):
    _, images, _, _, model = two_datasets
    ev = Evaluator(_prepared_cfg(two_datasets[0]), ("fid", "kid"), feature_model=str(model), quiet=True)
    ev.real["mu"] = np.full_like(ev.real["mu"], np.nan)  # what a NaN statistics cache gave before
    with pytest.raises(DcganError, match=r"^fid: the score came out nan, not a number"):
        ev.score(images)
    inputs = keras.Input((16, 16, 1))
    keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(inputs * np.float32(np.nan))).save(tmp_path / "nan.keras")
    with pytest.raises(DcganError, match=r"feature network user-nan-output-\w+ gives NaN or infinite features"):
        featurenet.user_net(tmp_path / "nan.keras")(images)


# ---------------------------------------------------------------- --feature-model that is not a file


def test_a_feature_model_that_is_not_a_regular_file_says_so(tmp_path, capsys):
    for special in ("/dev/zero", fifo(tmp_path / "pipe.keras")):
        with deadline(10):
            line = cli_error(capsys, "evaluate", tmp_path / "run", "--feature-model", special)
        assert f"--feature-model: {special} is not a regular file" in line and "does not exist" not in line
    link = tmp_path / "zero.keras"
    link.symlink_to("/dev/zero")
    with pytest.raises(DcganError, match="zero.keras -> /dev/zero is not a regular file \\(a character device\\)"):
        featurenet.check_keras_file(link)


# ---------------------------------------------------------------- the real side in bounded batches


def _whole_array_spectrum(images):
    """power_spectrum as it was: every image's FFT at once."""
    gray = images[..., 0].astype(np.float64)
    gray = gray - gray.mean(axis=(1, 2), keepdims=True)
    return (np.abs(np.fft.fftshift(np.fft.fft2(gray), axes=(1, 2))) ** 2).mean(axis=0)


def test_the_power_spectrum_is_taken_in_bounded_batches_with_the_same_result():
    images = blob_images(4000, 64, seed=2)
    whole_fft_bytes = images[..., 0].size * 16  # complex128
    tracemalloc.start()
    try:
        spectrum = power_spectrum(images)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < whole_fft_bytes / 4, (peak, whole_fft_bytes)
    np.testing.assert_array_equal(spectrum, _whole_array_spectrum(images))  # bit for bit, any batch size
    np.testing.assert_array_equal(power_spectrum(images, batch=7), spectrum)


def test_the_evaluator_keeps_no_loaded_split_and_gives_the_same_real_side(tmp_path):
    data = write_mnist(tmp_path / "mnist", n_train=64, n_test=96)
    cfg = load_config(None, mnist_sets(data)).data
    model = tmp_path / "net28.keras"
    inputs = keras.Input((28, 28, 1))
    keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(3, 3)(inputs / 255.0))).save(model)
    ev = Evaluator(cfg, ("fid", "checkerboard"), feature_model=str(model), quiet=True)
    assert ev.real_images is None  # the split was let go once its statistics were made
    images = datalib.load_images(cfg, split="test")
    assert ev.real_count == len(images) == 96
    np.testing.assert_array_equal(ev.real_spectrum, _whole_array_spectrum(images))
    mu, sigma = feature_stats(ev.net(images))
    np.testing.assert_array_equal(ev.real["mu"], mu)
    np.testing.assert_array_equal(ev.real["sigma"], sigma)
