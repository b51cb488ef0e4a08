"""Evaluation's real side streamed from a prepared dataset: the in-memory numbers, without loading it."""

import numpy as np
import pytest

import keras

from helpers import blob_images, write_idx
from dcgan.data import datafiles
from dcgan.tools import prepare
from dcgan.data import prepared
from dcgan.evaluation import realstats
from dcgan.core.config import load_config
from dcgan.evaluation.evaluator import Evaluator
from dcgan.evaluation.metrics import RunningMoments, feature_stats, power_spectrum


def test_running_moments_equal_the_moments_of_the_concatenation():
    rng = np.random.default_rng(0)
    batches = [rng.normal(3.0, 2.0, (n, 5)) * np.arange(1, 6) for n in (7, 1, 30, 2)]
    moments = RunningMoments()
    for b in batches:
        moments.add(b)
    moments.add(np.zeros((0, 5)))  # an empty batch changes nothing
    mu, sigma = moments.stats()
    want_mu, want_sigma = feature_stats(np.concatenate(batches))
    np.testing.assert_allclose(mu, want_mu, rtol=1e-12)
    np.testing.assert_allclose(sigma, want_sigma, rtol=1e-10)
    with pytest.raises(Exception, match="at least 2 feature vectors, got 1"):
        one = RunningMoments()
        one.add(batches[1])
        one.stats()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A prepared dataset of 300 labelled 16x16 images in several shards, its images and labels, a feature model."""
    root = tmp_path_factory.mktemp("realstats")
    images = blob_images(300, 16, 1, seed=3)[..., 0]
    labels = np.arange(300) % 3
    (root / "idx").mkdir()
    write_idx(root / "idx" / "train-images-idx3-ubyte", images)
    write_idx(root / "idx" / "train-labels-idx1-ubyte", labels)
    prepare.prepare(root / "idx", root / "out", 16, 1, shard_mb=20_000 / 2**20, quiet=True)
    inputs = keras.Input((16, 16, 1))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs / 255.0)
    keras.Model(inputs, keras.layers.GlobalAveragePooling2D(name="pool")(x)).save(root / "features.keras")
    return root, images[..., None], labels


def _cfg(root):
    return load_config(None, ["data.name=prepared", f"data.path={root / 'out'}", "data.image_size=16", "data.channels=1"]).data


def test_prepared_real_side_is_the_in_memory_one_streamed_and_cached(dataset, tmp_path, monkeypatch):
    root, images, labels = dataset
    monkeypatch.setenv("DCGAN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(realstats, "SAMPLE", 100)  # every 3rd image's features are kept
    assert len(prepared.load(_cfg(root)).manifest.shards) >= 3
    # the dataset's pixels (76,800 bytes) do not fit the in-memory limit: only a stream can evaluate against them
    monkeypatch.setattr(datafiles, "MAX_ARRAY_BYTES", 10_000)
    model = str(root / "features.keras")
    streamed = Evaluator(_cfg(root), ("fid", "kid", "checkerboard"), feature_model=model, quiet=True)
    in_memory = Evaluator(_cfg(root), ("fid", "kid", "checkerboard"), feature_model=model, real_images=images)
    assert streamed.real_count == 300 and streamed.split == "all"
    np.testing.assert_allclose(streamed.real["mu"], in_memory.real["mu"], rtol=1e-5)
    np.testing.assert_allclose(streamed.real["sigma"], in_memory.real["sigma"], rtol=1e-4, atol=1e-9)
    np.testing.assert_allclose(streamed.real["features"], in_memory.real["features"][::3], rtol=1e-5)
    np.testing.assert_allclose(streamed.real_spectrum, power_spectrum(images), rtol=1e-10)
    fake = blob_images(40, 16, 1, seed=9)
    a, b = streamed.score(fake), in_memory.score(fake)
    assert a["fid"] == pytest.approx(b["fid"], rel=1e-3) and a["checkerboard"] == pytest.approx(b["checkerboard"])
    # a second evaluator reads the cache: not one record
    monkeypatch.setattr(prepared.PreparedImages, "stored_batches", lambda self: pytest.fail("the shards were read again"))
    again = Evaluator(_cfg(root), ("fid", "checkerboard"), feature_model=model)
    np.testing.assert_array_equal(again.real["sigma"], streamed.real["sigma"])
    np.testing.assert_array_equal(again.real_spectrum, streamed.real_spectrum)
    # checkerboard alone needs no feature network: a pass of its own, cached apart
    monkeypatch.undo()
    monkeypatch.setenv("DCGAN_CACHE", str(tmp_path / "cache"))
    pixels = Evaluator(_cfg(root), ("checkerboard",))
    assert pixels.net is None and pixels.real is None
    np.testing.assert_allclose(pixels.real_spectrum, power_spectrum(images), rtol=1e-10)
    assert (tmp_path / "cache" / "stats" / realstats.NO_NETWORK).is_dir()


def test_intra_fid_against_a_labelled_prepared_dataset(dataset, tmp_path, monkeypatch):
    root, images, labels = dataset
    monkeypatch.setenv("DCGAN_CACHE", str(tmp_path / "cache"))
    ev = Evaluator(_cfg(root), ("fid", "intra_fid"), feature_model=str(root / "features.keras"))
    assert ev.classes == ["0", "1", "2"]
    np.testing.assert_array_equal(ev.real_labels, labels)  # 300 images, under SAMPLE: every one is in the sample
    fake = images[::-1][:60]
    scores = ev.score(fake, labels=labels[::-1][:60])
    assert set(scores.fields["intra_fid"]["per_class"]) == {"0", "1", "2"} and scores["intra_fid"] > 0
