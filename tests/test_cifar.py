"""CIFAR-10's python batches, in a folder or a tar.gz: pickles read without running code, sizes bounded."""

import io
import os
import pickle
import tarfile

import numpy as np
import pytest

from helpers import cifar_batch
from dcgan.data import cifar
from dcgan.data import pipeline as data
from dcgan.data import datafiles
from dcgan.core.config import load_config
from dcgan.data.datafiles import DataError


@pytest.fixture
def cifar_dir(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for i in range(1, 6):
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps(cifar_batch(4, i), protocol=2))
    (folder / "test_batch").write_bytes(pickle.dumps(cifar_batch(3, 9), protocol=2))
    return folder


def _tarball(folder, tmp_path):
    """folder as cifar-10-python.tar.gz, laid out as the real archive."""
    path = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    return path


def test_cifar_folder_and_tarball(tmp_path, cifar_dir):
    cfg = load_config(None, ["data.name=cifar10", f"data.path={cifar_dir}", "data.image_size=32", "data.channels=3"]).data
    images = data.load_images(cfg)
    assert images.shape == (20, 32, 32, 3)
    first = cifar_batch(4, 1)[b"data"][0].reshape(3, 32, 32).transpose(1, 2, 0)
    np.testing.assert_array_equal(images[0], first)  # channel-planar rows -> HWC
    tarball = _tarball(cifar_dir, tmp_path)
    from_tar = data.load_images(load_config(None, ["data.name=cifar10", f"data.path={tarball}", "data.image_size=32", "data.channels=3"]).data)
    np.testing.assert_array_equal(from_tar, images)
    test = data.load_images(cfg, split="test")
    assert test.shape == (3, 32, 32, 3)


def test_restricted_unpickler_refuses_code(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    folder = tmp_path / "evil"
    folder.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)]:
        (folder / name).write_bytes(pickle.dumps({b"data": Evil()}, protocol=2))
    with pytest.raises(DataError, match=r"refusing to unpickle global (posix|os|nt).system"):
        cifar.load_cifar10_path(folder, "train")
    assert not marker.exists()


def test_sizes_over_the_limit_are_refused_before_decompressing(tmp_path, monkeypatch, cifar_dir):
    monkeypatch.setattr(datafiles, "MAX_ARRAY_BYTES", 1000)
    tarball = _tarball(cifar_dir, tmp_path)
    with pytest.raises(DataError, match=r"'data_batch_1' declares \d+ bytes of data, over the 1000-byte limit"):
        cifar.load_cifar10_path(tarball, "train")


def test_cifar_batch_file_over_the_limit_is_refused_before_reading(tmp_path, monkeypatch, cifar_dir):
    monkeypatch.setattr(cifar, "MAX_CIFAR_BATCH_BYTES", 1000)
    with pytest.raises(DataError, match=r"data_batch_1 is \d+ bytes, over the 1000-byte limit for a CIFAR-10 batch"):
        cifar.load_cifar10_path(cifar_dir, "train")


def _tar_of(path, members):
    with tarfile.open(path, "w:gz") as tar:
        for info, blob in members:
            tar.addfile(info, io.BytesIO(blob) if blob is not None else None)
    return path


def _batch_member(name, n):
    blob = pickle.dumps(cifar_batch(n, 0), protocol=2)
    info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
    info.size = len(blob)
    return info, blob


def _link_member(name):
    info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
    info.type, info.linkname = tarfile.SYMTYPE, "/dev/zero"
    return info, None


@pytest.mark.parametrize("last", ["symlink", "huge"])
def test_cifar_tar_member_that_is_a_link_or_too_big_fails_before_any_member_is_read(tmp_path, monkeypatch, last):
    members = [_batch_member(f"data_batch_{i}", 1) for i in range(1, 5)]
    members.append(_link_member("data_batch_5") if last == "symlink" else _batch_member("data_batch_5", 4))
    tarball = _tar_of(tmp_path / "cifar-10-python.tar.gz", members)
    monkeypatch.setattr(datafiles, "MAX_ARRAY_BYTES", 8000)  # 1-image batches fit, the 4-image one does not
    reads = []
    extractfile = tarfile.TarFile.extractfile
    monkeypatch.setattr(tarfile.TarFile, "extractfile", lambda self, m: reads.append(m.name) or extractfile(self, m))
    message = (r"'cifar-10-batches-py/data_batch_5' is not a regular file in the archive" if last == "symlink"
               else r"'data_batch_5' declares \d+ bytes of data, over the 8000-byte limit")
    with pytest.raises(DataError, match=message):
        cifar.load_cifar10_path(tarball, "train")
    assert reads == []
