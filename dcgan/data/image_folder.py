"""Image folders: every PNG/JPEG under a directory in, uint8 (N, size, size, C) out.

Each file's size, and the image size its header declares, are checked before the file is read
or decoded; files that fail are skipped and counted by reason, not fatal. A JPEG's EXIF orientation is applied, as
browsers and PIL's `ImageOps.exif_transpose` do. `decode_images` decodes a file list on a thread pool (dcgan prepare
uses it too). The listing and the classes (a conditional run labels a folder by its immediate subfolders) come from
dcgan.data.folder_walk; dcgan.data.folder_cache keeps a decoded folder so the next run skips the decoding.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import sys
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from dcgan.data import datafiles  # its limits, read at each check: one setting for every format
from dcgan.data.datafiles import DataError, FileTooLarge, NotRegularFile, open_regular
from dcgan.data.fit import Fit, fit_image
from dcgan.data.folder_walk import IMAGE_SUFFIXES, NOT_IN_A_CLASS, Subfolders, label_by_subfolder, list_images  # noqa: F401
from dcgan.data.label_files import labels_from_file
from dcgan.data.pictures import Pictures, open_pictures
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


DEFAULT_FIT = Fit()


def load_folder(path: str | Path, image_size: int, channels: int, limit: int | None = None,
                fit: Fit = DEFAULT_FIT) -> np.ndarray:
    """Every PNG/JPEG under path (a folder or an archive of one), brought to image_size by fit (default: shorter
    side resized with the area filter, centre cut).

    Files that can't be used are skipped and counted by reason on stderr: unreadable, not a regular
    file, over MAX_IMAGE_FILE_BYTES, over MAX_IMAGE_PIXELS (decoded or resized), over MAX_ASPECT_RATIO,
    or out of memory while decoding.
    """
    return decode_folder(folder_root(path), image_size, channels, limit, fit=fit).images


@dataclass
class Decoded:
    """A decoded folder: its images, with labelled=True their labels (int64) and class names, and the note printed."""

    images: np.ndarray
    labels: np.ndarray | None
    classes: list[str] | None
    note: str


@dataclass(frozen=True)
class Labelling:
    """Which files a labelled load keeps, each one's class, the class names, and how many pictures have none."""

    names: list[str]
    labels: list[int]
    classes: list[str]
    unlabelled: int  # pictures outside every class subfolder: skipped, and counted with the skipped files


def labelling(pictures: Pictures, label_file: str | None) -> Labelling:
    """The classes of a folder's pictures: from data.labels' file, else from the immediate subfolders."""
    if label_file:
        found = labels_from_file(pictures, label_file)
        return Labelling(found.names, found.labels, found.classes, 0)
    root = PurePosixPath()
    found = label_by_subfolder(root, [PurePosixPath(n) for n in pictures.names])
    if not found.classes:
        raise DataError(f"data.path: {pictures.root} has no class subfolders; a conditional run labels images by "
                        "their immediate subfolders (or by a label file: data.labels)")
    return Labelling([f.as_posix() for f in found.files], found.labels, found.classes, found.loose)


def decode_folder(root: Path, image_size: int, channels: int, limit: int | None, labelled: bool = False,
                  fit: Fit = DEFAULT_FIT, label_file: str | None = None) -> Decoded:
    with open_pictures(root, MAX_IMAGE_FILE_BYTES) as pictures:
        skipped = Counter(pictures.skipped)
        names, found = pictures.names, labelling(pictures, label_file) if labelled else None
        if found is not None:
            names = found.names
            if found.unlabelled:  # counted with the other skipped files
                skipped[NOT_IN_A_CLASS] = found.unlabelled
        label_of = dict(zip(found.names, found.labels)) if found is not None else {}
        position = {name: i for i, name in enumerate(names)}
        kept: list[tuple[int, np.ndarray]] = []
        # one file at a time, in this thread: decode_images(threads=...) is for `dcgan prepare`
        wanted = names[:limit] if limit and pictures.random_access else names
        for name, result, _ in decode_images(pictures, wanted, image_size, channels, fit, threads=0):
            if isinstance(result, str):
                skipped[result] += 1
            else:
                kept.append((position[name], result))
                if limit and pictures.random_access and len(kept) >= limit:
                    break
    kept.sort(key=lambda item: item[0])  # an archive read front to back: back into the listing's order
    if limit:
        kept = kept[:limit]
    note = skip_message(root, skipped, pictures.others) if skipped or pictures.others else ""
    if note:
        print(note, file=sys.stderr)
    if not kept:
        raise DataError(f"data.path: no readable PNG/JPEG images under {root}")
    images = np.stack([image for _, image in kept])
    if found is None:
        return Decoded(images, None, None, note)
    labels = [label_of[names[i]] for i, _ in kept]
    untried = [label_of[n] for n in names[kept[-1][0] + 1:]] if limit and len(kept) >= limit else []
    _check_every_class_has_an_image(root, found.classes, labels, untried, limit)
    return Decoded(images, np.array(labels, np.int64), found.classes, note)


def folder_root(path: str | Path) -> Path:
    root = Path(path)
    if not root.exists():
        raise DataError(f"data.path: {root} does not exist")
    return root


# ---------------------------------------------------------------- classes from subfolders


def _check_every_class_has_an_image(root: Path, classes: list[str], labels: list[int], untried: list[int],
                                    limit: int | None) -> None:
    """Each class holds an image: a conditional run would otherwise ask the generator for a class it never saw."""
    present, untried = set(labels), set(untried)
    empty = [i for i in range(len(classes)) if i not in present]
    cut = [classes[i] for i in empty if i in untried]  # never reached: data.limit stopped before them
    unreadable = [classes[i] for i in empty if i not in untried]
    if unreadable:
        raise DataError(f"data.path: class subfolder(s) {_names(unreadable)} of {root} hold no readable image; every "
                        "class of a conditional run needs one (fix or remove the subfolder)")
    if cut:
        raise DataError(f"data.limit: the first {limit} images of {root} (sorted by path) hold no image of class(es) "
                        f"{_names(cut)}; a conditional run needs every class: raise data.limit or remove it")


def _names(names: list[str], most: int = 5) -> str:
    shown = ", ".join(repr(n) for n in names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


# ---------------------------------------------------------------- decoding

# Decoding threads (0: in the calling thread). Each decode is a few eager TensorFlow ops that take the GIL between
# kernels, so on a small machine threads only queue behind each other and behind the consumer: on 2 cores
# `dcgan prepare` of 3,000 64x64 PNGs ran at 782 images/s inline, 431 with one decoding thread, 541 with two.
# Bigger machines keep a pool (unmeasured here).
DECODE_THREADS = 0 if (os.cpu_count() or 1) <= 2 else min(8, os.cpu_count())


def decode_images(pictures: Pictures, names: list[str], image_size: int, channels: int, fit: Fit = DEFAULT_FIT,
                  threads: int | None = None, digests: bool = False):
    """(name, uint8 image or the reason it was skipped, with digests the sha256 of the file's bytes, else None) for
    each of names, in the order pictures reads them, decoded on a thread pool (threads=0: in the calling thread).

    The files are read here, one at a time (an archive's members share its file); at most a few per thread are
    in flight, so memory stays bounded however long the list; closing the generator early (a limit reached)
    cancels what is still queued.
    """
    threads = DECODE_THREADS if threads is None else threads
    read = ((name, read_picture(source, image_size, fit)) for name, source in pictures.read(names))
    if threads <= 0:
        for name, encoded in read:
            yield name, *_decoded(encoded, image_size, channels, fit, digests)
        return
    with ThreadPoolExecutor(threads, thread_name_prefix="dcgan-decode") as pool:
        pending = deque()
        try:
            for name, encoded in read:
                pending.append((name, pool.submit(_decoded, encoded, image_size, channels, fit, digests)))
                if len(pending) >= 4 * threads:
                    name0, future = pending.popleft()
                    yield name0, *future.result()
            while pending:
                name0, future = pending.popleft()
                yield name0, *future.result()
        finally:
            for _, future in pending:
                future.cancel()


def _decoded(encoded, image_size: int, channels: int, fit: Fit, digest: bool):
    """(image or skip reason, the bytes' sha256 when asked for, else None) of what read_picture gave."""
    if isinstance(encoded, str):
        return encoded, None
    return decode_bytes(encoded, image_size, channels, fit), hashlib.sha256(encoded).hexdigest() if digest else None


def decode_image(path: Path, image_size: int, channels: int, fit: Fit = DEFAULT_FIT):
    """One file as uint8 (side, side, channels) (side: fit.stored_size(image_size)), or the reason (a string) it is
    skipped."""
    encoded = read_picture(Path(path), image_size, fit)
    return encoded if isinstance(encoded, str) else decode_bytes(encoded, image_size, channels, fit)


def decode_bytes(encoded: bytes, image_size: int, channels: int, fit: Fit = DEFAULT_FIT):
    """A PNG/JPEG file's bytes as uint8 (side, side, channels), or the reason (a string) it is skipped."""
    import tensorflow as tf

    try:
        img = _orient(tf.io.decode_image(encoded, expand_animations=False), exif_orientation(encoded))
        return fit_image(_to_channels(img, channels), image_size, fit).numpy()
    except (tf.errors.ResourceExhaustedError, MemoryError):  # what the header checks did not foresee
        return "too big for memory"
    except (tf.errors.InvalidArgumentError, OSError, ValueError):
        return UNREADABLE


def read_picture(source, image_size: int, fit: Fit):
    """The bytes of a picture (a path, or an archive member's file object) once its header passed the size
    checks, or the reason (a string) it is skipped."""
    try:
        if isinstance(source, Path):
            with _open_image_file(source) as file:
                return _read_checked(file, image_size, fit)
        return _read_checked(source, image_size, fit)
    except _Skip as e:
        return str(e)
    except (OSError, ValueError):
        return UNREADABLE


def _open_image_file(path: Path):
    try:
        return open_regular(path, MAX_IMAGE_FILE_BYTES, "an image file")
    except FileNotFoundError:
        raise _Skip("that are broken links (or vanished since the listing)") from None
    except NotRegularFile:
        raise _Skip("that are not regular files (FIFOs, devices, ...)") from None
    except FileTooLarge:
        raise _Skip(f"over {MAX_IMAGE_FILE_BYTES} bytes") from None


def _read_checked(file, image_size: int, fit: Fit) -> bytes:
    header, (height, width) = _read_image_header(file)
    reason = _oversize_reason(height, width, image_size, fit)
    if reason:
        raise _Skip(reason)
    return header + file.read(MAX_IMAGE_FILE_BYTES + 1 - len(header))  # a file grown since the check stays bounded


def skip_message(root: Path, skipped: Counter, others: int) -> str:
    reasons = "".join(f", {n} image(s) {reason}" for reason, n in skipped.items() if reason != UNREADABLE)
    return f"data: {root}: skipped {skipped[UNREADABLE]} unreadable image(s){reasons} and {others} non-image file(s)"


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


def _oversize_reason(height: int, width: int, image_size: int, fit: Fit = DEFAULT_FIT) -> str | None:
    """Why an image of height x width can't be decoded and resized to image_size in bounded memory, or None."""
    short, long = min(height, width), max(height, width)
    if short == 0:
        raise ValueError("the header says the image is empty")
    if height * width > datafiles.MAX_IMAGE_PIXELS:
        return f"over {datafiles.MAX_IMAGE_PIXELS} pixels"
    if long > MAX_ASPECT_RATIO * short:
        return f"with an aspect ratio over {MAX_ASPECT_RATIO}:1"
    if fit.resized_pixels(height, width, image_size) > datafiles.MAX_IMAGE_PIXELS:  # the resize before the crop
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


PNG_COLOUR_TYPES = {0: "gray", 2: "RGB", 3: "palette", 4: "gray+alpha", 6: "RGBA"}
JPEG_COMPONENTS = {1: "gray", 3: "RGB", 4: "CMYK"}


def channel_mode(encoded: bytes) -> str:
    """A PNG's colour type or a JPEG's component count, from the header, in words ("RGB", "gray+alpha", ...)."""
    if encoded[:8] == b"\x89PNG\r\n\x1a\n" and len(encoded) >= 26:
        return PNG_COLOUR_TYPES.get(encoded[25], "unknown")
    i = 2
    while encoded[:2] == b"\xff\xd8" and i + 10 <= len(encoded) and encoded[i] == 0xFF:
        marker, length = encoded[i + 1], struct.unpack(">H", encoded[i + 2:i + 4])[0]
        if marker == 0xFF:
            i += 1
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return JPEG_COMPONENTS.get(encoded[i + 9], "unknown")
        i += 2 + length
    return "unknown"


def exif_orientation(encoded: bytes) -> int:
    """A JPEG's EXIF Orientation (1..8; 1: as stored), read from its header by PIL without decoding the pixels."""
    if encoded[:2] != b"\xff\xd8":
        return 1
    from PIL import Image

    try:
        with Image.open(io.BytesIO(encoded)) as image:
            value = image.getexif().get(ORIENTATION_TAG, 1)
    except Exception:  # a damaged EXIF block is metadata: the pixels, which TensorFlow decodes, are still good
        return 1
    return value if value in range(1, 9) else 1


ORIENTATION_TAG = 0x0112


def _orient(img, orientation: int):
    """The stored pixels turned upright, as PIL's exif_transpose turns them (2-8 flip and/or rotate)."""
    import tensorflow as tf

    if orientation in (5, 7):  # the transposes: across the main diagonal (5), then turned half way (7)
        img = tf.image.transpose(img)
    if orientation in (3, 6, 7, 8):  # counter-clockwise quarter turns
        img = tf.image.rot90(img, {3: 2, 6: 3, 7: 2, 8: 1}[orientation])
    if orientation == 2:
        img = tf.image.flip_left_right(img)
    if orientation == 4:
        img = tf.image.flip_up_down(img)
    return img


def _to_channels(img, channels: int):
    """A decoded image (1-4 channels, uint8) as `channels` channels, transparency composited over white.

    Dropping the alpha channel would leave whatever colour a transparent pixel happens to store
    (black in most icon and clip-art files, noise in some): the background a viewer shows is white.
    """
    import tensorflow as tf

    if img.shape[-1] in (2, 4):  # grey + alpha, RGB + alpha
        alpha = tf.cast(img[..., -1:], tf.float32) / 255.0
        colour = tf.cast(img[..., :-1], tf.float32) * alpha + 255.0 * (1.0 - alpha)
        img = tf.cast(tf.round(colour), tf.uint8)
    if img.shape[-1] == channels:
        return img
    return tf.image.grayscale_to_rgb(img) if channels == 3 else tf.image.rgb_to_grayscale(img)
