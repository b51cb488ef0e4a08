"""What the training loop calls at its checkpoints: periodic evaluation and the sampler choice.

`TrainingEval` scores the sampling generator every `train.eval_every` steps (a conditional one per
class too) and keeps the best checkpoint by FID; `SamplerChoice` decides which copy of the generator (EMA or raw) pictures come
from. Both log into the run's metrics.jsonl; `train` owns when they are called.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from dcgan import data as datalib
from dcgan.checkpoints import BEST_DIR, BEST_FILE, CHECKPOINT_DIR
from dcgan.errors import DcganError
from dcgan.evaluate import TRAINING_METRICS, Evaluator, check_per_class, default_metrics
from dcgan.gan import GAN, checkpoint_manager
from dcgan.rundir import atomic_write


class TrainingEval:
    """Called by train() every eval_every steps: score the sampler, log it, keep the best checkpoint by FID."""

    def __init__(self, gan: GAN, run_dir: Path):
        self.n = gan.cfg.train.eval_samples
        self.seed = gan.cfg.train.seed
        # a conditional run adds class accuracy and intra-FID; they reach metrics.jsonl and TensorBoard by name
        metrics = default_metrics(gan.cfg, TRAINING_METRICS)
        check_per_class(self.n, metrics, gan.num_classes, "train.eval_samples")  # at the start, not at the first evaluation
        # says so when it trains the classifier (or the self-supervised encoder)
        self.evaluator = Evaluator(gan.cfg.data, metrics, network=gan.cfg.train.feature_network)
        best_dir = Path(run_dir) / CHECKPOINT_DIR / BEST_DIR
        self.best_file = best_dir / BEST_FILE
        self.manager = checkpoint_manager(gan, run_dir, best_dir, max_to_keep=1)
        self.best = json.loads(self.best_file.read_text()) if self.best_file.is_file() else None

    def __call__(self, gan: GAN, step: int, metrics_log) -> dict[str, float]:
        scores, _ = self.evaluator.evaluate_model(gan.sampling_generator(), self.n, self.seed)
        metrics_log.write("eval", {"step": step, "eval": scores})
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
        metrics_log.write("sampler", {"step": step, "sampler": {"choice": choice, "fid_ema": fid["ema"], "fid_raw": fid["raw"],
                                                     "n": n, "real": self.evaluator.real_count}})
        other = "raw" if choice == "ema" else "ema"
        return (f"sampling from the {'EMA copy' if choice == 'ema' else 'raw generator'} at step {step}: FID {fid[choice]:.4g} "
                f"vs {other} {fid[other]:.4g} on {n} samples against training images ({time.perf_counter() - start:.1f} s)")

    def _evaluator(self) -> Evaluator:
        n = min(self.cfg.train.select_samples, len(self.images))
        real = datalib.image_subset(self.images, n, seed=(self.cfg.train.seed, self.STREAM))
        return Evaluator(self.cfg.data, ("fid",), split=self.cfg.data.split, real_images=real,
                         network=self.cfg.train.feature_network)
