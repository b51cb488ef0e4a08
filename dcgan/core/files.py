"""Files written safely: atomic replacement, a folder's writer lock, bounded reads of regular files.

Every file that is replaced as a whole is written to a temporary name and renamed, so a kill
never leaves a half-written file under its final name. Nothing here follows a link it did not
expect: the lock is opened with O_NOFOLLOW, and a file a command reads back is checked to be a
regular file of bounded size before a byte of it is read.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import time
from pathlib import Path

from dcgan.core.errors import DcganError, printable


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
        self.fd = _open_lock_file(self.path, run_dir)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = printable(os.pread(self.fd, 512, 0).decode(errors="replace").strip()) or "another process"
            os.close(self.fd)
            raise DcganError(f"{printable(str(run_dir))} is in use by {holder}; wait for it to finish or stop it") from None
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


def _open_lock_file(path: Path, run_dir) -> int:
    """The lock file's descriptor, or one line naming it: the lock is truncated and written, so it must be a
    plain file of its own. A link (even a dangling one) is never followed, a FIFO never waited on (O_NONBLOCK),
    and a device, a FIFO or a hard link to some other file is refused before a byte is written."""
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    where = f"cannot lock {printable(str(run_dir))}: {printable(str(path))}"
    try:
        fd = os.open(path, flags, 0o666 & ~_umask())
    except OSError as e:
        if path.is_symlink():
            raise DcganError(f"{where} is a symbolic link; the lock must be a plain file (remove the link)") from None
        raise DcganError(f"{where}: {e.strerror or e}") from None
    problem = _not_a_lock_file(os.fstat(fd))
    if problem:
        os.close(fd)
        raise DcganError(f"{where} {problem}; remove it") from None
    return fd


def _not_a_lock_file(st: os.stat_result) -> str:
    """Why an opened file may not serve as a lock (truncating it would destroy something), or ''."""
    if not stat.S_ISREG(st.st_mode):
        return "is not a regular file (" + next((name for test, name in _KINDS if test(st.st_mode)), "a special file") + ")"
    if st.st_nlink > 1:
        return f"has {st.st_nlink} hard links (another name for some other file)"
    return ""


def inside(path: Path, folder: Path) -> bool:
    """Whether path is folder or under it (links resolved): a write there is a write into that run."""
    return Path(path).resolve().is_relative_to(Path(folder).resolve())


def lock_run(run_dir: str | Path, command: str) -> RunLock:
    """Take the run's writer lock, or fail in one line naming the process that holds it."""
    return RunLock(run_dir, command)


# ---------------------------------------------------------------- reading a file back

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def check_regular(path: str | Path, limit: int | None, what: str, st: os.stat_result | None = None) -> None:
    """Refuse, in one DcganError line, anything at path but a regular file (a link to one is fine) of at most limit bytes.

    A FIFO blocks its reader until a writer comes and a device (a link to /dev/zero) never ends; a run folder
    a user copied, unpacked or was sent can hold either under a name we read back. FileNotFoundError passes
    through: a missing file is normal for many callers.
    """
    shown = printable(str(path))
    try:
        st = st or os.stat(path)
    except FileNotFoundError:
        raise
    except OSError as e:
        raise DcganError(f"cannot read {shown}: {e.strerror or e}") from None
    if not stat.S_ISREG(st.st_mode):
        kind = next((name for test, name in _KINDS if test(st.st_mode)), "a special file")
        raise DcganError(f"{shown}: {what} must be a regular file, not {kind}")
    if limit is not None and st.st_size > limit:
        raise DcganError(f"{shown}: {st.st_size} bytes, over the {limit}-byte limit for {what} (a corrupt or hostile file?)")


def read_bytes(path: str | Path, limit: int, what: str) -> bytes:
    """The content of a regular file of at most limit bytes (see check_regular); one DcganError line otherwise.

    The name is checked before it is opened (a device is never opened), and the open file again in case the
    name was swapped in between; O_NONBLOCK keeps even the open of a swapped-in FIFO from blocking, and the
    read stops at limit + 1 bytes however the file grows meanwhile.
    """
    check_regular(path, limit, what)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as e:
        raise DcganError(f"cannot read {printable(str(path))}: {e.strerror or e}") from None
    try:
        check_regular(path, limit, what, os.fstat(fd))
        chunks, size = [], 0
        while size <= limit and (chunk := os.read(fd, min(limit + 1 - size, 1 << 20))):
            chunks.append(chunk)
            size += len(chunk)
    except OSError as e:
        raise DcganError(f"cannot read {printable(str(path))}: {e.strerror or e}") from None
    finally:
        os.close(fd)
    if size > limit:
        raise DcganError(f"{printable(str(path))}: grew past the {limit}-byte limit for {what} while it was read")
    return b"".join(chunks)
