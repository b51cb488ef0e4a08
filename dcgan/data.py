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
import stat
import struct
import sys
import tarfile
import zipfile
import zlib
from collections import Counter
from pathlib import Path

import numpy as np

from dcgan.errors import DcganError, first_line

FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
# Decompression-bomb limits: a file's header (IDX dims, zip/tar member size, image size) is checked
# against these before anything is decompressed.
MAX_ARRAY_BYTES = 4 << 30  # 5 million 28x28 images, or 1.3 million 32x32x3
MAX_IMAGE_PIXELS = 2 * 89_478_485  # the size at which Pillow refuses an image as a decompression bomb
# A real CIFAR-10 batch is 31 MB (10,000 images); each is read whole before it is unpickled.
MAX_CIFAR_BATCH_BYTES = 256 << 20
# Finding the batches in a tar.gz decompresses every member before them (the real archive is 178 MB in all).
MAX_ARCHIVE_SCAN_BYTES = 4 << 30
# Image files in a folder: a photo is a few MB, and even an uncompressed 8-bit RGB PNG of 8K x 8K is 200 MB.
MAX_IMAGE_FILE_BYTES = 256 << 20
# Beyond this the centre crop throws away 95% of the image, and scaling the shorter side up to image_size
# makes the longer one enormous (a 1 x 1,000,000 PNG of 2 KB becomes 28 x 28,000,000 pixels).
MAX_ASPECT_RATIO = 20
# Where the size is read first: a PNG says it in 24 bytes; a JPEG's frame header can follow EXIF and ICC segments.
IMAGE_HEADER_BYTES = 64 << 10
MAX_IMAGE_HEADER_BYTES = 16 << 20
# conform resizes this many bytes of float32 (input and output) at a time, not the whole dataset at once.
CONFORM_BATCH_BYTES = 256 << 20


class DataError(DcganError):
    """A dataset that is missing, truncated, corrupt or hostile."""

    def __init__(self, message):
        # the CLI prints this as one line: a hostile file or member name may hold a newline
        super().__init__(str(message).replace("\r", "\\r").replace("\n", "\\n"))


class NotRegularFile(DataError):
    """A FIFO, device, socket or directory where a data file should be (reading it could hang or never end)."""


class FileTooLarge(DataError):
    """A data file over its size limit, refused before it is read."""


# ---------------------------------------------------------------- opening files


def open_regular(path: str | Path, max_bytes: int | None = None, what: str = "a data file"):
    """A binary file object for path, if it is a regular file (after symlinks) of at most max_bytes.

    A FIFO blocks a reader forever and a device (a symlink to /dev/zero) never ends, so the name is
    stat'ed before it is opened (a device is not even opened), and the opened file fstat'ed in case the
    name was swapped in between. O_NONBLOCK keeps even that open of a swapped-in FIFO from blocking.
    """
    _check_regular(os.stat(path), path, max_bytes, what)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    try:
        _check_regular(os.fstat(fd), path, max_bytes, what)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


_FILE_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
               (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _check_regular(st: os.stat_result, path, max_bytes: int | None, what: str) -> None:
    if not stat.S_ISREG(st.st_mode):
        kind = next((name for test, name in _FILE_KINDS if test(st.st_mode)), "a special file")
        target = f" -> {os.path.realpath(path)}" if os.path.islink(path) else ""
        raise NotRegularFile(f"{path}{target} is not a regular file ({kind})")
    if max_bytes is not None and st.st_size > max_bytes:
        raise FileTooLarge(f"{path} is {st.st_size} bytes, over the {max_bytes}-byte limit for {what} "
                           "(a corrupt or hostile file?)")


# ---------------------------------------------------------------- MNIST-style (IDX / npz)

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped), checking its header against its size.

    Reads exactly the bytes the header declares (plus one to catch trailing data), so a gzip
    bomb can't make it decompress more than MAX_ARRAY_BYTES; that also bounds a huge plain file.
    """
    path = Path(path)
    try:
        with open_regular(path) as file:
            f = gzip.GzipFile(fileobj=file, mode="rb") if path.suffix == ".gz" else file
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
        raise DataError(f"corrupt or truncated file {path}: {first_line(e)}") from None
    if len(raw) != expected:
        found = f"more than {expected}" if len(raw) > expected else len(raw)
        raise DataError(f"{path} is truncated or corrupt: header says {expected} data bytes, file has {found}")
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


def check_array_size(n_bytes: int, source, limit: int | None = None) -> None:
    """Refuse, before decompressing anything, an array bigger than limit (default MAX_ARRAY_BYTES)."""
    limit = MAX_ARRAY_BYTES if limit is None else limit
    if n_bytes > limit:
        raise DataError(f"{source} declares {n_bytes} bytes of data, over the {limit}-byte limit "
                        "(a corrupt or hostile file?)")


def as_pixels(array: np.ndarray, source: str) -> np.ndarray:
    """uint8 pixels from integers in 0..255 or finite floats in [0, 255] (rounded); DataError for anything else.

    A plain astype(uint8) would wrap 300 to 44, turn NaN into 0, drop an imaginary part, and crash on
    strings or structured records.
    """
    kind = array.dtype.kind
    if kind not in "uif" or array.dtype.names:
        raise DataError(f"{source}: pixels must be integers in 0..255 or finite floats in [0, 255], got dtype {array.dtype}")
    if array.dtype == np.uint8:
        return array
    if array.size:
        if kind == "f" and not np.isfinite(array).all():
            raise DataError(f"{source}: pixels must be finite, found NaN or infinity ({array.dtype})")
        low, high = array.min(), array.max()
        if low < 0 or high > 255:
            raise DataError(f"{source}: pixels must be in 0..255, found values from {low} to {high} ({array.dtype})")
    return (np.rint(array) if kind == "f" else array).astype(np.uint8)


def check_images(images: np.ndarray, source: str) -> np.ndarray:
    """images (N, H, W, ...), refused when empty or when one image is over MAX_IMAGE_PIXELS."""
    n, height, width = images.shape[:3]
    if n == 0:
        raise DataError(f"{source}: holds no images (shape {images.shape})")
    if height == 0 or width == 0:
        raise DataError(f"{source}: images of {height}x{width} pixels are empty (shape {images.shape})")
    if height * width > MAX_IMAGE_PIXELS:  # resizing one converts it to float32
        raise DataError(f"{source}: images of {height}x{width} pixels are over the {MAX_IMAGE_PIXELS}-pixel limit")
    return images


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
    check_images(images, f"{folder}: {prefix} images")
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
    images = check_images(as_pixels(images, f"{path}: '{x_key}'"), f"{path}: '{x_key}'")[..., None]
    if not with_labels:
        return images
    return images, check_labels(_npz_array(path, y_key), len(images), f"{path}: '{y_key}'")


_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # a zip's first entry, or an empty zip's end record


def _npz_array(path: str | Path, key: str) -> np.ndarray:
    """One array of an npz, its zip entry's size and its .npy header's shape checked before it is read.

    Reading only the one zip entry bounds the work; a huge npz file needs no cap of its own.
    """
    source = f"{path}: '{key}'"
    try:
        with open_regular(path) as file:
            if file.read(4) not in _ZIP_MAGICS:  # np.load would call it "pickled (object) data"
                raise DataError(f"corrupt or truncated file {path}: not a zip/npz file")
            file.seek(0)
            with zipfile.ZipFile(file) as archive:
                if f"{key}.npy" not in archive.namelist():
                    raise DataError(f"{path} has no '{key}' array (expected keras' mnist.npz layout)")
                check_array_size(archive.getinfo(f"{key}.npy").file_size, source)  # bounds what reading inflates
                with archive.open(f"{key}.npy") as member:
                    check_array_size(_npy_declared_bytes(member), source)  # and the header's shape what it allocates
                    member.seek(0)
                    return np.lib.format.read_array(member, allow_pickle=False)
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"file not found: {path}") from None
    except Exception as e:  # zipfile.BadZipFile, zlib.error, ValueError from a bad .npy header, ...
        raise DataError(f"corrupt or truncated file {path}: {type(e).__name__}: {first_line(e)}") from None


def _npy_declared_bytes(member) -> int:
    version = np.lib.format.read_magic(member)
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, _, dtype = read_header(member)
    return math.prod(shape) * dtype.itemsize


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

    EMPTY_BYTES = frozenset({("__builtin__", "bytes"), ("builtins", "bytes")})  # how b"" pickles at protocol 2

    def find_class(self, module, name):
        if (module, name) == ("_codecs", "encode"):
            import codecs

            return codecs.encode
        if (module, name) in self.EMPTY_BYTES:  # an empty array's data, an empty label
            return _empty_bytes
        if (module, name) in self.ALLOWED:
            return getattr(_multiarray, name) if module.endswith("multiarray") else getattr(np, name)
        raise pickle.UnpicklingError(f"refusing to unpickle global {module}.{name}")


def _empty_bytes(*args) -> bytes:
    # bytes(n) would allocate n zero bytes: a few bytes of pickle could ask for terabytes
    if args:
        raise pickle.UnpicklingError("refusing to unpickle __builtin__.bytes with arguments")
    return b""


def restricted_loads(data: bytes, source: str) -> object:
    if not data:
        raise DataError(f"{source} is empty (not a CIFAR-10 batch)")
    try:
        return RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except pickle.UnpicklingError as e:
        raise DataError(f"{source}: {first_line(e)}") from None
    except Exception as e:  # truncated or garbled pickle streams raise many types
        raise DataError(f"corrupt or truncated pickle {source}: {type(e).__name__}: {first_line(e)}") from None


def _cifar_batch_images(batch: object, source: str) -> np.ndarray:
    if not isinstance(batch, dict):
        raise DataError(f"{source}: not a CIFAR-10 batch (expected a dict)")
    data = batch.get(b"data", batch.get("data"))
    if not isinstance(data, np.ndarray) or data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(f"{source}: not a CIFAR-10 batch ('data' must be an N x 3072 array)")
    if len(data) == 0:
        raise DataError(f"{source}: empty CIFAR-10 batch ('data' holds 0 images)")
    # a pickle of a few bytes can declare a huge (untouched, lazily allocated) array: refuse it before copying
    check_array_size(data.nbytes, f"{source}: 'data'", _cifar_batch_limit())
    return as_pixels(data, f"{source}: 'data'").reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)


def _cifar_batch_limit() -> int:
    return min(MAX_ARRAY_BYTES, MAX_CIFAR_BATCH_BYTES)


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
    names = _cifar_names(split)
    blobs = _cifar_folder_blobs(path, names) if path.is_dir() else _cifar_tar_blobs(path, names)
    parts = {}
    for name, blob in blobs:  # a folder's batch is checked as soon as it is read, before the next is read
        source = f"{path}:{name}"
        batch = restricted_loads(blob, source)
        images = _cifar_batch_images(batch, source)
        parts[name] = (images, _cifar_batch_labels(batch, len(images), source) if with_labels else None)
    images = np.concatenate([parts[name][0] for name in names])
    if not with_labels:
        return images
    return images, np.concatenate([parts[name][1] for name in names])


def _cifar_folder_blobs(folder: Path, names: list[str]):
    """(name, bytes) of each batch file, each checked to be a regular file under the batch limit before it is read."""
    for name in names:
        f = folder / name
        try:
            with open_regular(f, _cifar_batch_limit(), "a CIFAR-10 batch") as file:
                blob = file.read(_cifar_batch_limit() + 1)  # a file growing after the check stays bounded
        except FileNotFoundError:
            raise DataError(f"missing CIFAR-10 batch {f}") from None
        except OSError as e:
            raise DataError(f"cannot read CIFAR-10 batch {f}: {first_line(e)}") from None
        yield name, blob


def _cifar_tar_blobs(path: Path, names: list[str]) -> list[tuple[str, bytes]]:
    """(name, bytes) of each batch in the archive; every member is found and checked before any is read."""
    try:
        with open_regular(path) as file, _open_tar(file, path) as tar:
            members = _find_cifar_members(tar, path, names)
            # in archive order: a compressed stream seeks back only by decompressing again from the start
            in_order = sorted(members.items(), key=lambda item: item[1].offset)
            return [(name, tar.extractfile(member).read()) for name, member in in_order]
    except DataError:
        raise
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise DataError(f"corrupt or truncated archive {path}: {first_line(e)}") from None


def _open_tar(file, path: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(fileobj=file, mode="r:*")
    except tarfile.ReadError:  # its own message lists every compression it tried, one per line
        raise DataError(f"corrupt or truncated archive {path}: not a tar or tar.gz/bz2/xz file") from None


def _find_cifar_members(tar: tarfile.TarFile, path: Path, names: list[str]) -> dict:
    """The members named names (by base name), from headers only, each a regular file under the batch limit.

    Scanning stops once all are found; skipping over any member decompresses it, so the scan is bounded too.
    """
    found = {}
    for member in tar:
        name = Path(member.name).name
        if name in names and name not in found:
            if not member.isfile():
                raise DataError(f"{path}: CIFAR-10 batch '{member.name}' is not a regular file in the archive "
                                f"(a link, device or directory)")
            check_array_size(member.size, f"{path}: '{name}'", _cifar_batch_limit())
            found[name] = member
            if len(found) == len(names):
                return found
        scanned = member.offset_data + member.size
        check_array_size(scanned, f"{path}: the archive up to '{member.name}'", MAX_ARCHIVE_SCAN_BYTES)
    missing = next(name for name in names if name not in found)
    raise DataError(f"{path} has no CIFAR-10 batch '{missing}'")


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


UNREADABLE = "unreadable"


class _Skip(Exception):
    """Why load_folder passes over one image file: counted and reported, not fatal."""


def load_folder(path: str | Path, image_size: int, channels: int, limit: int | None = None) -> np.ndarray:
    """Every PNG/JPEG under path, shorter side resized to image_size, centre-cropped.

    Files that can't be used are skipped and counted by reason on stderr: unreadable, not a regular
    file, over MAX_IMAGE_FILE_BYTES, over MAX_IMAGE_PIXELS (decoded or resized), over MAX_ASPECT_RATIO,
    or out of memory while decoding.
    """
    import tensorflow as tf

    root = Path(path)
    if not root.is_dir():
        raise DataError(f"data.path: {root} is not a directory")
    entries = sorted(root.rglob("*"))
    files = [p for p in entries if p.suffix.lower() in IMAGE_SUFFIXES and not p.is_dir()]
    images, skipped = [], Counter()
    for f in files:
        try:
            encoded = _read_image_file(f, image_size)
            img = tf.io.decode_image(encoded, channels=channels, expand_animations=False)
            images.append(_resize_crop(img, image_size).numpy())
        except _Skip as e:
            skipped[str(e)] += 1
        except (tf.errors.ResourceExhaustedError, MemoryError):  # what the header checks did not foresee
            skipped["too big for memory"] += 1
        except (tf.errors.InvalidArgumentError, OSError, ValueError):
            skipped[UNREADABLE] += 1
        if limit and len(images) >= limit:
            break
    others = sum(1 for p in entries if p.is_file() and p.suffix.lower() not in IMAGE_SUFFIXES)
    if skipped or others:
        print(_skip_message(root, skipped, others), file=sys.stderr)
    if not images:
        raise DataError(f"data.path: no readable PNG/JPEG images under {root}")
    return np.stack(images)


def _skip_message(root: Path, skipped: Counter, others: int) -> str:
    reasons = "".join(f", {n} image(s) {reason}" for reason, n in skipped.items() if reason != UNREADABLE)
    return f"data: {root}: skipped {skipped[UNREADABLE]} unreadable image(s){reasons} and {others} non-image file(s)"


def _read_image_file(path: Path, image_size: int) -> bytes:
    """The file's bytes, read only once its header's size passed the checks; _Skip (or ValueError) otherwise."""
    try:
        file = open_regular(path, MAX_IMAGE_FILE_BYTES, "an image file")
    except NotRegularFile:
        raise _Skip("that are not regular files (FIFOs, devices, ...)") from None
    except FileTooLarge:
        raise _Skip(f"over {MAX_IMAGE_FILE_BYTES} bytes") from None
    with file:
        header, (height, width) = _read_image_header(file)
        reason = _oversize_reason(height, width, image_size)
        if reason:
            raise _Skip(reason)
        return header + file.read(MAX_IMAGE_FILE_BYTES + 1 - len(header))  # a file grown since the check stays bounded


def _read_image_header(file) -> tuple[bytes, tuple[int, int]]:
    """(the bytes read so far, (height, width)): just enough of the file to hold its size."""
    header = file.read(IMAGE_HEADER_BYTES)
    while True:
        try:
            return header, image_size_of(header)
        except ValueError:
            # a JPEG's frame header can come after large EXIF or ICC segments: read on, up to a limit
            if header[:2] != b"\xff\xd8" or len(header) >= MAX_IMAGE_HEADER_BYTES:
                raise
            more = file.read(len(header))
            if not more:
                raise
            header += more


def _oversize_reason(height: int, width: int, image_size: int) -> str | None:
    """Why an image of height x width can't be decoded and resized to image_size in bounded memory, or None."""
    short, long = min(height, width), max(height, width)
    if short == 0:
        raise ValueError("the header says the image is empty")
    if height * width > MAX_IMAGE_PIXELS:
        return f"over {MAX_IMAGE_PIXELS} pixels"
    if long > MAX_ASPECT_RATIO * short:
        return f"with an aspect ratio over {MAX_ASPECT_RATIO}:1"
    if math.ceil(long * image_size / short) * image_size > MAX_IMAGE_PIXELS:  # _resize_crop scales the short side
        return f"over {MAX_IMAGE_PIXELS} pixels once resized to {image_size}"
    return None


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
    """Resize (area) and convert channels so every image is size x size x channels.

    Works through CONFORM_BATCH_BYTES of float32 at a time, so peak memory is the uint8 result plus
    one batch, not the whole dataset as floats; a result over MAX_ARRAY_BYTES is refused up front.
    """
    n, height, width, have = images.shape
    if have == channels and (height, width) == (size, size):
        return np.ascontiguousarray(images)
    result_bytes = n * size * size * channels
    if result_bytes > MAX_ARRAY_BYTES:
        raise DataError(f"data.image_size: {n} images of {size}x{size}x{channels} would take {result_bytes} bytes, "
                        f"over the {MAX_ARRAY_BYTES}-byte limit (lower data.image_size or set data.limit)")
    out = np.empty((n, size, size, channels), np.uint8)
    per_image = 4 * (height * width * max(have, channels) + size * size * channels)
    step = max(1, CONFORM_BATCH_BYTES // per_image)
    for start in range(0, n, step):
        out[start : start + step] = _conform_batch(images[start : start + step], size, channels)
    return out


def _conform_batch(images: np.ndarray, size: int, channels: int) -> np.ndarray:
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
    return images


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
