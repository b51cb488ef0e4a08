"""CIFAR-10: its python batches (a `cifar-10-batches-py` folder or the tar.gz) in, uint8 (N, 32, 32, 3) out.

The batches are pickles: they are read with `RestrictedUnpickler`, which rebuilds numpy arrays and
runs nothing else, and every batch's size is bounded before it is read.
"""

from __future__ import annotations

import io
import pickle
import tarfile
import zlib
from pathlib import Path

import numpy as np

from dcgan.core.schema import DATASET_FACTS
from dcgan.data import datafiles  # its limits, read at each check: one setting for every format
from dcgan.data.datafiles import DataError, as_pixels, check_array_size, check_labels, open_regular
from dcgan.data.prepare_readers import ArrayReader, numbered_classes
from dcgan.data.source import Labelled, Source
from dcgan.core.errors import first_line

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
# A real CIFAR-10 batch is 31 MB (10,000 images); each is read whole before it is unpickled.
MAX_CIFAR_BATCH_BYTES = 256 << 20
# Finding the batches in a tar.gz decompresses every member before them (the real archive is 178 MB in all).
MAX_ARCHIVE_SCAN_BYTES = 4 << 30


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


CLASS_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]  # batches.meta

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
    return min(datafiles.MAX_ARRAY_BYTES, MAX_CIFAR_BATCH_BYTES)


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


def _looks_like_cifar(path: Path, headers: int = 4) -> bool:
    """Whether a tar's first few members are CIFAR-10's batch folder (a tar of pictures is an image folder): only
    their headers are read, so a compressed archive is decompressed a few KB in."""
    try:
        with open_regular(path) as file, tarfile.open(fileobj=file, mode="r|*") as tar:
            for _, member in zip(range(headers), tar):
                if "cifar-10-batches-py" in member.name or Path(member.name).name in ("data_batch_1", "test_batch"):
                    return True
    except (DataError, tarfile.TarError, OSError, EOFError, zlib.error):
        return True  # unreadable: let the CIFAR-10 reader say what is wrong with it, as before
    return False


def load_cifar10(path: str | None, split: str, with_labels: bool = False):
    if path:
        return load_cifar10_path(path, split, with_labels)
    import keras

    try:  # the same archive keras.datasets.cifar10 uses, read without plain pickle
        archive = keras.utils.get_file(fname="cifar-10-python.tar.gz", origin=CIFAR10_URL)
    except Exception as e:
        raise DataError(f"cannot load cifar10: download failed ({type(e).__name__}); set data.path to local files") from None
    return load_cifar10_path(archive, split, with_labels)


ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tar.xz")


class Cifar10Source(Source):
    """CIFAR-10: data.path (its batch folder or tar.gz), else the download; a train and a test split."""

    name, facts = "cifar10", DATASET_FACTS["cifar10"]

    def read(self, split: str, labelled: bool) -> Labelled:
        if not labelled:
            return self.limited(Labelled(load_cifar10(self.cfg.path, split), None, None))
        images, labels = load_cifar10(self.cfg.path, split, with_labels=True)
        return self.limited(Labelled(images, labels, list(CLASS_NAMES)))

    @classmethod
    def claims(cls, path: Path) -> bool:
        if path.is_dir():
            return (path / "data_batch_1").exists() or (path / "test_batch").exists()
        return path.name.lower().endswith(ARCHIVE_SUFFIXES) and _looks_like_cifar(path)

    @classmethod
    def prepare_reader(cls, path, size, channels, labels, split, shuffle, threads) -> ArrayReader:
        images, labels = load_cifar10_path(path, split, with_labels=True)
        classes = numbered_classes(labels)  # batches.meta's names, when the labels are CIFAR-10's own ten
        return ArrayReader("cifar10", images, labels, list(CLASS_NAMES) if 0 < len(classes) <= len(CLASS_NAMES) else classes,
                           split, size, channels, shuffle)
