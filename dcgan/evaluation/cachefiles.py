"""Reading evaluation's cache entries back: a damaged entry is reported and rebuilt, never trusted or a traceback.

The cache holds what evaluation computed once: feature networks (a folder with the model and an `info.json`
written last) and real-set statistics (one `.npz` each). A crash, a full disk or another program can leave
any of them truncated or changed, so every reader checks what it loads and treats anything else as absent.

Cache names are made here from what the reader derives (content hashes it computes, the network's weights
digest), never from what a data file claims: a name taken from data could climb out of the cache with
`../`, or claim another dataset's entry.
"""

from __future__ import annotations

import json
import math
import re
import sys
import zipfile
from pathlib import Path

import numpy as np

from dcgan.core.errors import first_line
from dcgan.core.files import cache_dir
from dcgan.data.datafiles import DataError, open_regular
from dcgan.evaluation.featurenet import RESIZE_VERSION

HEX_DIGEST = re.compile(r"[0-9a-f]{64}")  # a sha256 in hex: the only manifest hash that may become part of a name
MAX_INFO_BYTES = 1 << 20  # an info.json is a few hundred bytes
NO_NETWORK = "pixels"  # the statistics folder of a pass that needs no feature network (checkerboard only)


class DamagedCache(Exception):
    """A cache entry that cannot be trusted; its message says why, and the entry is made again."""


def note(quiet: bool, message: str) -> None:
    """A one-line notice on stderr (stdout carries only results), as the progress lines of these caches are."""
    if not quiet:
        print(message, file=sys.stderr, flush=True)


def stats_file(net, name: str) -> Path:
    """Where statistics against `net` are kept: its key names the folder (readable), its weights digest is
    in the file name, so a network retrained under the same key never meets the old network's statistics."""
    if net is None:
        return cache_dir() / "stats" / NO_NETWORK / f"{name}.npz"
    return cache_dir() / "stats" / net.key / f"{name}-w{net.content_digest()[:16]}-r{RESIZE_VERSION}.npz"


def load_npz(path: Path, fields: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The named arrays of a cached .npz, each finite; DamagedCache when it is unreadable or lacks one."""
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in fields}
    except KeyError as e:
        raise DamagedCache(f"it has no {e.args[0] if e.args else 'array'!r}") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zipfile.LargeZipFile) as e:
        raise DamagedCache(f"unreadable: {first_line(e)}") from None
    for name, a in arrays.items():
        if a.dtype.kind in "fc" and not np.isfinite(a).all():
            raise DamagedCache(f"its {name!r} holds NaN or infinity")
    return arrays


def check_shapes(arrays: dict[str, np.ndarray], want: dict[str, tuple]) -> None:
    """Each array's shape as wanted (None: any length on that axis); DamagedCache naming the first that is not."""
    for name, shape in want.items():
        got = arrays[name].shape
        if len(got) != len(shape) or any(w is not None and g != w for g, w in zip(got, shape)):
            raise DamagedCache(f"its {name!r} has shape {got}, expected {tuple('N' if w is None else w for w in shape)}")


def entry_hash(folder: Path) -> str:
    """The content hash a feature network's folder is named by: the reader's own, never read back from its info.json."""
    return folder.name.rsplit("-", 1)[1]


def read_info(path: Path, folder_hash: str, numbers: tuple[str, ...] = ()) -> dict:
    """A feature network's info.json, checked: a JSON object whose hash is its folder's, with `numbers` numeric."""
    try:
        with open_regular(path, MAX_INFO_BYTES, "a cache info.json") as f:
            info = json.loads(f.read(MAX_INFO_BYTES + 1))
    except (OSError, DataError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DamagedCache(f"{path.name} is unreadable: {first_line(e)}") from None
    if not isinstance(info, dict):
        raise DamagedCache(f"{path.name} is not a JSON object")
    if info.get("hash") != folder_hash:
        raise DamagedCache(f"{path.name} names hash {str(info.get('hash'))[:40]!r}, not its folder's {folder_hash}")
    for field in numbers:
        value = info.get(field)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise DamagedCache(f"{path.name} has no number {field!r}")
    return info
