"""Latent vectors in a file: what `dcgan project` writes and `dcgan sample --latents FILE` draws again exactly.

An npz with `z`, float32 (N, latent_dim), and for a conditional run `labels`, int64 (N,) class indices (`classes`,
their names, travels beside them). Read back bounded and checked: a regular file of at most MAX_LATENTS_BYTES, no
pickles, finite values, the run's latent size, labels that name the run's classes.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from dcgan.core.errors import DcganError
from dcgan.core.files import atomic_write
from dcgan.data.datafiles import DataError, open_regular

MAX_LATENTS_BYTES = 256 << 20  # 100,000 latents of 512 floats and then some
MAX_LATENTS = 1_000_000


def write_latents(path: str | Path, z: np.ndarray, labels: np.ndarray | None = None,
                  classes: list[str] | None = None, **extra) -> Path:
    arrays = {"z": np.asarray(z, np.float32)}
    if labels is not None:
        arrays["labels"] = np.asarray(labels, np.int64)
        arrays["classes"] = np.asarray(classes, np.str_)
    buf = io.BytesIO()
    np.savez(buf, **arrays, **extra)
    return atomic_write(path, buf.getvalue())


def read_latents(path: str | Path, latent_dim: int, classes: list[str] | None) -> tuple[np.ndarray, np.ndarray | None]:
    """(z, labels or None) from an npz, checked against the run; one line naming the file and the problem otherwise."""
    where = f"--latents {path}"
    try:
        with open_regular(path, MAX_LATENTS_BYTES, "a latents file") as f, np.load(f, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in ("z", "labels") if k in npz.files}
    except FileNotFoundError:
        raise DcganError(f"{where}: does not exist") from None
    except DataError as e:
        raise DcganError(f"{where}: {e}") from None
    except (OSError, ValueError, EOFError) as e:  # not an npz, a pickle inside, truncated
        raise DcganError(f"{where}: not a readable npz of latents ({type(e).__name__})") from None
    z = arrays.get("z")
    if z is None:
        raise DcganError(f"{where}: has no 'z' array (the latents, (N, {latent_dim}))")
    if z.ndim != 2 or z.shape[1] != latent_dim or not 1 <= len(z) <= MAX_LATENTS or z.dtype.kind != "f":
        raise DcganError(f"{where}: 'z' is {z.dtype} {z.shape}; this run takes float (N, {latent_dim}) latents")
    if not np.isfinite(z).all():
        raise DcganError(f"{where}: 'z' holds NaN or infinite values")
    labels = arrays.get("labels")
    if classes and labels is None:
        raise DcganError(f"{where}: this run is conditional; the file needs 'labels' (one class index per latent)")
    if not classes and labels is not None:
        raise DcganError(f"{where}: holds 'labels' but this run is unconditional")
    if labels is not None:
        if labels.shape != (len(z),) or labels.dtype.kind not in "iu" or labels.min() < 0 or labels.max() >= len(classes):
            raise DcganError(f"{where}: 'labels' must be {len(z)} class indices in 0..{len(classes) - 1}")
        labels = labels.astype(np.int64)
    return z.astype(np.float32), labels
