"""Datasets: a DataConfig in, uint8 NHWC arrays at the configured size out, then a tf.data pipeline.

The loaders (dcgan.data.mnist, dcgan.data.cifar, dcgan.data.image_folder) read each dataset's own files at its
native size; `load_images` brings them to the configured size and channels, and
`make_dataset` turns them into uint8 batches (the train step scales them to [-1, 1]) whose order is a pure function
of (seed, epoch), so a resumed run sees exactly the batches it would have seen. A conditional run
loads the labels too (`load_labelled_images`) and they travel beside the pixels in the same order. A prepared dataset
(dcgan.data.prepared) is the exception: training streams it from its shards instead of loading it. `load_heldout` gives
the images a run never trains on: the other split, or the part of an image folder `data.holdout` keeps out.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from dcgan.data import datafiles  # its limits, read at each check: one setting for every format
from dcgan.data import prepared
from dcgan.data import cifar
from dcgan.data.batching import batches_per_epoch, group_last
from dcgan.data import mnist
from dcgan.data.cifar import load_cifar10
from dcgan.data.datafiles import DataError
from dcgan.data.image_folder import load_folder_cached
from dcgan.data.mnist import load_mnist_like

# conform resizes this many bytes of float32 (input and output) at a time, not the whole dataset at once.
CONFORM_BATCH_BYTES = 256 << 20
# ITU-R BT.601 luma: how RGB becomes one gray channel, here and in the metrics.
LUMA = np.array([0.299, 0.587, 0.114])
TWO_SPLITS = ("mnist", "fashion_mnist", "cifar10")  # datasets with a train and a test split


def load_images(data_cfg, split: str | None = None, stream: bool = False) -> np.ndarray:
    """uint8 (N, image_size, image_size, channels) for a DataConfig.

    A prepared dataset (one split, already at its size) is read whole into memory, bounded by MAX_ARRAY_BYTES;
    with stream=True (training) it stays on disk: a `prepared.PreparedImages`, which len() and image_subset take.
    """
    split = split or data_cfg.split
    name = data_cfg.name
    if name == "prepared":
        images = prepared.load(data_cfg)
        return images if stream else images.to_array()
    if name in ("mnist", "fashion_mnist"):
        images = load_mnist_like(name, data_cfg.path, split)
    elif name == "cifar10":
        images = load_cifar10(data_cfg.path, split)
    elif name == "folder":
        images = _folder(data_cfg)[0]
        images = images[holdout_split(len(images), data_cfg.holdout)[0]]
    else:  # config validation makes this unreachable
        raise DataError(f"data.name: unknown dataset {name!r}")
    if data_cfg.limit:
        images = images[: data_cfg.limit]
    return conform(images, data_cfg.image_size, data_cfg.channels)


@dataclass
class Labelled:
    """Training images with their class labels (int64, index into classes) and the class names."""

    images: object  # np.ndarray, or a prepared.PreparedImages left on disk
    labels: np.ndarray | None  # None: a prepared dataset streams them with the pixels
    classes: list[str]

    def __len__(self) -> int:
        return len(self.images)


def load_labelled_images(data_cfg, split: str | None = None, stream: bool = False) -> Labelled:
    """What a conditional run trains on: load_images' images, their labels and the class names.

    MNIST, Fashion-MNIST and CIFAR-10 bring their own labels and names; an image folder is labelled by its
    immediate subfolders (sorted names); a prepared dataset by the classes `dcgan prepare --labels` recorded.
    """
    split = split or data_cfg.split
    name = data_cfg.name
    if name == "prepared":
        images = prepared.load(data_cfg, labelled=True)
        return Labelled(images, None, images.manifest.classes) if stream else Labelled(*images.to_labelled_arrays(), images.manifest.classes)
    if name == "folder":
        images, labels, classes = _folder(data_cfg, labelled=True)
        if data_cfg.holdout:
            kept = holdout_split(len(images), data_cfg.holdout)[0]
            images, labels = images[kept], labels[kept]
            if missing := sorted(set(range(len(classes))) - set(labels.tolist())):
                raise DataError(f"data.holdout: holding out {data_cfg.holdout} images leaves no training image of class(es) "
                                f"{', '.join(classes[i] for i in missing)}; lower it")
        return Labelled(conform(images, data_cfg.image_size, data_cfg.channels), labels, classes)
    images, labels = load_labelled(name, data_cfg.path, split)
    classes = cifar.CLASS_NAMES if name == "cifar10" else mnist.CLASS_NAMES[name]
    if labels.size and (labels.min() < 0 or labels.max() >= len(classes)):
        raise DataError(f"data: {name} labels must lie in 0..{len(classes) - 1}, found {labels.min()}..{labels.max()}")
    if data_cfg.limit:
        images, labels = images[: data_cfg.limit], labels[: data_cfg.limit]
    return Labelled(conform(images, data_cfg.image_size, data_cfg.channels), labels, list(classes))


def _folder(data_cfg, labelled: bool = False) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """An image folder's decoded images (data.limit applied, before the holdout), with their labels and class names
    when labelled (else None and [])."""
    if labelled:
        return load_folder_cached(data_cfg.path, data_cfg.image_size, data_cfg.channels, data_cfg.limit, labelled=True)
    return load_folder_cached(data_cfg.path, data_cfg.image_size, data_cfg.channels, data_cfg.limit), None, []


def holdout_split(n: int, holdout: int) -> tuple[np.ndarray, np.ndarray]:
    """(training, held-out) indices of a folder's n images: `holdout` of them spread evenly over the listing (sorted
    by path, so each subfolder gives its share), kept out of training to be D's unseen images."""
    if holdout > n // 2:
        raise DataError(f"data.holdout: {holdout} of {n} images would leave fewer to train on than are held out; "
                        f"at most {n // 2}")
    held = np.round(np.linspace(0, n - 1, holdout)).astype(np.int64)  # distinct: at least 2 apart
    return np.setdiff1d(np.arange(n), held), held


def load_heldout(data_cfg, labelled: bool = False) -> Labelled | None:
    """The images of the run's dataset that it never trains on, at the configured size: the other split of a dataset
    with two (whole, whatever data.limit cuts from this one), an image folder's data.holdout part; None without
    either (a prepared dataset, a folder with no holdout). labelled: with the labels a conditional D takes."""
    if data_cfg.name in TWO_SPLITS:
        other = dataclasses.replace(data_cfg, split="test" if data_cfg.split == "train" else "train", limit=None)
        return load_labelled_images(other) if labelled else Labelled(load_images(other), None, [])
    if data_cfg.name != "folder" or not data_cfg.holdout:
        return None
    images, labels, classes = _folder(data_cfg, labelled)
    held = holdout_split(len(images), data_cfg.holdout)[1]
    return Labelled(conform(images[held], data_cfg.image_size, data_cfg.channels),
                    None if labels is None else labels[held], classes)


def image_subset(images, n: int, seed) -> np.ndarray:
    """n of the training images, chosen by seed (the sampler choice's reference set).

    From an array, a uniform sample; from a prepared dataset on disk, a bounded read spread over its shards
    (`PreparedImages.subset`), since a uniform sample would read all of it.
    """
    if isinstance(images, prepared.PreparedImages):
        return images.subset(n)
    subset = np.sort(np.random.default_rng(seed).choice(len(images), n, replace=False))
    return images[subset]


def load_labelled(name: str, path: str | None, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Native-size uint8 images and their int64 class labels (to train a feature classifier)."""
    if name in ("mnist", "fashion_mnist"):
        return load_mnist_like(name, path, split, with_labels=True)
    if name == "cifar10":
        return load_cifar10(path, split, with_labels=True)
    raise DataError(f"data.name: {name} has no class labels (labelled datasets: mnist, fashion_mnist, cifar10)")


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


def to_float(images):
    """uint8 [0, 255] -> float32 [-1, 1] (works on numpy arrays and tensors)."""
    return images / 127.5 - 1.0 if isinstance(images, np.ndarray) else _tf_to_float(images)


def _tf_to_float(images):
    import tensorflow as tf

    return tf.cast(images, tf.float32) / 127.5 - 1.0


def to_uint8(images) -> np.ndarray:
    """float [-1, 1] -> uint8 [0, 255]."""
    images = np.asarray(images, dtype=np.float32)
    return np.clip(np.round((images + 1.0) * 127.5), 0, 255).astype(np.uint8)


def make_dataset(images: np.ndarray, batch_size: int, seed: int, start_batch: int = 0, group: int = 1,
                 labels: np.ndarray | None = None):
    """An endless tf.data pipeline of uint8 batches, shaped (batch, group, H, W, C).

    Epoch e is a stateless shuffle keyed by (seed, e), batched with drop_remainder;
    `start_batch` skips batches already consumed, so resuming reproduces the order.
    With labels, each element is (images, int32 labels shaped (batch, group)), the labels in the images' order.
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
    ds = ds.map(gather)
    # (group, batch, ...) -> (batch, group, ...): tf.distribute splits the first axis across replicas
    ds = ds.batch(group, drop_remainder=True).map(group_last).prefetch(2)
    # A batch is one gather, microseconds of work. Autotuned tf.data threads would compete with the train
    # step's compute threads for the cores (measured on 2 cores: 318 vs 335 images/s); one thread is plenty.
    options = tf.data.Options()
    options.threading.private_threadpool_size = 1
    options.autotune.enabled = False
    return ds.with_options(options)


