"""`dcgan prepare`: a dataset decoded, resized and written once as sharded TFRecord files (dcgan.data.prepared's format).

SOURCE is an image folder (with --labels, its immediate subfolders are the classes, sorted by name), an
IDX folder or mnist.npz, or CIFAR-10 (its batch folder or tar.gz), read by the same bounded readers as
training. Images are brought to --size and --channels exactly as training would (image_folder's resize and
crop, data.conform), written into OUT.partial/ and renamed to OUT only once the manifest is written: a
folder named OUT is always a finished dataset. A stale OUT.partial (a killed run) is removed at the next
start; --force replaces an earlier prepared dataset, and nothing else.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import sys
import time
from collections import Counter
from functools import partial
from pathlib import Path

import numpy as np

from dcgan import __version__
from dcgan.data import image_folder
from dcgan.data import prepared_format
from dcgan.core.config import ConfigError, upsampling_plan
from dcgan.data.datafiles import DataError
from dcgan.core.files import LOCK_FILE, RunLock, atomic_write, lock_run
from dcgan.core.errors import DcganError, first_line

ARRAY_CHUNK = 4096  # images of an in-memory source conformed at a time
NOT_IN_A_CLASS = "directly in SOURCE, not in a class subfolder (--labels)"


def prepare(source, out, size: int, channels: int, shard_mb: float = 64.0, labels: bool = False, force: bool = False,
            split: str = "train", shuffle: int | None = None, quiet: bool = False, threads: int | None = None) -> dict:
    """Write SOURCE as a prepared dataset at OUT; returns its manifest."""
    source, out = Path(source), Path(out)
    _check_settings(size, channels, shard_mb)
    if not source.exists():
        raise DataError(f"SOURCE: {source} does not exist")
    _check_out(source, out, force)
    partial = out.with_name(out.name + ".partial")
    reader = open_source(source, size, channels, labels, split, shuffle, threads)
    lock = _claim(partial)
    try:
        writer = ShardWriter(partial, shard_mb)
        with _progress(reader.total, quiet) as bar:
            for image, label, name in reader:
                writer.add(image, label, name)
                bar.update(1)
        shards = writer.close()
        if not shards:
            raise DataError(f"SOURCE: no usable images in {source}" + (f" ({reader.note})" if reader.note else ""))
        h = writer.content
        manifest = {
            "format": prepared_format.FORMAT, "version": prepared_format.VERSION,
            "count": sum(s["count"] for s in shards), "shape": [size, size, channels], "dtype": "uint8",
            "classes": reader.classes, "shards": shards, "content_sha256": h.hexdigest(),
            "features": {"image": f"bytes: raw uint8 pixels, {size}x{size}x{channels} in HWC order",
                         "label": "int64: class index into classes, -1 when there is none",
                         "name": "bytes: the file (relative to SOURCE) or array position the image came from"},
            "source": {"path": str(source.resolve()), "kind": reader.kind, "split": reader.split,
                       "skipped": dict(reader.skipped), "shuffle_seed": shuffle},
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "dcgan_version": __version__,
        }
        atomic_write(partial / prepared_format.MANIFEST, json.dumps(manifest, indent=1) + "\n")  # fsynced
        lock.release()
        (partial / LOCK_FILE).unlink()  # the finished dataset holds only its shards and manifest
        _publish(partial, out)
    except BaseException:
        _discard(partial)
        raise
    finally:
        lock.release()
    if reader.note:
        print(reader.note, file=sys.stderr)
    return manifest


def _check_settings(size: int, channels: int, shard_mb: float) -> None:
    try:
        upsampling_plan(size)
    except ConfigError as e:
        raise DcganError(f"--size: {e}".replace("data.image_size: ", "")) from None
    if channels not in (1, 3):
        raise DcganError(f"--channels: {channels} is not 1 (grayscale) or 3 (RGB)")
    if not shard_mb > 0 or shard_mb > 1 << 20:
        raise DcganError(f"--shard-mb: {shard_mb} is not a size in MB above 0")


def _check_out(source: Path, out: Path, force: bool) -> None:
    """OUT may be replaced only with --force, and only when it is an earlier prepared dataset; never SOURCE itself."""
    src, dst = source.resolve(), out.resolve()
    if dst == src or dst in src.parents:
        raise DcganError(f"OUT: {out} is SOURCE or holds it; write the prepared dataset somewhere else")
    if not (out.exists() or out.is_symlink()):
        return
    if not force:
        raise DcganError(f"OUT: {out} exists; pass --force to replace an earlier prepared dataset")
    if not prepared_format.is_prepared(out):
        raise DcganError(f"OUT: {out} is not a prepared dataset (no dcgan {prepared_format.MANIFEST}); --force replaces only "
                         "those, so nothing was changed")


def _claim(partial: Path) -> RunLock:
    """Make OUT.partial/ ours, removing what a killed prepare left there; returns the held lock.

    The run lock (rundir.RunLock, its file in OUT.partial) marks a folder a prepare made: one without it
    is not touched, and one whose lock is held belongs to a prepare still running.
    """
    if partial.exists() or partial.is_symlink():
        if partial.is_symlink() or not (partial / LOCK_FILE).is_file():
            raise DcganError(f"{partial} exists and is not an unfinished `dcgan prepare`; move it away first")
        lock_run(partial, "dcgan prepare").release()  # one line naming the holder while another prepare writes it
        print(f"prepare: removing {partial}, left by an interrupted run", file=sys.stderr)
        _discard(partial)
    try:
        partial.mkdir(parents=True)
    except OSError as e:
        raise DcganError(f"cannot create {partial}: {e.strerror or first_line(e)}") from None
    return lock_run(partial, "dcgan prepare")


def _discard(partial: Path) -> None:
    """Remove an unfinished OUT.partial (its name says it is unfinished even when this cannot run: a kill)."""
    from dcgan.core.files import remove_path

    remove_path(partial)


def _publish(partial: Path, out: Path) -> None:
    """OUT.partial -> OUT by rename; an earlier prepared dataset at OUT (--force) is moved aside, then deleted."""
    from dcgan.core.files import remove_path

    _fsync_dir(partial)
    old = None
    if out.exists():
        old = out.with_name(f"{out.name}.replaced-{os.getpid()}")
        os.rename(out, old)
    try:
        os.rename(partial, out)
    except BaseException:
        if old is not None:
            os.rename(old, out)
        raise
    _fsync_dir(out.parent)
    if old is not None:
        remove_path(old)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _progress:
    """A tqdm bar on stderr (only where stderr is a terminal, unless quiet)."""

    def __init__(self, total: int, quiet: bool):
        from tqdm import tqdm

        self.bar = tqdm(total=total, unit="img", file=sys.stderr, disable=True if quiet else None, dynamic_ncols=True,
                        desc="prepare")

    def __enter__(self):
        return self.bar

    def __exit__(self, *exc):
        self.bar.close()
        return False


# ---------------------------------------------------------------- writing shards


class ShardWriter:
    """Records into part files of about shard_mb each; close() names them shard-i-of-n and returns their entries."""

    def __init__(self, folder: Path, shard_mb: float):
        self.folder = folder
        self.limit = int(shard_mb * (1 << 20))
        self.content = hashlib.sha256()
        self.parts: list[dict] = []
        self.writer = None

    def add(self, image: np.ndarray, label: int, name: str) -> None:
        import tensorflow as tf

        record = prepared_format.encode_example(image, label, name)
        if self.writer is None:
            path = self.folder / f"part-{len(self.parts):05d}.tfrecord"
            self.writer = tf.io.TFRecordWriter(str(path))
            self.parts.append({"path": path, "count": 0, "bytes": 0})
        self.writer.write(record)
        prepared_format.content_update(self.content, image, label)
        part = self.parts[-1]
        part["count"] += 1
        part["bytes"] += len(record) + 16  # TFRecord framing: length, its CRC, the data's CRC
        if part["bytes"] >= self.limit:
            self._finish_shard()

    def _finish_shard(self) -> None:
        self.writer.close()
        self.writer = None
        part = self.parts[-1]
        with open(part["path"], "rb+") as f:
            os.fsync(f.fileno())
        part["sha256"] = prepared_format.file_sha256(part["path"])
        part["bytes"] = part["path"].stat().st_size

    def close(self) -> list[dict]:
        if self.writer is not None:
            self._finish_shard()
        entries = []
        for i, part in enumerate(self.parts):
            name = prepared_format.shard_name(i, len(self.parts))
            os.rename(part["path"], self.folder / name)
            entries.append({"file": name, "count": part["count"], "bytes": part["bytes"], "sha256": part["sha256"]})
        return entries


# ---------------------------------------------------------------- reading the source


class Source:
    """(image, label, name) at the target size, in order; kind, classes, the total to expect, what was skipped."""

    kind = ""
    classes = None
    split = None
    total = 0
    note = ""

    def __init__(self):
        self.skipped = Counter()

    def __iter__(self):
        raise NotImplementedError


def open_source(source: Path, size: int, channels: int, labels: bool, split: str, shuffle: int | None,
                threads: int | None) -> Source:
    """What SOURCE is, from its files: an IDX folder, mnist.npz, CIFAR-10 (folder or archive) or an image folder."""
    if prepared_format.is_prepared(source):
        raise DcganError(f"SOURCE: {source} is already a prepared dataset")
    if source.is_dir():
        if _holds_idx(source):
            return ArraySource("idx", source, size, channels, split, shuffle)
        if (source / "data_batch_1").exists() or (source / "test_batch").exists():
            return ArraySource("cifar10", source, size, channels, split, shuffle)
        return FolderSource(source, size, channels, labels, shuffle, threads)
    name = source.name.lower()
    if name.endswith(".npz"):
        return ArraySource("npz", source, size, channels, split, shuffle)
    if name.endswith((".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tar.xz")):
        return ArraySource("cifar10", source, size, channels, split, shuffle)
    raise DcganError(f"SOURCE: {source} is not an image folder, an IDX folder, an .npz or a CIFAR-10 archive")


def _holds_idx(folder: Path) -> bool:
    from dcgan.data.mnist import _find_idx

    for stem in ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte"):
        try:
            _find_idx(folder, stem)
            return True
        except DataError:
            pass
    return False


class ArraySource(Source):
    """MNIST-like IDX or npz, or CIFAR-10, labels included, conformed in chunks: a plain IDX file memory-mapped
    (any size), the others read whole by their loaders (bounded by MAX_ARRAY_BYTES)."""

    def __init__(self, kind: str, path: Path, size: int, channels: int, split: str, shuffle: int | None):
        super().__init__()
        from dcgan.data.cifar import load_cifar10_path
        from dcgan.data.mnist import load_idx_folder, load_mnist_npz

        self.kind, self.split, self.size, self.channels = kind, split, size, channels
        # an IDX file is mapped: one bigger than memory is read a chunk at a time
        loader = {"idx": partial(load_idx_folder, mmap=True), "npz": load_mnist_npz, "cifar10": load_cifar10_path}[kind]
        self.images, self.labels = loader(path, split, with_labels=True)
        self.total = len(self.images)
        self.order = np.arange(self.total) if shuffle is None else np.random.default_rng(shuffle).permutation(self.total)
        self.classes = _class_names(kind, int(self.labels.max()) + 1) if self.total else []

    def __iter__(self):
        from dcgan.data.pipeline import conform

        for start in range(0, self.total, ARRAY_CHUNK):
            idx = self.order[start : start + ARRAY_CHUNK]
            chunk = conform(self.images[idx], self.size, self.channels)
            _release(self.images)
            for i, image, label in zip(idx, chunk, self.labels[idx]):
                yield image, int(label), f"{self.kind}:{self.split}:{i}"


def _release(images: np.ndarray) -> None:
    """Unmap the pages of a memory-mapped source read so far (the page cache keeps them): without this, every page
    read stays in the process's resident memory until the kernel needs it back, and a 30 GB source looks like 30 GB."""
    mapped = getattr(images, "_mmap", None)
    if mapped is not None and hasattr(mmap, "MADV_DONTNEED"):
        mapped.madvise(mmap.MADV_DONTNEED)


def _class_names(kind: str, n: int) -> list[str]:
    """CIFAR-10's own names (batches.meta's); an IDX or npz file says nothing of its classes, so they are numbers."""
    from dcgan.data.cifar import CLASS_NAMES

    return list(CLASS_NAMES) if kind == "cifar10" and n <= len(CLASS_NAMES) else [str(i) for i in range(n)]


class FolderSource(Source):
    """Every PNG/JPEG under a folder, decoded on a thread pool; with labels, its immediate subfolders are the classes."""

    kind = "folder"

    def __init__(self, root: Path, size: int, channels: int, labels: bool, shuffle: int | None, threads: int | None):
        super().__init__()
        self.root, self.size, self.channels, self.threads = root, size, channels, threads
        files, self.others = image_folder.list_images(root)
        self.label_of = {}
        if labels:  # the same classes as a conditional run from the folder itself
            found = image_folder.label_by_subfolder(root, files)
            files, self.classes, self.label_of = found.files, found.classes, dict(zip(found.files, found.labels))
            if found.loose:
                self.skipped[NOT_IN_A_CLASS] = found.loose
        if shuffle is not None:
            files = [files[i] for i in np.random.default_rng(shuffle).permutation(len(files))]
        self.files = files
        self.total = len(files)

    def __iter__(self):
        for path, result in image_folder.decode_images(self.files, self.size, self.channels, self.threads):
            if isinstance(result, str):
                self.skipped[result] += 1
                continue
            yield result, self.label_of.get(path, prepared_format.NO_LABEL), str(path.relative_to(self.root))
        self.note = self._note()

    def _note(self) -> str:
        """The loader's note on what was skipped (as data.name: folder prints it), plus images outside a class folder."""
        unlabelled = self.skipped.get(NOT_IN_A_CLASS, 0)
        counts = Counter({k: v for k, v in self.skipped.items() if k != NOT_IN_A_CLASS})
        if not (counts or self.others or unlabelled):
            return ""
        note = image_folder._skip_message(self.root, counts, self.others).replace("data: ", "prepare: ", 1)
        return note + (f", {unlabelled} image(s) {NOT_IN_A_CLASS}" if unlabelled else "")


# ---------------------------------------------------------------- the command


def prepare_command(args) -> str:
    """`dcgan prepare`: prepare SOURCE OUT, or check a prepared dataset with --verify DIR; returns what to print."""
    if args.verify is not None:
        if args.source is not None or args.out is not None:
            raise DcganError("--verify DIR checks a prepared dataset; it takes no SOURCE or OUT")
        start = time.perf_counter()
        manifest = prepared_format.verify(args.verify)
        return (f"{manifest.path}: {manifest.describe()}; every shard's sha256, every record and the content hash "
                f"match the manifest ({time.perf_counter() - start:.1f} s)")
    if args.source is None or args.out is None:
        raise DcganError("give SOURCE and OUT (or --verify DIR)")
    if args.size is None or args.channels is None:
        raise DcganError("--size and --channels are required: the prepared dataset is stored at that size")
    start = time.perf_counter()
    manifest = prepare(args.source, args.out, args.size, args.channels, shard_mb=args.shard_mb, labels=args.labels,
                       force=args.force, split=args.split, shuffle=args.shuffle, quiet=args.quiet)
    mb = sum(s["bytes"] for s in manifest["shards"]) / 1e6
    print(f"prepare: {manifest['count']} images of {args.size}x{args.size}x{args.channels} in {len(manifest['shards'])} "
          f"shard(s), {mb:.1f} MB, in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return str(args.out)
