"""The Python API, for notebooks and programs: train a run, load its generator, sample, evaluate.

    import dcgan
    run = dcgan.train("configs/smoke.yaml", ["train.steps=200"])
    g = dcgan.load(run)                 # the generator alone: no discriminator, no optimizers
    images = g.sample(n=16)             # uint8 (16, H, W, C), the pixels `dcgan sample --n 16` writes
    scores = dcgan.evaluate(run, n=2000)
    scores.values["fid"]
    dcgan.inspect(run).report["blocks"]  # where the checkerboard comes from, block by block

Each function returns what it made and prints nothing of its own (training shows its progress bar on
stderr, as `dcgan train` does, unless quiet). Errors are `dcgan.core.errors.DcganError`, one line each.
The commands of `dcgan` are thin layers over the same functions. See docs/api.md.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path


def load(run_dir, step: int | None = None, ema: bool | None = None):
    """A run's generator (its latest checkpoint, or `step`'s; run_dir may name a checkpoint) as a GeneratorHandle.

    ema: the EMA copy (True), the raw generator (False), or the copy the run chose at that checkpoint (None).
    The handle has .config, .classes, .latent_dim and .step; .sample() and .walk() give uint8 NHWC arrays,
    and calling it on (z, labels) tensors gives differentiable float images in [-1, 1].
    """
    from dcgan.tools.handle import load_handle

    return load_handle(run_dir, step=step, ema=ema)


def train(config=None, overrides: Sequence[str] = (), resume=None, quiet: bool = False, callbacks=()) -> Path:
    """Train a run; returns its directory.

    config: a YAML file's path, a `Config`, a dict of its sections, or None (the built-in defaults); overrides:
    'key=value' texts as `--set` takes them. resume: a run directory to continue (config is then its own
    config.yaml, overrides applied). callbacks: dcgan.training.callbacks.Callback objects of your own.
    """
    from dcgan.core.config import Config, apply_overrides, from_dict, load_config, to_dict
    from dcgan.training.loop import train as train_loop
    from dcgan.training.rundir import resume_config

    overrides = list(overrides)
    if resume is not None:
        if config is not None:
            raise ValueError("resume trains with the run's own config.yaml: give overrides, not a config")
        return train_loop(resume_config(resume, None, overrides), resume_dir=Path(resume), quiet=quiet, callbacks=callbacks)
    if isinstance(config, (Config, dict)):
        cfg = from_dict(apply_overrides(to_dict(config) if isinstance(config, Config) else copy.deepcopy(config), overrides))
    else:
        cfg = load_config(config, overrides)
    return train_loop(cfg, quiet=quiet, callbacks=callbacks)


def evaluate(run_dir, n: int = 10000, metrics=None, step: int | str | None = None, ema: bool | None = None,
             features: str | None = None, feature_model: str | None = None, feature_layer: str | None = None,
             seed: int = 0):
    """Score a run's checkpoint (or every kept one: step='all'; the best by FID: step='best') against its test split.

    Returns a `Scores`: the records eval.json holds (a list), with .values ({metric: value} of the last
    checkpoint scored), .by_step(), .table() and .path. metrics: names or 'fid,kid' (None: all that apply).
    """
    from dcgan.tools.evaluate import evaluate as evaluate_run

    return evaluate_run(run_dir, n=n, metrics=metrics, step=step, use_ema=ema, feature_model=feature_model,
                        feature_layer=feature_layer, seed=seed, quiet=True, network=features)


def inspect(run_dir, step: int | None = None, ema: bool | None = None, n: int = 64, out=None):
    """`dcgan inspect` on a run's checkpoint: writes inspect.png and inspect.json (into run_dir/inspect, or out).

    Returns an `Inspection`: .report (the dict inspect.json holds: per-block overlap, phase spread and
    checkerboard score, the image's excess, D's gradient spectrum), .figure and .json (the paths written);
    str() of it is the table the command prints.
    """
    from dcgan.tools.anatomy import inspect_run, resolve

    return inspect_run(resolve(str(run_dir), None, (), step, ema, n, None if out is None else str(out)), ema, n)
