"""The decoded-folder cache: an image folder decoded once, kept as .npy under the cache directory.

An entry is keyed by the folder's listing (every entry's relative name, size, mtime and mode, through the same
walk as training: dcgan.data.folder_walk) and the decoding settings, so a changed folder or a changed decoder
(CACHE_FORMAT) is decoded again, never read from a stale entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np

from dcgan.data.datafiles import DataError, open_regular
from dcgan.data.fit import Fit
from dcgan.data.image_folder import DEFAULT_FIT, Decoded, decode_folder, folder_root
from dcgan.data.pictures import update_key


CACHE_FORMAT = 4  # part of every key: a change to the decoding must not reuse old caches (4: EXIF orientation)


def load_folder_cached(path: str | Path, image_size: int, channels: int, limit: int | None = None, labelled: bool = False,
                       fit: Fit = DEFAULT_FIT, label_file: str | None = None):
    """load_folder, decoded once: the result is kept as <cache>/folders/<folder>/<kind>-<key>.npy.

    The key covers the sorted file list with each file's size and mtime, image_size, channels, limit and
    whether the load is labelled, so adding, removing or touching a file decodes the folder again (and replaces
    the entry); the loader's note on skipped files is kept with it and printed again on a hit. With labelled=True
    the result is (images, int64 labels, class names): the images in class subfolders, labelled by them; the labels
    are kept beside the pixels and the classes in the note's file. A labelled and an unlabelled entry of one
    folder are kept side by side, so alternating conditional and plain runs decode it once each. A folder may be an
    archive (keyed by its size, mtime and inode); fit and label_file (data.fit/resize/pad, data.labels) are part of
    the key, and with their defaults the key is the one written before they existed.
    """
    from dcgan.core.files import cache_dir

    root = folder_root(path)
    folder_dir = cache_dir() / "folders" / hashlib.sha256(os.fsencode(root.resolve())).hexdigest()[:16]
    # one entry per kind and decoding (fit, filter, pad, size, channels): another decoding of the folder keeps its own
    kind = ("labelled" if labelled else "images") + _decoding_tag(image_size, channels, fit)
    entry = folder_dir / f"{kind}-{folder_key(root, image_size, channels, limit, labelled, fit, label_file)}.npy"
    decoded = _read_cached(entry, fit.stored_size(image_size), channels, labelled)
    if decoded is None:
        decoded = decode_folder(root, image_size, channels, limit, labelled, fit, label_file)
        _write_cache(folder_dir, entry, decoded, {"source": str(root.resolve()), "note": decoded.note,
                                                  "classes": decoded.classes})
    elif decoded.note:
        print(decoded.note, file=sys.stderr)
    return (decoded.images, decoded.labels, decoded.classes) if labelled else decoded.images


def folder_key(root: Path, image_size: int, channels: int, limit: int | None, labelled: bool = False,
               fit: Fit = DEFAULT_FIT, label_file: str | None = None) -> str:
    """sha256 over what decoding depends on: every file's relative name, size and mtime, and the settings."""
    settings = {"format": CACHE_FORMAT, "size": image_size, "channels": channels, "limit": limit, "labelled": labelled,
                **fit.key(), **({"labels": label_file} if label_file else {})}
    h = hashlib.sha256(json.dumps(settings).encode())
    update_key(h, root)
    if label_file and Path(label_file).is_absolute():  # inside the folder, the listing covers it already
        try:
            st = Path(label_file).stat()
            h.update(f"labels:{st.st_size}:{st.st_mtime_ns}\n".encode())
        except OSError:
            pass
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
    if old.name.startswith("."):  # another writer's temporary file (core.files.atomic_path)
        return False
    name, old_name = entry.name.split(".")[0], old.name.split(".")[0]
    kind, old_kind = name.rsplit("-", 1)[0], old_name.rsplit("-", 1)[0]  # the key after the last "-" is hex
    return old_name != name and (old_kind == kind or old_kind.split("+")[0] not in ENTRY_KINDS)


def _decoding_tag(image_size: int, channels: int, fit: Fit) -> str:
    """'' for the default decoding at any size (its entries keep their names), else '+<fit>+<filter>+<pad>+<size>x<c>'."""
    if fit.is_default:
        return ""
    return f"+{fit.fit}+{fit.resize}+{fit.pad.lstrip('#')}+{image_size}x{channels}"


def _prune(folders: Path) -> None:
    """Remove the entries of folders that no longer exist (temporary folders would pile up otherwise)."""
    import shutil

    for d in folders.iterdir():
        notes = list(d.glob("*.json")) if d.is_dir() else []
        try:
            source = json.loads(notes[0].read_text()).get("source") if notes else None
        except (OSError, ValueError, AttributeError):
            source = None
        if source and not Path(source).exists():  # a folder or an archive that is gone
            shutil.rmtree(d, ignore_errors=True)

