"""`dcgan prepare`: a dataset decoded, resized and written once as sharded TFRecord files (dcgan.data.prepared's format).

SOURCE is an image folder (with --labels, its immediate subfolders are the classes, sorted by name), an
IDX folder or mnist.npz, or CIFAR-10 (its batch folder or tar.gz), read by the same bounded readers as
training. Images are brought to --size and --channels exactly as training would (image_folder's resize and
crop, data.conform), written into OUT.partial/ and renamed to OUT only once the manifest is written: a
folder named OUT is always a finished dataset. A stale OUT.partial (a killed run) is removed at the next
start; --force replaces an earlier prepared dataset, and nothing else (prepare_output says what may go).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from dcgan import __version__
from dcgan.data import prepared_format
from dcgan.core.config import ConfigError, upsampling_plan
from dcgan.data.datafiles import DataError
from dcgan.data.fit import Fit, pad_colour
from dcgan.data.image_folder import DEFAULT_FIT
from dcgan.data.sources import prepare_reader
from dcgan.core.files import LOCK_FILE, atomic_write
from dcgan.core.errors import DcganError
from dcgan.tools import prepare_output as output



def prepare(source, out, size: int, channels: int, shard_mb: float = 64.0, labels: bool | str = False,
            force: bool = False, split: str = "train", shuffle: int | None = None, quiet: bool = False,
            threads: int | None = None, fit: Fit = DEFAULT_FIT, dedupe: bool = False) -> dict:
    """Write SOURCE as a prepared dataset at OUT; returns its manifest.

    labels: True (an image folder's subfolders, or a dataset's own labels) or a label file; fit: data.fit, resize
    and pad, for an image folder or archive; dedupe: drop exact duplicate files (reported either way).
    """
    source, out = Path(source), Path(out)
    _check_settings(size, channels, shard_mb, shuffle, fit)
    if not source.exists():
        raise DataError(f"SOURCE: {source} does not exist")
    output.check_out(source, out, force)
    partial = out.with_name(out.name + ".partial")
    reader = open_source(source, size, channels, labels, split, shuffle, threads, fit, dedupe)
    lock = output.claim(partial)
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
                       "skipped": dict(reader.skipped), "shuffle_seed": shuffle,
                       **({"fit": fit.fit, "resize": fit.resize, "pad": fit.pad} if reader.kind == "folder" else {}),
                       **({"labels_file": labels} if isinstance(labels, str) else {}),
                       **({"duplicates": len(getattr(reader, "duplicates", ())), "deduped": dedupe}
                          if reader.kind == "folder" else {})},
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "dcgan_version": __version__,
        }
        atomic_write(partial / prepared_format.MANIFEST, json.dumps(manifest, indent=1) + "\n")  # fsynced
        lock.release()
        (partial / LOCK_FILE).unlink()  # the finished dataset holds only its shards and manifest
        output.publish(partial, out)
    except BaseException:
        output.discard(partial)
        raise
    finally:
        lock.release()
    if reader.note:
        print(reader.note, file=sys.stderr)
    return manifest


def _check_settings(size: int, channels: int, shard_mb: float, shuffle: int | None, fit: Fit) -> None:
    if fit.fit == "random":
        raise DcganError("--fit: random cuts a new window every epoch, so it is a training setting (data.fit: random); "
                         "prepare stores one picture per file: choose center, center-wide, pad or stretch")
    try:
        pad_colour(fit.pad)
    except ValueError as e:
        raise DcganError(str(e).replace("data.pad", "--pad")) from None
    try:
        upsampling_plan(size)
    except ConfigError as e:
        raise DcganError(f"--size: {e}".replace("data.image_size: ", "")) from None
    if channels not in (1, 3):
        raise DcganError(f"--channels: {channels} is not 1 (grayscale) or 3 (RGB)")
    if not shard_mb > 0 or shard_mb > 1 << 20:
        raise DcganError(f"--shard-mb: {shard_mb} is not a size in MB above 0")
    if shuffle is not None and not (isinstance(shuffle, int) and not isinstance(shuffle, bool) and shuffle >= 0):
        raise DcganError(f"--shuffle: {shuffle!r} is not a seed (a whole number, 0 or more)")


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


def open_source(source: Path, size: int, channels: int, labels: bool | str, split: str, shuffle: int | None,
                threads: int | None, fit: Fit = DEFAULT_FIT, dedupe: bool = False):
    """What SOURCE is, from its files, and its reader (dcgan.data.prepare_readers): the registered dataset that
    claims it (an IDX folder or mnist.npz, CIFAR-10's folder or archive, ...), else an image folder."""
    return prepare_reader(source, size, channels, labels, split, shuffle, threads, fit, dedupe)


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
                       force=args.force, split=args.split, shuffle=args.shuffle, quiet=args.quiet,
                       fit=Fit(args.fit, args.resize, args.pad), dedupe=args.dedupe)
    mb = sum(s["bytes"] for s in manifest["shards"]) / 1e6
    print(f"prepare: {manifest['count']} images of {args.size}x{args.size}x{args.channels} in {len(manifest['shards'])} "
          f"shard(s), {mb:.1f} MB, in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return str(args.out)
