"""Export a run's generator (the copy it samples from, unless --ema/--no-ema says) as a .keras file or a TensorFlow SavedModel.

The .keras file keeps the Keras model; loading it with safe_mode=True needs
`import dcgan.models.networks` first when the generator uses the project's custom layers
(DepthToSpace, ICNR: sub-pixel blocks). The SavedModel is a traced graph: it
loads with plain `tf.saved_model.load`, without this package, and maps a float32
batch of latent vectors `z` (None, latent_dim) to images in [-1, 1]; a
conditional generator's also takes an int32 batch of class labels `label` (None,),
as its .keras model takes [z, label].

Both carry dcgan_export.json (run, step, which copy, class names: index = label,
null for an unconditional run): in the SavedModel directory, and as a member of
the .keras zip, which Keras' loader ignores.
"""

from __future__ import annotations

import contextlib
import json
import os
import zipfile
from pathlib import Path

from dcgan.training.checkpoints import find_checkpoint
from dcgan.core.errors import DcganError, first_line
from dcgan.training import rundir
from dcgan.core.files import atomic_path, atomic_write, inside, lock_run, remove_path

FORMATS = ("keras", "savedmodel")
EXPORT_DIR = "export"
KERAS_FILE = "generator.keras"
SAVEDMODEL_DIR = "savedmodel"
MARKER_FILE = "dcgan_export.json"  # says which run and step; --force replaces only a directory holding it
SAVEDMODEL_ENTRIES = {"saved_model.pb", "variables", "assets", "fingerprint.pb", "keras_metadata.pb", MARKER_FILE}
ENDPOINT = "serve"  # also the serving_default signature: inputs "z" (and "label"), output "output_0"


def output_path(run_dir: Path, fmt: str, out: str | None) -> Path:
    """keras: a .keras file (a directory --out gets generator.keras); savedmodel: the directory itself."""
    if fmt == "keras":
        if out is None:
            return run_dir / EXPORT_DIR / KERAS_FILE
        return Path(out) if out.endswith(".keras") else Path(out) / KERAS_FILE
    return Path(out) if out is not None else run_dir / EXPORT_DIR / SAVEDMODEL_DIR


def check_export_path(path: Path, fmt: str, run_dir: Path, force: bool) -> None:
    """Refuse to replace anything but an earlier export, and fail before the model is built if unwritable."""
    target = path.resolve()
    if target == Path.cwd().resolve() or target in Path.cwd().resolve().parents:
        raise DcganError(f"--out {path}: cannot write an export over the current directory or a folder above it")
    if run_dir.resolve() == target or target in run_dir.resolve().parents:
        raise DcganError(f"--out {path}: cannot write an export over the run directory {run_dir} or a folder holding it")
    if fmt == "keras" and path.is_dir():
        raise DcganError(f"--out {path}: is a directory; name a FILE.keras or a folder to hold generator.keras")
    if fmt == "savedmodel" and path.exists() and not path.is_dir():
        raise DcganError(f"--out {path}: is a file; a SavedModel is written as a directory")
    taken = path.is_file() or (path.is_dir() and any(path.iterdir()))
    if taken and not force:
        raise DcganError(f"{path} already exists; pass --force to replace it")
    if taken and not is_earlier_export(path, fmt):
        what = "a .keras file" if fmt == "keras" else f"a SavedModel directory this command wrote (with {MARKER_FILE})"
        raise DcganError(f"--force replaces only an earlier export; {path} is not {what}, so it is left alone")
    rundir.check_output(path.parent, is_dir=True)  # the export is written beside its final name, then moved


def is_earlier_export(path: Path, fmt: str) -> bool:
    """What --force may replace: a .keras (zip) file, or a SavedModel directory holding nothing but an export."""
    if fmt == "keras":
        return path.is_file() and not path.is_symlink() and zipfile.is_zipfile(path)
    names = {p.name for p in path.iterdir()}
    return not path.is_symlink() and {"saved_model.pb", MARKER_FILE} <= names and names <= SAVEDMODEL_ENTRIES


def export(target: str | Path, fmt: str = "keras", out: str | None = None, step: int | None = None,
           use_ema: bool | None = None, force: bool = False) -> str:
    """`dcgan export`: write the generator; returns a one-line summary."""
    if fmt not in FORMATS:
        raise DcganError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
    checkpoint = find_checkpoint(target, step)
    path = output_path(checkpoint.run_dir, fmt, out)
    check_export_path(path, fmt, checkpoint.run_dir, force)
    # an export into the run is a write into the run: not while another command writes there
    with lock_run(checkpoint.run_dir, "dcgan export") if inside(path, checkpoint.run_dir) else contextlib.nullcontext():
        from dcgan.training.gan import load_generator

        gen = load_generator(checkpoint, use_ema)
        provenance = {"run": str(checkpoint.run_dir), "step": checkpoint.step, "ema": gen.ema, "classes": gen.classes}
        try:
            (write_keras if fmt == "keras" else write_savedmodel)(gen.model, path, provenance)
        except OSError as e:
            raise DcganError(f"cannot write {path}: {e.strerror or first_line(e)}") from None
    classes = f" with {len(gen.classes)} classes" if gen.classes else ""
    return f"{path}: {gen.describe()}{classes} as {fmt}"


def write_keras(model, path: Path, provenance: dict) -> Path:
    """model.save, plus the provenance as a member of the zip: a .keras file travels alone, its class names with it."""
    with atomic_path(path) as tmp:  # keras insists on the .keras suffix, which atomic_path keeps
        model.save(tmp)
        with zipfile.ZipFile(tmp, "a") as archive:
            archive.writestr(MARKER_FILE, json.dumps(provenance) + "\n")
    return path


def serving_endpoint(model):
    """The function the SavedModel serves and its input signature: z, and a conditional generator's labels."""
    import tensorflow as tf

    from dcgan.models.networks import is_conditional

    z = tf.TensorSpec([None, model.inputs[0].shape[-1]], tf.float32, name="z")
    if is_conditional(model):
        label = tf.TensorSpec([None], tf.int32, name="label")
        return (lambda z, label: model([z, label], training=False)), [z, label]
    return (lambda z: model(z, training=False)), [z]


def write_savedmodel(model, path: Path, provenance: dict) -> Path:
    """Trace model(z[, label], training=False) into a temporary sibling directory, then move it in place."""
    import keras
    import tensorflow as tf

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(ENDPOINT, *serving_endpoint(model))
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    old = path.with_name(f".{path.name}.{os.getpid()}.old")
    remove_path(tmp)
    try:
        try:
            archive.write_out(str(tmp), verbose=False)
        except tf.errors.OpError as e:  # a full disk surfaces as a TensorFlow error, not an OSError
            raise OSError(first_line(e)) from None
        atomic_write(tmp / MARKER_FILE, json.dumps(provenance) + "\n")
        if path.exists():  # --force, checked to be an earlier export: a directory cannot be renamed over a non-empty one
            path.rename(old)
        tmp.rename(path)
    finally:
        if old.exists() and not path.exists():  # the move failed: put the earlier export back
            old.rename(path)
        remove_path(tmp)
        remove_path(old)
    return path
