"""Hostile and broken input, and atomic writes.

Every bad file is one clear `dcgan <cmd>: error: ...` line and exit status 2,
nothing is written under the run's name, and no file's code is ever run: each
hostile payload is first shown to run when loaded the unsafe way (it creates a
marker file), then refused by the project's loaders (the marker stays absent).
"""

import gzip
import hashlib
import io
import os
import pickle
import re
import shutil
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from dcgan.core import files
from dcgan.data import image_folder
from dcgan.core import plots
from dcgan.training import rundir
from dcgan.core import viz
from dcgan.cli import main
from dcgan.core.config import load_config
from helpers import TINY, blob_images, cifar_batch, cli_error, idx_bytes, mnist_sets, write_mnist

PACKAGE = Path(__file__).resolve().parent.parent / "dcgan"


def train_argv(runs: Path, *sets: str) -> list[str]:
    argv = ["train", "--quiet"]
    for s in (f"run.dir={runs}", "run.name=victim", *TINY, *sets):
        argv += ["--set", s]
    return argv


def tree(path: Path) -> dict[str, str]:
    """Every file under path with a hash of its bytes (to show nothing was written).

    The run lock's file is left out: it only names whichever process last held the lock.
    """
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.rglob("*"))
            if p.is_file() and p.name != files.LOCK_FILE}


def gz(raw: bytes) -> bytes:
    return gzip.compress(raw, mtime=0)


# ---------------------------------------------------------------- broken dataset files


def _mnist_folder(tmp, payload: bytes, name="train-images-idx3-ubyte.gz"):
    folder = tmp / "mnist"
    folder.mkdir()
    (folder / name).write_bytes(payload)
    return ["data.name=mnist", f"data.path={folder}"]


def _npz(tmp, payload: bytes):
    (tmp / "mnist.npz").write_bytes(payload)
    return ["data.name=mnist", f"data.path={tmp / 'mnist.npz'}"]


def _npz_of(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _cifar_folder(tmp, first_batch: bytes):
    folder = tmp / "cifar-10-batches-py"
    folder.mkdir()
    for i in range(1, 6):
        (folder / f"data_batch_{i}").write_bytes(first_batch if i == 1 else pickle.dumps(cifar_batch(4, 0), protocol=2))
    return ["data.name=cifar10", f"data.path={folder}", "data.image_size=32", "data.channels=3"]


def _cifar_tar(tmp, payload: bytes | None = None, members=("data_batch_1",)):
    path = tmp / "cifar-10-python.tar.gz"
    if payload is None:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            for name in members:
                blob = pickle.dumps(cifar_batch(4, 0), protocol=2)
                info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
                info.size = len(blob)
                tar.addfile(info, io.BytesIO(blob))
        payload = buf.getvalue()
    path.write_bytes(payload)
    return ["data.name=cifar10", f"data.path={path}", "data.image_size=32", "data.channels=3"]


def _half_tar(tmp):
    sets = _cifar_tar(tmp, None, members=[f"data_batch_{i}" for i in range(1, 6)])
    path = tmp / "cifar-10-python.tar.gz"
    path.write_bytes(path.read_bytes()[:300])
    return sets


_GARBAGE = np.random.default_rng(0).bytes(500)
_IMAGES = blob_images(8)[..., 0]
_GOOD_GZ = gz(idx_bytes(_IMAGES))
_GOOD_NPZ = _npz_of(x_train=_IMAGES, x_test=_IMAGES)
_GOOD_BATCH = pickle.dumps(cifar_batch(4, 0), protocol=2)

BROKEN = {
    "idx gz cut in half": (lambda t: _mnist_folder(t, _GOOD_GZ[: len(_GOOD_GZ) // 2]), r"corrupt or truncated file .*train-images"),
    "idx gz of garbage": (lambda t: _mnist_folder(t, _GARBAGE[:300]), r"corrupt or truncated file"),
    "idx with missing images": (lambda t: _mnist_folder(t, gz(idx_bytes(_IMAGES)[:-100])), r"truncated or corrupt: header says 6272 data bytes, file has 6172"),
    "idx with a bad magic number": (lambda t: _mnist_folder(t, gz(b"PK\x03\x04" + bytes(100))), r"not an IDX file \(bad magic number\)"),
    "idx of floats": (lambda t: _mnist_folder(t, gz(idx_bytes(_IMAGES.astype(">f4"), 0x0D))), r"must be a 3-d uint8 IDX array"),
    # dims whose product wraps to 0 in int64: an exact size check is what stops it
    "idx with a wrapping header": (lambda t: _mnist_folder(t, bytes([0, 0, 0x08, 4]) + struct.pack(">4I", *[65536] * 4), "train-images-idx3-ubyte"),
                                   r"declares 18446744073709551616 bytes of data, over the 4294967296-byte limit"),
    # a gzip bomb's header must not make the loader inflate more than it declares
    "idx declaring 5 GB": (lambda t: _mnist_folder(t, gz(bytes([0, 0, 0x08, 3]) + struct.pack(">3I", 5_000_000, 1000, 1))),
                           r"declares 5000000000 bytes of data, over the 4294967296-byte limit"),
    "idx gz with 64 MB of trailing zeros": (lambda t: _mnist_folder(t, gz(idx_bytes(_IMAGES) + bytes(64 << 20))),
                                            r"header says 6272 data bytes, file has more than 6272"),
    "npz cut in half": (lambda t: _npz(t, _GOOD_NPZ[: len(_GOOD_NPZ) // 2]), r"corrupt or truncated file .*mnist.npz"),
    "npz of garbage": (lambda t: _npz(t, _GARBAGE[:300]), r"corrupt or truncated file .*mnist.npz"),
    "npz holding a pickle": (lambda t: _npz(t, _npz_of(x_train=np.array([{"a": 1}], dtype=object))), r"corrupt or truncated file .*allow_pickle"),
    "npz without x_train": (lambda t: _npz(t, _npz_of(images=_IMAGES)), r"has no 'x_train' array"),
    "npz of flat rows": (lambda t: _npz(t, _npz_of(x_train=_IMAGES.reshape(8, -1))), r"'x_train' must have shape \(N, H, W\)"),
    "cifar batch cut in half": (lambda t: _cifar_folder(t, _GOOD_BATCH[: len(_GOOD_BATCH) // 2]), r"data_batch_1: pickle data was truncated"),
    "cifar batch of garbage": (lambda t: _cifar_folder(t, b"\x80\x02" + _GARBAGE[:200]), r"data_batch_1"),
    "cifar batch that is a list": (lambda t: _cifar_folder(t, pickle.dumps([1, 2, 3], protocol=2)), r"not a CIFAR-10 batch \(expected a dict\)"),
    "cifar batch of wrong rows": (lambda t: _cifar_folder(t, pickle.dumps({b"data": np.zeros((4, 100), np.uint8)}, protocol=2)), r"'data' must be an N x 3072 array"),
    "cifar tar.gz cut in half": (lambda t: _half_tar(t), r"corrupt or truncated archive"),
    "cifar tar.gz of garbage": (lambda t: _cifar_tar(t, _GARBAGE), r"corrupt or truncated archive"),
    "cifar tar.gz without batches": (lambda t: _cifar_tar(t, None, members=("readme",)), r"has no CIFAR-10 batch 'data_batch_1'"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_dataset_file_is_one_line_and_creates_no_run(tmp_path, capsys, case):
    make, message = BROKEN[case]
    sets = make(tmp_path)
    line = cli_error(capsys, *train_argv(tmp_path / "runs", *sets))
    assert re.search(message, line), line
    assert not (tmp_path / "runs").exists()  # validated before the run directory exists


# ---------------------------------------------------------------- code in files


class _Payload:
    """Pickles to a call of `func(*args)`, as a crafted file would."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _payloads(marker: Path) -> dict[str, _Payload]:
    return {
        "os.system": _Payload(os.system, f"touch {marker}"),
        "builtins.open": _Payload(open, str(marker), "w"),
        "builtins.exec": _Payload(exec, f"open({str(marker)!r}, 'w').close()"),
    }


@pytest.mark.parametrize("name", ["os.system", "builtins.open", "builtins.exec"])
@pytest.mark.parametrize("container", ["folder", "tar.gz"])
def test_cifar_pickle_that_runs_code_is_refused(tmp_path, capsys, name, container):
    marker = tmp_path / "pwned"
    hostile = pickle.dumps({b"data": _payloads(marker)[name], b"labels": [0]}, protocol=2)
    pickle.loads(hostile)  # the unsafe way: the payload is live
    assert marker.exists()
    marker.unlink()

    if container == "folder":
        sets = _cifar_folder(tmp_path, hostile)
    else:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            for i in range(1, 6):
                blob = hostile if i == 1 else pickle.dumps(cifar_batch(4, 0), protocol=2)
                info = tarfile.TarInfo(f"cifar-10-batches-py/data_batch_{i}")
                info.size = len(blob)
                tar.addfile(info, io.BytesIO(blob))
        sets = _cifar_tar(tmp_path, buf.getvalue())
    line = cli_error(capsys, *train_argv(tmp_path / "runs", *sets))
    assert re.search(r"data_batch_1: refusing to unpickle global (posix|nt|io|builtins|__builtin__)\.(system|open|exec)", line), line
    assert not marker.exists()
    assert not (tmp_path / "runs").exists()


def test_yaml_with_python_tags_is_refused(tmp_path, capsys, mnist_dir):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.yaml"
    evil.write_text(f"data:\n  name: mnist\n  path: !!python/object/apply:os.system ['touch {marker}']\n")
    yaml.unsafe_load(evil.read_text())  # the unsafe way: the tag runs
    assert marker.exists()
    marker.unlink()

    line = cli_error(capsys, "train", "--config", evil, "--set", f"run.dir={tmp_path / 'runs'}")
    assert re.search(r"invalid YAML in .*evil.yaml \(line 3, column 9\): could not determine a constructor for the tag "
                     r"'tag:yaml.org,2002:python/object/apply:os.system'", line), line
    line = cli_error(capsys, *train_argv(tmp_path / "runs", f"data.path={mnist_dir}", f"train.steps=!!python/object/apply:os.system ['touch {marker}']"))
    assert "--set train.steps: cannot parse value" in line
    assert not marker.exists()
    assert not (tmp_path / "runs").exists()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run directory as training leaves it at step 6 (config.yaml, checkpoint ckpt-6), with test images.

    The checkpoint is the real thing, written by the run's CheckpointManager; the
    steps themselves are skipped because these tests only read it.
    """
    from dcgan.training.rundir import write_config
    from dcgan.training.gan import GAN
    from dcgan.training.restoring import checkpoint_manager

    root = tmp_path_factory.mktemp("reliability")
    folder = write_mnist(root / "mnist", n_train=64, n_test=32, two_classes=True)
    cfg = load_config(None, [*mnist_sets(folder), f"run.dir={root / 'runs'}", "run.name=run"])
    run = root / "runs" / "run"
    gan = GAN(cfg)
    gan.step.assign(6)
    write_config(run, cfg)
    checkpoint_manager(gan, run).save(checkpoint_number=6)
    return run


def test_keras_file_with_a_lambda_layer_is_refused(trained, tmp_path, capsys):
    import keras

    marker = tmp_path / "pwned"
    z = keras.Input((28, 28, 1))
    # the function's code is stored in the file; deserializing the model calls it
    touch = keras.layers.Lambda(eval(f"lambda x: (open({str(marker)!r}, 'w').close(), x)[1]"))(z)
    keras.Model(z, keras.layers.GlobalAveragePooling2D()(touch)).save(tmp_path / "evil.keras")
    marker.unlink()
    keras.saving.load_model(tmp_path / "evil.keras", safe_mode=False)  # the unsafe way: the lambda runs
    assert marker.exists()
    marker.unlink()

    before = tree(trained)
    line = cli_error(capsys, "evaluate", trained, "--n", "16", "--feature-model", tmp_path / "evil.keras")
    assert re.search(r"dcgan evaluate: error: cannot load --feature-model .*evil.keras: Requested the deserialization of a `Lambda` layer", line), line
    assert not marker.exists()
    assert tree(trained) == before  # no eval.json


def test_image_folder_skips_junk_with_a_count_and_refuses_when_nothing_is_left(tmp_path, capsys):
    from PIL import Image

    root = tmp_path / "images"
    root.mkdir()
    for i in range(3):
        Image.fromarray(blob_images(1, 32, 3, seed=i)[0]).save(root / f"good{i}.png")
    good_jpeg = io.BytesIO()
    Image.fromarray(blob_images(1, 32, 3, seed=5)[0]).save(good_jpeg, format="JPEG")
    (root / "cut.jpg").write_bytes(good_jpeg.getvalue()[:200])  # truncated
    (root / "empty.png").write_bytes(b"")
    (root / "text.png").write_text("not an image")
    (root / "notes.txt").write_text("hello")
    (root / "dir.png").mkdir()  # a folder with an image's name is not a file
    images = image_folder.load_folder(root, 16, 3)
    assert images.shape == (3, 16, 16, 3)
    assert f"data: {root}: skipped 3 unreadable image(s) and 1 non-image file(s)" in capsys.readouterr().err

    for p in root.glob("good*.png"):
        p.unlink()
    # the loader's count of skipped files comes first, then the one error line
    line = cli_error(capsys, *train_argv(tmp_path / "runs", "data.name=folder", f"data.path={root}", "data.image_size=16",
                                         "data.channels=3"), notes=True)
    assert line == f"dcgan train: error: data.path: no readable PNG/JPEG images under {root}"
    assert not (tmp_path / "runs").exists()


# ---------------------------------------------------------------- damaged checkpoints


def _garbage_index(ckpt: Path):
    (ckpt / "ckpt-6.index").write_bytes(b"garbage" * 20)


def _truncated_data(ckpt: Path):
    data = next(ckpt.glob("ckpt-6.data-*"))
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])


def _flipped_data(ckpt: Path):
    data = next(ckpt.glob("ckpt-6.data-*"))
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 3 : len(raw) // 3 + 16] = bytes(b ^ 0xFF for b in raw[len(raw) // 3 : len(raw) // 3 + 16])
    data.write_bytes(bytes(raw))


def _deleted_files(ckpt: Path):
    (ckpt / "ckpt-6.index").unlink()


DAMAGE = {
    "garbage index": (_garbage_index, r"cannot restore checkpoint .*ckpt-6: not an sstable \(bad magic number\)"),
    "truncated data": (_truncated_data, r"cannot restore checkpoint .*ckpt-6: Read less bytes than requested"),
    "flipped data bytes": (_flipped_data, r"cannot restore checkpoint .*ckpt-6: .*Checksum does not match"),
    "deleted checkpoint files": (_deleted_files, r"cannot restore checkpoint .*ckpt-6: .*Failed to find any matching files"),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_damaged_checkpoint_is_a_clear_error_and_nothing_is_overwritten(trained, tmp_path, capsys, case):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    damage, message = DAMAGE[case]
    damage(run / "checkpoints")
    before = tree(run)
    line = cli_error(capsys, "train", "--resume", run, "--quiet", "--set", "train.steps=9")
    assert re.search(message, line), line
    assert tree(run) == before


STATES = {"text that is no state": b"this is : not { a checkpoint state", "binary garbage": b"\xff\xfe\x00garbage\x9c" * 30,
          "empty": b""}


@pytest.mark.parametrize("state", list(STATES))
def test_damaged_state_file_stops_a_resume_but_not_the_readers(trained, tmp_path, capsys, state):
    """TensorFlow ignores a state file it cannot parse: resuming would retrain from step 0 over the run."""
    run = shutil.copytree(trained, tmp_path / "run")
    (run / "checkpoints" / "checkpoint").write_bytes(STATES[state])
    before = tree(run)
    line = cli_error(capsys, "train", "--resume", run, "--quiet", "--set", "train.steps=9")
    assert re.search(r"cannot resume .*: the checkpoint state file .*checkpoint is unreadable", line), line
    assert tree(run) == before
    # readers go by the checkpoint files themselves, so a damaged state file does not stop them
    assert main(["evaluate", str(run), "--n", "8", "--metrics", "checkerboard"]) == 0


# ---------------------------------------------------------------- atomic writes


def _writers(tmp_path):
    """(final path, write it) for each kind of file the package writes as a whole."""
    img = blob_images(4, 8, 3)
    cfg = load_config(None, [])
    return {
        "grid png": (tmp_path / "grid.png", lambda p: viz.save_png(p, viz.image_grid(img, 2, 2))),
        "gif": (tmp_path / "progress.gif", lambda p: viz.save_gif(p, list(img))),
        "loss plot": (tmp_path / "losses.png", lambda p: plots.plot_losses(p, [{"step": 1, "d_loss": 1.0, "g_loss": 2.0}])),
        "config": (tmp_path / "config.yaml", lambda p: rundir.write_config(p.parent, cfg)),
        "eval.json": (tmp_path / "eval.json", lambda p: files.atomic_write(p, '[{"metric": "fid"}]\n')),
        "npz via atomic_path": (tmp_path / "stats.npz", lambda p: _savez_via_atomic_path(p)),
        "generator.keras": (tmp_path / "generator.keras", lambda p: _save_tiny_keras(p)),
    }


def _savez_via_atomic_path(path):
    with files.atomic_path(path) as tmp:
        np.savez(tmp, mu=np.zeros(3))


def _save_tiny_keras(path):
    import keras

    from dcgan.training.restoring import save_generator

    z = keras.Input((2,))
    save_generator(keras.Model(z, keras.layers.Dense(1)(z)), path)


WRITERS = ["grid png", "gif", "loss plot", "config", "eval.json", "npz via atomic_path", "generator.keras"]


@pytest.mark.parametrize("writer", WRITERS)
@pytest.mark.parametrize("existing", [False, True])
def test_a_failed_write_leaves_nothing_under_the_final_name(tmp_path, monkeypatch, writer, existing):
    final, write = _writers(tmp_path)[writer]
    if existing:
        final.write_bytes(b"the previous version")

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)  # the rename that would publish the file fails
    with pytest.raises(OSError, match="No space left"):
        write(final)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ([final.name] if existing else [])  # no temporaries either
    if existing:
        assert final.read_bytes() == b"the previous version"
    write(final)  # and when nothing fails, the file is published
    assert final.is_file() and final.read_bytes() != b"the previous version"


def test_a_writer_dying_mid_file_leaves_nothing_under_the_final_name(tmp_path, monkeypatch):
    import keras

    from dcgan.training.restoring import save_generator

    z = keras.Input((2,))
    model = keras.Model(z, keras.layers.Dense(1)(z))

    def half_then_die(path, *args, **kwargs):
        Path(path).write_bytes(b"PK\x03\x04 half a zip")
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(model, "save", half_then_die)
    with pytest.raises(OSError, match="Input/output error"):
        save_generator(model, tmp_path / "generator.keras")
    assert list(tmp_path.iterdir()) == []

    def fsync_fails(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", fsync_fails)  # the bytes went out but never reached the disk
    with pytest.raises(OSError):
        files.atomic_write(tmp_path / "eval.json", "{}")
    assert list(tmp_path.iterdir()) == []


def test_package_writes_whole_files_only_through_the_atomic_helpers():
    """A static guard over every module of every subpackage: a direct write would bypass temp-name-and-rename
    (metrics.jsonl's appends go through os.open with O_APPEND, which this does not match)."""
    direct = re.compile(r"\.write_(text|bytes)\(|\bopen\([^)]*['\"][wax]b?\+?['\"]|\.savefig\((?!buf)|np\.savez?(_compressed)?\((?!buf|tmp)")
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) > 60 and PACKAGE / "training" / "rundir.py" in modules
    offenders = [f"{p.relative_to(PACKAGE)}:{i}: {line.strip()}" for p in modules
                 for i, line in enumerate(p.read_text().splitlines(), 1) if direct.search(line) and not line.lstrip().startswith("#")]
    assert offenders == []


# ---------------------------------------------------------------- a run the user may read but not write


def test_read_only_run_is_refused_before_any_work_by_evaluate_and_resume(trained):
    """Run as an unprivileged user (root writes anywhere): the refusal must come before scoring or training."""
    import subprocess
    import sys
    import tempfile

    shared = Path(tempfile.mkdtemp(dir="/tmp"))
    try:
        shared.chmod(0o755)
        run = shared / "run"
        shutil.copytree(trained, run)
        for p in [run, *run.rglob("*")]:
            p.chmod(0o555 if p.is_dir() else 0o444)
        as_user = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if os.geteuid() == 0 else []
        for argv, expected in ((["evaluate", run, "--n", "8", "--metrics", "checkerboard"], f"cannot write into {run}"),
                               (["train", "--resume", run, "--quiet"], f"cannot resume {run}: cannot write into {run}")):
            proc = subprocess.run([*as_user, sys.executable, "-m", "dcgan", *map(str, argv)], capture_output=True, text=True,
                                  timeout=120, env={**os.environ, "HOME": str(shared), "DCGAN_CACHE": str(shared / "cache")})
            errors = [line for line in proc.stderr.splitlines() if line.startswith("dcgan ")]
            assert proc.returncode == 2 and len(errors) == 1 and expected in errors[0], proc.stderr[-2000:]
        assert not (run / "eval.json").exists()
    finally:
        for p in [shared, *shared.rglob("*")]:
            p.chmod(0o755)
        shutil.rmtree(shared)
