import os
import pickle
import tarfile

import numpy as np
import pytest

from conftest import blob_images, write_idx
from dcgan import data
from dcgan.config import load_config
from dcgan.data import DataError


def cifar_batch(n, seed):
    rng = np.random.default_rng(seed)
    return {b"batch_label": b"x", b"labels": rng.integers(0, 10, n).tolist(),
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"filenames": [b"f"] * n}


@pytest.fixture
def cifar_dir(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for i in range(1, 6):
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps(cifar_batch(4, i), protocol=2))
    (folder / "test_batch").write_bytes(pickle.dumps(cifar_batch(3, 9), protocol=2))
    return folder


def test_idx_round_trip(tmp_path):
    images = blob_images(5)[..., 0]
    write_idx(tmp_path / "x-idx3-ubyte.gz", images)
    np.testing.assert_array_equal(data.read_idx(tmp_path / "x-idx3-ubyte.gz"), images)


def test_mnist_idx_folder_and_npz(tmp_path, mnist_dir):
    cfg = load_config(None, ["data.name=mnist", f"data.path={mnist_dir}"]).data
    train, test = data.load_images(cfg), data.load_images(cfg, split="test")
    assert train.shape == (256, 28, 28, 1) and test.shape == (64, 28, 28, 1) and train.dtype == np.uint8
    npz = tmp_path / "mnist.npz"
    np.savez_compressed(npz, x_train=train[..., 0], y_train=np.zeros(256), x_test=test[..., 0], y_test=np.zeros(64))
    from_npz = data.load_images(load_config(None, ["data.name=mnist", f"data.path={npz}"]).data)
    np.testing.assert_array_equal(from_npz, train)


def test_cifar_folder_and_tarball(tmp_path, cifar_dir):
    cfg = load_config(None, ["data.name=cifar10", f"data.path={cifar_dir}", "data.image_size=32", "data.channels=3"]).data
    images = data.load_images(cfg)
    assert images.shape == (20, 32, 32, 3)
    first = cifar_batch(4, 1)[b"data"][0].reshape(3, 32, 32).transpose(1, 2, 0)
    np.testing.assert_array_equal(images[0], first)  # channel-planar rows -> HWC
    tarball = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(cifar_dir, arcname="cifar-10-batches-py")
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
        data.load_cifar10_path(folder, "train")
    assert not marker.exists()


def test_image_folder_resizes_crops_and_skips_junk(tmp_path):
    from PIL import Image

    root = tmp_path / "imgs"
    (root / "sub").mkdir(parents=True)
    Image.new("RGB", (40, 20), (255, 0, 0)).save(root / "a.png")
    Image.new("RGB", (30, 60), (0, 255, 0)).save(root / "sub" / "b.jpg")
    (root / "broken.png").write_bytes(b"not a png")
    (root / "notes.txt").write_text("hello")
    cfg = load_config(None, ["data.name=folder", f"data.path={root}", "data.image_size=16", "data.channels=3"]).data
    images = data.load_images(cfg)
    assert images.shape == (2, 16, 16, 3)
    assert images[0, 8, 8].tolist() == [255, 0, 0]
    assert abs(int(images[1, 8, 8, 1]) - 255) <= 2 and images[1, 8, 8, 0] <= 2  # JPEG rounding
    gray = data.load_images(load_config(None, ["data.name=folder", f"data.path={root}", "data.image_size=8", "data.channels=1"]).data)
    assert gray.shape == (2, 8, 8, 1)


def test_sizes_over_the_limit_are_refused_before_decompressing(tmp_path, monkeypatch, cifar_dir):
    monkeypatch.setattr(data, "MAX_ARRAY_BYTES", 1000)
    write_idx(tmp_path / "x-idx3-ubyte.gz", blob_images(8)[..., 0])
    with pytest.raises(DataError, match=r"x-idx3-ubyte.gz declares 6272 bytes of data, over the 1000-byte limit"):
        data.read_idx(tmp_path / "x-idx3-ubyte.gz")
    npz = tmp_path / "mnist.npz"
    np.savez_compressed(npz, x_train=np.zeros((10, 28, 28), np.uint8), y_train=np.zeros(10, np.int64))
    with pytest.raises(DataError, match=r"mnist.npz: 'x_train' declares \d+ bytes of data, over the 1000-byte limit"):
        data.load_mnist_npz(npz, "train")
    tarball = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(cifar_dir, arcname="cifar-10-batches-py")
    with pytest.raises(DataError, match=r"'data_batch_1' declares \d+ bytes of data, over the 1000-byte limit"):
        data.load_cifar10_path(tarball, "train")


def test_image_size_is_read_from_the_header(tmp_path):
    from PIL import Image

    image = Image.new("RGB", (37, 21), (1, 2, 3))
    for name, options in {"a.png": {}, "b.jpg": {}, "c.jpg": {"progressive": True}}.items():
        image.save(tmp_path / name, **options)
        assert data.image_size_of((tmp_path / name).read_bytes()) == (21, 37), name
    with pytest.raises(ValueError, match="not a PNG or JPEG"):
        data.image_size_of(b"GIF89a" + bytes(20))


def test_image_bomb_is_skipped_without_decoding(tmp_path, capsys):
    from PIL import Image

    root = tmp_path / "imgs"
    root.mkdir()
    Image.new("L", (16, 16), 200).save(root / "ok.png")
    bomb = bytearray((root / "ok.png").read_bytes())
    bomb[16:24] = (60000).to_bytes(4, "big") * 2  # IHDR now claims 60000 x 60000 (3.6 gigapixels)
    (root / "bomb.png").write_bytes(bytes(bomb))
    images = data.load_folder(root, 16, 1)
    assert images.shape == (1, 16, 16, 1) and int(images[0, 8, 8, 0]) == 200
    assert f"1 image(s) over {data.MAX_IMAGE_PIXELS} pixels" in capsys.readouterr().out


def test_empty_folder_is_refused(tmp_path):
    (tmp_path / "x.txt").write_text("no images")
    with pytest.raises(DataError, match="no readable PNG/JPEG images"):
        data.load_folder(tmp_path, 16, 3)


def test_missing_path_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        data.load_images(load_config(None, ["data.name=mnist", f"data.path={tmp_path / 'nope'}"]).data)
    with pytest.raises(DataError, match="missing train-images-idx3-ubyte"):
        data.load_idx_folder(tmp_path, "train")


@pytest.mark.skipif(not data.FASHION_MNIST_SYSTEM_DIR.is_dir(), reason="needs Debian's dataset-fashion-mnist (scripts/setup.sh installs it)")
def test_real_fashion_mnist_files():
    cfg = load_config().data
    train = data.load_images(cfg)
    test = data.load_images(cfg, split="test")
    assert train.shape == (60000, 28, 28, 1) and test.shape == (10000, 28, 28, 1)
    assert train.dtype == np.uint8 and train.max() == 255 and train.min() == 0
    assert 60 < train.mean() < 80  # Fashion-MNIST's mean pixel is ~72.9


def test_conform_resizes_and_converts_channels():
    images = blob_images(3, size=28)
    out = data.conform(images, 32, 3)
    assert out.shape == (3, 32, 32, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[..., 0], out[..., 2])


def _batches(images, batch, seed, start=0, group=1, n=5):
    ds = data.make_dataset(images, batch, seed, start_batch=start, group=group)
    return [b.numpy() for b, _ in zip(ds, range(n))]


def test_pipeline_shapes_range_and_epoch_order():
    images = blob_images(40)
    batches = _batches(images, 8, seed=3, group=2, n=3)
    assert batches[0].shape == (8, 2, 28, 28, 1) and batches[0].dtype == np.uint8
    # one epoch (5 batches of 8, two per step) covers each image once before repeating
    flat = np.concatenate([b.transpose(1, 0, 2, 3, 4).reshape(-1, 28, 28, 1) for b in batches])[:40]
    assert sorted(a.tobytes() for a in flat) == sorted(a.tobytes() for a in images)


def test_pipeline_is_deterministic_and_resumable():
    images = blob_images(50)
    full = _batches(images, 8, seed=1, n=9)
    np.testing.assert_array_equal(full[3], _batches(images, 8, seed=1, n=9)[3])
    resumed = _batches(images, 8, seed=1, start=4, n=5)  # crosses the epoch boundary at batch 6
    for a, b in zip(full[4:], resumed):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(full[0], _batches(images, 8, seed=2, n=1)[0])


def test_batch_larger_than_dataset_is_an_error():
    with pytest.raises(DataError, match="data.batch_size: 64 is larger than the dataset"):
        data.make_dataset(blob_images(10), 64, 0)
