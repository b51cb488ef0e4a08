"""What every training stream shares, in memory or streamed from shards: batches per epoch, the group axis."""

from __future__ import annotations

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
