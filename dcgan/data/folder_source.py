"""data.name: folder: every PNG/JPEG under data.path (a folder, or a .zip/.tar of one), decoded once
(dcgan.data.folder_cache), as a dataset.

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
from dcgan.data.crops import RandomCrops, centre
from dcgan.data.archive import is_archive
from dcgan.data.fit import Fit
from dcgan.data.datafiles import DataError
from dcgan.data.folder_cache import load_folder_cached
from dcgan.data.prepare_readers import Reader
from dcgan.data.pictures import open_pictures
from dcgan.data.prepared_format import NO_LABEL
from dcgan.data.source import Labelled, Source

NOT_IN_A_CLASS = "directly in SOURCE, not in a class subfolder (--labels)"  # how `dcgan prepare` counts a loose image


class FolderSource(Source):
    name, facts, claims_any_folder = "folder", DATASET_FACTS["folder"], True

    def read(self, split: str, labelled: bool) -> Labelled:
        """Every decoded image (data.limit applied, before the holdout), at the configured size (data.fit: random:
        the larger squares its windows are cut from)."""
        cfg, fit = self.cfg, Fit.of(self.cfg)
        if labelled:
            return Labelled(*load_folder_cached(cfg.path, cfg.image_size, cfg.channels, cfg.limit, labelled=True,
                                                fit=fit, label_file=cfg.labels))
        return Labelled(load_folder_cached(cfg.path, cfg.image_size, cfg.channels, cfg.limit, fit=fit), None, None)

    def load(self, split: str | None = None, labelled: bool = False, stream: bool = False) -> Labelled:
        """The training images (the holdout taken out); data.fit: random: for training (stream) a `RandomCrops`
        that cuts a new window each epoch, else the centre windows."""
        data = self.read("train", labelled)
        images, labels = data.images, data.labels
        if self.cfg.holdout:
            kept = holdout_split(len(images), self.cfg.holdout)[0]
            images, labels = images[kept], None if labels is None else labels[kept]
        if labelled and self.cfg.holdout:
            if missing := sorted(set(range(len(data.classes))) - set(labels.tolist())):
                raise DataError(f"data.holdout: holding out {self.cfg.holdout} images leaves no training image of "
                                f"class(es) {', '.join(data.classes[i] for i in missing)}; lower it")
        return self._sized(images, labels, data.classes, stream)

    def _sized(self, images: np.ndarray, labels, classes, stream: bool) -> Labelled:
        """Decoded images at the configured size; data.fit: random: the windows of the stored squares."""
        size = self.cfg.image_size
        if self.cfg.fit == "random":
            images = RandomCrops(images, labels, size) if stream else centre(images, size)
            return Labelled(images, labels, classes)
        return Labelled(conform(images, size, self.cfg.channels), labels, classes)

    def heldout(self, labelled: bool = False) -> Labelled | None:
        if not self.cfg.holdout:
            return None
        data = self.read("train", labelled)
        held = holdout_split(len(data.images), self.cfg.holdout)[1]
        return self._sized(data.images[held], None if data.labels is None else data.labels[held], data.classes, False)

    @classmethod
    def claims(cls, path: Path) -> bool:
        return path.is_dir() or is_archive(path)

    @classmethod
    def prepare_reader(cls, path, size, channels, labels, split, shuffle, threads, fit=image_folder.DEFAULT_FIT,
                       dedupe=False) -> Reader:
        return FolderReader(path, size, channels, labels, shuffle, threads, fit, dedupe)


def holdout_split(n: int, holdout: int) -> tuple[np.ndarray, np.ndarray]:
    """(training, held-out) indices of a folder's n images: `holdout` of them spread evenly over the listing (sorted
    by path, so each subfolder gives its share), kept out of training to be D's unseen images."""
    if holdout > n // 2:
        raise DataError(f"data.holdout: {holdout} of {n} images would leave fewer to train on than are held out; "
                        f"at most {n // 2}")
    held = np.round(np.linspace(0, n - 1, holdout)).astype(np.int64)  # distinct: at least 2 apart
    return np.setdiff1d(np.arange(n), held), held


class FolderReader(Reader):
    """Every PNG/JPEG under a folder or in an archive, decoded on a thread pool; with labels, the classes are its
    immediate subfolders or a label file's (labels: True or the file). Exact duplicates (the same file bytes) are
    found as they are read: `duplicates` pairs each with the first copy; with dedupe they are not written."""

    kind = "folder"

    def __init__(self, root: Path, size: int, channels: int, labels: bool | str, shuffle: int | None,
                 threads: int | None, fit: Fit = image_folder.DEFAULT_FIT, dedupe: bool = False):
        super().__init__()
        self.root, self.size, self.channels, self.threads, self.fit, self.dedupe = root, size, channels, threads, fit, dedupe
        self.pictures = open_pictures(root, image_folder.MAX_IMAGE_FILE_BYTES)
        self.skipped.update(self.pictures.skipped)
        files, self.others, self.label_of = self.pictures.names, self.pictures.others, {}
        if labels:  # the same classes as a conditional run from the folder itself
            found = image_folder.labelling(self.pictures, labels if isinstance(labels, str) else None)
            files, self.classes, self.label_of = found.names, found.classes, dict(zip(found.names, found.labels))
            if found.unlabelled:
                self.skipped[NOT_IN_A_CLASS] = found.unlabelled
        if shuffle is not None:
            if not self.pictures.random_access:
                raise DataError(f"--shuffle: {root} is compressed as one stream and is read front to back; "
                                "prepare it without --shuffle, or from a .zip, a plain .tar or a folder")
            files = [files[i] for i in np.random.default_rng(shuffle).permutation(len(files))]
        self.files = files
        self.total = len(files)
        self.duplicates: list[tuple[str, str]] = []  # (duplicate, the first copy read)

    def __iter__(self):
        first_of = {}
        with self.pictures:
            for name, result, digest in image_folder.decode_images(self.pictures, self.files, self.size,
                                                                   self.channels, self.fit, self.threads, digests=True):
                if isinstance(result, str):
                    self.skipped[result] += 1
                    continue
                if digest in first_of:
                    self.duplicates.append((name, first_of[digest]))
                    if self.dedupe:
                        continue
                first_of.setdefault(digest, name)
                yield result, self.label_of.get(name, NO_LABEL), name
        self.note = self._note()

    def _note(self) -> str:
        """The loader's note on what was skipped (as data.name: folder prints it), plus images outside a class folder
        and the duplicates."""
        unlabelled = self.skipped.get(NOT_IN_A_CLASS, 0)
        counts = Counter({k: v for k, v in self.skipped.items() if k != NOT_IN_A_CLASS})
        note = ""
        if counts or self.others or unlabelled:
            note = image_folder.skip_message(self.root, counts, self.others).replace("data: ", "prepare: ", 1)
            note += f", {unlabelled} image(s) {NOT_IN_A_CLASS}" if unlabelled else ""
        if self.duplicates:
            dup, first = self.duplicates[0]
            note += ("\n" if note else "") + (
                f"prepare: {len(self.duplicates)} exact duplicate(s) (the same file bytes), e.g. {dup!r} = {first!r}; "
                + ("dropped (--dedupe)" if self.dedupe else "kept: --dedupe drops them"))
        return note
