"""Images brought to the configured size and channels, in bounded memory: what every source's pixels go through."""

from __future__ import annotations

import numpy as np

from dcgan.data import datafiles  # its limits, read at each check: one setting for every format
from dcgan.data.datafiles import DataError

# conform resizes this many bytes of float32 (input and output) at a time, not the whole dataset at once.
CONFORM_BATCH_BYTES = 256 << 20
# ITU-R BT.601 luma: how RGB becomes one gray channel, here and in the metrics.
LUMA = np.array([0.299, 0.587, 0.114])


def conform(images: np.ndarray, size: int, channels: int) -> np.ndarray:
    """Resize (area) and convert channels so every image is size x size x channels.

    Works through CONFORM_BATCH_BYTES of float32 at a time, so peak memory is the uint8 result plus
    one batch, not the whole dataset as floats; a result over MAX_ARRAY_BYTES is refused up front.
    """
    n, height, width, have = images.shape
    if have == channels and (height, width) == (size, size):
        return np.ascontiguousarray(images)
    result_bytes = n * size * size * channels
    if result_bytes > datafiles.MAX_ARRAY_BYTES:
        raise DataError(f"data.image_size: {n} images of {size}x{size}x{channels} would take {result_bytes} bytes, "
                        f"over the {datafiles.MAX_ARRAY_BYTES}-byte limit (lower data.image_size or set data.limit)")
    out = np.empty((n, size, size, channels), np.uint8)
    per_image = 4 * (height * width * max(have, channels) + size * size * channels)
    step = max(1, CONFORM_BATCH_BYTES // per_image)
    for start in range(0, n, step):
        out[start : start + step] = _conform_batch(images[start : start + step], size, channels)
    return out


def _conform_batch(images: np.ndarray, size: int, channels: int) -> np.ndarray:
    if images.shape[-1] != channels:
        if channels == 3:
            images = np.repeat(images, 3, axis=-1)
        else:
            images = np.round(images.astype(np.float32) @ LUMA.astype(np.float32))[..., None]
            images = images.clip(0, 255).astype(np.uint8)
    if images.shape[1:3] != (size, size):
        import tensorflow as tf

        resized = tf.image.resize(images, (size, size), method="area", antialias=True)
        images = tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8).numpy()
    return images
