"""Files written safely: atomic replacement, a folder's writer lock, bounded reads of regular files.

Every file that is replaced as a whole is written to a temporary name and renamed, so a kill
never leaves a half-written file under its final name. Nothing here follows a link it did not
expect: the lock is opened with O_NOFOLLOW, and a file a command reads back is checked to be a
regular file of bounded size before a byte of it is read.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from dcgan.core.errors import DcganError


def cache_dir() -> Path:
    """Where derived data (feature networks, statistics, decoded folders) is kept."""
    return Path(os.environ.get("DCGAN_CACHE", Path.home() / ".cache" / "dcgan"))


def atomic_write(path: str | Path, data: bytes | str) -> Path:
    """Write data to path via a temporary file in the same directory and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fchmod(f.fileno(), 0o666 & ~_umask())  # mkstemp makes 0600; a plain open() would honour the umask
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_path(path: str | Path):
    """A temporary sibling path for writers that need a filename; call commit() to publish."""
    return _AtomicPath(Path(path))


class _AtomicPath:
    def __init__(self, final: Path):
        self.final = final
        final.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp{final.suffix}")

    def __enter__(self) -> Path:
        return self.tmp

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                os.replace(self.tmp, self.final)
        finally:  # the writer or the rename failed: no temporary is left behind
            self._remove_tmp()
        return False

    def _remove_tmp(self):
        remove_path(self.tmp)


def remove_path(path: Path) -> None:
    """Delete a file, a link (never what it points to) or a folder tree; nothing there is fine."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def check_output(path: Path, is_dir: bool = False) -> None:
    """Fail in one line, before any work, when a command's output cannot be written there (creates its folder)."""
    folder = path if is_dir else path.parent
    if not is_dir and path.is_dir():
        raise DcganError(f"cannot write {path}: it is a directory")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe_writable(folder)
    except OSError as e:
        raise DcganError(f"cannot write {path}: {e.strerror or e}") from None


def probe_writable(folder: Path) -> None:
    """Raise OSError unless a file can be created in folder (os.access says yes to root on a read-only mount)."""
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(13, "permission denied", str(folder))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".probe.", suffix=".tmp")
    os.close(fd)
    os.unlink(tmp)


LOCK_FILE = ".lock"


class RunLock:
    """An exclusive OS lock (flock) on a run directory, held by the one process that writes into it.

    The kernel drops a flock when its holder dies, so a killed run never leaves a stale lock.
    The lock file's contents (pid, command, start time) are only there to name the holder.
    """

    def __init__(self, run_dir: str | Path, command: str):
        import fcntl

        self.path = Path(run_dir) / LOCK_FILE
        try:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666 & ~_umask())
        except OSError as e:
            raise DcganError(f"cannot lock {run_dir}: {e.strerror or e}") from None
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(self.fd, 512, 0).decode(errors="replace").strip() or "another process"
            os.close(self.fd)
            raise DcganError(f"{run_dir} is in use by {holder}; wait for it to finish or stop it") from None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"process {os.getpid()} ({command}, since {time.strftime('%Y-%m-%d %H:%M:%S')})".encode(), 0)

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing drops the flock; the file stays, empty of meaning
            self.fd = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def inside(path: Path, folder: Path) -> bool:
    """Whether path is folder or under it (links resolved): a write there is a write into that run."""
    return Path(path).resolve().is_relative_to(Path(folder).resolve())


def lock_run(run_dir: str | Path, command: str) -> RunLock:
    """Take the run's writer lock, or fail in one line naming the process that holds it."""
    return RunLock(run_dir, command)


