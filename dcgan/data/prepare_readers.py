"""What `dcgan prepare` reads from a source: (image, label, name) at the target size, in order, with what it skipped.

Each dataset's source (dcgan.data.source) makes its reader: an in-memory or memory-mapped array conformed a chunk at
a time (`ArrayReader`: MNIST-like IDX or npz, CIFAR-10, any source that reads arrays), or an image folder decoded on
a thread pool (dcgan.data.folder_source.FolderReader).
"""

from __future__ import annotations

import mmap
from collections import Counter

import numpy as np

from dcgan.data.conform import conform

ARRAY_CHUNK = 4096  # images of an in-memory source conformed at a time


class Reader:
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


class ArrayReader(Reader):
    """Images and their labels in an array, conformed in chunks: a memory-mapped one (a plain IDX file) is read a chunk
    at a time whatever its size; the others were read whole by their loaders (bounded by MAX_ARRAY_BYTES)."""

    def __init__(self, kind: str, images: np.ndarray, labels: np.ndarray, classes: list[str], split: str, size: int,
                 channels: int, shuffle: int | None):
        super().__init__()
        self.kind, self.split, self.size, self.channels = kind, split, size, channels
        self.images, self.labels, self.classes = images, labels, classes
        self.total = len(self.images)
        self.order = np.arange(self.total) if shuffle is None else np.random.default_rng(shuffle).permutation(self.total)

    def __iter__(self):
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


def numbered_classes(labels: np.ndarray) -> list[str]:
    """Class names for labels that come without any (an IDX or npz file): the numbers 0..max."""
    return [str(i) for i in range(int(labels.max()) + 1)] if len(labels) else []
