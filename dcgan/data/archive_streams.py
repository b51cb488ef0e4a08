"""The byte streams under an image archive (dcgan.data.archive): the decompressor chosen by magic bytes, a stream
whose single reads are capped while tar headers are read, a member bounded by its declared size, and the
standard library's many errors for a damaged archive turned into one DataError line."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import tarfile
import zipfile
import zlib
from pathlib import Path
from typing import BinaryIO

from dcgan.core.errors import first_line
from dcgan.data.datafiles import DataError

# What a corrupt, truncated or mislabelled archive raises from the standard library (BadGzipFile is an OSError).
FORMAT_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, tarfile.TarError, EOFError, zlib.error, lzma.LZMAError,
                 OSError, ValueError, NotImplementedError, RuntimeError)


def decompressed(file: BinaryIO) -> BinaryIO:
    """file, or file through its decompressor when its first bytes say it is gzip, bz2 or xz (a suffix can lie)."""
    file.seek(0)
    magic = file.read(6)
    file.seek(0)
    if magic.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(fileobj=file, mode="rb")
    if magic.startswith(b"BZh"):
        return bz2.BZ2File(file)
    if magic.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMAFile(file)
    return file


class FormatErrors:
    """Turns the standard library's errors for a corrupt, truncated or mislabelled archive into one DataError line."""

    def __init__(self, path: Path, member: str | None):
        self.path, self.member = path, member

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        if kind is None or issubclass(kind, DataError) or not issubclass(kind, FORMAT_ERRORS):
            return False
        where = f"member {self.member!r} of " if self.member else ""
        raise DataError(f"data.path: cannot read {where}{self.path} (corrupt, truncated or not a "
                        f"{format_name(self.path)} archive): {first_line(error)}") from None


def format_name(path: Path) -> str:
    return "zip" if path.name.lower().endswith(".zip") else "tar"


class CappedReads:
    """A tar's stream whose single reads are refused above `limit` (None: unlimited) while headers are read."""

    def __init__(self, stream: BinaryIO, path: Path, limit: int | None):
        self._stream, self._path, self.limit = stream, path, limit  # tarfile.open reads a header at once

    def read(self, size: int = -1) -> bytes:
        if self.limit is not None and (size is None or size < 0 or size > self.limit):
            raise DataError(f"data.path: {self._path}: a tar header declares {size} bytes of extended header data, "
                            f"over the {self.limit}-byte limit; refusing it (a corrupt or hostile archive?)")
        return self._stream.read(size)

    def __getattr__(self, name):  # seek, tell, name, mode: the stream's own
        return getattr(self._stream, name)


class MemberFile(io.RawIOBase):
    """One member's bytes: at most its declared size, and a corrupt member's error as a DataError naming it."""

    def __init__(self, member: BinaryIO, size: int, where: str):
        super().__init__()
        self._member, self._left, self._where = member, size, where

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        size = self._left if size is None or size < 0 else min(size, self._left)
        try:
            data = self._member.read(size)
        except DataError:
            raise
        except FORMAT_ERRORS as e:
            raise DataError(f"{self._where} is corrupt or truncated: {first_line(e)}") from None
        data = data[:size]  # never more than declared, whatever the reader below does
        self._left -= len(data)
        return data

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._member.close()
        super().close()
