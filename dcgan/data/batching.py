"""What every training stream shares, in memory or streamed from shards: batches per epoch, the group axis; and the
in-memory stream itself (`make_dataset`, `distribute_in_memory`), whose order is a pure function of (seed, epoch)."""

from __future__ import annotations

import numpy as np

from dcgan.data.datafiles import DataError


def batches_per_epoch(n_images: int, batch_size: int) -> int:
    if n_images < batch_size:
        raise DataError(f"data.batch_size: {batch_size} is larger than the dataset ({n_images} images)")
    return n_images // batch_size


def group_last(images, labels=None):
    """(group, batch, ...) -> (batch, group, ...) for the images and, when there are any, their labels."""
    import tensorflow as tf

    images = tf.transpose(images, [1, 0, 2, 3, 4])
    return images if labels is None else (images, tf.transpose(labels, [1, 0]))


def make_dataset(images: np.ndarray, batch_size: int, seed: int, start_batch: int = 0, group: int = 1,
                 labels: np.ndarray | None = None, crop: int | None = None):
    """An endless tf.data pipeline of uint8 batches, shaped (batch, group, H, W, C).

    Epoch e is a stateless shuffle keyed by (seed, e), batched with drop_remainder;
    `start_batch` skips batches already consumed, so resuming reproduces the order.
    With labels, each element is (images, int32 labels shaped (batch, group)), the labels in the images' order.
    With crop, each image is a crop x crop window of the stored one, where is a pure function of (seed, batch number):
    data.fit: random.
    """
    import tensorflow as tf

    n = len(images)
    per_epoch = batches_per_epoch(n, batch_size)
    images = np.ascontiguousarray(images)
    start_epoch, skip = divmod(start_batch, per_epoch)

    def gather(idx):
        # From the caller's array, not a tf.constant: a constant is copied into TensorFlow and again into
        # the dataset's function graph, which held 4.4x the pixels in memory; this holds them once.
        batch = tf.numpy_function(lambda i: images[i], [idx], tf.uint8, stateful=False)
        batch = tf.ensure_shape(batch, [batch_size, *images.shape[1:]])
        return batch if labels is None else (batch, tf.gather(label_table, idx))

    if labels is not None:
        if len(labels) != n:
            raise DataError(f"data: {n} images but {len(labels)} labels")
        label_table = tf.constant(np.asarray(labels, np.int32))  # 4 bytes an image: small beside the pixels

    def epoch_batches(epoch):
        order = tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64), seed=tf.stack([tf.cast(seed, tf.int64), epoch]))
        return tf.data.Dataset.from_tensor_slices(order).batch(batch_size, drop_remainder=True)

    ds = tf.data.Dataset.range(start_epoch, 2**62).flat_map(epoch_batches).skip(skip)
    # uint8 pixels: the train step scales them to [-1, 1] in its own graph
    if crop is None:
        ds = ds.map(gather)
    else:
        window = random_windows(crop, seed)
        ds = tf.data.Dataset.zip(ds, tf.data.Dataset.range(start_batch, 2**62)).map(
            lambda idx, b: _crop_batch(gather(idx), window, b))
    # (group, batch, ...) -> (batch, group, ...): tf.distribute splits the first axis across replicas
    ds = ds.batch(group, drop_remainder=True).map(group_last).prefetch(2)
    # A batch is one gather, microseconds of work. Autotuned tf.data threads would compete with the train
    # step's compute threads for the cores (measured on 2 cores: 318 vs 335 images/s); one thread is plenty.
    options = tf.data.Options()
    options.threading.private_threadpool_size = 1
    options.autotune.enabled = False
    return ds.with_options(options)


def random_windows(crop: int, seed: int):
    """A function (batch uint8 (B, S, S, C), batch number) -> (B, crop, crop, C): each image's window at an offset
    drawn from a stateless stream keyed by (seed, batch number), so a resumed run cuts the same windows."""
    import tensorflow as tf

    def window(batch, b):
        n, side = tf.shape(batch)[0], tf.shape(batch)[1]
        offsets = tf.random.stateless_uniform([n, 2], seed=tf.stack([tf.cast(seed, tf.int64), b]), minval=0,
                                              maxval=side - crop + 1, dtype=tf.int32)
        rows = offsets[:, :1] + tf.range(crop)[None]
        cols = offsets[:, 1:] + tf.range(crop)[None]
        return tf.gather(tf.gather(batch, rows, axis=1, batch_dims=1), cols, axis=2, batch_dims=1)

    return window


def _crop_batch(element, window, b):
    if isinstance(element, tuple):
        return window(element[0], b), element[1]
    return window(element, b)


def distribute_in_memory(strategy, dataset):
    """Split each global batch across the replicas (batch axis first).

    Every worker builds the same seeded pipeline and keeps its replicas' share of
    each global batch (DATA sharding): the data comes from memory, not files, so
    there is nothing to shard by file.
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return strategy.experimental_distribute_dataset(dataset.with_options(options))
