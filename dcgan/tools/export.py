"""Export a run's generator (the copy it samples from, unless --ema/--no-ema says) as a .keras file, a TensorFlow
SavedModel or an ONNX model (dcgan.tools.onnx_export).

The .keras file keeps the Keras model; loading it with safe_mode=True needs
`import dcgan.models.networks` first when the generator uses the project's custom layers
(DepthToSpace, ICNR: sub-pixel blocks; or a registered architecture's own). The SavedModel is a traced graph: it
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
import re
import zipfile
from pathlib import Path

from dcgan.training.checkpoints import find_checkpoint
from dcgan.core.errors import DcganError, first_line
from dcgan.core.files import atomic_path, atomic_write, check_output, inside, lock_run, remove_path

FORMATS = ("keras", "savedmodel", "onnx", "hub")
EXPORT_DIR = "export"
KERAS_FILE = "generator.keras"
ONNX_FILE = "generator.onnx"
SAVEDMODEL_DIR = "savedmodel"
HUB_DIR = "hub"
MARKER_FILE = "dcgan_export.json"  # says which run and step; --force replaces only a directory holding it
# everything a SavedModel export writes: these files at the top, variables/ holding only its shards, assets/ empty
SAVEDMODEL_FILES = {"saved_model.pb", "fingerprint.pb", "keras_metadata.pb", MARKER_FILE}
SAVEDMODEL_DIRS = {"variables", "assets"}
VARIABLES_FILE = re.compile(r"variables\.(index|data-\d{5}-of-\d{5})")
PROVENANCE_KEYS = {"run", "step", "ema", "classes"}
MAX_MARKER_BYTES = 1 << 20  # provenance of 20,000 class names fits many times over
SINGLE_FILE = {"keras": KERAS_FILE, "onnx": ONNX_FILE}  # the formats written as one file
ENDPOINT = "serve"  # also the serving_default signature: inputs "z" (and "label"), output "output_0"


def output_path(run_dir: Path, fmt: str, out: str | None) -> Path:
    """keras, onnx: a file (a directory --out gets generator.keras or .onnx); savedmodel: the directory itself."""
    if fmt in SINGLE_FILE:
        name = SINGLE_FILE[fmt]
        if out is None:
            return run_dir / EXPORT_DIR / name
        return Path(out) if out.endswith(Path(name).suffix) else Path(out) / name
    if fmt == "hub":
        return Path(out) if out is not None else run_dir / EXPORT_DIR / HUB_DIR
    return Path(out) if out is not None else run_dir / EXPORT_DIR / SAVEDMODEL_DIR


def check_export_path(path: Path, fmt: str, run_dir: Path, force: bool) -> None:
    """Refuse to replace anything but an earlier export, and fail before the model is built if unwritable."""
    target = path.resolve()
    if target == Path.cwd().resolve() or target in Path.cwd().resolve().parents:
        raise DcganError(f"--out {path}: cannot write an export over the current directory or a folder above it")
    if run_dir.resolve() == target or target in run_dir.resolve().parents:
        raise DcganError(f"--out {path}: cannot write an export over the run directory {run_dir} or a folder holding it")
    if fmt in SINGLE_FILE and path.is_dir():
        suffix = Path(SINGLE_FILE[fmt]).suffix
        raise DcganError(f"--out {path}: is a directory; name a FILE{suffix} or a folder to hold {SINGLE_FILE[fmt]}")
    if fmt == "savedmodel" and path.exists() and not path.is_dir():
        raise DcganError(f"--out {path}: is a file; a SavedModel is written as a directory")
    taken = path.is_file() or (path.is_dir() and any(path.iterdir()))
    if fmt == "hub":  # a folder of its own files: dcgan.tools.hub checks what --force may replace
        check_output(path.parent, is_dir=True)
        return
    if taken and not force:
        raise DcganError(f"{path} already exists; pass --force to replace it")
    if taken and not is_earlier_export(path, fmt):
        what = {"keras": "a .keras file", "onnx": "an ONNX file this command wrote (with its dcgan_export metadata)"}.get(
            fmt, f"a SavedModel directory this command wrote (with {MARKER_FILE})")
        raise DcganError(f"--force replaces only an earlier export; {path} is not {what}, so it is left alone")
    check_output(path.parent, is_dir=True)  # the export is written beside its final name, then moved


def is_earlier_export(path: Path, fmt: str) -> bool:
    """What --force may replace: a .keras (zip) file, or a SavedModel directory holding nothing but an export."""
    if fmt == "keras":
        return path.is_file() and not path.is_symlink() and zipfile.is_zipfile(path)
    if fmt == "onnx":
        from dcgan.tools.onnx_export import is_onnx_export

        return is_onnx_export(path)
    if path.is_symlink() or not (path / "saved_model.pb").is_file() or not is_marker(path / MARKER_FILE):
        return False
    for root, dirs, files in os.walk(path):  # links are not followed: a link anywhere is not ours
        where = Path(root).relative_to(path)
        for name in dirs:
            if (path / where / name).is_symlink() or where != Path(".") or name not in SAVEDMODEL_DIRS:
                return False
        for name in files:
            entry = path / where / name
            ours = name in SAVEDMODEL_FILES if where == Path(".") else where == Path("variables") and VARIABLES_FILE.fullmatch(name)
            if not ours or entry.is_symlink() or not entry.is_file():
                return False
    return True


def is_marker(path: Path) -> bool:
    """The provenance this command writes: a small regular file, a JSON object with exactly its keys."""
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_MARKER_BYTES:
            return False
        data = json.loads(path.read_text())
    except (OSError, ValueError):  # UnicodeDecodeError is a ValueError
        return False
    return (isinstance(data, dict) and set(data) == PROVENANCE_KEYS and isinstance(data["run"], str)
            and type(data["step"]) is int and isinstance(data["ema"], bool)
            and (data["classes"] is None or isinstance(data["classes"], list)))


def export(target: str | Path, fmt: str = "keras", out: str | None = None, step: int | None = None,
           use_ema: bool | None = None, force: bool = False) -> str:
    """`dcgan export`: write the generator; returns a one-line summary."""
    if fmt not in FORMATS:
        raise DcganError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
    checkpoint = find_checkpoint(target, step)
    path = output_path(checkpoint.run_dir, fmt, out)
    check_export_path(path, fmt, checkpoint.run_dir, force)
    if fmt == "hub":
        from dcgan.tools.hub import check_hub_out

        check_hub_out(path, force)
    # an export into the run is a write into the run: not while another command writes there
    with lock_run(checkpoint.run_dir, "dcgan export") if inside(path, checkpoint.run_dir) else contextlib.nullcontext():
        from dcgan.tools.handle import load_handle

        gen = load_handle(checkpoint, ema=use_ema)
        provenance = {"run": str(checkpoint.run_dir), "step": checkpoint.step, "ema": gen.ema, "classes": gen.classes}
        try:
            if fmt == "hub":
                from dcgan.tools.hub import write_hub

                write_hub(gen, path, provenance, write_keras)
            else:
                writer(fmt)(gen.model, path, provenance)
        except OSError as e:
            raise DcganError(f"cannot write {path}: {e.strerror or first_line(e)}") from None
    classes = f" with {len(gen.classes)} classes" if gen.classes else ""
    return f"{path}: {gen.describe()}{classes} as {fmt}"


def writer(fmt: str):
    if fmt == "onnx":
        from dcgan.tools.onnx_export import write_onnx

        return write_onnx
    return write_keras if fmt == "keras" else write_savedmodel


def write_keras(model, path: Path, provenance: dict) -> Path:
    """model.save, plus the provenance as a member of the zip: a .keras file travels alone, its class names with it."""
    with atomic_path(path) as tmp:  # keras insists on the .keras suffix, which atomic_path keeps
        model.save(tmp)
        with zipfile.ZipFile(tmp, "a") as archive:
            archive.writestr(MARKER_FILE, json.dumps(provenance) + "\n")
    return path


def write_savedmodel(model, path: Path, provenance: dict) -> Path:
    """Trace model(z[, label], training=False) into a temporary sibling directory, then move it in place."""
    import keras
    import tensorflow as tf

    archive = keras.export.ExportArchive()
    archive.track(model)
    from dcgan.tools.handle import serving_endpoint

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
