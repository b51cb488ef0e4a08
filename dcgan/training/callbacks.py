"""What the training loop calls at its log lines and checkpoints: the held-out gap, periodic evaluation, the sampler choice.

`HeldOutGap` compares D's output on training images with its output on images it never trains on, at
every log line; `TrainingEval` scores the sampling generator every `train.eval_every` steps (a conditional one per
class too) and keeps the best checkpoint by FID; `SamplerChoice` decides which copy of the generator (EMA or raw) pictures come
from. They log into the run's metrics.jsonl; `train` owns when they are called.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from dcgan.data import pipeline as datalib
from dcgan.training.checkpoints import BEST_DIR, BEST_FILE, CHECKPOINT_DIR
from dcgan.core.errors import DcganError
from dcgan.evaluation.evaluator import TRAINING_METRICS, Evaluator, check_per_class, default_metrics
from dcgan.training.gan import GAN, checkpoint_manager
from dcgan.core.files import atomic_write


class HeldOutGap:
    """Called by train() at every log line: D's mean output on training images against unseen ones.

    A discriminator that memorises its training set rates the images it learns from above unseen images of
    the same distribution, before the samples show it: the validation-set heuristic of ADA (Karras et al.
    2020). Both sets are fixed for the run (train.heldout_probe images each) and go through D un-augmented
    and in inference mode, since training mode would move its BatchNorm statistics and so change the run.
    The held-out images are `data.load_heldout`'s: the other split, or an image folder's data.holdout part.
    """

    STREAM = 4  # the choice of training images comes from a random stream of its own
    BATCH = 256

    def __init__(self, gan: GAN, images, labels: np.ndarray | None, heldout: datalib.Labelled):
        """images, labels: the run's training set (labels: a conditional run's); heldout: its unseen images."""
        n = min(gan.cfg.train.heldout_probe, len(images), len(heldout))
        rng = np.random.default_rng((gan.cfg.train.seed, self.STREAM))
        seen = np.sort(rng.choice(len(images), n, replace=False))
        unseen = np.sort(rng.choice(len(heldout), n, replace=False))
        conditional = gan.num_classes > 0
        self.sets = {
            "d_seen": (images[seen], labels[seen] if conditional else None),
            "d_unseen": (heldout.images[unseen], heldout.labels[unseen] if conditional else None),
        }
        # scaled to D's [-1, 1] once: the sets are fixed for the run
        self._inputs = {name: (datalib.to_float(x).astype(np.float32), y) for name, (x, y) in self.sets.items()}
        self._logits = tf.function(lambda x: gan.discriminator(x, training=False))

    def __len__(self) -> int:
        return len(self.sets["d_seen"][0])

    @classmethod
    def for_run(cls, gan: GAN, images, labels) -> tuple[HeldOutGap | None, str | None]:
        """(the probe, None), or (None, why there is none) for a run without held-out images (None: nothing to say)."""
        if not gan.cfg.train.heldout_probe:
            return None, None
        try:
            heldout = datalib.load_heldout(gan.cfg.data, labelled=gan.num_classes > 0)
        except (DcganError, OSError) as e:  # an optional signal: the run trains without it
            return None, f"no held-out images for d_gap ({e})"
        if heldout is None:  # a prepared dataset, a folder without data.holdout: r_t alone
            return None, None
        probe = cls(gan, images, labels, heldout)
        return (probe, None) if len(probe) else (None, "no held-out images for d_gap (the other split is empty)")

    def __call__(self, gan: GAN) -> dict[str, float]:
        """{d_seen, d_unseen, d_gap}: mean D(x) (as a probability) on each set, and seen minus unseen."""
        means = {}
        for name, (images, labels) in self._inputs.items():
            total = 0.0
            for i in range(0, len(images), self.BATCH):
                x = images[i : i + self.BATCH]
                logits = self._logits(x if labels is None else [x, labels[i : i + self.BATCH]])
                total += float(tf.reduce_sum(tf.sigmoid(tf.cast(logits, tf.float32))))
            means[name] = total / len(images)
        means["d_gap"] = means["d_seen"] - means["d_unseen"]
        return means


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
