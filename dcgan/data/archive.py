"""Image archives: a zip or tar (plain, gz, bz2, xz) of PNG/JPEG files, read member by member like an image folder.

Nothing is unpacked to disk: the members are listed from their headers once, and read back as file objects. An
archive from the internet can be hostile, so the listing refuses the whole archive (one `DataError` line) for a
member path that leaves it, more than MAX_ARCHIVE_MEMBERS members, declared sizes over MAX_ARCHIVE_BYTES, a zip
member compressed beyond MAX_MEMBER_RATIO (a zip bomb) or an encrypted image; links, devices and FIFOs inside the
archive are never followed, only skipped and counted, as an image folder skips what is not a regular file.
"""

from __future__ import annotations

import os
import re
import stat
import tarfile
import zipfile
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from dcgan.core.errors import first_line
from dcgan.data.datafiles import DataError, NotRegularFile, open_regular
from dcgan.data.archive_streams import CappedReads, FormatErrors, MemberFile, decompressed
from dcgan.data.folder_walk import IMAGE_SUFFIXES

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")
# The limits are read at each check (tests and callers may lower them).
MAX_ARCHIVE_MEMBERS = 1_000_000  # entries of any kind, counted while the headers are scanned
MAX_ARCHIVE_BYTES = 64 << 30  # the members' declared (uncompressed) sizes in all
# A zip member's declared size over its compressed size, checked above RATIO_FREE_BYTES: the same rule as a .keras
# file's (dcgan.evaluation.featurenet.check_keras_file). PNGs and JPEGs are compressed already and barely shrink.
MAX_MEMBER_RATIO = 100
RATIO_FREE_BYTES = 16 << 20
# One tar header's extended data (a pax header, a GNU long name): tarfile reads it whole into memory before it
# returns the member, so a few KB of gzip declaring a 60 GB pax header would exhaust memory. Real ones are bytes.
MAX_TAR_HEADER_BYTES = 1 << 20

SIDE_FILE_SUFFIXES = (".json", ".csv")  # kept for read_member: a label file can travel inside the archive
LINK_OR_DEVICE = "that are links or devices in the archive"
UNSUPPORTED_METHOD = "compressed with a method Python's zipfile cannot read"

_ZIP_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)
_ZIP_SPECIAL = (stat.S_IFLNK, stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO, stat.S_IFSOCK)
_DRIVE = re.compile(r"[A-Za-z]:")


def is_archive(path: Path) -> bool:
    """path is a regular file (after links) named like an image archive: .zip, .tar, .tar.gz, ..., any case."""
    path = Path(path)
    return path.name.lower().endswith(ARCHIVE_SUFFIXES) and path.is_file()


class ImageArchive:
    """An archive's image members, listed from its headers; `read` hands them out as file objects.

    names: the images (.png/.jpg/.jpeg) that are regular files, as relative posix names sorted as an image folder's
    paths sort (by component); a name seen twice stands for its first member. others: the regular non-images.
    skipped: image names passed over, by reason (links and devices, over max_member_bytes, an unreadable method).
    random_access: members can be read in any order cheaply (a zip, a plain tar); a compressed tar is read in order.
    """

    def __init__(self, path: str | Path, max_member_bytes: int):
        self.path = Path(path)
        self.names: list[str] = []
        self.others = 0
        self.skipped: Counter = Counter()
        self.random_access = True
        self._max_member_bytes = max_member_bytes
        self._members: dict = {}  # name -> ZipInfo or TarInfo
        self._side_files: dict = {}  # the same, for the regular .json and .csv members (label files)
        self._seen: set[str] = set()
        self._zip: zipfile.ZipFile | None = None
        self._tar: tarfile.TarFile | None = None
        self._file = _open_file(self.path)
        try:
            st = os.fstat(self._file.fileno())  # the file listed, even if the name is swapped later
            self._fingerprint = f"{st.st_size}-{st.st_mtime_ns}-{st.st_ino}"
            with self._format_errors():
                self._list_zip() if self.path.name.lower().endswith(".zip") else self._list_tar()
        except BaseException:
            self.close()
            raise
        self.names = sorted(self._members, key=lambda name: name.split("/"))  # as sorted(root.rglob("*")) sorts
        del self._seen

    # ---------------------------------------------------------------- the listing

    def _list_zip(self) -> None:
        # zipfile parses the whole central directory at once: refuse a huge one by the count its end record declares
        if _declared_zip_entries(self._file) > MAX_ARCHIVE_MEMBERS:
            self._too_many()
        self._zip = zipfile.ZipFile(self._file)
        count = total = 0
        for info in self._zip.infolist():
            count, total = count + 1, total + info.file_size
            self._check_totals(count, total, info.orig_filename)
            if "\0" in info.orig_filename:  # zipfile cuts the name at the NUL: what an unzipper writes is unclear
                self._outside(info.orig_filename)
            name = self._relative(info.filename)
            self._check_ratio(info)
            kind = stat.S_IFMT(info.external_attr >> 16)  # unix mode bits; 0 from DOS and Windows zips
            if info.is_dir() or info.filename.endswith("\\") or kind == stat.S_IFDIR:
                continue
            regular = kind not in _ZIP_SPECIAL  # a symlink's data is its target: never followed
            if regular and info.flag_bits & 0x1 and _is_image(name):
                raise DataError(f"data.path: {self.path}: image member {info.filename!r} is encrypted; "
                                "only unencrypted archives can be read")
            unreadable = regular and info.compress_type not in _ZIP_METHODS  # Deflate64, PPMd, ...
            self._add(name, info.filename, regular, info.file_size, info, UNSUPPORTED_METHOD if unreadable else None)

    def _list_tar(self) -> None:
        stream = decompressed(self._file)
        self.random_access = stream is self._file  # a backwards seek in a compressed one decompresses from the start
        capped = CappedReads(stream, self.path, MAX_TAR_HEADER_BYTES)
        try:
            self._tar = tarfile.open(fileobj=capped, mode="r:")  # decompressed already, by magic bytes, not suffix
            for name, member in self._scan_tar(self._tar, capped):
                if not member.isdir():
                    self._add(name, member.name, member.isreg(), member.size,
                              member if self.random_access else (member.offset, member.size))
            capped.limit = None  # a plain tar's member reads go through it: they are bounded by the member's size
        finally:
            if not self.random_access:  # read() decompresses it again, from the start
                if self._tar is not None:
                    self._tar.close()
                self._tar = None
                stream.close()

    def _scan_tar(self, tar: tarfile.TarFile, capped: CappedReads) -> Iterator[tuple[str, tarfile.TarInfo]]:
        """(relative name, member) for each header, in archive order, each checked before it is yielded."""
        count = total = 0
        while True:
            capped.limit = MAX_TAR_HEADER_BYTES
            member = tar.next()
            tar.members.clear()  # tarfile keeps every header it read: a million of them is gigabytes
            if member is None:
                return
            count, total = count + 1, total + member.size
            self._check_totals(count, total, member.name)
            name = self._relative(member.name)
            capped.limit = None  # the caller may read the member's data next
            yield name, member

    def _add(self, name: str, shown: str, regular: bool, size: int, member, skip: str | None = None) -> None:
        """Counts a file-like member by kind; an image that is a regular file within the size limit (and has no
        other reason `skip` to be passed over) is kept."""
        if not name:
            self._empty(shown)
        if name in self._seen:  # the first member of a name stands for it, as in a folder listing
            return
        self._seen.add(name)
        if not _is_image(name):
            self.others += regular
            if regular and name.lower().endswith(SIDE_FILE_SUFFIXES):  # a label file, read by read_member
                self._side_files[name] = member
        elif not regular:  # never followed: a link could name any file on this machine
            self.skipped[LINK_OR_DEVICE] += 1
        elif skip:
            self.skipped[skip] += 1
        elif size > self._max_member_bytes:
            self.skipped[f"over {self._max_member_bytes} bytes"] += 1
        else:
            self._members[name] = member

    def _relative(self, raw: str) -> str:
        """raw as a relative posix name ('' for the archive's root), or DataError when it would leave the archive.

        A backslash counts as a separator and a drive letter as absolute: an unzipper on Windows reads them so.
        """
        if not raw:
            self._empty(raw)
        name = raw.replace("\\", "/")
        parts = name.split("/")
        if name.startswith("/") or _DRIVE.match(name) or ".." in parts:
            self._outside(raw)
        return "/".join(part for part in parts if part not in ("", "."))

    def _outside(self, raw: str):
        raise DataError(f"data.path: {self.path}: member {raw!r} lies outside the archive; refusing it")

    def _empty(self, raw: str):
        raise DataError(f"data.path: {self.path}: member {raw!r} has an empty name; refusing the archive")

    def _check_totals(self, count: int, total: int, shown: str) -> None:
        if count > MAX_ARCHIVE_MEMBERS:
            self._too_many()
        if total > MAX_ARCHIVE_BYTES:
            raise DataError(f"data.path: {self.path}: its members declare over {MAX_ARCHIVE_BYTES} bytes in all "
                            f"(at member {shown!r}); refusing it (a corrupt or hostile archive?)")

    def _too_many(self):
        raise DataError(f"data.path: {self.path} holds more than {MAX_ARCHIVE_MEMBERS} members; refusing it")

    def _check_ratio(self, info: zipfile.ZipInfo) -> None:
        size, packed = info.file_size, info.compress_size
        if size > RATIO_FREE_BYTES and size > MAX_MEMBER_RATIO * packed:
            raise DataError(f"data.path: {self.path}: member {info.filename!r} unzips to {size} bytes, "
                            f"{size / max(packed, 1):,.0f} times its compressed size (over {MAX_MEMBER_RATIO}:1: "
                            "a zip bomb?); refusing it")

    # ---------------------------------------------------------------- reading

    def read(self, names: list[str]) -> Iterator[tuple[str, BinaryIO]]:
        """(name, its member as a binary file object) for each of names, each file valid until the next is taken.

        In the order given when random_access; a compressed tar's in archive order, each name once. A name not in
        `names` is a KeyError (a caller's bug); one read at a time per archive (they share the open file).
        """
        missing = [name for name in names if name not in self._members and name not in self._side_files]
        if missing:  # checked now, not when the first item is taken
            raise KeyError(f"{missing[0]!r} is not an image member of {self.path}")
        if self._zip is not None:
            return self._read_zip(names)
        return self._read_tar(names) if self._tar is not None else self._read_tar_in_order(names)

    def _read_zip(self, names: list[str]) -> Iterator[tuple[str, BinaryIO]]:
        for name in names:
            info = self._entry(name)
            with self._format_errors(info.filename):
                member = self._zip.open(info)
            # zipfile stops a member at its declared size (the size checked); _MemberFile checks that again
            with MemberFile(member, info.file_size, self._where(info.filename)) as file:
                yield name, file

    def _read_tar(self, names: list[str]) -> Iterator[tuple[str, BinaryIO]]:
        for name in names:
            member = self._entry(name)
            with self._format_errors(member.name):
                data = self._tar.extractfile(member)
            with MemberFile(data, member.size, self._where(member.name)) as file:
                yield name, file

    def _read_tar_in_order(self, names: list[str]) -> Iterator[tuple[str, BinaryIO]]:
        """The tar decompressed again from the start; the members listed at those offsets are handed out."""
        wanted = {self._entry(name)[0]: name for name in names}
        with ExitStack() as opened:
            with self._format_errors():
                stream = decompressed(self._file)
                if stream is not self._file:
                    opened.callback(stream.close)
                capped = CappedReads(stream, self.path, MAX_TAR_HEADER_BYTES)
                opened.enter_context(tar := tarfile.open(fileobj=capped, mode="r:"))
            members = self._scan_tar(tar, capped)
            while wanted:
                with self._format_errors():
                    name, member = next(members, (None, None))
                if member is None:
                    raise self._changed(next(iter(wanted.values())))
                if member.offset not in wanted:
                    continue
                listed = wanted.pop(member.offset)
                if (name, member.size) != (listed, self._entry(listed)[1]) or not member.isreg():
                    raise self._changed(listed)
                with self._format_errors(member.name):
                    data = tar.extractfile(member)
                with MemberFile(data, member.size, self._where(member.name)) as file:
                    yield name, file

    def _entry(self, name: str):
        return self._members[name] if name in self._members else self._side_files[name]

    def read_member(self, name: str, max_bytes: int) -> bytes:
        """A .json or .csv member's bytes (a label file), at most max_bytes; DataError naming it otherwise."""
        if name not in self._side_files:
            raise DataError(f"data.labels: {self.path} holds no regular file {name!r}")
        if self._entry_size(name) > max_bytes:
            raise DataError(f"data.labels: {self.path}: member {name!r} is over {max_bytes} bytes")
        for _, file in self.read([name]):
            return file.read()

    def _entry_size(self, name: str) -> int:
        entry = self._side_files[name]
        return entry.file_size if isinstance(entry, zipfile.ZipInfo) else entry.size if isinstance(
            entry, tarfile.TarInfo) else entry[1]

    def _changed(self, name: str) -> DataError:
        return DataError(f"data.path: {self.path} changed since it was listed (member {name!r} is no longer where "
                         "it was)")

    def _where(self, member: str) -> str:
        return f"data.path: {self.path}: member {member!r}"

    def _format_errors(self, member: str | None = None):
        return FormatErrors(self.path, member)

    # ---------------------------------------------------------------- the rest

    def fingerprint(self) -> str:
        """The archive file's size, mtime_ns and inode when it was opened: what a cache key needs to see it change."""
        return self._fingerprint

    def close(self) -> None:
        for closable in (self._zip, self._tar, self._file):
            if closable is not None:
                closable.close()
        self._zip = self._tar = None

    def __enter__(self) -> ImageArchive:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ---------------------------------------------------------------- helpers


def _open_file(path: Path) -> BinaryIO:
    try:
        return open_regular(path, None, "an image archive")
    except FileNotFoundError:
        raise DataError(f"data.path: {path} does not exist") from None
    except NotRegularFile as e:  # a FIFO would block, a device never end
        raise DataError(f"data.path: {e}") from None
    except OSError as e:
        raise DataError(f"data.path: cannot read {path}: {e.strerror or first_line(e)}") from None


def _is_image(name: str) -> bool:
    return PurePosixPath(name).suffix.lower() in IMAGE_SUFFIXES  # as an image folder decides (".png" is not one)


def _declared_zip_entries(file: BinaryIO) -> int:
    """The entry count a zip's end record declares (0 if unknown), read before zipfile parses every entry.

    zipfile's _EndRecData is private, but in every CPython 3; without it only the count after parsing is checked.
    """
    end_record = getattr(zipfile, "_EndRecData", None)
    record = end_record(file) if end_record else None
    return record[getattr(zipfile, "_ECD_ENTRIES_TOTAL", 4)] if record else 0


