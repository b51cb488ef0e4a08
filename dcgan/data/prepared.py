"""Prepared datasets read back as a stream that never holds the dataset in memory (the format: prepared_format).

`make_stream` is the training pipeline, with make_dataset's contract: endless uint8 batches shaped
(batch, group, H, W, C) whose order is a pure function of (seed, epoch). Epoch e visits the shards in a
stateless shuffle keyed by (seed, e), interleaves CYCLE_LENGTH of them at a time (deterministically), and
permutes each window of SHUFFLE_WINDOW_BYTES of records with a stateless shuffle keyed by (seed, e, window):
memory is a window and a few read buffers, whatever the dataset's size. Resuming at batch k skips k batches
from the start of their epoch, which reads (but does not decode) the records before them: at most one epoch.
With several input pipelines (one per worker, `tf.distribute.InputContext`), pipeline i of n reads only the
shards at positions i, i+n, ... of each epoch's shard order, so no two workers read the same images.
A conditional run streams (images, labels) instead (`labelled=True`): the same records in the same order.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from dcgan.core.errors import DcganError
from dcgan.core.schema import DATASET_FACTS
from dcgan.data.batching import batches_per_epoch, group_last
from dcgan.data.datafiles import DataError
from dcgan.data.prepared_format import (READ_BUFFER_BYTES, Manifest, check_fits, check_labels, check_record_size, decoder,
                                        is_prepared, labelled_decoder, raise_read_error, read_manifest, read_shard)
from dcgan.data.source import Labelled, Source

CYCLE_LENGTH = 16  # shards read at once, interleaved record by record
READ_THREADS = 2  # shards read in parallel (of the CYCLE_LENGTH open): tf.data threads compete with the step for cores
SHUFFLE_WINDOW_BYTES = 64 << 20  # records permuted together (at least one batch's worth)


# ---------------------------------------------------------------- the dataset as the trainer sees it


class PreparedImages:
    """A prepared dataset for training: len() and shape from the manifest; the pixels stay on disk.

    `limit` keeps the first `limit` images in stored order (data.limit). `batches` is the training stream
    (with labelled=True, of (images, labels)), `subset` a bounded sample for the sampler choice, `stored_batches`
    one pass in stored order (evaluation's real side), `to_array` everything (bounded by MAX_ARRAY_BYTES) and
    `to_labelled_arrays` the same with the labels.
    """

    def __init__(self, manifest: Manifest, limit: int | None = None, labelled: bool = False):
        if labelled:
            check_labelled(manifest)
        self.manifest = manifest
        self.path = manifest.path
        self.limit = limit
        self.labelled = labelled
        self.takes = _takes(manifest, limit)

    def __len__(self) -> int:
        return sum(self.takes)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self), *self.manifest.shape)

    def _used(self):
        return [(s.file, t) for s, t in zip(self.manifest.shards, self.takes) if t > 0]

    def subset(self, n: int) -> np.ndarray:
        """n images spread over the whole dataset: the first images of every shard, in proportion to its size.

        Reads n records (and opens every shard), not the dataset: a uniform random sample would read it all.
        """
        used = self._used()
        n = min(n, len(self))
        check_fits(n, self.manifest)
        quotas = _proportional([t for _, t in used], n)
        parts = [images for (file, _), q in zip(used, quotas) if q
                 for images, _, _ in read_shard(self.manifest, file, take=q)]
        return np.concatenate(parts)

    def to_array(self) -> np.ndarray:
        return self._read_used()[0]

    def to_labelled_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(every image used, its int64 label), in stored order, each label checked to be one of the classes."""
        check_labelled(self.manifest)
        images, labels = self._read_used()
        check_labels(labels, self.manifest)
        return images, labels

    def _read_used(self) -> tuple[np.ndarray, np.ndarray]:
        check_fits(len(self), self.manifest)
        parts = list(self.stored_batches())
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]).astype(np.int64)

    def stored_batches(self):
        """(images, labels) numpy batches of every image used, in stored order: a pass over the data in bounded memory."""
        for file, t in self._used():
            for images, labels, _ in read_shard(self.manifest, file, take=t):
                yield images, labels

    def batches(self, strategy, batch_size: int, seed: int, start_batch: int = 0, group: int = 1):
        """The training stream through `strategy`: one pipeline per worker, each reading its own shards."""
        def per_pipeline(context):
            return make_stream(self.path, batch_size, seed, start_batch, group, input_context=context, limit=self.limit,
                               labelled=self.labelled)

        # Unlike DATA sharding, no worker reads what another one uses, and a worker's position is a plain count
        # of its own batches, so a resumed run skips to exactly where each worker was.
        return Batches(strategy.distribute_datasets_from_function(per_pipeline), self.path)


def _takes(manifest: Manifest, limit: int | None) -> list[int]:
    """Records used from each shard: all of them, or the first `limit` images in stored order."""
    takes, left = [], limit if limit else manifest.count
    for shard in manifest.shards:
        takes.append(min(shard.count, left))
        left -= takes[-1]
    return takes


def _proportional(sizes: list[int], n: int) -> list[int]:
    """n split over parts of these sizes in proportion (largest remainders), never more than a part holds."""
    total = sum(sizes)
    exact = [n * s / total for s in sizes]
    quotas = [min(s, math.floor(e)) for s, e in zip(sizes, exact)]
    for i in sorted(range(len(sizes)), key=lambda i: exact[i] - quotas[i], reverse=True):
        if sum(quotas) >= n:
            break
        if quotas[i] < sizes[i]:
            quotas[i] += 1
    return quotas


def load(data_cfg, labelled: bool = False) -> PreparedImages:
    """data.name: prepared: the manifest checked, and its shape checked against data.image_size and data.channels.

    labelled=True (a conditional run) also needs the classes `dcgan prepare --labels` records.
    """
    if not data_cfg.path:
        raise DataError("data.path: data.name=prepared needs the folder `dcgan prepare` wrote")
    manifest = read_manifest(data_cfg.path)
    h, w, c = manifest.shape
    want = (data_cfg.image_size, data_cfg.image_size, data_cfg.channels)
    if (h, w, c) != want:
        raise DataError(f"data.image_size/data.channels: {data_cfg.path} was prepared at {h}x{w}x{c}, the config asks for "
                        f"{want[0]}x{want[1]}x{want[2]}; set data.image_size={h} data.channels={c}, or prepare it again "
                        f"with --size {want[0]} --channels {want[2]}")
    check_record_size(manifest)
    return PreparedImages(manifest, data_cfg.limit, labelled)


class PreparedSource(Source):
    """data.name: prepared: the folder `dcgan prepare` wrote, one split at its prepared size; training streams it."""

    name, facts, streams = "prepared", DATASET_FACTS["prepared"], True

    def read(self, split: str, labelled: bool) -> Labelled:
        """Every image used, read whole into memory (bounded by MAX_ARRAY_BYTES)."""
        images = load(self.cfg, labelled)
        if labelled:
            return Labelled(*images.to_labelled_arrays(), images.manifest.classes)
        return Labelled(images.to_array(), None, None)

    def load(self, split: str | None = None, labelled: bool = False, stream: bool = False) -> Labelled:
        """Already at its size (`load` checks it); with stream=True a `PreparedImages` left on disk, whose labels
        stream with the pixels."""
        if not stream:
            return self.read("train", labelled)
        images = load(self.cfg, labelled)
        return Labelled(images, None, images.manifest.classes if labelled else None)

    @classmethod
    def claims(cls, path: Path) -> bool:
        return is_prepared(path)

    @classmethod
    def prepare_reader(cls, path, size, channels, labels, split, shuffle, threads):
        raise DcganError(f"SOURCE: {path} is already a prepared dataset")


def check_labelled(manifest: Manifest) -> None:
    if not manifest.classes:
        raise DataError(f"data.path: {manifest.path} was prepared without labels (its manifest lists no classes); a "
                        "conditional run needs class labels: prepare a folder again with `dcgan prepare --labels`")


# ---------------------------------------------------------------- the stream


def make_stream(path, batch_size: int, seed: int, start_batch: int = 0, group: int = 1, input_context=None,
                limit: int | None = None, labelled: bool = False):
    """An endless tf.data pipeline of uint8 batches from a prepared dataset, as make_dataset's (batch, group, H, W, C).

    With labelled=True each element is (images, int32 labels shaped (batch, group)), as make_dataset's with labels:
    the images are the unlabelled stream's, in the same order.

    Without an input context it yields global batches; with one (tf.distribute), this pipeline's share:
    it reads shards i, i+n, ... of each epoch's order (i of n pipelines) and yields per-replica batches,
    the global batch of each step being what one pipeline would have yielded for n = 1. `start_batch`
    counts batches of the global stream already trained on (step * group), as for make_dataset.
    """
    import tensorflow as tf

    manifest = read_manifest(path)
    if labelled:
        check_labelled(manifest)
    used = [(str(manifest.path / s.file), t) for s, t in zip(manifest.shards, _takes(manifest, limit)) if t > 0]
    counts = np.array([t for _, t in used], np.int64)
    n_pipelines, index, replicas = 1, 0, 1
    if input_context is not None:
        n_pipelines, index = input_context.num_input_pipelines, input_context.input_pipeline_id
        replicas = max(1, input_context.num_replicas_in_sync // n_pipelines)
    if batch_size % (n_pipelines * replicas):
        raise DataError(f"data.batch_size: {batch_size} does not split evenly over {n_pipelines * replicas} replicas")
    local = batch_size // n_pipelines  # what this pipeline contributes to each step
    batches_per_epoch(int(counts.sum()), batch_size)  # the dataset holds at least one batch
    _check_each_pipeline_has_a_batch(manifest, counts, n_pipelines, local)
    epoch0, skip = _position(seed, counts, n_pipelines, index, local, start_batch)
    shape, record_bytes = manifest.shape, manifest.image_bytes + 64
    window = int(max(local, SHUFFLE_WINDOW_BYTES // record_bytes))
    files, counts_t = tf.constant([f for f, _ in used]), tf.constant(counts)
    mine = len(range(index, len(used), n_pipelines))  # shards this pipeline reads per epoch
    cycle = max(1, min(CYCLE_LENGTH, mine))
    seed64 = tf.constant(seed, tf.int64)

    def epoch_batches(epoch):
        order = _shard_order(seed64, epoch, len(used))[index::n_pipelines]
        shards = tf.data.Dataset.from_tensor_slices((tf.gather(files, order), tf.gather(counts_t, order)))
        records = shards.interleave(
            # a shard that ends before its count is an error: an epoch of too few records could hold no batch, and
            # the endless stream would then look for one forever
            lambda f, n: tf.data.TFRecordDataset(f, buffer_size=READ_BUFFER_BYTES).take(n).apply(
                tf.data.experimental.assert_cardinality(n)),
            cycle_length=cycle, block_length=1,
            # one shard at a time is read in order anyway, and tf.data warns at `deterministic` without parallel calls
            **({"num_parallel_calls": min(cycle, READ_THREADS), "deterministic": True} if cycle > 1 else {}))
        key = tf.random.stateless_uniform([], seed=tf.stack([seed64, epoch * n_pipelines + index]), minval=1,
                                          maxval=2**62, dtype=tf.int64)

        def permute(i, chunk):  # a stateless shuffle of each window: a pure function of (seed, epoch, window)
            perm = tf.random.experimental.stateless_shuffle(tf.range(tf.shape(chunk, out_type=tf.int64)[0]),
                                                           seed=tf.stack([key, i]))
            return tf.data.Dataset.from_tensor_slices(tf.gather(chunk, perm))

        shuffled = records.batch(window).enumerate().flat_map(permute)
        return shuffled.batch(local, drop_remainder=True)

    ds = tf.data.Dataset.range(epoch0, 2**62).flat_map(epoch_batches).skip(skip)  # skipped still encoded
    ds = ds.map(labelled_decoder(shape, len(manifest.classes)) if labelled else decoder(shape))
    # (group, batch, ...) -> (batch, group, ...), as make_dataset
    ds = ds.batch(group, drop_remainder=True).map(group_last)
    if replicas > 1:  # this worker's replicas take consecutive elements: split each step's share in order
        ds = ds.flat_map(_split_over(replicas, local))
    options = tf.data.Options()
    options.threading.private_threadpool_size = READ_THREADS  # reading overlaps the step; decoding is a memcpy
    options.autotune.enabled = False
    # sharded here, by input pipeline: tf.distribute must not shard it again (by file or by data)
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return ds.prefetch(2).with_options(options)


def _split_over(replicas: int, local: int):
    """One step's share of `local` images (and labels, if any) -> `replicas` consecutive equal parts, in order."""
    import tensorflow as tf

    def split(*element):
        parts = [tf.reshape(x, [replicas, local // replicas, *x.shape[1:]]) for x in element]
        return tf.data.Dataset.from_tensor_slices(parts[0] if len(parts) == 1 else tuple(parts))

    return split


def _shard_order(seed, epoch, n: int):
    import tensorflow as tf

    return tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64), seed=tf.stack([tf.cast(seed, tf.int64), epoch]))


def _pipeline_batches(seed: int, counts: np.ndarray, n_pipelines: int, index: int, local: int, epoch: int) -> int:
    """Batches pipeline `index` yields in `epoch` (its shards differ from epoch to epoch)."""
    import tensorflow as tf

    order = _shard_order(tf.constant(seed, tf.int64), tf.constant(epoch, tf.int64), len(counts)).numpy()
    return int(counts[order[index::n_pipelines]].sum()) // local


def _position(seed: int, counts: np.ndarray, n_pipelines: int, index: int, local: int, start_batch: int) -> tuple[int, int]:
    """(epoch, batches into it) after start_batch batches of this pipeline's stream."""
    if n_pipelines == 1:
        return divmod(start_batch, int(counts.sum()) // local)
    epoch, left = 0, start_batch
    while True:  # one stateless shuffle per epoch before the resumed one: ~0.1 ms each
        n = _pipeline_batches(seed, counts, n_pipelines, index, local, epoch)
        if left < n:
            return epoch, left
        left, epoch = left - n, epoch + 1


def _check_each_pipeline_has_a_batch(manifest: Manifest, counts: np.ndarray, n_pipelines: int, local: int) -> None:
    """Every epoch of every pipeline holds a batch; an epoch without one would make the stream spin forever."""
    if n_pipelines == 1:
        return
    if len(counts) < n_pipelines:
        raise DataError(f"{manifest.path} has {len(counts)} shard(s) for {n_pipelines} workers: each worker reads its own "
                        "shards; prepare it with a smaller --shard-mb")
    fewest = np.sort(counts)[: len(counts) // n_pipelines].sum()
    if fewest < local:
        raise DataError(f"{manifest.path}: a worker's shards can hold only {fewest} images in an epoch, fewer than its "
                        f"{local} per step; prepare it with a smaller --shard-mb")


class Batches:
    """An iterator over a distributed stream whose reading errors (a torn shard) are one DataError line."""

    def __init__(self, dataset, path: Path):
        self.path = path
        self.iterator = iter(dataset)

    def __iter__(self):
        return self

    def __next__(self):
        try:
            return next(self.iterator)
        except Exception as e:
            raise_read_error(e, self.path)
            raise
