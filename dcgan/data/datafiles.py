"""Dataset files, the ground rules every loader follows: regular files only, sizes bounded, pixels real.

A loader (dcgan.data.mnist, dcgan.data.cifar, dcgan.data.image_folder) opens its files with `open_regular`, checks a
header's declared size with `check_array_size` before decompressing anything, and hands out pixels
only through `as_pixels`, `check_images` and `check_labels`; whatever fails is one `DataError` line.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np

from dcgan.core.errors import DcganError

# Decompression-bomb limits: a file's header (IDX dims, zip/tar member size, image size) is checked
# against these before anything is decompressed. The loaders read them from here when they check, so each
# limit is one setting for every format.
MAX_ARRAY_BYTES = 4 << 30  # 5 million 28x28 images, or 1.3 million 32x32x3
MAX_IMAGE_PIXELS = 2 * 89_478_485  # the size at which Pillow refuses an image as a decompression bomb


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


# ---------------------------------------------------------------- checking what a file holds


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


def check_labels(labels, n: int, source: str) -> np.ndarray:
    """Class labels as int64, one per image."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) != n or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{source}: expected {n} integer labels, got shape {labels.shape} ({labels.dtype})")
    return labels.astype(np.int64)
