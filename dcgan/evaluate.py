"""Evaluate a generator: FID, KID, precision/recall and the checkerboard score.

`Evaluator` holds the real side once (test images, their spectrum, the feature
network and the real features) and scores any generator in one call; `evaluate`
does that for a run's checkpoint (or all of them) and writes eval.json and spectrum.png;
the metrics themselves are one table, `METRIC_TABLE`, which the CLI's default list comes from.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from dcgan import data as datalib
from dcgan.metrics import feature_stats, fid, kid, power_spectrum, precision_recall, radial_profile, spectrum_ratio
from dcgan import plots
from dcgan.checkpoints import run_checkpoint, run_steps
from dcgan.errors import DcganError, first_line
from dcgan.features import check_keras_file, feature_net_for, real_statistics
from dcgan.rundir import atomic_write, lock_run, probe_writable, read_run_config



@dataclass(frozen=True)
class Metric:
    """One row of the metrics table: how to compute it and what eval.json records beside its value."""

    features: bool  # scored on the feature network's embeddings (else on pixels)
    compute: Callable  # (evaluator, images, features, seed) -> this metric's value, or (value, std)
    extra: tuple[str, ...] = ()  # fields after "value" in its eval.json record


def _score_fid(ev, images, feats, seed):
    return fid(*feature_stats(feats), ev.real["mu"], ev.real["sigma"])


def _score_kid(ev, images, feats, seed):
    return kid(feats, ev.real["features"], seed=seed)  # (value, std)


def _score_precision(ev, images, feats, seed):
    return ev.precision_recall(feats, seed)[0]


def _score_recall(ev, images, feats, seed):
    return ev.precision_recall(feats, seed)[1]


def _score_checkerboard(ev, images, feats, seed):
    return spectrum_ratio(power_spectrum(images), ev.real_spectrum)


METRIC_TABLE: dict[str, Metric] = {
    "fid": Metric(True, _score_fid),
    "kid": Metric(True, _score_kid, extra=("std",)),
    "precision": Metric(True, _score_precision),
    "recall": Metric(True, _score_recall),
    "checkerboard": Metric(False, _score_checkerboard),  # the excess power at N/2 and N/4 over the real images'
}
METRICS = tuple(METRIC_TABLE)  # `dcgan evaluate`'s default: all of them
TRAINING_METRICS = ("fid", "kid", "checkerboard")
EVAL_FILE = "eval.json"
SPECTRUM_FILE = "spectrum.png"
CURVE_FILE = "eval_curve.png"
MAX_SAMPLES = 100_000  # twice FID's usual 50,000; 1e9 would be a MemoryError minutes later


def parse_metrics(metrics) -> tuple[str, ...]:
    """'fid,kid' or an iterable of names -> validated names, in the order given."""
    names = [m.strip() for m in metrics.split(",")] if isinstance(metrics, str) else list(metrics)
    names = [m for m in names if m]
    for m in names:
        if m not in METRICS:
            raise DcganError(f"unknown metric {m!r}; valid metrics: {', '.join(METRICS)}")
    if not names:
        raise DcganError(f"no metric given; valid metrics: {', '.join(METRICS)}")
    return tuple(dict.fromkeys(names))


def sample_latents(n: int, latent_dim: int, seed: int | tuple[int, ...]) -> np.ndarray:
    """The same latents for every evaluation with this seed, so scores compare across checkpoints."""
    return np.random.default_rng(seed).standard_normal((n, latent_dim), dtype=np.float32)


def sample_labels(n: int, model) -> np.ndarray:
    """0, 1, ..., K-1, 0, ...: balanced class labels for a conditional generator's evaluation."""
    from dcgan.models import num_classes

    return np.arange(n, dtype=np.int32) % num_classes(model)


class Evaluator:
    """The real side of every metric, computed once; `score` / `evaluate_model` many times."""

    def __init__(self, data_cfg, metrics=METRICS, split: str = "test", feature_model: str | None = None,
                 feature_layer: str | None = None, quiet: bool = False, real_images: np.ndarray | None = None):
        """real_images: the reference set, when not the whole `split` of the dataset."""
        self.metrics = parse_metrics(metrics)
        self.split = "all" if data_cfg.name == "folder" else split  # an image folder has no splits
        if real_images is None:  # data.limit trims the training set; the reference set is the whole split
            real_images = datalib.load_images(dataclasses.replace(data_cfg, limit=None), split=split)
        self.real_images = real_images
        self.real_spectrum = power_spectrum(self.real_images)
        self.net = self.real = None
        if any(METRIC_TABLE[m].features for m in self.metrics):
            self.net = feature_net_for(data_cfg, feature_model, feature_layer, quiet=quiet)
            self.real = real_statistics(self.net, self.real_images, data_cfg.name, self.split)

    @property
    def feature_network(self) -> str | None:
        return self.net.key if self.net is not None else None

    def score(self, images: np.ndarray, seed: int = 0) -> dict[str, float]:
        """Every requested metric for uint8 images; a metric with a spread adds '<name>_std' (KID)."""
        if len(images) < 2:
            raise DcganError(f"evaluation needs at least 2 generated images, got {len(images)}")
        self._pr = None
        feats = self.net(images) if self.net is not None else None
        out = {}
        for name in self.metrics:
            value = METRIC_TABLE[name].compute(self, images, feats, seed)
            if isinstance(value, tuple):
                out[name], out[f"{name}_std"] = value
            else:
                out[name] = value
        return out

    def precision_recall(self, feats: np.ndarray, seed: int) -> tuple[float, float]:
        """Both from one k-NN computation, shared by the two metrics within a `score` call."""
        if self._pr is None:
            self._pr = precision_recall(self._real_subset(len(feats), seed), feats)
        return self._pr

    def _real_subset(self, n: int, seed: int) -> np.ndarray:
        """As many real features as generated ones: k-NN radii depend on the sample size."""
        real = self.real["features"]
        if n >= len(real):
            return real
        return real[np.sort(np.random.default_rng(seed).choice(len(real), n, replace=False))]

    def evaluate_model(self, model, n: int, seed: int = 0) -> tuple[dict[str, float], np.ndarray]:
        """Generate n images from a generator model and score them: (scores, images).

        A conditional generator draws the classes in turn (balanced, as the training data's test split is)."""
        from dcgan.gan import generate_images, latent_dim
        from dcgan.models import is_conditional

        labels = sample_labels(n, model) if is_conditional(model) else None
        images = generate_images(model, sample_latents(n, latent_dim(model), seed), labels)
        return self.score(images, seed), images


# ---------------------------------------------------------------- a run's checkpoint


def evaluate(run_dir, n: int = 10000, metrics=METRICS, step: int | str | None = None, use_ema: bool | None = None,
             feature_model: str | None = None, feature_layer: str | None = None, seed: int = 0,
             quiet: bool = False) -> list[dict]:
    """Score a run's checkpoint against its dataset's test split; write eval.json (+ spectrum.png).

    step='all' scores every checkpoint the run keeps, oldest first (is a longer run better?),
    and also plots the curve to eval_curve.png. use_ema: the EMA copy (True), the raw generator
    (False) or the one each checkpoint samples from (None).
    """
    run_dir = Path(run_dir)
    metrics = parse_metrics(metrics)
    if n < 2:
        raise DcganError(f"--n: {n} is too small; evaluation needs at least 2 generated images")
    if n > MAX_SAMPLES:
        raise DcganError(f"--n: {n} is too many; at most {MAX_SAMPLES} generated images (FID is usually reported on 50000)")
    if feature_model:  # before the run's model and test images are loaded
        check_keras_file(feature_model)
    cfg = read_run_config(run_dir)
    steps = (run_steps(run_dir) or [None]) if step == "all" else [step]  # none kept: the latest's error says so
    paths = [run_checkpoint(run_dir, s).path for s in steps]
    try:  # eval.json and the figures go into the run: find out now, not after minutes of scoring
        probe_writable(run_dir)
    except OSError as e:
        raise DcganError(f"cannot write into {run_dir}: {e.strerror or first_line(e)}") from None
    with lock_run(run_dir, "dcgan evaluate"):
        return _evaluate_paths(run_dir, cfg, paths, n, metrics, step, use_ema, feature_model, feature_layer, seed, quiet)


def _evaluate_paths(run_dir: Path, cfg, paths: list[str], n: int, names, step, use_ema, feature_model, feature_layer,
                    seed: int, quiet: bool) -> list[dict]:
    from dcgan.gan import restore, run_gan

    gan = run_gan(run_dir, cfg)
    evaluator = Evaluator(cfg.data, names, feature_model=feature_model, feature_layer=feature_layer, quiet=quiet)
    records = []
    start = time.perf_counter()
    for path in paths:
        restore(gan, path)
        model = gan.sampling_generator(use_ema)
        scores, images = evaluator.evaluate_model(model, n, seed)
        base = {"n": n, "feature_network": evaluator.feature_network, "dataset_split": f"{cfg.data.name}:{evaluator.split}",
                "checkpoint_step": int(gan.step.numpy()), "ema": model is gan.ema_generator}
        for m in names:
            record = {"metric": m, "value": scores[m], **base}
            record.update({field: scores[f"{m}_{field}"] for field in METRIC_TABLE[m].extra})
            if not METRIC_TABLE[m].features:
                record["feature_network"] = None  # a pixel-space measure
            records.append(record)
        if not quiet and step == "all":
            print(f"step {base['checkpoint_step']}: " + " ".join(f"{m} {scores[m]:.4g}" for m in names), file=sys.stderr, flush=True)
    seconds = time.perf_counter() - start
    atomic_write(run_dir / EVAL_FILE, json.dumps(records, indent=2) + "\n")
    if "checkerboard" in names:  # of the last checkpoint scored
        profiles = {"real": radial_profile(evaluator.real_spectrum), "generated": radial_profile(power_spectrum(images))}
        plots.plot_spectra(run_dir / SPECTRUM_FILE, profiles, images.shape[1],
                           f"azimuthal power spectrum (checkerboard score {scores['checkerboard']:.3f})")
    if step == "all":
        plots.plot_curve(run_dir / CURVE_FILE, records)
    if not quiet:
        print(format_table(records))
        print(f"{n} samples x {len(paths)} checkpoint(s) scored in {seconds:.1f} s -> {run_dir / EVAL_FILE}")
    return records


def format_table(records: list[dict]) -> str:
    rows = [("metric", "value", "n", "feature network", "split", "step")]
    for r in records:
        value = f"{r['value']:.4f}" + (f" ± {r['std']:.4f}" if "std" in r else "")
        rows.append((r["metric"], value, str(r["n"]), r["feature_network"] or "-", r["dataset_split"], str(r["checkpoint_step"])))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)
