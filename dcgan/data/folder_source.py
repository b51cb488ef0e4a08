"""data.name: folder: every PNG/JPEG under data.path, decoded once (dcgan.data.folder_cache), as a dataset.

An image folder has one split; `data.holdout` keeps some of its images (spread evenly over the sorted listing) out of
training, as D's unseen images. A conditional run labels it by its immediate subfolders; `dcgan prepare` reads it
with the same listing and classes (`FolderReader`).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from dcgan.core.schema import DATASET_FACTS
from dcgan.data import image_folder
from dcgan.data.conform import conform
from dcgan.data.datafiles import DataError
from dcgan.data.folder_cache import load_folder_cached
from dcgan.data.prepare_readers import Reader
from dcgan.data.prepared_format import NO_LABEL
from dcgan.data.source import Labelled, Source

NOT_IN_A_CLASS = "directly in SOURCE, not in a class subfolder (--labels)"  # how `dcgan prepare` counts a loose image


class FolderSource(Source):
    name, facts, claims_any_folder = "folder", DATASET_FACTS["folder"], True

    def read(self, split: str, labelled: bool) -> Labelled:
        """Every decoded image (data.limit applied, before the holdout), already at the configured size."""
        cfg = self.cfg
        if labelled:
            return Labelled(*load_folder_cached(cfg.path, cfg.image_size, cfg.channels, cfg.limit, labelled=True))
        return Labelled(load_folder_cached(cfg.path, cfg.image_size, cfg.channels, cfg.limit), None, None)

    def load(self, split: str | None = None, labelled: bool = False, stream: bool = False) -> Labelled:
        data = self.read("train", labelled)
        images, labels = data.images, data.labels
        if self.cfg.holdout:
            kept = holdout_split(len(images), self.cfg.holdout)[0]
            images, labels = images[kept], None if labels is None else labels[kept]
        if labelled and self.cfg.holdout:
            if missing := sorted(set(range(len(data.classes))) - set(labels.tolist())):
                raise DataError(f"data.holdout: holding out {self.cfg.holdout} images leaves no training image of "
                                f"class(es) {', '.join(data.classes[i] for i in missing)}; lower it")
        return Labelled(conform(images, self.cfg.image_size, self.cfg.channels), labels, data.classes)

    def heldout(self, labelled: bool = False) -> Labelled | None:
        if not self.cfg.holdout:
            return None
        data = self.read("train", labelled)
        held = holdout_split(len(data.images), self.cfg.holdout)[1]
        return Labelled(conform(data.images[held], self.cfg.image_size, self.cfg.channels),
                        None if data.labels is None else data.labels[held], data.classes)

    @classmethod
    def claims(cls, path: Path) -> bool:
        return path.is_dir()

    @classmethod
    def prepare_reader(cls, path, size, channels, labels, split, shuffle, threads) -> Reader:
        return FolderReader(path, size, channels, labels, shuffle, threads)


def holdout_split(n: int, holdout: int) -> tuple[np.ndarray, np.ndarray]:
    """(training, held-out) indices of a folder's n images: `holdout` of them spread evenly over the listing (sorted
    by path, so each subfolder gives its share), kept out of training to be D's unseen images."""
    if holdout > n // 2:
        raise DataError(f"data.holdout: {holdout} of {n} images would leave fewer to train on than are held out; "
                        f"at most {n // 2}")
    held = np.round(np.linspace(0, n - 1, holdout)).astype(np.int64)  # distinct: at least 2 apart
    return np.setdiff1d(np.arange(n), held), held


class FolderReader(Reader):
    """Every PNG/JPEG under a folder, decoded on a thread pool; with labels, its immediate subfolders are the classes."""

    kind = "folder"

    def __init__(self, root: Path, size: int, channels: int, labels: bool, shuffle: int | None, threads: int | None):
        super().__init__()
        self.root, self.size, self.channels, self.threads = root, size, channels, threads
        files, self.others = image_folder.list_images(root)
        self.label_of = {}
        if labels:  # the same classes as a conditional run from the folder itself
            found = image_folder.label_by_subfolder(root, files)
            files, self.classes, self.label_of = found.files, found.classes, dict(zip(found.files, found.labels))
            if found.loose:
                self.skipped[NOT_IN_A_CLASS] = found.loose
        if shuffle is not None:
            files = [files[i] for i in np.random.default_rng(shuffle).permutation(len(files))]
        self.files = files
        self.total = len(files)

    def __iter__(self):
        for path, result in image_folder.decode_images(self.files, self.size, self.channels, self.threads):
            if isinstance(result, str):
                self.skipped[result] += 1
                continue
            yield result, self.label_of.get(path, NO_LABEL), str(path.relative_to(self.root))
        self.note = self._note()

    def _note(self) -> str:
        """The loader's note on what was skipped (as data.name: folder prints it), plus images outside a class folder."""
        unlabelled = self.skipped.get(NOT_IN_A_CLASS, 0)
        counts = Counter({k: v for k, v in self.skipped.items() if k != NOT_IN_A_CLASS})
        if not (counts or self.others or unlabelled):
            return ""
        note = image_folder.skip_message(self.root, counts, self.others).replace("data: ", "prepare: ", 1)
        return note + (f", {unlabelled} image(s) {NOT_IN_A_CLASS}" if unlabelled else "")
