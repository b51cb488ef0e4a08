"""Image folders: every PNG/JPEG under a directory in, uint8 (N, size, size, C) out.

Each file's size, and the image size its header declares, are checked before the file is read
or decoded; files that fail are skipped and counted by reason, not fatal.
"""

from __future__ import annotations

import math
import struct
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from dcgan import datafiles  # its limits, read at each check: one setting for every format
from dcgan.datafiles import DataError, FileTooLarge, NotRegularFile, open_regular

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
# Image files in a folder: a photo is a few MB, and even an uncompressed 8-bit RGB PNG of 8K x 8K is 200 MB.
MAX_IMAGE_FILE_BYTES = 256 << 20
# Beyond this the centre crop throws away 95% of the image, and scaling the shorter side up to image_size
# makes the longer one enormous (a 1 x 1,000,000 PNG of 2 KB becomes 28 x 28,000,000 pixels).
MAX_ASPECT_RATIO = 20
# Where the size is read first: a PNG says it in 24 bytes; a JPEG's frame header can follow EXIF and ICC segments.
IMAGE_HEADER_BYTES = 64 << 10
MAX_IMAGE_HEADER_BYTES = 16 << 20


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
    if height * width > datafiles.MAX_IMAGE_PIXELS:
        return f"over {datafiles.MAX_IMAGE_PIXELS} pixels"
    if long > MAX_ASPECT_RATIO * short:
        return f"with an aspect ratio over {MAX_ASPECT_RATIO}:1"
    if math.ceil(long * image_size / short) * image_size > datafiles.MAX_IMAGE_PIXELS:  # _resize_crop scales the short side
        return f"over {datafiles.MAX_IMAGE_PIXELS} pixels once resized to {image_size}"
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

