"""Where `dcgan prepare` writes: OUT.partial while it works, OUT once finished, and what it may remove on the way.

A prepare writes into OUT.partial/, marking it first as its own (PARTIAL_MARKER), and renames it to OUT only
once the manifest is written. It removes a stale OUT.partial only when that marker is there and the folder
holds nothing but what a prepare writes; --force replaces OUT only when it holds nothing but a prepared
dataset (its manifest and the shards it lists). Anything else is refused in one line and left as it is.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
from pathlib import Path

from dcgan.core.errors import DcganError, first_line
from dcgan.core.files import LOCK_FILE, RunLock, atomic_write, lock_run
from dcgan.data import prepared_format
from dcgan.data.datafiles import DataError, open_regular


def check_out(source: Path, out: Path, force: bool) -> None:
    """OUT may be replaced only with --force, and only when it holds nothing but an earlier prepared dataset (its
    manifest, the shards it lists); never SOURCE, the current directory or a folder above either."""
    src, dst, cwd = source.resolve(), out.resolve(), Path.cwd().resolve()
    if dst == src or dst in src.parents:
        raise DcganError(f"OUT: {out} is SOURCE or holds it; write the prepared dataset somewhere else")
    if not (out.exists() or out.is_symlink()):
        return
    if not force:
        raise DcganError(f"OUT: {out} exists; pass --force to replace an earlier prepared dataset")
    if dst == cwd or dst in cwd.parents:
        raise DcganError(f"OUT: {out} is the current directory or a folder above it; --force never replaces those")
    problem = _not_a_dataset(out)
    if problem:
        raise DcganError(f"OUT: {out} {problem}; --force replaces only a folder holding nothing but a prepared "
                         "dataset, so nothing was changed")


def _dataset_files(out: Path) -> set[str]:
    """The names a finished prepared dataset at out may hold: its manifest, the shards it lists, prepare's own files.
    DataError when out has no valid manifest."""
    manifest = prepared_format.read_manifest(out, check_files=False)
    return {prepared_format.MANIFEST, LOCK_FILE, PARTIAL_MARKER, *(s.file for s in manifest.shards)}


def _not_a_dataset(out: Path) -> str:
    """Why --force may not replace out ('' when it may)."""
    if out.is_symlink():
        return "is a symbolic link"
    if not (out / prepared_format.MANIFEST).is_file():
        return f"is not a prepared dataset (no dcgan {prepared_format.MANIFEST})"
    try:
        names = _dataset_files(out)
    except DataError as e:
        return f"has no valid prepared dataset manifest ({first_line(e)})"
    return _foreign_entry(out, names.__contains__)


# ---------------------------------------------------------------- OUT.partial: what a prepare may remove

PARTIAL_MARKER = ".dcgan-prepare"  # written first into OUT.partial: only a folder holding it is ever removed
PARTIAL_FORMAT = "dcgan-prepare-partial"
MAX_MARKER_BYTES = 4096
_PARTIAL_NAME = re.compile("|".join([
    r"part-\d{5,}\.tfrecord",  # ShardWriter's, renamed to shard names once all are written
    prepared_format.SHARD_NAME.pattern,
    rf"\.({re.escape(prepared_format.MANIFEST)}|{re.escape(PARTIAL_MARKER)})\.[^/]+\.tmp",  # atomic_write's temporaries
]))


def _partial_file(name: str) -> bool:
    """Whether a prepare writes a file of this name into OUT.partial."""
    return name in (PARTIAL_MARKER, LOCK_FILE, prepared_format.MANIFEST) or _PARTIAL_NAME.fullmatch(name) is not None


def _foreign_entry(folder: Path, ours) -> str:
    """What in folder a prepare did not write ('' when nothing): a name ours() refuses, or not a plain file."""
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if not ours(entry.name):
            return f"holds {entry.name!r}, which `dcgan prepare` does not write"
        if not entry.is_file(follow_symlinks=False):
            return f"holds {entry.name!r}, which is not a plain file as `dcgan prepare` writes it"
    return ""


def _remove_ours(folder: Path, ours) -> None:
    """Delete the plain files of folder that ours() names, then the folder if that emptied it; anything else stays."""
    if folder.is_symlink() or not folder.is_dir():
        return
    for entry in os.scandir(folder):
        if ours(entry.name) and entry.is_file(follow_symlinks=False):
            os.unlink(entry.path)
    with contextlib.suppress(OSError):
        folder.rmdir()


def _is_marked(partial: Path) -> bool:
    """Whether partial holds the marker a prepare writes first (a plain file naming PARTIAL_FORMAT)."""
    marker = partial / PARTIAL_MARKER
    if marker.is_symlink() or not marker.is_file():
        return False
    try:
        with open_regular(marker, MAX_MARKER_BYTES, "a prepare marker") as f:
            data = json.loads(f.read(MAX_MARKER_BYTES + 1))
    except (OSError, DataError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(data, dict) and data.get("format") == PARTIAL_FORMAT


def _check_stale_partial(partial: Path) -> None:
    """One line unless partial is an unfinished prepare's folder: marked as one, holding nothing else."""
    leave = "; it was left alone: move it away first"
    if partial.is_symlink() or not partial.is_dir():
        raise DcganError(f"{partial} exists and is not an unfinished `dcgan prepare`{leave}")
    if not any(partial.iterdir()):
        return  # a prepare killed between making the folder and marking it: nothing to lose
    if not _is_marked(partial):
        raise DcganError(f"{partial} exists and is not marked as an unfinished `dcgan prepare` (no valid "
                         f"{PARTIAL_MARKER}){leave}")
    problem = _foreign_entry(partial, _partial_file)
    if problem:
        raise DcganError(f"{partial} {problem}{leave}")


def claim(partial: Path) -> RunLock:
    """Make OUT.partial/ ours, removing what a killed prepare left there; returns the held lock.

    Only a folder that a prepare marked as its own (PARTIAL_MARKER, written first) and that holds nothing but
    what a prepare writes is removed; one whose lock is held belongs to a prepare still running.
    """
    if partial.exists() or partial.is_symlink():
        _check_stale_partial(partial)
        lock_run(partial, "dcgan prepare").release()  # one line naming the holder while another prepare writes it
        print(f"prepare: removing {partial}, left by an interrupted run", file=sys.stderr)
        discard(partial)
    try:
        partial.mkdir(parents=True)
    except OSError as e:
        raise DcganError(f"cannot create {partial}: {e.strerror or first_line(e)}") from None
    try:
        marker = {"format": PARTIAL_FORMAT, "pid": os.getpid(), "note": "an unfinished `dcgan prepare`, removed by the next"}
        atomic_write(partial / PARTIAL_MARKER, json.dumps(marker) + "\n")
        return lock_run(partial, "dcgan prepare")
    except BaseException:
        discard(partial)
        raise


def discard(partial: Path) -> None:
    """Remove an unfinished OUT.partial: the files a prepare writes there, and the folder once empty."""
    _remove_ours(partial, _partial_file)


def publish(partial: Path, out: Path) -> None:
    """OUT.partial -> OUT by rename; an earlier prepared dataset at OUT (--force) is moved aside, then its files deleted."""
    _fsync_dir(partial)
    old = None
    if out.exists() or out.is_symlink():
        problem = _not_a_dataset(out)  # checked again: OUT may have changed while the shards were written
        if problem:
            raise DcganError(f"OUT: {out} {problem} (changed while preparing); nothing was replaced")
        old = out.with_name(f"{out.name}.replaced-{os.getpid()}")
        names = _dataset_files(out)
        os.rename(out, old)
    try:
        os.rename(partial, out)
    except BaseException:
        if old is not None:
            os.rename(old, out)
        raise
    _fsync_dir(out.parent)
    (out / PARTIAL_MARKER).unlink()  # only now: until OUT exists, the marker says OUT.partial may be removed
    if old is not None:
        _remove_ours(old, names.__contains__)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
