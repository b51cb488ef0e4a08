"""Shared fixtures: tiny configs and datasets in the real file formats."""

import gzip
import os
import struct

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

from dcgan.config import load_config


def write_idx(path, array: np.ndarray) -> None:
    """Write an IDX file (gzipped if the name ends in .gz), as MNIST ships them."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    raw = header + array.astype(np.uint8).tobytes()
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


@pytest.fixture
def mnist_dir(tmp_path):
    """A folder with MNIST's four IDX gz files (tiny)."""
    folder = tmp_path / "mnist"
    folder.mkdir()
    train, test = blob_images(256, seed=1)[..., 0], blob_images(64, seed=2)[..., 0]
    write_idx(folder / "train-images-idx3-ubyte.gz", train)
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.zeros(256, np.uint8))
    write_idx(folder / "t10k-images-idx3-ubyte.gz", test)
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.zeros(64, np.uint8))
    return folder


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


@pytest.fixture
def tiny_config(tmp_path, mnist_dir):
    """A factory: a tiny MNIST config (local IDX files) writing runs under tmp_path."""

    def make(*overrides):
        sets = ["data.name=mnist", f"data.path={mnist_dir}", f"run.dir={tmp_path / 'runs'}", *TINY, *overrides]
        return load_config(None, sets)

    return make


def cli_error(capsys, command: str, *args) -> str:
    """Run `dcgan COMMAND ARGS`, assert exit status 2 and one error line; return that line."""
    from dcgan.cli import main

    capsys.readouterr()
    assert main([command, *map(str, args)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith(f"dcgan {command}: error: "), err
    return err


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    """One feature cache per test module: the tiny dataset's classifier is trained once."""
    return tmp_path_factory.mktemp("cache")
