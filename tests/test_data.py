"""A DataConfig to uint8 arrays (every format, hostile files too) and the tf.data pipeline."""

import pickle
import re

import numpy as np
import pytest

from helpers import cifar_batch, deadline, fifo
from helpers import blob_images, cli_error, write_idx
from dcgan.data import pipeline as data
from dcgan.data import conform as conform_module
from dcgan.data import datafiles
from dcgan.core.config import ConfigError, load_config
from dcgan.data.datafiles import DataError


def test_conform_resizes_and_converts_channels():
    images = blob_images(3, size=28)
    out = data.conform(images, 32, 3)
    assert out.shape == (3, 32, 32, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[..., 0], out[..., 2])


def test_conform_in_batches_equals_conform_in_one(monkeypatch):
    import tensorflow as tf

    images = blob_images(7, size=28, channels=3, seed=4)
    whole = {(size, ch): data.conform(images, size, ch) for size, ch in [(16, 3), (16, 1), (40, 1)]}
    sizes = []
    resize = tf.image.resize
    monkeypatch.setattr(tf.image, "resize", lambda x, *a, **k: sizes.append(len(x)) or resize(x, *a, **k))
    monkeypatch.setattr(conform_module, "CONFORM_BATCH_BYTES", 2 * 4 * (28 * 28 * 3 + 40 * 40))  # two images a batch
    for (size, ch), expected in whole.items():
        np.testing.assert_array_equal(data.conform(images, size, ch), expected)
    assert sizes and max(sizes) <= 3 and sum(sizes) == 3 * 7


def test_conform_refuses_a_result_over_the_array_limit(monkeypatch):
    monkeypatch.setattr(datafiles, "MAX_ARRAY_BYTES", 10_000)
    with pytest.raises(DataError, match=r"data.image_size: 10 images of 64x64x1 would take 40960 bytes, over the 10000-byte limit"):
        data.conform(blob_images(10), 64, 1)


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


def test_labels_travel_with_their_images_in_the_same_order_and_resume_with_them():
    images = blob_images(50)
    labels = np.arange(50) % 7
    by_image = {image.tobytes(): label for image, label in zip(images, labels)}
    ds = data.make_dataset(images, 8, seed=1, group=2, labels=labels)
    elements = [(x.numpy(), y.numpy()) for (x, y), _ in zip(ds, range(8))]  # crosses the epoch boundary
    plain = _batches(images, 8, seed=1, group=2, n=8)
    for (x, y), unlabelled in zip(elements, plain):
        assert y.shape == (8, 2) and y.dtype == np.int32
        np.testing.assert_array_equal(x, unlabelled)  # the images' order is the unlabelled pipeline's
        assert all(by_image[x[i, j].tobytes()] == y[i, j] for i in range(8) for j in range(2))
    resumed = data.make_dataset(images, 8, seed=1, start_batch=6, group=2, labels=labels)
    for ((x, y), _), (xe, ye) in zip(zip(resumed, range(5)), elements[3:]):
        np.testing.assert_array_equal(x.numpy(), xe)
        np.testing.assert_array_equal(y.numpy(), ye)
    with pytest.raises(DataError, match="50 images but 49 labels"):
        data.make_dataset(images, 8, 0, labels=labels[:49])


def test_labelled_datasets_bring_their_class_names(tmp_path):
    _, folder = _mnist_folder_of(tmp_path, blob_images(20)[..., 0], labels=np.arange(20, dtype=np.uint8) % 10)
    cfg = load_config(None, ["data.name=fashion_mnist", f"data.path={folder}", "data.limit=15"])
    labelled = data.load_labelled_images(cfg.data)
    assert labelled.classes[7] == "Sneaker" and len(labelled.classes) == 10
    assert labelled.images.shape == (15, 28, 28, 1) and labelled.labels.tolist() == [k % 10 for k in range(15)]
    (tmp_path / "bad").mkdir()
    _, bad = _mnist_folder_of(tmp_path / "bad", blob_images(4)[..., 0], labels=np.array([0, 1, 12, 3], np.uint8))
    with pytest.raises(DataError, match=r"labels must lie in 0..9, found 0..12"):
        data.load_labelled_images(load_config(None, ["data.name=mnist", f"data.path={bad}"]).data)


def test_batch_larger_than_dataset_is_an_error():
    with pytest.raises(DataError, match="data.batch_size: 64 is larger than the dataset"):
        data.make_dataset(blob_images(10), 64, 0)


# ---------------------------------------------------------------- hostile datasets (one line each, bounded work)


def _mnist_folder_of(tmp, images, labels=None):
    folder = tmp / "mnist"
    folder.mkdir()
    write_idx(folder / "train-images-idx3-ubyte.gz", images)
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.zeros(len(images), np.uint8) if labels is None else labels)
    return "mnist", folder


def _npz_of(tmp, x_train, name="mnist.npz"):
    path = tmp / name
    np.savez(path, x_train=x_train, y_train=np.zeros(len(x_train), np.int64))
    return "mnist", path


def _cifar_folder_of(tmp, first: bytes):
    folder = tmp / "cifar-10-batches-py"
    folder.mkdir()
    for i in range(1, 6):
        (folder / f"data_batch_{i}").write_bytes(first if i == 1 else pickle.dumps(cifar_batch(1, i), protocol=2))
    return "cifar10", folder


def _bytes_file(tmp, name, payload: bytes, dataset):
    (tmp / name).write_bytes(payload)
    return dataset, tmp / name


_NAN = np.full((2, 4, 4), np.nan, np.float32)
HOSTILE = {
    "idx of 0x0 images": (lambda t: _mnist_folder_of(t, np.zeros((4, 0, 0), np.uint8)), r"train images: images of 0x0 pixels are empty"),
    "idx of no images": (lambda t: _mnist_folder_of(t, np.zeros((0, 28, 28), np.uint8)), r"train images: holds no images"),
    "npz of 0x0 images": (lambda t: _npz_of(t, np.zeros((4, 0, 0), np.uint8)), r"'x_train': images of 0x0 pixels are empty"),
    "npz of strings": (lambda t: _npz_of(t, np.full((2, 4, 4), "abc")), r"'x_train': pixels must be integers in 0..255 or finite floats in \[0, 255\], got dtype <U3"),
    "npz of records": (lambda t: _npz_of(t, np.zeros((2, 4, 4), [("a", "u1"), ("b", "f4")])), r"'x_train': pixels must be integers .*got dtype \["),
    "npz of NaN": (lambda t: _npz_of(t, _NAN), r"'x_train': pixels must be finite, found NaN or infinity \(float32\)"),
    "npz of complex": (lambda t: _npz_of(t, np.ones((2, 4, 4), np.complex64)), r"got dtype complex64"),
    "npz of datetimes": (lambda t: _npz_of(t, np.zeros((2, 4, 4), "datetime64[s]")), r"got dtype datetime64\[s\]"),
    "npz of 300s": (lambda t: _npz_of(t, np.full((2, 4, 4), 300, np.int16)), r"pixels must be in 0..255, found values from 300 to 300 \(int16\)"),
    "npz that is not a zip": (lambda t: _bytes_file(t, "mnist.npz", b"\x93NUMPY" + bytes(100), "mnist"), r"corrupt or truncated file .*mnist.npz: not a zip/npz file$"),
    "cifar data of strings": (lambda t: _cifar_folder_of(t, pickle.dumps({b"data": np.full((2, 3072), "x"), b"labels": [0, 0]}, protocol=2)),
                              r"data_batch_1: 'data': pixels must be integers .*got dtype <U1"),
    "cifar batch with no images": (lambda t: _cifar_folder_of(t, pickle.dumps({b"batch_label": b"", b"data": np.zeros((0, 3072), np.uint8), b"labels": []}, protocol=2)),
                                   r"data_batch_1: empty CIFAR-10 batch \('data' holds 0 images\)"),
    "cifar batch of 0 bytes": (lambda t: _cifar_folder_of(t, b""), r"data_batch_1 is empty \(not a CIFAR-10 batch\)"),
    "cifar tar.gz that is not a tar": (lambda t: _bytes_file(t, "cifar-10-python.tar.gz", b"garbage" * 100, "cifar10"),
                                       r"corrupt or truncated archive .*cifar-10-python.tar.gz: not a tar or tar.gz/bz2/xz file$"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_dataset_is_one_line_data_error_for_training_and_features(tmp_path, case):
    make, message = HOSTILE[case]
    name, path = make(tmp_path)
    rgb = ["data.channels=3", "data.image_size=32"] if name == "cifar10" else []
    cfg = load_config(None, [f"data.name={name}", f"data.path={path}", *rgb]).data
    for load in (lambda: data.load_images(cfg), lambda: data.load_labelled(name, path, "train")):
        with pytest.raises(DataError) as error:
            load()
        assert re.search(message, str(error.value)), str(error.value)
        assert "\n" not in str(error.value)


def test_file_name_with_a_newline_stays_one_line(tmp_path):
    _, path = _bytes_file(tmp_path, "bad\nname.npz", b"garbage" * 10, "mnist")
    with pytest.raises(DataError, match=r"bad\\nname.npz: not a zip/npz file") as error:
        data.load_labelled("mnist", str(path), "train")
    assert "\n" not in str(error.value)


def test_hostile_npz_through_the_cli_is_one_line_and_creates_no_run(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DCGAN_CACHE", str(tmp_path / "cache"))
    _, path = _npz_of(tmp_path, _NAN)
    line = cli_error(capsys, "train", "--set", "data.name=mnist", "--set", f"data.path={path}", "--set", f"run.dir={tmp_path / 'runs'}")
    assert "pixels must be finite" in line
    assert not (tmp_path / "runs").exists()
    line = cli_error(capsys, "features", "train", "--data", "mnist", "--path", path)
    assert "pixels must be finite" in line


SPECIAL_FILES = {
    "idx FIFO": (lambda t: ("mnist", fifo((t / "mnist").mkdir() or t / "mnist" / "train-images-idx3-ubyte.gz").parent),
                 r"train-images-idx3-ubyte.gz is not a regular file \(a FIFO\)"),
    "npz FIFO": (lambda t: ("mnist", fifo(t / "mnist.npz")), r"mnist.npz is not a regular file \(a FIFO\)"),
    "cifar batch FIFO": (lambda t: ("cifar10", _fifo_batch(t)), r"data_batch_1 is not a regular file \(a FIFO\)"),
    "cifar batch linked to a device": (lambda t: ("cifar10", _device_batch(t)), r"data_batch_1 -> /dev/null is not a regular file \(a character device\)"),
    "cifar tar.gz FIFO": (lambda t: ("cifar10", fifo(t / "cifar-10-python.tar.gz")), r"cifar-10-python.tar.gz is not a regular file \(a FIFO\)"),
}


def _fifo_batch(tmp):
    _, folder = _cifar_folder_of(tmp, b"")
    (folder / "data_batch_1").unlink()
    fifo(folder / "data_batch_1")
    return folder


def _device_batch(tmp):
    _, folder = _cifar_folder_of(tmp, b"")
    (folder / "data_batch_1").unlink()
    (folder / "data_batch_1").symlink_to("/dev/null")
    return folder


@pytest.mark.parametrize("case", list(SPECIAL_FILES))
def test_fifo_or_device_as_a_dataset_file_is_refused_without_opening_it(tmp_path, case):
    make, message = SPECIAL_FILES[case]
    name, path = make(tmp_path)
    with deadline(), pytest.raises(DataError) as error:
        data.load_labelled(name, path, "train")
    assert re.search(message, str(error.value)), str(error.value)


def _valued_folder(root, counts: dict[str, int]):
    """Subfolders of 8x8 grey PNGs, each image one value (10 x its index in the sorted listing)."""
    from PIL import Image

    i = 0
    for sub, n in counts.items():
        (root / sub).mkdir(parents=True)
        for k in range(n):
            Image.new("L", (8, 8), 10 * i).save(root / sub / f"{k}.png")
            i += 1
    return root


def _folder_data(root, *sets):
    return load_config(None, ["data.name=folder", f"data.path={root}", "data.image_size=8", *sets]).data


def test_a_folder_holdout_is_spread_over_the_listing_and_never_trained_on(tmp_path):
    root = _valued_folder(tmp_path / "imgs", {"a": 5, "b": 5})
    cfg = _folder_data(root, "data.holdout=3")
    trained, held = data.load_images(cfg), data.load_heldout(cfg)
    assert sorted(held.images[:, 0, 0, 0].tolist()) == [0, 40, 90]  # the first, middle and last of the listing
    assert sorted(trained[:, 0, 0, 0].tolist()) == [10, 20, 30, 50, 60, 70, 80]  # the other 7: disjoint, all 10 in all
    assert held.labels is None and data.load_heldout(_folder_data(root)) is None  # no holdout: no unseen images
    # a conditional run: labels on both sides
    labelled, held = data.load_labelled_images(cfg), data.load_heldout(cfg, labelled=True)
    assert labelled.labels.tolist() == [0, 0, 0, 1, 1, 1, 1] and held.labels.tolist() == [0, 0, 1]
    assert labelled.classes == held.classes == ["a", "b"]


def test_the_other_split_is_held_out_whole_whatever_the_limit(tmp_path):
    from helpers import write_mnist

    sets = ["data.name=mnist", f"data.path={write_mnist(tmp_path / 'mnist')}"]
    cfg = load_config(None, [*sets, "data.limit=10"]).data
    held = data.load_heldout(cfg)
    np.testing.assert_array_equal(held.images, data.load_images(load_config(None, sets).data, split="test"))
    assert len(held) == 64 and len(data.load_heldout(cfg, labelled=True).labels) == 64


def test_a_bad_holdout_is_one_line(tmp_path):
    root = _valued_folder(tmp_path / "imgs", {"a": 4, "b": 1})
    with pytest.raises(DataError, match=r"^data.holdout: 3 of 5 images would leave fewer to train on than are held out; at most 2$"):
        data.load_images(_folder_data(root, "data.holdout=3"))
    with pytest.raises(DataError, match=r"^data.holdout: holding out 2 images leaves no training image of class\(es\) b; lower it$"):
        data.load_labelled_images(_folder_data(root, "data.holdout=2"))  # the last image, b's only one, is held out
    with pytest.raises(ConfigError, match=r"^data.holdout: only an image folder holds images out \(mnist has a test split"):
        load_config(None, ["data.name=mnist", "data.holdout=5"])
