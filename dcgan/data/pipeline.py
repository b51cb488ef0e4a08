"""Datasets: a DataConfig in, uint8 NHWC arrays at the configured size out, then a tf.data pipeline.

Every dataset is a registered source (dcgan.data.source: the interface; dcgan.data.sources: the registry), which reads
its own files at their native size; the functions here are the program's way in. `load_images` gives a split at the
configured size and channels; `training_data` what a run trains on, in memory or (a source that streams, such as a
prepared dataset) left on disk, with its `batches` stream of uint8 batches (the train step scales them to [-1, 1])
whose order is a pure function of (seed, epoch), so a resumed run sees exactly the batches it would have seen. A
conditional run loads the labels too (`load_labelled_images`) and they travel beside the pixels in the same order.
`load_heldout` gives the images a run never trains on: the other split, or the part of an image folder
`data.holdout` keeps out.
"""

from __future__ import annotations

import numpy as np

from dcgan.core.schema import DATASET_FACTS, DataConfig
from dcgan.data import prepared
from dcgan.data.batching import make_dataset  # noqa: F401  (importers)
from dcgan.data.conform import CONFORM_BATCH_BYTES, LUMA, conform  # noqa: F401  (importers)
from dcgan.data.datafiles import DataError
from dcgan.data.folder_source import holdout_split  # noqa: F401  (importers)
from dcgan.data.source import Labelled, training_batches  # noqa: F401  (importers)
from dcgan.data.sources import has_test_split, source_class, source_for  # noqa: F401  (importers)

# the built-in datasets with a train and a test split (a classifier can be trained and tested on them)
TWO_SPLITS = tuple(name for name, facts in DATASET_FACTS.items() if facts.test_split)


def load_images(data_cfg, split: str | None = None, stream: bool = False):
    """uint8 (N, image_size, image_size, channels) for a DataConfig.

    A prepared dataset (one split, already at its size) is read whole into memory, bounded by MAX_ARRAY_BYTES;
    with stream=True (training) it stays on disk: a `prepared.PreparedImages`, which len() and image_subset take.
    """
    return source_for(data_cfg).load(split, stream=stream).images


def load_labelled_images(data_cfg, split: str | None = None, stream: bool = False) -> Labelled:
    """What a conditional run trains on: load_images' images, their labels and the class names.

    MNIST, Fashion-MNIST and CIFAR-10 bring their own labels and names; an image folder is labelled by its
    immediate subfolders (sorted names); a prepared dataset by the classes `dcgan prepare --labels` recorded.
    """
    return source_for(data_cfg).load(split, labelled=True, stream=stream)


def training_data(data_cfg, labelled: bool = False) -> Labelled:
    """A run's training set (its classes too when labelled): in memory, or left on disk by a source that streams;
    `.batches(strategy, ...)` is its training stream either way."""
    return source_for(data_cfg).load(labelled=labelled, stream=True)


def streams(data_cfg) -> bool:
    """Whether the dataset is read from disk batch by batch (a prepared dataset), never whole into memory."""
    return source_class(data_cfg.name).streams


def load_heldout(data_cfg, labelled: bool = False) -> Labelled | None:
    """The images of the run's dataset that it never trains on, at the configured size: the other split of a dataset
    with two (whole, whatever data.limit cuts from this one), an image folder's data.holdout part; None without
    either (a prepared dataset, a folder with no holdout). labelled: with the labels a conditional D takes."""
    return source_for(data_cfg).heldout(labelled)


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
    if not has_test_split(name):
        raise DataError(f"data.name: {name} has no class labels (labelled datasets: {', '.join(TWO_SPLITS)})")
    data = source_class(name)(DataConfig(name=name, path=path, split=split)).read(split, labelled=True)
    return data.images, data.labels


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
