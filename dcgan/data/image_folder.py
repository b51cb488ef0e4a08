"""Image folders: every PNG/JPEG under a directory in, uint8 (N, size, size, C) out.

Each file's size, and the image size its header declares, are checked before the file is read
or decoded; files that fail are skipped and counted by reason, not fatal. `decode_images` decodes a
file list on a thread pool (dcgan prepare uses it too); `load_folder_cached` keeps a decoded folder as
one .npy under the cache directory, keyed by its file list, so the next run skips the decoding. A conditional
run labels a folder by its immediate subfolders (`label_by_subfolder`, which `dcgan prepare --labels` uses too).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
import sys
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dcgan.data import datafiles  # its limits, read at each check: one setting for every format
from dcgan.data.datafiles import DataError, FileTooLarge, NotRegularFile, open_regular

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
    return _load_folder(_folder(path), image_size, channels, limit).images


@dataclass
class Decoded:
    """A decoded folder: its images, with labelled=True their labels (int64) and class names, and the note printed."""

    images: np.ndarray
    labels: np.ndarray | None
    classes: list[str] | None
    note: str


def _load_folder(root: Path, image_size: int, channels: int, limit: int | None, labelled: bool = False) -> Decoded:
    files, others = list_images(root)
    skipped, found = Counter(), _classes_of(root, files) if labelled else None
    if found is not None:
        files = found.files
        if found.loose:  # counted with the other skipped files
            skipped[NOT_IN_A_CLASS] = found.loose
    file_labels = found.labels if found is not None else [None] * len(files)
    images, labels, tried = [], [], 0
    # one file at a time, in order, in this thread: decode_images(threads=...) is for `dcgan prepare`
    for label, (_, result) in zip(file_labels, decode_images(files, image_size, channels, threads=0)):
        tried += 1
        if isinstance(result, str):
            skipped[result] += 1
        else:
            images.append(result)
            labels.append(label)
            if limit and len(images) >= limit:
                break
    note = _skip_message(root, skipped, others) if skipped or others else ""
    if note:
        print(note, file=sys.stderr)
    if not images:
        raise DataError(f"data.path: no readable PNG/JPEG images under {root}")
    if found is None:
        return Decoded(np.stack(images), None, None, note)
    _check_every_class_has_an_image(root, found.classes, labels, file_labels[tried:], limit)
    return Decoded(np.stack(images), np.array(labels, np.int64), found.classes, note)


def _folder(path: str | Path) -> Path:
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"data.path: {root} is not a directory")
    return root


def list_images(root: Path) -> tuple[list[Path], int]:
    """(every PNG/JPEG name under root, sorted; how many other files there are).

    A symbolic link to a file listed already is left out: collections link one picture into several
    categories (Debian's openclipart-png does, 504 times), and training on it twice would weight it.
    """
    entries = sorted(root.rglob("*"))
    files, seen = [], set()
    for p in entries:
        if p.suffix.lower() not in IMAGE_SUFFIXES or p.is_dir():
            continue
        target = os.path.realpath(p)
        if target not in seen:  # the first name in sorted order stands for the file
            seen.add(target)
            files.append(p)
    others = sum(1 for p in entries if p.is_file() and p.suffix.lower() not in IMAGE_SUFFIXES)
    return files, others


# ---------------------------------------------------------------- classes from subfolders

NOT_IN_A_CLASS = "directly in the folder, not in a class subfolder"


@dataclass(frozen=True)
class Subfolders:
    """Image files labelled by the immediate subfolder of the root that holds them."""

    files: list[Path]  # the files inside a class subfolder, in the order given
    labels: list[int]  # each one's class: its index in classes
    classes: list[str]  # the subfolders holding an image file, sorted by name
    loose: int  # image files directly in the root: they have no class


def label_by_subfolder(root: Path, files: list[Path]) -> Subfolders:
    """The class of each file: its top-level folder under root (nested deeper, it still belongs to that one)."""
    in_class = [(f, f.relative_to(root).parts) for f in files]
    in_class = [(f, parts[0]) for f, parts in in_class if len(parts) > 1]
    classes = sorted({name for _, name in in_class})
    index = {name: i for i, name in enumerate(classes)}
    return Subfolders([f for f, _ in in_class], [index[name] for _, name in in_class], classes, len(files) - len(in_class))


def _classes_of(root: Path, files: list[Path]) -> Subfolders:
    found = label_by_subfolder(root, files)
    if not found.classes:
        raise DataError(f"data.path: {root} has no class subfolders; a conditional run labels images by their "
                        "immediate subfolders")
    return found


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


def decode_images(files: list[Path], image_size: int, channels: int, threads: int | None = None):
    """(path, uint8 image or the reason it was skipped) for each file, in order, decoded on a thread pool
    (threads=0: in the calling thread).

    At most a few files per thread are in flight, so memory stays bounded however long the list;
    closing the generator early (a limit reached) cancels what is still queued.
    """
    threads = DECODE_THREADS if threads is None else threads
    if threads <= 0:
        for f in files:
            yield f, decode_image(f, image_size, channels)
        return
    with ThreadPoolExecutor(threads, thread_name_prefix="dcgan-decode") as pool:
        pending = deque()
        try:
            for f in files:
                pending.append((f, pool.submit(decode_image, f, image_size, channels)))
                if len(pending) >= 4 * threads:
                    f0, future = pending.popleft()
                    yield f0, future.result()
            while pending:
                f0, future = pending.popleft()
                yield f0, future.result()
        finally:
            for _, future in pending:
                future.cancel()


def decode_image(path: Path, image_size: int, channels: int):
    """One file as uint8 (image_size, image_size, channels), or the reason (a string) it is skipped."""
    import tensorflow as tf

    try:
        encoded = _read_image_file(path, image_size)
        img = _to_channels(tf.io.decode_image(encoded, expand_animations=False), channels)
        return _resize_crop(img, image_size).numpy()
    except _Skip as e:
        return str(e)
    except (tf.errors.ResourceExhaustedError, MemoryError):  # what the header checks did not foresee
        return "too big for memory"
    except (tf.errors.InvalidArgumentError, OSError, ValueError):
        return UNREADABLE


# ---------------------------------------------------------------- the decoded-folder cache

CACHE_FORMAT = 3  # part of every key: a change to the decoding must not reuse old caches


def load_folder_cached(path: str | Path, image_size: int, channels: int, limit: int | None = None, labelled: bool = False):
    """load_folder, decoded once: the result is kept as <cache>/folders/<folder>/<kind>-<key>.npy.

    The key covers the sorted file list with each file's size and mtime, image_size, channels, limit and
    whether the load is labelled, so adding, removing or touching a file decodes the folder again (and replaces
    the entry); the loader's note on skipped files is kept with it and printed again on a hit. With labelled=True
    the result is (images, int64 labels, class names): the images in class subfolders, labelled by them; the labels
    are kept beside the pixels and the classes in the note's file. A labelled and an unlabelled entry of one
    folder are kept side by side, so alternating conditional and plain runs decode it once each.
    """
    from dcgan.core.files import cache_dir  # dcgan.data.pipeline imports this module

    root = _folder(path)
    folder_dir = cache_dir() / "folders" / hashlib.sha256(os.fsencode(root.resolve())).hexdigest()[:16]
    kind = "labelled" if labelled else "images"
    entry = folder_dir / f"{kind}-{folder_key(root, image_size, channels, limit, labelled)}.npy"
    decoded = _read_cached(entry, image_size, channels, labelled)
    if decoded is None:
        decoded = _load_folder(root, image_size, channels, limit, labelled)
        _write_cache(folder_dir, entry, decoded, {"source": str(root.resolve()), "note": decoded.note,
                                                  "classes": decoded.classes})
    elif decoded.note:
        print(decoded.note, file=sys.stderr)
    return (decoded.images, decoded.labels, decoded.classes) if labelled else decoded.images


def folder_key(root: Path, image_size: int, channels: int, limit: int | None, labelled: bool = False) -> str:
    """sha256 over what decoding depends on: every file's relative name, size and mtime, and the settings."""
    settings = {"format": CACHE_FORMAT, "size": image_size, "channels": channels, "limit": limit, "labelled": labelled}
    h = hashlib.sha256(json.dumps(settings).encode())
    for p in sorted(root.rglob("*")):
        try:
            st = p.stat()
        except OSError:  # a dangling link: listed by name, so a new target changes the key
            st = None
        h.update(os.fsencode(p.relative_to(root)) + b"\0")
        h.update(f"{st.st_size if st else -1}:{st.st_mtime_ns if st else -1}:{st.st_mode if st else -1}\n".encode())
    return h.hexdigest()[:32]


def _labels_path(entry: Path) -> Path:
    return entry.with_suffix(".labels.npy")


def _read_cached(entry: Path, image_size: int, channels: int, labelled: bool) -> Decoded | None:
    """The entry, or None when it is absent, damaged or not what this load needs (then the folder is decoded again)."""
    images = _read_array(entry)
    if images is None or images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (image_size, image_size, channels):
        return None
    info = _read_info(entry.with_suffix(".json"))
    note, classes, labels = str(info.get("note", "")), info.get("classes"), None
    if labelled:
        labels = _read_array(_labels_path(entry))
        if not _valid_labels(labels, classes, len(images)):
            return None
    return Decoded(images, labels, classes, note)


def _valid_labels(labels: np.ndarray | None, classes, n: int) -> bool:
    if not (isinstance(classes, list) and classes and all(isinstance(c, str) for c in classes)):
        return False
    return (labels is not None and labels.dtype == np.int64 and labels.shape == (n,)
            and labels.min() >= 0 and labels.max() < len(classes))


def _read_array(path: Path) -> np.ndarray | None:
    try:
        with open_regular(path) as f:
            return np.load(f, allow_pickle=False)
    except (OSError, ValueError, DataError, EOFError):  # absent, or damaged: decode again
        return None


def _read_info(path: Path) -> dict:
    try:
        with open_regular(path, 1 << 20) as f:
            info = json.loads(f.read())
    except (OSError, ValueError, DataError):
        return {}
    return info if isinstance(info, dict) else {}


def _write_cache(folder_dir: Path, entry: Path, decoded: Decoded, info: dict) -> None:
    """Write the entry atomically and drop this folder's older entries of its kind; a cache that can't be written is no error."""
    from dcgan.core.files import atomic_path, atomic_write  # it imports the config, which this module does not need

    try:
        arrays = {entry: decoded.images}
        if decoded.labels is not None:
            arrays[_labels_path(entry)] = decoded.labels
        for path, array in arrays.items():
            with atomic_path(path) as tmp:  # tmp keeps the .npy suffix, so np.save adds none
                np.save(tmp, array, allow_pickle=False)
        atomic_write(entry.with_suffix(".json"), json.dumps(info) + "\n")  # last: the entry is complete once it is there
        for old in folder_dir.iterdir():
            if _replaces(entry, old):
                old.unlink(missing_ok=True)
        _prune(folder_dir.parent)
    except OSError as e:
        print(f"data: could not cache the decoded folder in {folder_dir}: {e.strerror or e}", file=sys.stderr)


ENTRY_KINDS = ("images", "labelled")


def _replaces(entry: Path, old: Path) -> bool:
    """Whether writing entry makes old stale: another key of its kind, or a file of no kind (an older cache format)."""
    if old.name.startswith("."):  # another writer's temporary file (rundir.atomic_path)
        return False
    name, old_name = entry.name.split(".")[0], old.name.split(".")[0]
    kind, old_kind = name.split("-")[0], old_name.split("-")[0]
    return old_name != name and (old_kind == kind or old_kind not in ENTRY_KINDS)


def _prune(folders: Path) -> None:
    """Remove the entries of folders that no longer exist (temporary folders would pile up otherwise)."""
    import shutil

    for d in folders.iterdir():
        notes = list(d.glob("*.json")) if d.is_dir() else []
        try:
            source = json.loads(notes[0].read_text()).get("source") if notes else None
        except (OSError, ValueError, AttributeError):
            source = None
        if source and not Path(source).is_dir():
            shutil.rmtree(d, ignore_errors=True)


def _skip_message(root: Path, skipped: Counter, others: int) -> str:
    reasons = "".join(f", {n} image(s) {reason}" for reason, n in skipped.items() if reason != UNREADABLE)
    return f"data: {root}: skipped {skipped[UNREADABLE]} unreadable image(s){reasons} and {others} non-image file(s)"


def _read_image_file(path: Path, image_size: int) -> bytes:
    """The file's bytes, read only once its header's size passed the checks; _Skip (or ValueError) otherwise."""
    try:
        file = open_regular(path, MAX_IMAGE_FILE_BYTES, "an image file")
    except FileNotFoundError:
        raise _Skip("that are broken links (or vanished since the listing)") from None
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


def _resize_crop(img, size: int):
    import tensorflow as tf

    h, w = tf.shape(img)[0], tf.shape(img)[1]
    scale = size / tf.cast(tf.minimum(h, w), tf.float32)
    new_hw = tf.cast(tf.math.ceil(tf.cast(tf.stack([h, w]), tf.float32) * scale), tf.int32)
    img = tf.image.resize(img, new_hw, method="area", antialias=True)
    img = tf.image.resize_with_crop_or_pad(img, size, size)
    return tf.cast(tf.clip_by_value(tf.round(img), 0, 255), tf.uint8)

