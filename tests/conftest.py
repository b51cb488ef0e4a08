"""Shared fixtures: tiny configs, datasets in the real file formats, and one tiny trained run for the session.

Plain helpers (file writers, CLI checks) are in helpers.py.
"""

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The suite never reads or fills the user's caches (a feature network trained here, or InceptionV3 weights found
# there, would change what auto picks and what is cached), and a selfsup encoder trains for 3 steps, not 2,000.
# Set at import, so the subprocesses the tests start inherit them; a test may still point them elsewhere.
_SANDBOX = tempfile.mkdtemp(prefix="dcgan-tests-")
atexit.register(shutil.rmtree, _SANDBOX, ignore_errors=True)
os.environ["DCGAN_CACHE"] = os.path.join(_SANDBOX, "cache")
os.environ["KERAS_HOME"] = os.path.join(_SANDBOX, "keras")
os.environ["DCGAN_SELFSUP_STEPS"] = "3"

import pytest

from dcgan.core.config import load_config
from helpers import mnist_sets, write_mnist


@pytest.fixture
def mnist_dir(tmp_path):
    """A folder with MNIST's four IDX gz files (tiny: 256 training and 64 test images)."""
    return write_mnist(tmp_path / "mnist")


@pytest.fixture
def tiny_config(tmp_path, mnist_dir):
    """A factory: a tiny MNIST config (local IDX files) writing runs under tmp_path."""

    def make(*overrides):
        return load_config(None, [*mnist_sets(mnist_dir), f"run.dir={tmp_path / 'runs'}", *overrides])

    return make


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    """One feature cache per test module: the tiny dataset's classifier is trained once."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """(run directory, config) of one tiny run trained once for the whole session: 6 steps, checkpoints at 3 and 6.

    It has an EMA copy (decay 0.9) and sub-pixel blocks, so its generator holds the project's custom
    layer and initializer. Tests read it; one that changes it works on a copy.
    """
    from dcgan.training.loop import train

    root = tmp_path_factory.mktemp("tiny-run")
    cfg = load_config(None, [*mnist_sets(write_mnist(root / "mnist")), f"run.dir={root / 'runs'}", "run.name=tiny",
                             "train.ema_decay=0.9", "model.generator.upsampling=subpixel,transpose"])
    return train(cfg, quiet=True), cfg


@pytest.fixture(scope="session")
def tiny_gan(tiny_run):
    """The GAN of tiny_run restored from its last checkpoint (ckpt-6); do not train it."""
    from dcgan.training.gan import GAN
    from dcgan.training.restoring import restore

    run_dir, cfg = tiny_run
    gan = GAN(cfg)
    restore(gan, str(run_dir / "checkpoints" / "ckpt-6"))
    return gan


@pytest.fixture(scope="session")
def tiny_conditional_run(tmp_path_factory):
    """(run directory, config) of one tiny conditional run trained once for the session, shaped like tiny_run.

    Fashion-MNIST's ten class names over the two-class blob files (labels 0 and 1), a cbn generator with a
    projection discriminator and transpose blocks only: its .keras needs no dcgan layer to load.
    """
    from dcgan.training.loop import train

    root = tmp_path_factory.mktemp("tiny-conditional-run")
    mnist = write_mnist(root / "mnist", two_classes=True)
    cfg = load_config(None, [*mnist_sets(mnist, "data.name=fashion_mnist"), f"run.dir={root / 'runs'}",
                             "run.name=tiny-conditional", "train.ema_decay=0.9",
                             "model.generator.condition=cbn", "model.discriminator.condition=projection"])
    return train(cfg, quiet=True), cfg


@pytest.fixture(scope="session")
def studio_folder(tmp_path_factory, tiny_run, tiny_conditional_run):
    """A folder of runs as `dcgan studio` finds them: copies of tiny_run and tiny_conditional_run, and a real
    two-mode comparison of 2 steps a run (compare-modes/, with compare_result.json and spectra)."""
    from dcgan.tools import compare, modes

    root = tmp_path_factory.mktemp("studio") / "runs"
    root.mkdir()
    for run_dir, _ in (tiny_run, tiny_conditional_run):
        shutil.copytree(run_dir, root / run_dir.name, ignore=shutil.ignore_patterns(".lock"))
    mnist = write_mnist(tmp_path_factory.mktemp("studio-mnist"), two_classes=True)
    plan = modes.make_plan(None, "transpose,subpixel", budget="steps", steps=2, eval_every=2, name="modes", eval_samples=16,
                           overrides=[*mnist_sets(mnist), f"run.dir={root}", "train.eval_samples=16", "train.ema_decay=0.9",
                                      "train.feature_network=selfsup"])  # 3 encoder steps here: cheaper than a classifier
    with pytest.MonkeyPatch.context() as mp:  # its feature classifier stays out of the session's cache
        mp.setenv("DCGAN_CACHE", str(tmp_path_factory.mktemp("studio-cache")))
        compare.compare(plan, quiet=True)
    return root
