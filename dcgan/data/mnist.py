"""MNIST and Fashion-MNIST: IDX files (gzipped or not) or keras' mnist.npz in, uint8 (N, H, W, 1) out.

Every size comes from a header and is checked (dcgan.data.datafiles) before the data is read, so a
truncated, corrupt or hostile file is one DataError line and never a huge allocation.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zipfile
from functools import partial
from pathlib import Path

import numpy as np

from dcgan.core.schema import DATASET_FACTS
from dcgan.data.datafiles import DataError, as_pixels, check_array_size, check_images, check_labels, open_regular
from dcgan.data.prepare_readers import ArrayReader, numbered_classes
from dcgan.data.source import Labelled, Source
from dcgan.core.errors import first_line

FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
CLASS_NAMES = {
    "mnist": [str(d) for d in range(10)],
    "fashion_mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
}

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path, mmap: bool = False) -> np.ndarray:
    """Read an IDX file (optionally gzipped), checking its header against its size.

    Reads exactly the bytes the header declares (plus one to catch trailing data), so a gzip
    bomb can't make it decompress more than MAX_ARRAY_BYTES; that also bounds a huge plain file.
    mmap=True maps a plain (not gzipped) file instead of reading it, whatever its size: `dcgan prepare`
    reads a source bigger than memory that way, a chunk at a time.
    """
    path = Path(path)
    mmap = mmap and path.suffix != ".gz"
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
            if mmap:
                return _map_idx(file, path, 4 + 4 * magic[3], expected, dtype, shape)
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



def _map_idx(file, path: Path, offset: int, expected: int, dtype, shape) -> np.ndarray:
    """The data of an open plain IDX file as a read-only memory map, once its size matches the header's."""
    size = os.fstat(file.fileno()).st_size
    if size != offset + expected:
        found = f"more than {expected}" if size > offset + expected else size - offset
        raise DataError(f"{path} is truncated or corrupt: header says {expected} data bytes, file has {found}")
    if not expected:
        return np.zeros(shape, dtype)
    return np.memmap(file, dtype=dtype, mode="r", offset=offset, shape=shape)


def holds_idx(folder: Path) -> bool:
    """Whether a folder holds MNIST-style IDX images (of either split)."""
    for stem in ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte"):
        try:
            _find_idx(folder, stem)
            return True
        except DataError:
            pass
    return False


def _find_idx(folder: Path, stem: str) -> Path:
    for name in (f"{stem}.gz", stem, stem.replace("-idx", ".idx")):
        if (folder / name).exists():
            return folder / name
    raise DataError(f"missing {stem}(.gz) in {folder}")


def load_idx_folder(folder: str | Path, split: str, with_labels: bool = False, mmap: bool = False):
    """Images (N, H, W, 1), or (images, labels) when with_labels; mmap: plain image files mapped, not read (read_idx)."""
    prefix = "train" if split == "train" else "t10k"
    images = read_idx(_find_idx(Path(folder), f"{prefix}-images-idx3-ubyte"), mmap=mmap)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(f"{folder}: {prefix} images must be a 3-d uint8 IDX array, got shape {images.shape}")
    check_images(images, f"{folder}: {prefix} images")
    if not with_labels:
        return images[..., None]
    labels = read_idx(_find_idx(Path(folder), f"{prefix}-labels-idx1-ubyte"))
    return images[..., None], check_labels(labels, len(images), f"{folder}: {prefix} labels")



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


class MnistSource(Source):
    """MNIST's digits: data.path (an npz or IDX folder), else the Keras download; a train and a test split."""

    name, facts = "mnist", DATASET_FACTS["mnist"]

    def read(self, split: str, labelled: bool) -> Labelled:
        if not labelled:
            return self.limited(Labelled(load_mnist_like(self.name, self.cfg.path, split), None, None))
        images, labels = load_mnist_like(self.name, self.cfg.path, split, with_labels=True)
        return self.limited(Labelled(images, labels, list(CLASS_NAMES[self.name])))

    @classmethod
    def claims(cls, path: Path) -> bool:
        return holds_idx(path) if path.is_dir() else path.name.lower().endswith(".npz")

    @classmethod
    def prepare_reader(cls, path, size, channels, labels, split, shuffle, threads) -> ArrayReader:
        """An IDX folder (memory-mapped: any size) or an npz; the files name no classes, so they are numbers."""
        kind, loader = ("idx", partial(load_idx_folder, mmap=True)) if path.is_dir() else ("npz", load_mnist_npz)
        images, labels = loader(path, split, with_labels=True)
        return ArrayReader(kind, images, labels, numbered_classes(labels), split, size, channels, shuffle)


class FashionMnistSource(MnistSource):
    """Fashion-MNIST: data.path, the system files (dataset-fashion-mnist), else the Keras download."""

    name, facts = "fashion_mnist", DATASET_FACTS["fashion_mnist"]
