"""`dcgan evaluate`: score a run's checkpoints against its dataset's test split, write eval.json and figures.

`evaluate` returns the scores (a `Scores`: eval.json's records, with the table and summary the command prints)
and prints nothing; `on_step` hears of each checkpoint scored when several are.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from dcgan.core import plots
from dcgan.core.errors import DcganError, first_line
from dcgan.core.files import atomic_write, lock_run, probe_writable
from dcgan.evaluation.evaluator import (CURVE_FILE, EVAL_FILE, MAX_SAMPLES, METRIC_TABLE, SPECTRUM_FILE, Evaluator,
                                        check_metrics, check_per_class, default_metrics, parse_metrics)
from dcgan.evaluation.features import resolve_network
from dcgan.evaluation.featurenet import check_keras_file
from dcgan.evaluation.metrics import power_spectrum, radial_profile
from dcgan.training.checkpoints import run_checkpoint, run_steps
from dcgan.training.rundir import read_run_config


class Scores(list):
    """eval.json's records (one per metric and checkpoint, oldest checkpoint first), and how they were made."""

    def __init__(self, records: list[dict], path: Path, n: int, checkpoints: int, seconds: float):
        super().__init__(records)
        self.path, self.n, self.checkpoints, self.seconds = path, n, checkpoints, seconds

    @property
    def values(self) -> dict[str, float]:
        """{metric: value} of the last checkpoint scored."""
        last = self[-1]["checkpoint_step"]
        return {r["metric"]: r["value"] for r in self if r["checkpoint_step"] == last}

    def by_step(self) -> dict[int, dict[str, float]]:
        """{checkpoint step: {metric: value}}."""
        steps: dict[int, dict[str, float]] = {}
        for r in self:
            steps.setdefault(r["checkpoint_step"], {})[r["metric"]] = r["value"]
        return steps

    def table(self) -> str:
        return format_table(self)

    def summary(self) -> str:
        return f"{self.n} samples x {self.checkpoints} checkpoint(s) scored in {self.seconds:.1f} s -> {self.path}"


def evaluate(run_dir, n: int = 10000, metrics=None, step: int | str | None = None, use_ema: bool | None = None,
             feature_model: str | None = None, feature_layer: str | None = None, seed: int = 0,
             quiet: bool = False, network: str | None = None, on_step: Callable[[str], None] | None = None) -> Scores:
    """Score a run's checkpoint against its dataset's test split; write eval.json (+ spectrum.png); return the scores.

    metrics: names or 'fid,kid'; None: `default_metrics` of the run (the class metrics too, when it is conditional).
    step='all' scores every checkpoint the run keeps, oldest first (is a longer run better?),
    and also plots the curve to eval_curve.png. use_ema: the EMA copy (True), the raw generator
    (False) or the one each checkpoint samples from (None). network: the feature network (`--features`: auto,
    classifier, inception, selfsup; None: the run's train.feature_network); feature_model wins over it.
    quiet: the feature networks train (when not cached) without saying so. on_step: given a line per checkpoint
    scored, with step='all'.
    """
    run_dir = Path(run_dir)
    metrics = None if metrics is None else parse_metrics(metrics)
    if n < 2:
        raise DcganError(f"--n: {n} is too small; evaluation needs at least 2 generated images")
    if n > MAX_SAMPLES:
        raise DcganError(f"--n: {n} is too many; at most {MAX_SAMPLES} generated images (FID is usually reported on 50000)")
    if feature_model:  # before the run's model and test images are loaded
        check_keras_file(feature_model)
    cfg = read_run_config(run_dir)
    network = network or cfg.train.feature_network
    if not feature_model:  # the user's own model wins over any network
        resolve_network(network, cfg.data.name)  # --features classifier on a folder: one line, now
    metrics = default_metrics(cfg) if metrics is None else metrics
    check_metrics(metrics, cfg, run_dir)
    steps = (run_steps(run_dir) or [None]) if step == "all" else [step]  # none kept: the latest's error says so
    paths = [run_checkpoint(run_dir, s).path for s in steps]
    try:  # eval.json and the figures go into the run: find out now, not after minutes of scoring
        probe_writable(run_dir)
    except OSError as e:
        raise DcganError(f"cannot write into {run_dir}: {e.strerror or first_line(e)}") from None
    with lock_run(run_dir, "dcgan evaluate"):
        return _evaluate_paths(run_dir, cfg, paths, n, metrics, step, use_ema, feature_model, feature_layer, seed, quiet,
                               network, on_step)


def _evaluate_paths(run_dir: Path, cfg, paths: list[str], n: int, names, step, use_ema, feature_model, feature_layer,
                    seed: int, quiet: bool, network: str, on_step) -> Scores:
    from dcgan.training.gan import run_gan
    from dcgan.training.restoring import restore

    gan = run_gan(run_dir, cfg)
    check_per_class(n, names, gan.num_classes)
    evaluator = Evaluator(cfg.data, names, feature_model=feature_model, feature_layer=feature_layer, quiet=quiet,
                          network=network)
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
            if not METRIC_TABLE[m].features:
                record["feature_network"] = None  # a pixel-space measure (class_accuracy names its classifier below)
            records.append({**record, **scores.fields[m]})
        if on_step is not None and step == "all":
            on_step(f"step {base['checkpoint_step']}: " + " ".join(f"{m} {scores[m]:.4g}" for m in names))
    seconds = time.perf_counter() - start
    atomic_write(run_dir / EVAL_FILE, json.dumps(records, indent=2) + "\n")
    if "checkerboard" in names:  # of the last checkpoint scored
        profiles = {"real": radial_profile(evaluator.real_spectrum), "generated": radial_profile(power_spectrum(images))}
        plots.plot_spectra(run_dir / SPECTRUM_FILE, profiles, images.shape[1],
                           f"azimuthal power spectrum (checkerboard score {scores['checkerboard']:.3f})")
    if step == "all":
        plots.plot_curve(run_dir / CURVE_FILE, records)
    return Scores(records, run_dir / EVAL_FILE, n, len(paths), seconds)


def format_table(records: list[dict]) -> str:
    rows = [("metric", "value", "n", "feature network", "split", "step")]
    for r in records:
        value = f"{r['value']:.4f}" + (f" ± {r['std']:.4f}" if "std" in r else "")
        if "classifier_test_accuracy" in r:  # the yardstick: the classifier on the real test images
            value += f" (real test images: {r['classifier_test_accuracy']:.4f})"
        rows.append((r["metric"], value, str(r["n"]), r["feature_network"] or "-", r["dataset_split"], str(r["checkpoint_step"])))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)
