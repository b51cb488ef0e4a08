"""An image folder's listing: every entry under it, the PNG/JPEG files among them, and their classes.

The walk follows links to directories (a class folder is often a link to where the pictures live), entering each
real directory once: a link back to a folder above, or a second name for one already walked, is listed but not
entered again, so a loop of links ends. Training from a folder, its cache key and `dcgan prepare` all list it here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
NOT_IN_A_CLASS = "directly in the folder, not in a class subfolder"


def walk(root: Path) -> list[Path]:
    """Every entry under root (files, folders, links), sorted as sorted(root.rglob("*")) sorts them."""
    entries, entered, folders = [], set(), [root]
    while folders:
        folder = folders.pop()
        try:
            st = folder.stat()  # the directory a link points to: its identity, whichever name reached it
            with os.scandir(folder) as scan:
                children = list(scan)
        except OSError:  # unreadable, or vanished since it was listed: nothing under it to list
            continue
        if (st.st_dev, st.st_ino) in entered:
            continue
        entered.add((st.st_dev, st.st_ino))
        for child in children:
            path = folder / child.name
            entries.append(path)
            try:
                if child.is_dir():  # follows a link
                    folders.append(path)
            except OSError:
                pass
    return sorted(entries)


def list_images(root: Path) -> tuple[list[Path], int]:
    """(every PNG/JPEG name under root, sorted; how many other files there are).

    A symbolic link to a file listed already is left out: collections link one picture into several
    categories (Debian's openclipart-png does, 504 times), and training on it twice would weight it.
    """
    entries = walk(root)
    files, seen = [], set()
    for p in entries:
        if p.suffix.lower() not in IMAGE_SUFFIXES or p.is_dir():
            continue
        target = os.path.realpath(p)
        if target not in seen:  # the first name in sorted order stands for the file
            seen.add(target)
            files.append(p)
    others = sum(1 for p in entries if p.is_file() and p.suffix.lower() not in IMAGE_SUFFIXES)
    return files, others


# ---------------------------------------------------------------- classes from subfolders


@dataclass(frozen=True)
class Subfolders:
    """Image files labelled by the immediate subfolder of the root that holds them."""

    files: list[Path]  # the files inside a class subfolder, in the order given
    labels: list[int]  # each one's class: its index in classes
    classes: list[str]  # the subfolders holding an image file, sorted by name
    loose: int  # image files directly in the root: they have no class


def label_by_subfolder(root: Path, files: list[Path]) -> Subfolders:
    """The class of each file: its top-level folder under root (nested deeper, it still belongs to that one)."""
    in_class = [(f, f.relative_to(root).parts) for f in files]
    in_class = [(f, parts[0]) for f, parts in in_class if len(parts) > 1]
    classes = sorted({name for _, name in in_class})
    index = {name: i for i, name in enumerate(classes)}
    return Subfolders([f for f, _ in in_class], [index[name] for _, name in in_class], classes, len(files) - len(in_class))
