"""Datasets: real file formats in, uint8 NHWC arrays out, then a tf.data pipeline.

Loaders return `uint8` arrays of shape (N, H, W, C) at the dataset's native size;
`load_images` brings them to the configured size and channels, and
`make_dataset` turns them into uint8 batches (the train step scales them to [-1, 1]) whose order is a pure function
of (seed, epoch), so a resumed run sees exactly the batches it would have seen.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np

from dcgan.errors import DcganError

FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
# Decompression-bomb limits: a file's header (IDX dims, zip/tar member size, image size) is checked
# against these before anything is decompressed.
MAX_ARRAY_BYTES = 4 << 30  # 5 million 28x28 images, or 1.3 million 32x32x3
MAX_IMAGE_PIXELS = 2 * 89_478_485  # the size at which Pillow refuses an image as a decompression bomb


class DataError(DcganError):
    """A dataset that is missing, truncated, corrupt or hostile."""


# ---------------------------------------------------------------- MNIST-style (IDX / npz)

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped), checking its header against its size.

    Reads exactly the bytes the header declares (plus one to catch trailing data), so a gzip
    bomb can't make it decompress more than MAX_ARRAY_BYTES.
    """
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            magic = f.read(4)
            if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] not in _IDX_DTYPES:
                raise DataError(f"{path} is not an IDX file (bad magic number)")
            dims = f.read(4 * magic[3])
            if len(dims) < 4 * magic[3]:
                raise DataError(f"{path} is truncated (incomplete IDX header)")
            shape = struct.unpack(f">{magic[3]}I", dims)
            dtype = np.dtype(_IDX_DTYPES[magic[2]])
            expected = math.prod(shape) * dtype.itemsize  # exact: np.prod wraps around on a hostile header
            check_array_size(expected, path)
            raw = f.read(expected + 1)
    except FileNotFoundError:
        raise DataError(f"file not found: {path}") from None
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataError(f"corrupt or truncated file {path}: {e}") from None
    if len(raw) != expected:
        found = f"more than {expected}" if len(raw) > expected else len(raw)
        raise DataError(f"{path} is truncated or corrupt: header says {expected} data bytes, file has {found}")
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


def check_array_size(n_bytes: int, source) -> None:
    """Refuse, before decompressing anything, an array bigger than MAX_ARRAY_BYTES."""
    if n_bytes > MAX_ARRAY_BYTES:
        raise DataError(f"{source} declares {n_bytes} bytes of data, over the {MAX_ARRAY_BYTES}-byte limit "
                        "(a corrupt or hostile file?)")


def _find_idx(folder: Path, stem: str) -> Path:
    for name in (f"{stem}.gz", stem, stem.replace("-idx", ".idx")):
        if (folder / name).exists():
            return folder / name
    raise DataError(f"missing {stem}(.gz) in {folder}")


def load_idx_folder(folder: str | Path, split: str, with_labels: bool = False):
    """Images (N, H, W, 1), or (images, labels) when with_labels."""
    prefix = "train" if split == "train" else "t10k"
    images = read_idx(_find_idx(Path(folder), f"{prefix}-images-idx3-ubyte"))
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(f"{folder}: {prefix} images must be a 3-d uint8 IDX array, got shape {images.shape}")
    if not with_labels:
        return images[..., None]
    labels = read_idx(_find_idx(Path(folder), f"{prefix}-labels-idx1-ubyte"))
    return images[..., None], check_labels(labels, len(images), f"{folder}: {prefix} labels")


def check_labels(labels, n: int, source: str) -> np.ndarray:
    """Class labels as int64, one per image."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) != n or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{source}: expected {n} integer labels, got shape {labels.shape} ({labels.dtype})")
    return labels.astype(np.int64)


def load_mnist_npz(path: str | Path, split: str, with_labels: bool = False):
    """Images (N, H, W, 1) from keras' mnist.npz layout, or (images, labels) when with_labels."""
    x_key, y_key = ("x_train", "y_train") if split == "train" else ("x_test", "y_test")
    images = _npz_array(path, x_key)
    if images.ndim != 3:
        raise DataError(f"{path}: '{x_key}' must have shape (N, H, W), got {images.shape}")
    images = images.astype(np.uint8)[..., None]
    if not with_labels:
        return images
    return images, check_labels(_npz_array(path, y_key), len(images), f"{path}: '{y_key}'")


def _npz_array(path: str | Path, key: str) -> np.ndarray:
    try:
        with np.load(path, allow_pickle=False) as f:
            if f"{key}.npy" in f.zip.namelist():  # the size the zip declares bounds what reading it inflates
                check_array_size(f.zip.getinfo(f"{key}.npy").file_size, f"{path}: '{key}'")
            return f[key]
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"file not found: {path}") from None
    except KeyError:
        raise DataError(f"{path} has no '{key}' array (expected keras' mnist.npz layout)") from None
    except (OSError, ValueError, EOFError, Exception) as e:  # zipfile.BadZipFile, zlib.error, ...
        raise DataError(f"corrupt or truncated file {path}: {type(e).__name__}: {e}") from None


def load_mnist_like(name: str, path: str | None, split: str, with_labels: bool = False):
    """MNIST or Fashion-MNIST: data.path (npz or IDX folder), system files, or the Keras download.

    Returns images, or (images, labels) when with_labels.
    """
    if path:
        p = Path(path)
        if not p.exists():
            raise DataError(f"data.path: {p} does not exist")
        return load_idx_folder(p, split, with_labels) if p.is_dir() else load_mnist_npz(p, split, with_labels)
    if name == "fashion_mnist" and FASHION_MNIST_SYSTEM_DIR.is_dir():
        return load_idx_folder(FASHION_MNIST_SYSTEM_DIR, split, with_labels)
    import keras

    loader = keras.datasets.fashion_mnist if name == "fashion_mnist" else keras.datasets.mnist
    try:
        train, test = loader.load_data()
    except Exception as e:
        raise DataError(
            f"cannot load {name}: download failed ({type(e).__name__}); "
            f"set data.path to local files" + (" or install dataset-fashion-mnist" if name == "fashion_mnist" else "")
        ) from None
    x, y = train if split == "train" else test
    return (x[..., None], check_labels(y, len(x), name)) if with_labels else x[..., None]


# ---------------------------------------------------------------- CIFAR-10 (python pickles)


_multiarray = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles builtin containers and numpy arrays, and refuses every other global.

    CIFAR-10's python batches are pickles; a plain `pickle.load` of a file from the
    internet can run arbitrary code. Only the globals numpy needs to rebuild an
    array are admitted.
    """

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # how Python 3 pickles bytes at protocol 2; builds bytes, runs nothing
    }

    def find_class(self, module, name):
        if (module, name) == ("_codecs", "encode"):
            import codecs

            return codecs.encode
        if (module, name) in self.ALLOWED:
            return getattr(_multiarray, name) if module.endswith("multiarray") else getattr(np, name)
        raise pickle.UnpicklingError(f"refusing to unpickle global {module}.{name}")


def restricted_loads(data: bytes, source: str) -> object:
    try:
        return RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except pickle.UnpicklingError as e:
        raise DataError(f"{source}: {e}") from None
    except Exception as e:  # truncated or garbled pickle streams raise many types
        raise DataError(f"corrupt or truncated pickle {source}: {type(e).__name__}: {e}") from None


def _cifar_batch_images(batch: object, source: str) -> np.ndarray:
    if not isinstance(batch, dict):
        raise DataError(f"{source}: not a CIFAR-10 batch (expected a dict)")
    data = batch.get(b"data", batch.get("data"))
    if not isinstance(data, np.ndarray) or data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(f"{source}: not a CIFAR-10 batch ('data' must be an N x 3072 array)")
    return data.astype(np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)


def _cifar_names(split: str) -> list[str]:
    return [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]


def _cifar_batch_labels(batch: dict, n: int, source: str) -> np.ndarray:
    labels = batch.get(b"labels", batch.get("labels"))
    if labels is None:
        raise DataError(f"{source}: CIFAR-10 batch has no 'labels'")
    return check_labels(labels, n, source)


def load_cifar10_path(path: str | Path, split: str, with_labels: bool = False):
    """From a `cifar-10-batches-py` folder or `cifar-10-python.tar.gz`; (images, labels) when with_labels."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"data.path: {path} does not exist")
    blobs = {}
    if path.is_dir():
        for name in _cifar_names(split):
            f = path / name
            if not f.exists():
                raise DataError(f"missing CIFAR-10 batch {f}")
            blobs[name] = f.read_bytes()
    else:
        try:
            with tarfile.open(path, "r:*") as tar:
                members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
                for name in _cifar_names(split):
                    if name not in members:
                        raise DataError(f"{path} has no CIFAR-10 batch '{name}'")
                    check_array_size(members[name].size, f"{path}: '{name}'")
                    blobs[name] = tar.extractfile(members[name]).read()
        except (tarfile.TarError, OSError, EOFError) as e:
            raise DataError(f"corrupt or truncated archive {path}: {e}") from None
    batches = {f"{path}:{n}": restricted_loads(b, f"{path}:{n}") for n, b in blobs.items()}
    parts = [_cifar_batch_images(batch, source) for source, batch in batches.items()]
    images = np.concatenate(parts)
    if not with_labels:
        return images
    labels = [_cifar_batch_labels(batch, len(part), source) for (source, batch), part in zip(batches.items(), parts)]
    return images, np.concatenate(labels)


def load_cifar10(path: str | None, split: str, with_labels: bool = False):
    if path:
        return load_cifar10_path(path, split, with_labels)
    import keras

    try:  # the same archive keras.datasets.cifar10 uses, read without plain pickle
        archive = keras.utils.get_file(fname="cifar-10-python.tar.gz", origin=CIFAR10_URL)
    except Exception as e:
        raise DataError(f"cannot load cifar10: download failed ({type(e).__name__}); set data.path to local files") from None
    return load_cifar10_path(archive, split, with_labels)


def load_labelled(name: str, path: str | None, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Native-size uint8 images and their int64 class labels (to train a feature classifier)."""
    if name in ("mnist", "fashion_mnist"):
        return load_mnist_like(name, path, split, with_labels=True)
    if name == "cifar10":
        return load_cifar10(path, split, with_labels=True)
    raise DataError(f"data.name: {name} has no class labels (labelled datasets: mnist, fashion_mnist, cifar10)")


# ---------------------------------------------------------------- image folders


def load_folder(path: str | Path, image_size: int, channels: int, limit: int | None = None) -> np.ndarray:
    """Every PNG/JPEG under path, shorter side resized to image_size, centre-cropped."""
    import tensorflow as tf

    root = Path(path)
    if not root.is_dir():
        raise DataError(f"data.path: {root} is not a directory")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    images, skipped, too_big = [], 0, 0
    for f in files:
        try:
            encoded = f.read_bytes()
            height, width = image_size_of(encoded)
            if height * width > MAX_IMAGE_PIXELS:
                too_big += 1
                continue
            img = tf.io.decode_image(encoded, channels=channels, expand_animations=False)
        except (tf.errors.InvalidArgumentError, OSError, ValueError):
            skipped += 1
            continue
        images.append(_resize_crop(img, image_size).numpy())
        if limit and len(images) >= limit:
            break
    others = sum(1 for p in root.rglob("*") if p.is_file() and p.suffix.lower() not in IMAGE_SUFFIXES)
    if skipped or others or too_big:
        big = f", {too_big} image(s) over {MAX_IMAGE_PIXELS} pixels" if too_big else ""
        print(f"data: {root}: skipped {skipped} unreadable image(s){big} and {others} non-image file(s)")
    if not images:
        raise DataError(f"data.path: no readable PNG/JPEG images under {root}")
    return np.stack(images)


def image_size_of(encoded: bytes) -> tuple[int, int]:
    """(height, width) from a PNG or JPEG header, without decoding the pixels; ValueError otherwise."""
    if encoded[:8] == b"\x89PNG\r\n\x1a\n" and encoded[12:16] == b"IHDR" and len(encoded) >= 24:
        width, height = struct.unpack(">II", encoded[16:24])
        return height, width
    if encoded[:2] == b"\xff\xd8":
        i = 2
        while i + 9 <= len(encoded):
            if encoded[i] != 0xFF:
                break
            marker, length = encoded[i + 1], struct.unpack(">H", encoded[i + 2:i + 4])[0]
            if marker == 0xFF:  # fill byte before a marker
                i += 1
                continue
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # start of frame: the image size
                return struct.unpack(">HH", encoded[i + 5:i + 9])
            i += 2 + length
    raise ValueError("not a PNG or JPEG (or its header is corrupt)")


def _resize_crop(img, size: int):
    import tensorflow as tf

    h, w = tf.shape(img)[0], tf.shape(img)[1]
    scale = size / tf.cast(tf.minimum(h, w), tf.float32)
    new_hw = tf.cast(tf.math.ceil(tf.cast(tf.stack([h, w]), tf.float32) * scale), tf.int32)
    img = tf.image.resize(img, new_hw, method="area", antialias=True)
    img = tf.image.resize_with_crop_or_pad(img, size, size)
    return tf.cast(tf.clip_by_value(tf.round(img), 0, 255), tf.uint8)


# ---------------------------------------------------------------- config -> arrays -> tf.data


def load_images(data_cfg, split: str | None = None) -> np.ndarray:
    """uint8 (N, image_size, image_size, channels) for a DataConfig."""
    split = split or data_cfg.split
    name = data_cfg.name
    if name in ("mnist", "fashion_mnist"):
        images = load_mnist_like(name, data_cfg.path, split)
    elif name == "cifar10":
        images = load_cifar10(data_cfg.path, split)
    elif name == "folder":
        images = load_folder(data_cfg.path, data_cfg.image_size, data_cfg.channels, data_cfg.limit)
    else:  # config validation makes this unreachable
        raise DataError(f"data.name: unknown dataset {name!r}")
    if data_cfg.limit:
        images = images[: data_cfg.limit]
    return conform(images, data_cfg.image_size, data_cfg.channels)


def conform(images: np.ndarray, size: int, channels: int) -> np.ndarray:
    """Resize (area) and convert channels so every image is size x size x channels."""
    if images.shape[-1] != channels:
        if channels == 3:
            images = np.repeat(images, 3, axis=-1)
        else:
            images = np.round(images.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
            images = images.clip(0, 255).astype(np.uint8)
    if images.shape[1:3] != (size, size):
        import tensorflow as tf

        resized = tf.image.resize(images, (size, size), method="area", antialias=True)
        images = tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8).numpy()
    return np.ascontiguousarray(images)


def to_float(images):
    """uint8 [0, 255] -> float32 [-1, 1] (works on numpy arrays and tensors)."""
    return images / 127.5 - 1.0 if isinstance(images, np.ndarray) else _tf_to_float(images)


def _tf_to_float(images):
    import tensorflow as tf

    return tf.cast(images, tf.float32) / 127.5 - 1.0


def to_uint8(images) -> np.ndarray:
    """float [-1, 1] -> uint8 [0, 255]."""
    images = np.asarray(images, dtype=np.float32)
    return np.clip(np.round((images + 1.0) * 127.5), 0, 255).astype(np.uint8)


def batches_per_epoch(n_images: int, batch_size: int) -> int:
    if n_images < batch_size:
        raise DataError(f"data.batch_size: {batch_size} is larger than the dataset ({n_images} images)")
    return n_images // batch_size


def make_dataset(images: np.ndarray, batch_size: int, seed: int, start_batch: int = 0, group: int = 1):
    """An endless tf.data pipeline of uint8 batches, shaped (batch, group, H, W, C).

    Epoch e is a stateless shuffle keyed by (seed, e), batched with drop_remainder;
    `start_batch` skips batches already consumed, so resuming reproduces the order.
    """
    import tensorflow as tf

    n = len(images)
    per_epoch = batches_per_epoch(n, batch_size)
    pixels = tf.constant(images)
    start_epoch, skip = divmod(start_batch, per_epoch)

    def epoch_batches(epoch):
        order = tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64), seed=tf.stack([tf.cast(seed, tf.int64), epoch]))
        return tf.data.Dataset.from_tensor_slices(order).batch(batch_size, drop_remainder=True)

    ds = tf.data.Dataset.range(start_epoch, 2**62).flat_map(epoch_batches).skip(skip)
    # uint8 pixels: the train step scales them to [-1, 1] in its own graph
    ds = ds.map(lambda idx: tf.gather(pixels, idx))
    # (group, batch, ...) -> (batch, group, ...): tf.distribute splits the first axis across replicas
    ds = ds.batch(group, drop_remainder=True).map(lambda x: tf.transpose(x, [1, 0, 2, 3, 4])).prefetch(2)
    # A batch is one gather, microseconds of work. Autotuned tf.data threads would compete with the train
    # step's compute threads for the cores (measured on 2 cores: 318 vs 335 images/s); one thread is plenty.
    options = tf.data.Options()
    options.threading.private_threadpool_size = 1
    options.autotune.enabled = False
    return ds.with_options(options)


def cache_dir() -> Path:
    """Where derived data (feature networks, statistics) is kept."""
    return Path(os.environ.get("DCGAN_CACHE", Path.home() / ".cache" / "dcgan"))
