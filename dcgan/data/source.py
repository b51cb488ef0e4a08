"""The dataset interface: one `Source` subclass per dataset, registered under its data.name.

A source knows one dataset's files: `read` gives a split's images at their own size (uint8 NHWC) with their labels
and class names, and everything else is derived from it here: the images at the configured size (`load`), the
held-out split (`heldout`: the test split of a dataset that has one), the training stream (`Labelled.batches`) and
what `dcgan prepare` writes (`prepare_reader`, for a SOURCE path the source `claims`). A dataset whose files need more
(an image folder's held-out part, a prepared dataset streamed from disk) overrides those methods. Adding a dataset:

    class Tiny(Source):
        name, facts = "tiny", DatasetFacts(channels=1, test_split=True)

        def read(self, split, labelled):
            images, labels = my_loader(self.cfg.path, split)
            return self.limited(Labelled(images, labels if labelled else None, ["a", "b"] if labelled else None))

    register(Tiny)

dcgan.data.sources registers the built-in datasets; `register` also declares the name and its facts to the config
(dcgan.core.schema.declare_dataset), so data.name accepts it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from dcgan.core.schema import DataConfig, DatasetFacts, declare_dataset
from dcgan.data.batching import distribute_in_memory, make_dataset
from dcgan.data.conform import conform
from dcgan.data.datafiles import DataError


@dataclass
class Labelled:
    """Images with their class labels (int64, index into classes) and the class names; None for both when unlabelled.

    images: an array in memory, or a dataset left on disk that streams itself (a `prepared.PreparedImages`, whose
    labels stream with its pixels: labels None, classes set).
    """

    images: object
    labels: np.ndarray | None
    classes: list[str] | None

    def __len__(self) -> int:
        return len(self.images)

    def batches(self, strategy, batch_size: int, seed: int, start_batch: int = 0, group: int = 1):
        """The training stream through `strategy`: uint8 batches (with labels: (images, labels)) in (seed, epoch) order."""
        return training_batches(self.images, self.labels, strategy, batch_size, seed, start_batch, group)


def training_batches(images, labels, strategy, batch_size: int, seed: int, start_batch: int = 0, group: int = 1):
    """An iterator over the training stream of images in memory (with their labels, if any) or left on disk by a
    source that streams (which reads its own labels), from batch start_batch on, split over strategy's replicas."""
    if isinstance(images, np.ndarray):
        dataset = make_dataset(images, batch_size, seed, start_batch=start_batch, group=group, labels=labels)
        return iter(distribute_in_memory(strategy, dataset))
    return images.batches(strategy, batch_size, seed, start_batch=start_batch, group=group)


class Source:
    """One dataset, as training, evaluation, the feature networks and `dcgan prepare` read it."""

    name: ClassVar[str] = ""  # data.name
    facts: ClassVar[DatasetFacts] = DatasetFacts()  # what config validation checks (channels, path, splits, ...)
    streams: ClassVar[bool] = False  # training reads it from disk a batch at a time (`load(stream=True)`)
    claims_any_folder: ClassVar[bool] = False  # `dcgan prepare` reads a folder no other source claims as this one

    def __init__(self, data_cfg: DataConfig):
        self.cfg = data_cfg

    # ------------------------------------------------------------ what a dataset implements

    def read(self, split: str, labelled: bool) -> Labelled:
        """The split's images at their own size (uint8 NHWC, any channels), data.limit applied; with labelled, their
        int64 labels and the class names (else None for both)."""
        raise NotImplementedError

    @classmethod
    def claims(cls, path: Path) -> bool:
        """Whether `dcgan prepare SOURCE` reads this path as this dataset (by its files; none by default)."""
        return False

    # ------------------------------------------------------------ derived from read

    def load(self, split: str | None = None, labelled: bool = False, stream: bool = False) -> Labelled:
        """The split (default: data.split) at data.image_size and data.channels; stream: a source that `streams`
        stays on disk."""
        data = self.read(split or self.cfg.split, labelled)
        if labelled:
            check_labels(self.name, data.labels, data.classes)
        return Labelled(conform(data.images, self.cfg.image_size, self.cfg.channels), data.labels, data.classes)

    def limited(self, data: Labelled) -> Labelled:
        """data.limit applied: the first images (and their labels)."""
        limit = self.cfg.limit
        if not limit:
            return data
        return Labelled(data.images[:limit], None if data.labels is None else data.labels[:limit], data.classes)

    def heldout(self, labelled: bool = False) -> Labelled | None:
        """The images a run never trains on, at the configured size: the other split of a dataset with two (whole,
        whatever data.limit cuts from this one); None for a dataset without one."""
        if not self.facts.test_split:
            return None
        other = dataclasses.replace(self.cfg, split="test" if self.cfg.split == "train" else "train", limit=None)
        return type(self)(other).load(labelled=labelled)

    @classmethod
    def prepare_reader(cls, path: Path, size: int, channels: int, labels: bool, split: str, shuffle: int | None,
                       threads: int | None):
        """What `dcgan prepare` writes from path: (image, label, name) at size x channels (dcgan.data.prepare_readers)."""
        from dcgan.data.prepare_readers import ArrayReader

        data_cfg = DataConfig(name=cls.name, path=str(path), split=split, image_size=size, channels=channels)
        data = cls(data_cfg).read(split, labelled=True)
        return ArrayReader(cls.name, data.images, data.labels, data.classes, split, size, channels, shuffle)


def check_labels(name: str, labels: np.ndarray, classes: list[str]) -> None:
    if labels.size and (labels.min() < 0 or labels.max() >= len(classes)):
        raise DataError(f"data: {name} labels must lie in 0..{len(classes) - 1}, found {labels.min()}..{labels.max()}")


REGISTRY: dict[str, type[Source]] = {}


def register(cls: type[Source]) -> type[Source]:
    """Make cls the source of data.name cls.name (usable as a class decorator)."""
    if not cls.name:
        raise ValueError(f"{cls.__name__}: a source needs a name (its data.name)")
    if cls.name in REGISTRY and REGISTRY[cls.name] is not cls:
        raise ValueError(f"data.name {cls.name!r} is registered already, by {REGISTRY[cls.name].__name__}")
    declare_dataset(cls.name, cls.facts)
    REGISTRY[cls.name] = cls
    return cls
