"""Export a run's generator (the copy it samples from, unless --ema/--no-ema says) as a .keras file or a TensorFlow SavedModel.

The .keras file keeps the Keras model; loading it with safe_mode=True needs
`import dcgan.models` first when the generator uses the project's custom layers
(DepthToSpace, ICNR: sub-pixel blocks). The SavedModel is a traced graph: it
loads with plain `tf.saved_model.load`, without this package, and maps a float32
batch of latent vectors (None, latent_dim) to images in [-1, 1].
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from dcgan.errors import DcganError
from dcgan.sample import find_checkpoint, load_generator

FORMATS = ("keras", "savedmodel")
EXPORT_DIR = "export"
KERAS_FILE = "generator.keras"
SAVEDMODEL_DIR = "savedmodel"
ENDPOINT = "serve"  # also the serving_default signature: input "z", output "output_0"


def output_path(run_dir: Path, fmt: str, out: str | None) -> Path:
    """keras: a .keras file (a directory --out gets generator.keras); savedmodel: the directory itself."""
    if fmt == "keras":
        if out is None:
            return run_dir / EXPORT_DIR / KERAS_FILE
        return Path(out) if out.endswith(".keras") else Path(out) / KERAS_FILE
    return Path(out) if out is not None else run_dir / EXPORT_DIR / SAVEDMODEL_DIR


def check_output(path: Path, force: bool) -> None:
    """Refuse to replace earlier work silently, and fail before the model is built if unwritable."""
    taken = path.is_file() or (path.is_dir() and any(path.iterdir()))
    if taken and not force:
        raise DcganError(f"{path} already exists; pass --force to replace it")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DcganError(f"cannot write {path}: {e.strerror or e}") from None
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise DcganError(f"cannot write {path}: permission denied")


def export(target: str | Path, fmt: str = "keras", out: str | None = None, step: int | None = None,
           use_ema: bool | None = None, force: bool = False) -> str:
    """`dcgan export`: write the generator; returns a one-line summary."""
    if fmt not in FORMATS:
        raise DcganError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
    checkpoint = find_checkpoint(target, step)
    path = output_path(checkpoint.run_dir, fmt, out)
    check_output(path, force)
    gen = load_generator(checkpoint, use_ema)
    try:
        if fmt == "keras":
            write_keras(gen.model, path)
        else:
            write_savedmodel(gen.model, path)
    except OSError as e:
        raise DcganError(f"cannot write {path}: {e.strerror or e}") from None
    return f"{path}: {gen.describe()} as {fmt}"


def write_keras(model, path: Path) -> Path:
    from dcgan.gan import save_generator

    return save_generator(model, path)


def write_savedmodel(model, path: Path) -> Path:
    """Trace model(z, training=False) into a temporary sibling directory, then move it in place."""
    import keras
    import tensorflow as tf

    archive = keras.export.ExportArchive()
    archive.track(model)
    spec = tf.TensorSpec([None, model.input_shape[-1]], tf.float32, name="z")
    archive.add_endpoint(ENDPOINT, lambda z: model(z, training=False), input_signature=[spec])
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    old = path.with_name(f".{path.name}.{os.getpid()}.old")
    _remove(tmp)
    try:
        archive.write_out(str(tmp), verbose=False)
        if path.exists():  # --force: a directory cannot be renamed over a non-empty one
            path.rename(old)
        tmp.rename(path)
    finally:
        if old.exists() and not path.exists():  # the move failed: put the earlier export back
            old.rename(path)
        _remove(tmp)
        _remove(old)
    return path


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
