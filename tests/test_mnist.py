"""MNIST's files: IDX (gzipped or not) and keras' mnist.npz, bounded by their headers."""

import numpy as np
import pytest

from helpers import blob_images, write_idx
from dcgan.data import pipeline as data
from dcgan.data import datafiles
from dcgan.data import mnist
from dcgan.core.config import load_config
from dcgan.data.datafiles import DataError


def test_idx_round_trip(tmp_path):
    images = blob_images(5)[..., 0]
    write_idx(tmp_path / "x-idx3-ubyte.gz", images)
    np.testing.assert_array_equal(mnist.read_idx(tmp_path / "x-idx3-ubyte.gz"), images)


def test_mnist_idx_folder_and_npz(tmp_path, mnist_dir):
    cfg = load_config(None, ["data.name=mnist", f"data.path={mnist_dir}"]).data
    train, test = data.load_images(cfg), data.load_images(cfg, split="test")
    assert train.shape == (256, 28, 28, 1) and test.shape == (64, 28, 28, 1) and train.dtype == np.uint8
    npz = tmp_path / "mnist.npz"
    np.savez_compressed(npz, x_train=train[..., 0], y_train=np.zeros(256), x_test=test[..., 0], y_test=np.zeros(64))
    from_npz = data.load_images(load_config(None, ["data.name=mnist", f"data.path={npz}"]).data)
    np.testing.assert_array_equal(from_npz, train)


def test_sizes_over_the_limit_are_refused_before_decompressing(tmp_path, monkeypatch):
    monkeypatch.setattr(datafiles, "MAX_ARRAY_BYTES", 1000)
    write_idx(tmp_path / "x-idx3-ubyte.gz", blob_images(8)[..., 0])
    with pytest.raises(DataError, match=r"x-idx3-ubyte.gz declares 6272 bytes of data, over the 1000-byte limit"):
        mnist.read_idx(tmp_path / "x-idx3-ubyte.gz")
    npz = tmp_path / "mnist.npz"
    np.savez_compressed(npz, x_train=np.zeros((10, 28, 28), np.uint8), y_train=np.zeros(10, np.int64))
    with pytest.raises(DataError, match=r"mnist.npz: 'x_train' declares \d+ bytes of data, over the 1000-byte limit"):
        mnist.load_mnist_npz(npz, "train")


def test_missing_path_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        data.load_images(load_config(None, ["data.name=mnist", f"data.path={tmp_path / 'nope'}"]).data)
    with pytest.raises(DataError, match="missing train-images-idx3-ubyte"):
        mnist.load_idx_folder(tmp_path, "train")


@pytest.mark.skipif(not mnist.FASHION_MNIST_SYSTEM_DIR.is_dir(), reason="needs Debian's dataset-fashion-mnist (scripts/setup.sh installs it)")
def test_real_fashion_mnist_files():
    cfg = load_config().data
    train = data.load_images(cfg)
    test = data.load_images(cfg, split="test")
    assert train.shape == (60000, 28, 28, 1) and test.shape == (10000, 28, 28, 1)
    assert train.dtype == np.uint8 and train.max() == 255 and train.min() == 0
    assert 60 < train.mean() < 80  # Fashion-MNIST's mean pixel is ~72.9
