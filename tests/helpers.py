"""Plain helpers shared by the test modules: tiny datasets in real file formats, the CLI, TensorBoard logs.

Fixtures live in conftest.py (pytest finds them there); everything else a test module
would otherwise rebuild lives here: `from helpers import ...`.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import signal
import struct
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

# a config small enough to train in a second: 6 steps, logs at 2, 4, 6, pictures and checkpoints at 3 and 6
TINY = [
    "model.generator.latent_dim=8",
    "model.generator.base_channels=4",
    "model.discriminator.base_channels=4",
    "data.batch_size=16",
    "train.steps=6",
    "train.log_every=2",
    "train.sample_every=3",
    "train.checkpoint_every=3",
    "train.sample_grid=2",
    "train.deterministic=true",
    "train.select_sampler=false",  # its feature classifier: tests of the choice turn it on
]

# ---------------------------------------------------------------- datasets


def idx_bytes(array: np.ndarray, dtype_code: int = 0x08) -> bytes:
    """An IDX file's bytes: the magic number (0x08: uint8 data), the dimensions, then the array's bytes as they are."""
    return bytes([0, 0, dtype_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_idx(path, array: np.ndarray) -> None:
    """Write a uint8 IDX file (gzipped if the name ends in .gz), as MNIST ships them."""
    raw = idx_bytes(array.astype(np.uint8))
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(raw)


def blob_images(n: int, size: int = 28, channels: int = 1, seed: int = 0) -> np.ndarray:
    """Simple structured uint8 images (bright discs on dark) that a GAN can learn fast."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images = np.zeros((n, size, size, channels), np.uint8)
    for i in range(n):
        cy, cx, r = rng.uniform(size * 0.3, size * 0.7, 2).tolist() + [rng.uniform(size * 0.15, size * 0.3)]
        disc = ((yy - cy) ** 2 + (xx - cx) ** 2) < r**2
        images[i, disc] = rng.integers(150, 256, channels)
    return images


def write_mnist(folder, n_train: int = 256, n_test: int = 64, two_classes: bool = False, invert_class_1: bool = False) -> Path:
    """MNIST's four IDX gz files in `folder` (created), holding blob images: the train split from seed 1, the test split from seed 2.

    Labels are all 0, or with two_classes alternate 0, 1, 0, ...; invert_class_1 also makes every class-1
    image the negative of its disc, a two-class set a classifier learns in a few epochs. n_test=0: no test split.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n, seed in (("train", n_train, 1), ("t10k", n_test, 2)):
        if n == 0:
            continue
        images = blob_images(n, seed=seed)[..., 0]
        labels = np.arange(n) % 2 if two_classes or invert_class_1 else np.zeros(n, np.uint8)
        if invert_class_1:
            images = np.where(labels[:, None, None] == 1, 255 - images, images)
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return folder


def mnist_sets(folder, *overrides: str) -> list[str]:
    """--set overrides for the tiny config on the MNIST files in `folder`."""
    return ["data.name=mnist", f"data.path={folder}", *TINY, *overrides]


# ---------------------------------------------------------------- the command line


class Cli(NamedTuple):
    status: int
    out: str
    err: str


def run_cli(capsys, *argv) -> Cli:
    """Run `dcgan ARGV` in this process as the console script would (argparse's SystemExit becomes the status).

    Returns the exit status and what it printed; fails if a traceback reached stderr.
    """
    from dcgan.cli import main

    capsys.readouterr()
    try:
        status = main([str(a) for a in argv])
    except SystemExit as e:  # argparse refuses its own arguments this way
        status = e.code
    out, err = capsys.readouterr()
    assert "Traceback" not in err, err
    return Cli(status, out, err)


def cli_error(capsys, command: str, *args, notes: bool = False) -> str:
    """Run `dcgan COMMAND ARGS`; assert exit status 2 and one error line, `dcgan COMMAND: error: ...`; return that line.

    stderr must be that line alone; with notes=True it may also hold lines that are not errors (such as a
    loader's count of the files it skipped), but still exactly one line from dcgan.
    """
    status, _, err = run_cli(capsys, command, *args)
    lines = err.strip().splitlines()
    errors = [line for line in lines if line.startswith("dcgan ")]
    assert status == 2 and len(errors) == 1 and errors[0].startswith(f"dcgan {command}: error: "), (status, err)
    assert notes or lines == errors, err
    return errors[0]


def usage_error(capsys, command: str, *args) -> str:
    """Run `dcgan COMMAND ARGS` that argparse refuses: exit status 2 and its usage message; return stderr."""
    status, _, err = run_cli(capsys, command, *args)
    assert status == 2 and f"dcgan {command}: error: " in err, (status, err)
    return err


# ---------------------------------------------------------------- run directories


def event_steps(folder, tags: bool = False) -> list:
    """The step (or (tag, step)) of every summary in a folder's TensorBoard event files, in file order."""
    import tensorflow as tf

    return [(v.tag, e.step) if tags else e.step for path in sorted(Path(folder).glob("events.out.tfevents.*"))
            for e in tf.compat.v1.train.summary_iterator(str(path)) for v in e.summary.value]


# ---------------------------------------------------------------- for the data and config tests


def cifar_batch(n, seed):
    """A CIFAR-10 python batch of n random images, as the real pickles hold it."""
    rng = np.random.default_rng(seed)
    return {b"batch_label": b"x", b"labels": rng.integers(0, 10, n).tolist(),
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"filenames": [b"f"] * n}


@contextlib.contextmanager
def deadline(seconds=5):
    """Fail (instead of hanging the suite) if the body blocks, e.g. opening a FIFO."""
    def expire(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def fifo(path):
    """A named pipe at path: opening it to read blocks until a writer comes."""
    os.mkfifo(path)
    return path


def one_line_config_error(call, *args) -> str:
    """The ConfigError call(*args) raises, checked to be one short line."""
    from dcgan.core.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        call(*args)
    text = str(err.value)
    assert "\n" not in text and len(text) < 600, text  # a section's key list is the longest part
    return text


def run_sample(*args) -> int:
    """`dcgan sample ARGS` in this process; its exit status."""
    from dcgan.cli import main

    return main(["sample", *map(str, args)])


def sample_npz(run_dir, tmp_path, *args) -> dict:
    """`dcgan sample RUN --out FILE.npz ARGS` into a fresh file under tmp_path; the npz's arrays."""
    out = tmp_path / f"s{len(list(tmp_path.glob('*.npz')))}.npz"
    assert run_sample(run_dir, "--out", out, *args) == 0
    with np.load(out) as f:
        return dict(f)
