import contextlib
import io
import os
import pickle
import re
import signal
import tarfile
from pathlib import Path

import numpy as np
import pytest

from conftest import blob_images, cli_error, write_idx
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
    assert f"1 image(s) over {data.MAX_IMAGE_PIXELS} pixels" in capsys.readouterr().err  # a warning: stderr


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


# ---------------------------------------------------------------- hostile datasets (one line each, bounded work)


@contextlib.contextmanager
def deadline(seconds=5):
    """Fail (instead of hanging the suite) if the body blocks, e.g. opening a FIFO."""
    def expire(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _png(path, size=(16, 16), value=200, mode="L"):
    from PIL import Image

    Image.new(mode, size, value).save(path)


def _noisy_png(path, side=64):
    from PIL import Image

    Image.fromarray(np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)).save(path)


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


def test_pixels_in_range_are_accepted_whatever_their_numeric_dtype(tmp_path):
    pixels = blob_images(3, size=8)[..., 0]
    for dtype in (np.int16, np.uint32, np.float32, np.float64):
        _, path = _npz_of(tmp_path, pixels.astype(dtype), name=f"{np.dtype(dtype).name}.npz")
        np.testing.assert_array_equal(data.load_mnist_npz(path, "train")[..., 0], pixels)
    np.testing.assert_array_equal(data.as_pixels(np.array([0.4, 99.6, 255.0]), "x"), [0, 100, 255])  # rounded, not truncated


def test_hostile_npz_through_the_cli_is_one_line_and_creates_no_run(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DCGAN_CACHE", str(tmp_path / "cache"))
    _, path = _npz_of(tmp_path, _NAN)
    line = cli_error(capsys, "train", "--set", "data.name=mnist", "--set", f"data.path={path}", "--set", f"run.dir={tmp_path / 'runs'}")
    assert "pixels must be finite" in line
    assert not (tmp_path / "runs").exists()
    line = cli_error(capsys, "features", "train", "--data", "mnist", "--path", path)
    assert "pixels must be finite" in line


def _fifo(path):
    os.mkfifo(path)
    return path


SPECIAL_FILES = {
    "idx FIFO": (lambda t: ("mnist", _fifo((t / "mnist").mkdir() or t / "mnist" / "train-images-idx3-ubyte.gz").parent),
                 r"train-images-idx3-ubyte.gz is not a regular file \(a FIFO\)"),
    "npz FIFO": (lambda t: ("mnist", _fifo(t / "mnist.npz")), r"mnist.npz is not a regular file \(a FIFO\)"),
    "cifar batch FIFO": (lambda t: ("cifar10", _fifo_batch(t)), r"data_batch_1 is not a regular file \(a FIFO\)"),
    "cifar batch linked to a device": (lambda t: ("cifar10", _device_batch(t)), r"data_batch_1 -> /dev/null is not a regular file \(a character device\)"),
    "cifar tar.gz FIFO": (lambda t: ("cifar10", _fifo(t / "cifar-10-python.tar.gz")), r"cifar-10-python.tar.gz is not a regular file \(a FIFO\)"),
}


def _fifo_batch(tmp):
    _, folder = _cifar_folder_of(tmp, b"")
    (folder / "data_batch_1").unlink()
    _fifo(folder / "data_batch_1")
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


def test_image_folder_skips_fifos_devices_and_elongated_images_naming_each_reason(tmp_path, capsys):
    root = tmp_path / "imgs"
    root.mkdir()
    _png(root / "ok.png")
    _png(root / "strip.png", size=(2000, 1))  # scaled to 16 high, it would be 32,000 wide
    _fifo(root / "pipe.png")
    (root / "zero.jpg").symlink_to("/dev/zero")
    with deadline():
        images = data.load_folder(root, 16, 1)
    assert images.shape == (1, 16, 16, 1)
    captured = capsys.readouterr()
    assert captured.out == ""  # warnings go to stderr
    assert (f"data: {root}: skipped 0 unreadable image(s), 2 image(s) that are not regular files (FIFOs, devices, ...), "
            f"1 image(s) with an aspect ratio over 20:1 and 0 non-image file(s)") in captured.err


def test_image_too_big_once_resized_or_for_memory_is_skipped(tmp_path, capsys, monkeypatch):
    import tensorflow as tf

    root = tmp_path / "imgs"
    root.mkdir()
    _png(root / "a_ok.png")
    _png(root / "b_wide.png", size=(50, 10))  # 500 pixels; resized to 32 high it is 32 x 160 = 5120
    _png(root / "c_oom.png")
    monkeypatch.setattr(data, "MAX_IMAGE_PIXELS", 2000)
    resize_crop, calls = data._resize_crop, []

    def oom_on_c(img, size):
        calls.append(size)
        if len(calls) == 2:  # the second image decoded: c_oom.png
            raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")
        return resize_crop(img, size)

    monkeypatch.setattr(data, "_resize_crop", oom_on_c)
    images = data.load_folder(root, 32, 1)
    assert images.shape == (1, 32, 32, 1)
    err = capsys.readouterr().err
    assert "1 image(s) over 2000 pixels once resized to 32" in err and "1 image(s) too big for memory" in err


def test_image_file_over_the_size_limit_is_skipped_unread(tmp_path, capsys, monkeypatch):
    root = tmp_path / "imgs"
    root.mkdir()
    _png(root / "small.png")
    _noisy_png(root / "big.png")  # about 12 KB
    monkeypatch.setattr(data, "MAX_IMAGE_FILE_BYTES", 10_000)
    assert data.load_folder(root, 16, 1).shape == (1, 16, 16, 1)
    assert "1 image(s) over 10000 bytes" in capsys.readouterr().err


def _bytes_read() -> int:
    return int(re.search(r"rchar: (\d+)", Path("/proc/self/io").read_text()).group(1))


@pytest.mark.skipif(not os.path.exists("/proc/self/io"), reason="needs Linux's /proc/self/io")
def test_image_header_is_checked_before_the_rest_of_the_file_is_read(tmp_path, capsys):
    root = tmp_path / "imgs"
    root.mkdir()
    _png(root / "ok.png")
    bomb = bytearray((root / "ok.png").read_bytes())
    bomb[16:24] = (60000).to_bytes(4, "big") * 2  # IHDR claims 3.6 gigapixels
    (root / "bomb.png").write_bytes(bytes(bomb) + bytes(8 << 20))
    before = _bytes_read()
    data.load_folder(root, 16, 1)
    assert _bytes_read() - before < 1 << 20
    assert "1 image(s) over" in capsys.readouterr().err


def test_jpeg_whose_frame_header_follows_large_metadata_is_read(tmp_path):
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (24, 12), (0, 0, 255)).save(buf, format="JPEG")
    comment = b"\xff\xfe" + (65535).to_bytes(2, "big") + bytes(65533)  # a COM segment of the largest size
    jpeg = buf.getvalue()[:2] + comment * 3 + buf.getvalue()[2:]  # the frame header now starts past 192 KB
    (tmp_path / "a.jpg").write_bytes(jpeg)
    images = data.load_folder(tmp_path, 8, 3)
    assert images.shape == (1, 8, 8, 3) and images[0, 4, 4, 2] > 200


def test_cifar_batch_file_over_the_limit_is_refused_before_reading(tmp_path, monkeypatch, cifar_dir):
    monkeypatch.setattr(data, "MAX_CIFAR_BATCH_BYTES", 1000)
    with pytest.raises(DataError, match=r"data_batch_1 is \d+ bytes, over the 1000-byte limit for a CIFAR-10 batch"):
        data.load_cifar10_path(cifar_dir, "train")


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
    monkeypatch.setattr(data, "MAX_ARRAY_BYTES", 8000)  # 1-image batches fit, the 4-image one does not
    reads = []
    extractfile = tarfile.TarFile.extractfile
    monkeypatch.setattr(tarfile.TarFile, "extractfile", lambda self, m: reads.append(m.name) or extractfile(self, m))
    message = (r"'cifar-10-batches-py/data_batch_5' is not a regular file in the archive" if last == "symlink"
               else r"'data_batch_5' declares \d+ bytes of data, over the 8000-byte limit")
    with pytest.raises(DataError, match=message):
        data.load_cifar10_path(tarball, "train")
    assert reads == []


def test_conform_in_batches_equals_conform_in_one(monkeypatch):
    import tensorflow as tf

    images = blob_images(7, size=28, channels=3, seed=4)
    whole = {(size, ch): data.conform(images, size, ch) for size, ch in [(16, 3), (16, 1), (40, 1)]}
    sizes = []
    resize = tf.image.resize
    monkeypatch.setattr(tf.image, "resize", lambda x, *a, **k: sizes.append(len(x)) or resize(x, *a, **k))
    monkeypatch.setattr(data, "CONFORM_BATCH_BYTES", 2 * 4 * (28 * 28 * 3 + 40 * 40))  # two images a batch
    for (size, ch), expected in whole.items():
        np.testing.assert_array_equal(data.conform(images, size, ch), expected)
    assert sizes and max(sizes) <= 3 and sum(sizes) == 3 * 7


def test_conform_refuses_a_result_over_the_array_limit(monkeypatch):
    monkeypatch.setattr(data, "MAX_ARRAY_BYTES", 10_000)
    with pytest.raises(DataError, match=r"data.image_size: 10 images of 64x64x1 would take 40960 bytes, over the 10000-byte limit"):
        data.conform(blob_images(10), 64, 1)
