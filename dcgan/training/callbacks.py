"""What the training loop calls: one small interface, the writers of what is logged, and the built-in probes.

A `Callback` implements any of on_start, on_step, on_log, on_checkpoint and on_end. The values its on_log
returns join the step's record before the writers (`MetricsFile`, `TensorBoard`, `ProgressBar`, which the
loop puts last) see it: a new probe is one class, and what it logs reaches metrics.jsonl, TensorBoard and the
progress bar (the keys its `shown` names) with no list of keys to edit. The built-in probes: `HeldOutGap`
compares D's output on training images with its output on images it never trains on, at every log line;
`SamplerChoice` decides which copy of the generator (EMA or raw) pictures come from; `TrainingEval` scores
the sampling generator every `train.eval_every` steps (a conditional one per class too) and keeps the best
checkpoint by FID.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from dcgan.data import pipeline as datalib
from dcgan.training.checkpoints import BEST_DIR, BEST_FILE, CHECKPOINT_DIR, read_best
from dcgan.core.errors import DcganError
from dcgan.evaluation.evaluator import TRAINING_METRICS, Evaluator, check_per_class, default_metrics
from dcgan.training.gan import GAN
from dcgan.training.restoring import checkpoint_manager
from dcgan.training.rundir import MetricsLog
from dcgan.core.files import atomic_write

# a record's bookkeeping, never a curve: the other numbers a record holds are TensorBoard scalars
NOT_SCALARS = ("step", "epoch", "wall_s")


@dataclass
class Run:
    """What a callback is told at the start: the GAN it watches, where the run writes, which steps it trains."""

    gan: GAN
    run_dir: Path
    start: int  # the step training continues from (0: a new run)
    steps: int  # the last step
    metrics: MetricsLog | None  # metrics.jsonl (None on a worker that is not the chief)
    writer: object  # the TensorBoard summary writer (a no-op one on other workers)


@dataclass(frozen=True)
class Due:
    """What a step does besides training: draw the fixed-noise grid, save a checkpoint, evaluate; the run's last step."""

    sample: bool = False
    checkpoint: bool = False
    eval: bool = False
    last: bool = False


class Callback:
    """Every method is optional. on_checkpoint runs at a step that draws the grid, saves a checkpoint or evaluates,
    once the EMA copy's BatchNorm statistics are recalibrated; callbacks run in their list's order."""

    # key -> (label, format) of the values the progress bar and the --quiet log line show
    shown: ClassVar[dict[str, tuple[str, str]]] = {}

    def on_start(self, run: Run) -> None:
        pass

    def on_step(self, step: int) -> None:
        pass

    def on_log(self, step: int, logs: dict) -> dict | None:
        """logs: the step's record so far; returns values to add to it (None: nothing)."""

    def on_checkpoint(self, step: int, due: Due) -> str | None:
        """Returns a line for the run's log (None: nothing to say)."""

    def on_end(self) -> None:
        pass


class Callbacks:
    """A list of callbacks called in order; their log lines go to `say`."""

    def __init__(self, callbacks, say):
        self.items, self.say = list(callbacks), say

    def on_start(self, run: Run) -> None:
        for c in self.items:
            c.on_start(run)

    def on_step(self, step: int) -> None:
        for c in self.items:
            c.on_step(step)

    def on_log(self, step: int, logs: dict) -> dict:
        for c in self.items:
            logs.update(c.on_log(step, logs) or {})
        return logs

    def on_checkpoint(self, step: int, due: Due) -> None:
        for c in self.items:
            line = c.on_checkpoint(step, due)
            if line:
                self.say(line)

    def on_end(self) -> None:
        for c in self.items:
            c.on_end()


# ---------------------------------------------------------------- the writers


class MetricsFile(Callback):
    """Each logged step's record as a "train" line of metrics.jsonl."""

    def on_start(self, run: Run) -> None:
        self.metrics = run.metrics

    def on_log(self, step: int, logs: dict) -> None:
        self.metrics.write("train", logs)


class TensorBoard(Callback):
    """Each logged step's numbers as TensorBoard scalars, whatever logged them."""

    def on_start(self, run: Run) -> None:
        self.writer = run.writer

    def on_log(self, step: int, logs: dict) -> None:
        with self.writer.as_default(step=step):
            for key, value in logs.items():
                if key not in NOT_SCALARS and isinstance(value, (int, float)):
                    tf.summary.scalar(key, value)

    def on_end(self) -> None:
        self.writer.flush()


class ProgressBar(Callback):
    """A tqdm bar on stderr, or with quiet one log line per logged step; both show the step's losses and what
    the other callbacks' `shown` names.

    Under train.time_budget_s the bar counts the budget's seconds, the step in its postfix, so its time left is
    the budget's: counted in steps, a budget that stops a 100,000-step run at step 2,400 would show hours left.
    """

    # the GAN step's own values: (label, format) in the log line, and the few the bar has room for
    LINE = {"d_loss": ("d_loss", ".4f"), "g_loss": ("g_loss", ".4f"), "d_real": ("D(x)", ".3f"), "d_fake": ("D(G(z))", ".3f"),
            "d_real_sign": ("r_t", ".3f"), "ada_p": ("p", ".3f"), "spectral": ("spectral", ".4f")}
    BAR = {"d_loss": ("d", ".3f"), "g_loss": ("g", ".3f"), "ada_p": ("p", ".3f")}

    def __init__(self, quiet: bool, others=()):
        self.quiet = quiet
        self.extra = {k: v for c in others for k, v in c.shown.items()}

    def on_start(self, run: Run) -> None:
        self.steps = run.steps
        self.budget = run.gan.cfg.train.time_budget_s
        self.started = time.perf_counter()
        if self.budget is None:
            self.bar = tqdm(total=run.steps, initial=run.start, disable=self.quiet, unit="step", dynamic_ncols=True,
                            file=sys.stderr)
        else:
            self.bar = tqdm(total=self.budget, disable=self.quiet, unit="s", dynamic_ncols=True, file=sys.stderr,
                            bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s [{elapsed}<{remaining}{postfix}]")

    def on_step(self, step: int) -> None:
        if self.budget is None:
            self.bar.update(1)
        else:
            self.bar.update(min(time.perf_counter() - self.started, self.budget) - self.bar.n)

    def on_log(self, step: int, logs: dict) -> None:
        def shown(labels):
            return [(label, f"{logs[k]:{fmt}}") for k, (label, fmt) in labels.items() if k in logs]

        at = {} if self.budget is None else {"step": f"{step}/{self.steps}"}
        self.bar.set_postfix(dict(shown(self.BAR) + shown(self.extra)), **at, ips=f"{logs['images_per_s']:.0f}")
        if self.quiet:
            values = " ".join(f"{label} {text}" for label, text in shown(self.LINE) + shown(self.extra))
            tqdm.write(f"step {step}/{self.steps} {values} {logs['images_per_s']:.0f} img/s", file=sys.stderr)

    def on_end(self) -> None:
        self.bar.close()


# ---------------------------------------------------------------- the probes


class HeldOutGap(Callback):
    """At every log line: D's mean output on training images against unseen ones.

    A discriminator that memorises its training set rates the images it learns from above unseen images of
    the same distribution, before the samples show it: the validation-set heuristic of ADA (Karras et al.
    2020). Both sets are fixed for the run (train.heldout_probe images each) and go through D un-augmented
    and in inference mode, since training mode would move its BatchNorm statistics and so change the run.
    The held-out images are `data.load_heldout`'s: the other split, or an image folder's data.holdout part.
    """

    STREAM = 4  # the choice of training images comes from a random stream of its own
    BATCH = 256
    shown = {"d_gap": ("gap", "+.3f")}

    def __init__(self, gan: GAN, images, labels: np.ndarray | None, heldout: datalib.Labelled):
        """images, labels: the run's training set (labels: a conditional run's); heldout: its unseen images."""
        self.gan = gan
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

    def on_log(self, step: int, logs: dict) -> dict[str, float]:
        return self(self.gan)

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


class TrainingEval(Callback):
    """Every eval_every steps: score the sampler, log it (metrics.jsonl, TensorBoard's eval/*), keep the best
    checkpoint by FID."""

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
        self.best = read_best(best_dir)

    def on_start(self, run: Run) -> None:
        self.gan, self.metrics, self.writer = run.gan, run.metrics, run.writer

    def on_checkpoint(self, step: int, due: Due) -> str | None:
        if not due.eval:
            return None
        scores = self(self.gan, step, self.metrics)
        with self.writer.as_default(step=step):
            for k, v in scores.items():
                tf.summary.scalar(f"eval/{k}", v)
        return f"eval step {step}: " + " ".join(f"{k} {v:.4g}" for k, v in scores.items())

    def __call__(self, gan: GAN, step: int, metrics_log) -> dict[str, float]:
        scores, _ = self.evaluator.evaluate_model(gan.sampling_generator(), self.n, self.seed)
        metrics_log.write("eval", {"step": step, "eval": scores})
        if self.best is None or scores["fid"] < self.best["fid"]:
            self.manager.save(checkpoint_number=step)
            self.best = {"step": step, "fid": scores["fid"], "checkpoint": Path(self.manager.latest_checkpoint).name}
            atomic_write(self.best_file, json.dumps(self.best, indent=2) + "\n")
        return scores


class SamplerChoice(Callback):
    """Before the loop writes pictures or a checkpoint: which copy of G do pictures come from?

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

    def on_start(self, run: Run) -> None:
        self.gan, self.metrics = run.gan, run.metrics

    def on_checkpoint(self, step: int, due: Due) -> str | None:
        return self(self.gan, step, self.metrics, decide=self.cfg.train.select_sampler and (due.last or due.eval))

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
