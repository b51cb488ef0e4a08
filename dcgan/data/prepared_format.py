"""The prepared dataset's format on disk: what `dcgan prepare` writes and every reader checks.

A prepared dataset is a folder of sharded TFRecord files, `shard-00000-of-00012.tfrecord`, ..., each record a
`tf.train.Example` of one image (`image`: its raw uint8 pixels, H*W*C bytes in HWC order; `label`: int64, -1
when there is none; `name`: the file or array position it came from), and a `manifest.json` that says what
is there: the count, the shape, the class names, every shard's count, size and sha256, a hash of the whole
content, where it came from and which dcgan wrote it (`FORMAT`, `VERSION`).

`read_manifest` checks the manifest against the shards (each present, a regular file of the size the
manifest says); `verify` also checks every shard's sha256, every record and the content hash. Records carry
TFRecord's own CRCs, so a shard damaged inside its size is caught when it is read (`raise_read_error` turns
that into one error line).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dcgan.data import datafiles  # its limits, read at each check
from dcgan.data.datafiles import DataError, open_regular
from dcgan.core.errors import first_line

FORMAT = "dcgan-prepared-dataset"  # the manifest's "format": what --force may replace
VERSION = 1  # the newest manifest "version" this dcgan reads; bumped when the layout changes
MANIFEST = "manifest.json"
MAX_MANIFEST_BYTES = 64 << 20  # a manifest lists every shard: 64 MB is ~300,000 of them
SHARD_NAME = re.compile(r"shard-(\d{5,})-of-(\d{5,})\.tfrecord")
NO_LABEL = -1

READ_BUFFER_BYTES = 1 << 20  # per open shard
RECORD_FRAMING_BYTES = 16  # TFRecord's length, its CRC and the data's CRC: a record takes its pixels and more
MAX_SHARD_BYTES = 1 << 42  # 4 TiB; prepare's --shard-mb goes up to 1 TiB (a shard ends one record past it)


def shard_name(index: int, total: int) -> str:
    return f"shard-{index:05d}-of-{total:05d}.tfrecord"


# ---------------------------------------------------------------- the manifest


@dataclass(frozen=True)
class Shard:
    file: str
    count: int
    bytes: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    path: Path  # the dataset folder
    count: int
    shape: tuple[int, int, int]  # (H, W, C)
    classes: list | None
    shards: tuple[Shard, ...]
    content_sha256: str
    data: dict  # the manifest as read

    @property
    def image_bytes(self) -> int:
        return math.prod(self.shape)

    def describe(self) -> str:
        h, w, c = self.shape
        return f"{self.count} images of {h}x{w}x{c} in {len(self.shards)} shard(s)"


def is_prepared(path: str | Path) -> bool:
    """Whether path is a folder that `dcgan prepare` wrote (its manifest says so); nothing else is ever replaced."""
    path = Path(path)
    if path.is_symlink() or not path.is_dir():
        return False
    try:
        return _read_json(path / MANIFEST).get("format") == FORMAT
    except (DataError, OSError, AttributeError):
        return False


def _read_json(path: Path) -> dict:
    try:
        with open_regular(path, MAX_MANIFEST_BYTES, "a manifest") as f:
            data = json.loads(f.read(MAX_MANIFEST_BYTES + 1))
    except FileNotFoundError:
        raise DataError(f"{path.parent} is not a prepared dataset (no {MANIFEST}; make one with `dcgan prepare`)") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: not valid JSON ({first_line(e)})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: not a prepared dataset's manifest (expected a JSON object)")
    return data


def read_manifest(path: str | Path, check_files: bool = True) -> Manifest:
    """The manifest of a prepared dataset, validated; with check_files, every shard is there at its size.

    One DataError line for: no manifest, another program's JSON, a newer format, fields of the wrong
    kind, counts that do not add up, a shard missing, not a regular file, or not the size listed.
    """
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"data.path: {root} is not a directory (a prepared dataset is a folder made by `dcgan prepare`)")
    where = root / MANIFEST
    data = _read_json(where)
    if data.get("format") != FORMAT:
        raise DataError(f"{where}: not a dcgan prepared dataset's manifest (format {data.get('format')!r})")
    version = data.get("version")
    if not _is_int(version) or version < 1:
        raise DataError(f"{where}: bad format version {version!r}")
    if version > VERSION:
        raise DataError(f"{where}: written in format version {version} by a newer dcgan "
                        f"({data.get('dcgan_version', '?')}); this one reads up to version {VERSION}: upgrade dcgan")
    try:
        manifest = _parse(root, data)
    except (KeyError, TypeError, ValueError) as e:
        raise DataError(f"{where}: malformed manifest ({type(e).__name__}: {first_line(e)})") from None
    if check_files:
        check_shards(manifest)
    return manifest


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _parse(root: Path, data: dict) -> Manifest:
    where = root / MANIFEST
    shape = tuple(data["shape"])
    if len(shape) != 3 or not all(_is_int(v) and v > 0 for v in shape) or shape[2] not in (1, 3):
        raise ValueError(f"shape {data['shape']!r} is not [H, W, 1 or 3]")
    shards = []
    for i, entry in enumerate(data["shards"]):
        shard = Shard(str(entry["file"]), entry["count"], entry["bytes"], str(entry["sha256"]))
        # a plain name inside the folder: a manifest can't point the reader at /etc/passwd or ../other
        if SHARD_NAME.fullmatch(shard.file) is None:
            raise ValueError(f"shard {i}: {shard.file!r} is not a shard file name like {shard_name(0, 1)}")
        if not (_is_int(shard.count) and shard.count > 0 and _is_int(shard.bytes) and 0 < shard.bytes <= MAX_SHARD_BYTES):
            raise ValueError(f"shard {shard.file}: count and bytes must be positive integers (bytes at most "
                             f"{MAX_SHARD_BYTES})")
        # a count is printed and sizes every epoch: it must be one the shard's bytes can hold
        smallest = math.prod(shape) + RECORD_FRAMING_BYTES
        if shard.count > shard.bytes // smallest:
            raise ValueError(f"shards[{i}].count {shard.count}: {shard.file}'s {shard.bytes} bytes hold at most "
                             f"{shard.bytes // smallest} records of {'x'.join(map(str, shape))}")
        shards.append(shard)
    count = data["count"]
    if not _is_int(count) or count < 1 or not shards:
        raise ValueError(f"count {count!r}: a prepared dataset holds at least one image in at least one shard")
    listed = sum(s.count for s in shards)
    if listed != count:
        raise DataError(f"{where} disagrees with its shards: count {count}, but the shards hold {listed} images "
                        "(prepare the dataset again)")
    classes = data.get("classes")
    if classes is not None and not (isinstance(classes, list) and all(isinstance(c, str) for c in classes)):
        raise ValueError("classes must be a list of names or null")
    return Manifest(root, count, shape, classes, tuple(shards), str(data["content_sha256"]), data)


def check_shards(manifest: Manifest) -> None:
    """Every shard is present, a regular file, of the size the manifest lists (no reading: cheap at every start)."""
    for shard in manifest.shards:
        f = manifest.path / shard.file
        try:
            with open_regular(f, None, "a shard") as file:
                size = file.seek(0, 2)
        except FileNotFoundError:
            raise DataError(f"{manifest.path}: shard {shard.file} is missing (the manifest lists "
                            f"{len(manifest.shards)} shards; prepare the dataset again)") from None
        if size != shard.bytes:
            raise DataError(f"{manifest.path}: shard {shard.file} is {size} bytes but the manifest says {shard.bytes} "
                            "(truncated or changed since it was prepared; prepare the dataset again)")


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open_regular(path, None, "a shard") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def verify(path: str | Path) -> Manifest:
    """Everything read back: each shard's sha256 and record count, every record's size and label, the content hash."""
    manifest = read_manifest(path)
    for shard in manifest.shards:
        if file_sha256(manifest.path / shard.file) != shard.sha256:
            raise DataError(f"{manifest.path}: shard {shard.file} does not match its sha256 in the manifest "
                            "(changed or damaged since it was prepared; prepare the dataset again)")
    content = hashlib.sha256()
    for shard in manifest.shards:
        n = 0
        for images, labels in _raw_records(manifest, shard.file):
            for image, label in zip(images, labels):
                _check_record(manifest, shard.file, n, image, int(label))
                content_update(content, np.frombuffer(image, np.uint8), label)
                n += 1
        if n != shard.count:
            raise DataError(f"{manifest.path}: shard {shard.file} holds {n} records but the manifest says {shard.count}")
    if content.hexdigest() != manifest.content_sha256:
        raise DataError(f"{manifest.path}: the images and labels do not match the manifest's content hash")
    return manifest


def _raw_records(manifest: Manifest, file: str, batch: int = 1024):
    """(pixel bytes, labels) numpy batches of one shard, undecoded: verify checks each record's size itself."""
    import tensorflow as tf

    def parse(serialized):
        features = tf.io.parse_example(serialized, _features(with_meta=True))
        return features["image"], features["label"]

    ds = tf.data.TFRecordDataset(str(manifest.path / file), buffer_size=READ_BUFFER_BYTES).batch(batch).map(parse)
    with _read_errors(manifest.path):
        yield from ds.as_numpy_iterator()


def _check_record(manifest: Manifest, file: str, index: int, image: bytes, label: int) -> None:
    """One record against the manifest: its pixels of the manifest's shape, its label one of its classes (or -1)."""
    where = f"{manifest.path}: shard {file} record {index}"
    if len(image) != manifest.image_bytes:
        raise DataError(f"{where} holds {len(image)} bytes of pixels, but the manifest's shape "
                        f"{'x'.join(map(str, manifest.shape))} is {manifest.image_bytes} bytes (prepare the dataset again)")
    if manifest.classes is None and label != NO_LABEL:
        raise DataError(f"{where} has label {label}, but the manifest lists no classes (its records must say "
                        f"{NO_LABEL}, no label)")
    if manifest.classes is not None and not 0 <= label < len(manifest.classes):
        raise DataError(f"{where} has label {label}, not a class of the manifest (0..{len(manifest.classes) - 1}; "
                        f"{NO_LABEL}: prepared without labels)")


def content_update(h, image: np.ndarray, label: int) -> None:
    """What the manifest's content_sha256 covers, per record in order: the pixels, then the label as int64."""
    h.update(image.tobytes() + int(label).to_bytes(8, "little", signed=True))


# ---------------------------------------------------------------- records


def encode_example(image: np.ndarray, label: int, name: str) -> bytes:
    import tensorflow as tf

    feature = tf.train.Feature
    return tf.train.Example(features=tf.train.Features(feature={
        "image": feature(bytes_list=tf.train.BytesList(value=[np.ascontiguousarray(image, np.uint8).tobytes()])),
        "label": feature(int64_list=tf.train.Int64List(value=[int(label)])),
        "name": feature(bytes_list=tf.train.BytesList(value=[name.encode("utf-8", "surrogateescape")])),
    })).SerializeToString()


def _features(with_meta: bool) -> dict:
    import tensorflow as tf

    spec = {"image": tf.io.FixedLenFeature([], tf.string)}
    if with_meta:
        spec.update(label=tf.io.FixedLenFeature([], tf.int64, NO_LABEL), name=tf.io.FixedLenFeature([], tf.string, b""))
    return spec


def decoder(shape: tuple[int, int, int], with_meta: bool = False):
    """A batch of serialized Examples -> uint8 (n, H, W, C) [, int64 labels, names]: one parse and one decode per batch."""
    import tensorflow as tf

    def decode(serialized):
        features = tf.io.parse_example(serialized, _features(with_meta))
        # decode_raw of records of different sizes fails the batch, and records of one other size fail the reshape
        # (with -1 they would become more or fewer images than records): a record of the wrong shape is an error
        raw = tf.io.decode_raw(features["image"], tf.uint8)
        pixels = tf.reshape(raw, [tf.shape(raw)[0], *shape])
        return (pixels, features["label"], features["name"]) if with_meta else pixels

    return decode


# in the stream's label check, so raise_read_error can tell it from a record of the wrong shape
BAD_LABEL = "a record has no label or one that is not a class of the manifest"


def labelled_decoder(shape: tuple[int, int, int], n_classes: int):
    """A batch of serialized Examples -> (uint8 (n, H, W, C), int32 labels), each label checked to be in 0..n_classes-1."""
    import tensorflow as tf

    decode = decoder(shape, with_meta=True)

    def images_and_labels(serialized):
        pixels, labels, _ = decode(serialized)
        checks = [tf.debugging.assert_non_negative(labels, message=BAD_LABEL),
                  tf.debugging.assert_less(labels, tf.constant(n_classes, tf.int64), message=BAD_LABEL)]
        with tf.control_dependencies(checks):
            return pixels, tf.cast(labels, tf.int32)

    return images_and_labels


def check_labels(labels: np.ndarray, manifest: Manifest) -> None:
    """Every label a class of the manifest (the in-memory counterpart of labelled_decoder's check)."""
    n = len(manifest.classes or [])
    if labels.size and (labels.min() < 0 or labels.max() >= n):
        raise DataError(f"{manifest.path}: {BAD_LABEL} (labels {labels.min()}..{labels.max()}, classes 0..{n - 1}; "
                        "-1: prepared without labels); prepare it again with --labels")


def read_shard(manifest: Manifest, file: str, take: int | None = None, batch: int = 1024):
    """(images, labels, names) numpy batches of one shard, in stored order."""
    import tensorflow as tf

    ds = tf.data.TFRecordDataset(str(manifest.path / file), buffer_size=READ_BUFFER_BYTES)
    if take is not None:
        ds = ds.take(take).apply(tf.data.experimental.assert_cardinality(take))  # a shard shorter than its count
    ds = ds.batch(batch).map(decoder(manifest.shape, with_meta=True))
    with _read_errors(manifest.path):
        for images, labels, names in ds.as_numpy_iterator():
            yield images, labels, names


def read_all(path: str | Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Every (image, label, name) in stored order (tests and small datasets; bounded by MAX_ARRAY_BYTES)."""
    manifest = read_manifest(path)
    check_fits(manifest.count, manifest)
    parts = [part for shard in manifest.shards for part in read_shard(manifest, shard.file)]
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
            [n.decode("utf-8", "surrogateescape") for p in parts for n in p[2]])


def check_record_size(manifest: Manifest) -> None:
    """The first record's pixels are as many bytes as the manifest's shape: a manifest whose shape is not its records'
    is one line when the dataset is opened, not a failed train step."""
    for images, _ in _raw_records(manifest, manifest.shards[0].file, batch=1):
        if len(images[0]) != manifest.image_bytes:
            raise DataError(f"{manifest.path / MANIFEST}: its shape {'x'.join(map(str, manifest.shape))} is "
                            f"{manifest.image_bytes} bytes an image, but its records hold {len(images[0])} "
                            "(prepare the dataset again)")
        return


def check_fits(n: int, manifest: Manifest) -> None:
    size = n * manifest.image_bytes
    if size > datafiles.MAX_ARRAY_BYTES:
        raise DataError(f"{manifest.path}: {n} images take {size} bytes, over the {datafiles.MAX_ARRAY_BYTES}-byte "
                        "limit for images held in memory (training streams a prepared dataset; set data.limit, or train from it)")


class _read_errors:
    """TensorFlow's errors while reading shards -> one DataError line naming the dataset."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is not None:
            raise_read_error(exc, self.path)
        return False


def raise_read_error(exc: BaseException, path: Path) -> None:
    """Re-raise a TensorFlow reading error as a DataError line; anything else passes through."""
    import tensorflow as tf

    if isinstance(exc, tf.errors.DataLossError):
        raise DataError(f"{path}: a shard is torn or corrupt ({first_line(exc)}); `dcgan prepare --verify {path}` "
                        "names it; prepare the dataset again") from None
    if isinstance(exc, tf.errors.NotFoundError):
        raise DataError(f"{path}: a shard went missing while reading ({first_line(exc)})") from None
    short = re.search(r"expected to contain (\d+) elements but contained only (\d+)", str(exc))  # assert_cardinality's
    if isinstance(exc, tf.errors.FailedPreconditionError) and short:
        raise DataError(f"{path}: a shard holds fewer records than its manifest lists ({short[2]} of {short[1]}); "
                        f"`dcgan prepare --verify {path}` names it; prepare the dataset again") from None
    if isinstance(exc, tf.errors.InvalidArgumentError) and BAD_LABEL in str(exc):
        raise DataError(f"{path}: {BAD_LABEL} (-1: prepared without labels); prepare it again with --labels") from None
    if isinstance(exc, tf.errors.InvalidArgumentError):
        raise DataError(f"{path}: a record is not a valid image of the manifest's shape ({first_line(exc)})") from None
