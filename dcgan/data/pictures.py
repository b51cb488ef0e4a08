"""Where a folder dataset's pictures live: a directory or an archive (.zip, .tar, .tar.gz, ...), as one listing.

Both give the same thing to the decoder: `names` (relative posix paths of the PNG/JPEG files, sorted as an image
folder sorts them), `others` (files that are not pictures), `skipped` (pictures passed over before any decoding, by
reason), and `read(names)`, each picture's file object in the order the container reads cheaply (an archive that
is compressed as one stream is read front to back; callers that need the sorted order put it back). `update_key` feeds a
cache key what the decoded pictures depend on, and `member` reads a small file inside (a label file).
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from dcgan.data import archive
from dcgan.data.datafiles import DataError, open_regular
from dcgan.data.folder_walk import list_images, walk


def open_pictures(path: str | Path, max_member_bytes: int) -> Pictures:
    """The directory or archive at path; one DataError line when it is neither."""
    path = Path(path)
    if path.is_dir():
        return FolderPictures(path)
    if archive.is_archive(path):
        return ArchivePictures(path, max_member_bytes)
    if path.exists():
        raise DataError(f"data.path: {path} is not a directory or a .zip/.tar/.tar.gz of images")
    raise DataError(f"data.path: {path} does not exist")


def update_key(h, path: Path) -> None:
    """Feed a cache key's hash what decoding the pictures at path depends on, without reading them: a folder's every
    entry (relative name, size, mtime, mode: a file added, removed or touched changes it), an archive's size, mtime
    and inode (its fingerprint)."""
    if not path.is_dir():
        st = path.stat()
        h.update(f"archive:{st.st_size}-{st.st_mtime_ns}-{st.st_ino}\n".encode())
        return
    for p in walk(path):
        try:
            st = p.stat()
        except OSError:  # a dangling link: listed by name, so a new target changes the key
            st = None
        h.update(os.fsencode(p.relative_to(path)) + b"\0")
        h.update(f"{st.st_size if st else -1}:{st.st_mtime_ns if st else -1}:{st.st_mode if st else -1}\n".encode())


def read_label_file(path: Path, max_bytes: int) -> bytes:
    """A label file on disk (a folder's member, or anywhere by an absolute path), bounded; one DataError line."""
    try:
        with open_regular(path, max_bytes, "a label file") as f:
            return f.read()
    except FileNotFoundError:
        raise DataError(f"data.labels: {path} does not exist") from None
    except DataError as e:
        raise DataError(f"data.labels: {e}") from None


class Pictures:
    root: Path
    names: list[str]
    others: int
    skipped: Counter
    random_access: bool = True

    def read(self, names: list[str]):
        """(name, readable binary file) of each of names, or (name, FileNotFoundError-like reason str)."""
        raise NotImplementedError

    def member(self, name: str, max_bytes: int) -> bytes:
        """A small file inside (a label file), bounded by max_bytes; DataError naming it when absent or too big."""
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class FolderPictures(Pictures):
    """A directory: every PNG/JPEG under it (dcgan.data.folder_walk's listing, links to folders followed once)."""

    def __init__(self, root: Path):
        self.root = root
        files, self.others = list_images(root)
        self.names = [p.relative_to(root).as_posix() for p in files]
        self.skipped = Counter()

    def read(self, names: list[str]):
        for name in names:
            yield name, self.root / name  # opened (and checked) by the decoder, which knows the limits

    def member(self, name: str, max_bytes: int) -> bytes:
        return read_label_file(self.root / name, max_bytes)


class ArchivePictures(Pictures):
    """A .zip or .tar(.gz, .bz2, .xz) of pictures, read member by member (dcgan.data.archive), never unpacked."""

    def __init__(self, path: Path, max_member_bytes: int):
        self.root = path
        self.archive = archive.ImageArchive(path, max_member_bytes)
        self.names, self.others, self.skipped = self.archive.names, self.archive.others, self.archive.skipped
        self.random_access = self.archive.random_access

    def read(self, names: list[str]):
        yield from self.archive.read(names)

    def member(self, name: str, max_bytes: int) -> bytes:
        return self.archive.read_member(name, max_bytes)

    def close(self) -> None:
        self.archive.close()
