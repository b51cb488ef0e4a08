"""Evaluate a generator: FID, KID, precision/recall and the checkerboard score.

`Evaluator` holds the real side once (test images, their spectrum, the feature
network and the real features) and scores any generator in one call; `evaluate`
does that for a run's checkpoint (or all of them) and writes eval.json and spectrum.png;
`TrainingEval` is what the training loop calls every `train.eval_every` steps, and
`SamplerChoice` what it calls to decide which copy of the generator pictures come from.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from dcgan import data as datalib
from dcgan import metrics as M
from dcgan import viz
from dcgan.checkpoints import BEST_DIR, BEST_FILE, CHECKPOINT_DIR, run_checkpoint, run_steps
from dcgan.errors import DcganError, first_line
from dcgan.features import check_keras_file, feature_net_for, real_statistics
from dcgan.gan import GAN, checkpoint_manager, generate_images, restore
from dcgan.rundir import atomic_write, lock_run, probe_writable, read_run_config

METRICS = ("fid", "kid", "precision", "recall", "checkerboard")
FEATURE_METRICS = ("fid", "kid", "precision", "recall")
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
        self.real_spectrum = M.power_spectrum(self.real_images)
        self.net = self.real = None
        if any(m in FEATURE_METRICS for m in self.metrics):
            self.net = feature_net_for(data_cfg, feature_model, feature_layer, quiet=quiet)
            self.real = real_statistics(self.net, self.real_images, data_cfg.name, self.split)

    @property
    def feature_network(self) -> str | None:
        return self.net.key if self.net is not None else None

    def score(self, images: np.ndarray, seed: int = 0) -> dict[str, float]:
        """Every requested metric for uint8 images; KID adds 'kid_std'."""
        if len(images) < 2:
            raise DcganError(f"evaluation needs at least 2 generated images, got {len(images)}")
        out = {}
        feats = self.net(images) if self.net is not None else None
        if "fid" in self.metrics:
            out["fid"] = M.fid(*M.feature_stats(feats), self.real["mu"], self.real["sigma"])
        if "kid" in self.metrics:
            out["kid"], out["kid_std"] = M.kid(feats, self.real["features"], seed=seed)
        if "precision" in self.metrics or "recall" in self.metrics:
            precision, recall = M.precision_recall(self._real_subset(len(feats), seed), feats)
            out.update({k: v for k, v in (("precision", precision), ("recall", recall)) if k in self.metrics})
        if "checkerboard" in self.metrics:
            out["checkerboard"] = M.spectrum_ratio(M.power_spectrum(images), self.real_spectrum)
        return out

    def _real_subset(self, n: int, seed: int) -> np.ndarray:
        """As many real features as generated ones: k-NN radii depend on the sample size."""
        real = self.real["features"]
        if n >= len(real):
            return real
        return real[np.sort(np.random.default_rng(seed).choice(len(real), n, replace=False))]

    def evaluate_model(self, model, n: int, seed: int = 0) -> tuple[dict[str, float], np.ndarray]:
        """Generate n images from a generator model and score them: (scores, images)."""
        images = generate_images(model, sample_latents(n, model.input_shape[-1], seed))
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


def _evaluate_paths(run_dir: Path, cfg, paths: list[str], n: int, metrics, step, use_ema, feature_model, feature_layer,
                    seed: int, quiet: bool) -> list[dict]:
    gan = GAN(cfg)
    evaluator = Evaluator(cfg.data, metrics, feature_model=feature_model, feature_layer=feature_layer, quiet=quiet)
    records = []
    start = time.perf_counter()
    for path in paths:
        restore(gan, path)
        model = gan.pick(use_ema)
        scores, images = evaluator.evaluate_model(model, n, seed)
        base = {"n": n, "feature_network": evaluator.feature_network, "dataset_split": f"{cfg.data.name}:{evaluator.split}",
                "checkpoint_step": int(gan.step.numpy()), "ema": model is gan.ema_generator}
        for m in metrics:
            record = {"metric": m, "value": scores[m], **base}
            if m == "kid":
                record["std"] = scores["kid_std"]
            if m == "checkerboard":
                record["feature_network"] = None  # a pixel-space measure
            records.append(record)
        if not quiet and step == "all":
            print(f"step {base['checkpoint_step']}: " + " ".join(f"{m} {scores[m]:.4g}" for m in metrics), flush=True)
    seconds = time.perf_counter() - start
    atomic_write(run_dir / EVAL_FILE, json.dumps(records, indent=2) + "\n")
    if "checkerboard" in metrics:  # of the last checkpoint scored
        plot_spectra(run_dir / SPECTRUM_FILE, images, evaluator.real_images, scores["checkerboard"])
    if step == "all":
        plot_curve(run_dir / CURVE_FILE, records)
    if not quiet:
        print(format_table(records))
        print(f"{n} samples x {len(paths)} checkpoint(s) scored in {seconds:.1f} s -> {run_dir / EVAL_FILE}")
    return records


def plot_curve(path: Path, records: list[dict]) -> Path:
    """Each metric against the checkpoint step, one panel per metric."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(r["metric"] for r in records))
    fig, axes = plt.subplots(1, len(names), figsize=(3.5 * len(names), 3), dpi=100, squeeze=False)
    for ax, name in zip(axes[0], names):
        points = [(r["checkpoint_step"], r["value"]) for r in records if r["metric"] == name]
        ax.plot(*zip(*points), marker="o")
        values = [v for _, v in points]
        if min(values) > 0 and max(values) > 10 * min(values):  # early steps would flatten the tail
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_title(name)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return viz.save_figure(fig, path)


def format_table(records: list[dict]) -> str:
    rows = [("metric", "value", "n", "feature network", "split", "step")]
    for r in records:
        value = f"{r['value']:.4f}" + (f" ± {r['std']:.4f}" if "std" in r else "")
        rows.append((r["metric"], value, str(r["n"]), r["feature_network"] or "-", r["dataset_split"], str(r["checkpoint_step"])))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


def plot_spectra(path: Path, fake: np.ndarray, real: np.ndarray, score: float) -> Path:
    """Azimuthally averaged power spectra of generated and real images, log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=100)
    for images, label in ((real, "real"), (fake, "generated")):
        profile = M.radial_profile(M.power_spectrum(images))
        ax.semilogy(np.arange(1, len(profile)), profile[1:], label=label)  # radius 0 (DC) is removed
    size = real.shape[1]
    for f in (size / 4, size / 2):
        ax.axvline(f, color="gray", linestyle="--", linewidth=0.8)
    ax.set_xlabel("spatial frequency (cycles per image)")
    ax.set_ylabel("mean power")
    ax.set_title(f"azimuthal power spectrum (checkerboard score {score:.3f}; dashed: N/4, N/2)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return viz.save_figure(fig, path)


# ---------------------------------------------------------------- during training


class TrainingEval:
    """Called by train() every eval_every steps: score the sampler, log it, keep the best checkpoint by FID."""

    def __init__(self, gan: GAN, run_dir: Path):
        self.n = gan.cfg.train.eval_samples
        self.seed = gan.cfg.train.seed
        self.evaluator = Evaluator(gan.cfg.data, TRAINING_METRICS)  # says so when it trains the classifier
        best_dir = Path(run_dir) / CHECKPOINT_DIR / BEST_DIR
        self.best_file = best_dir / BEST_FILE
        self.manager = checkpoint_manager(gan, run_dir, best_dir, max_to_keep=1)
        self.best = json.loads(self.best_file.read_text()) if self.best_file.is_file() else None

    def __call__(self, gan: GAN, step: int, metrics_log) -> dict[str, float]:
        scores, _ = self.evaluator.evaluate_model(gan.sampler, self.n, self.seed)
        metrics_log.write({"step": step, "eval": scores})
        if self.best is None or scores["fid"] < self.best["fid"]:
            self.manager.save(checkpoint_number=step)
            self.best = {"step": step, "fid": scores["fid"], "checkpoint": Path(self.manager.latest_checkpoint).name}
            atomic_write(self.best_file, json.dumps(self.best, indent=2) + "\n")
        return scores


class SamplerChoice:
    """Called by train() when it writes pictures or a checkpoint: which copy of G do pictures come from?

    The EMA copy is usually better, but not at every step: a lucky raw checkpoint, or an average that
    lags a fast-improving generator, beats it. So at the last step (and at each evaluation) both copies
    are scored on the same latents against the run's own training images (the test split stays unseen
    by the choice) and the better one is recorded in the checkpoint; at other steps the EMA copy is.
    """

    STREAM = 3  # the choice's latents and real subset come from a random stream of their own

    def __init__(self, gan: GAN, images: np.ndarray):
        """images: the run's training images (the choice compares against a subset of them)."""
        self.cfg = gan.cfg
        self.images = images
        self.evaluator = None
        self.unavailable = None  # why no choice can be made (no feature network), once known

    def __call__(self, gan: GAN, step: int, metrics_log, decide: bool) -> str | None:
        """Set gan.sample_from_ema; when deciding, log both scores and return a line saying why."""
        gan.sample_from_ema.assign(True)
        if not decide or self.unavailable:
            return None
        start = time.perf_counter()
        try:
            self.evaluator = self.evaluator or self._evaluator()
        except (DcganError, OSError) as e:  # an optional refinement: it never costs the run its final checkpoint
            self.unavailable = str(e)
            return f"sampling from the EMA copy: the raw generator cannot be compared with it ({e})"
        n, latents_seed = self.cfg.train.select_samples, (self.cfg.train.seed, self.STREAM)
        fid = {name: self.evaluator.evaluate_model(model, n, latents_seed)[0]["fid"]
               for name, model in (("ema", gan.ema_generator), ("raw", gan.generator))}
        choice = "ema" if fid["ema"] <= fid["raw"] else "raw"
        gan.sample_from_ema.assign(choice == "ema")
        metrics_log.write({"step": step, "sampler": {"choice": choice, "fid_ema": fid["ema"], "fid_raw": fid["raw"],
                                                     "n": n, "real": len(self.evaluator.real_images)}})
        other = "raw" if choice == "ema" else "ema"
        return (f"sampling from the {'EMA copy' if choice == 'ema' else 'raw generator'} at step {step}: FID {fid[choice]:.4g} "
                f"vs {other} {fid[other]:.4g} on {n} samples against training images ({time.perf_counter() - start:.1f} s)")

    def _evaluator(self) -> Evaluator:
        n = min(self.cfg.train.select_samples, len(self.images))
        subset = np.sort(np.random.default_rng((self.cfg.train.seed, self.STREAM)).choice(len(self.images), n, replace=False))
        return Evaluator(self.cfg.data, ("fid",), split=self.cfg.data.split, real_images=self.images[subset])
