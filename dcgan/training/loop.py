"""The training loop: the run directory, data and checkpoints around `GAN.train_step`, and its callbacks.

`train` wires a `dcgan.training.gan.GAN` to the data pipeline and the run directory: it resumes from the
latest checkpoint, trains to the step or time budget, and tells its callbacks (dcgan.training.callbacks) at
every step, every `log_every` steps (their values join the metrics.jsonl record, TensorBoard and the bar),
and at each step that draws the fixed-noise grid, saves a checkpoint or evaluates (the sampler choice, the
grid, the checkpoint, the evaluation, in that order). A caller's own callbacks join the built-in ones.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from dcgan.data.batching import batches_per_epoch
from dcgan.data import pipeline as datalib
from dcgan.core.config import Config, is_conditional
from dcgan.training.artifacts import SampleGrid, finish
from dcgan.training.distribute import (any_worker, check_same_step, is_chief, make_strategy,
                              new_shared_run_dir, save_checkpoint, worker_checkpoint_dir)
from dcgan.training.checkpoints import CHECKPOINT_DIR
from dcgan.core.errors import DcganError, first_line
from dcgan.training.callbacks import (Callback, Callbacks, Due, HeldOutGap, MetricsFile, ProgressBar, Run, SamplerChoice,
                                      TensorBoard, TrainingEval)
from dcgan.training.gan import GAN
from dcgan.training.restoring import checkpoint_manager, restore
from dcgan.training.rundir import METRICS_FILE, MetricsLog, check_resumable, check_resumed_classes, trim_event_files, write_classes, write_config
from dcgan.core.files import lock_run, probe_writable, remove_path

# ---------------------------------------------------------------- schedule and resume


def total_steps(cfg: Config, n_images: int) -> int:
    if cfg.train.steps is not None:
        return cfg.train.steps
    per_epoch = batches_per_epoch(n_images, cfg.data.batch_size)
    return max(1, cfg.train.epochs * per_epoch // cfg.train.d_steps)


def make_run_dir(run_dir: Path, fresh: bool) -> None:
    """Create a new run's directory (a taken or unusable name fails in one line); check a resumed one is writable."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe_writable(run_dir)
    except OSError as e:
        what = "create the run directory" if fresh else "write into the run directory"
        raise DcganError(f"cannot {what} {run_dir}: {e.strerror or first_line(e)}") from None


def resume(gan: GAN, manager: tf.train.CheckpointManager, run_dir: Path, chief: bool) -> int:
    """Restore the latest checkpoint (if any) and drop what a kill left; returns the step training continues from."""
    if manager.latest_checkpoint:
        restore(gan, manager.latest_checkpoint)
    start = int(gan.step.numpy())
    check_same_step(gan.strategy, start)
    if chief:
        remove_interrupted_writes(run_dir)
        trim_event_files(run_dir / "tb", start)  # steps after the checkpoint are trained and logged again
    return start


def remove_interrupted_writes(run_dir: Path) -> None:
    """Delete what a killed run left half-written; it never holds data (the final names do).

    TensorFlow writes a checkpoint's shards into <prefix>_temp/ and the state file
    via checkpoint.tmp<id>; this package writes through .<name>.<id>.tmp names. A
    kill leaves them behind, and a shard folder holding a stale file is never
    removed by later saves, so each kill would leak up to a checkpoint's size.
    """
    ckpt = run_dir / CHECKPOINT_DIR
    for path in [*ckpt.glob("ckpt-*_temp"), *ckpt.glob("checkpoint.tmp*"),
                 *(p for d in (run_dir, run_dir / "samples", run_dir / "tb") for p in d.glob(".*.tmp*"))]:
        remove_path(path)


# ---------------------------------------------------------------- the run


def train(cfg: Config, resume_dir: Path | None = None, quiet: bool = False, strategy=None,
          callbacks: Sequence[Callback] = ()) -> Path:
    """Train to cfg.train.steps, writing everything into a run directory; returns it.

    strategy: a tf.distribute strategy (None: made from cfg.distribute here; the CLI makes it first
    because MultiWorkerMirroredStrategy must exist before TensorFlow runs anything). callbacks: the caller's
    own (dcgan.training.callbacks.Callback), called on the chief after the built-in probes, before the writers.
    """
    if strategy is None:
        strategy = make_strategy(cfg.distribute)
    if cfg.train.deterministic:
        tf.config.experimental.enable_op_determinism()
    if resume_dir is not None:
        check_resumable(resume_dir)
    # in memory, or left on disk by a source that streams (a prepared dataset); a conditional run's labels come too
    data = datalib.training_data(cfg.data, labelled=is_conditional(cfg))
    gan = GAN(cfg, strategy, classes=data.classes)
    # only the chief writes the run's files; other workers (multi_worker) train and save throwaway checkpoints
    chief = is_chief(gan.strategy)
    run_dir = resume_dir if resume_dir is not None else new_shared_run_dir(cfg, gan.strategy)
    if chief:
        make_run_dir(run_dir, fresh=resume_dir is None)
    with lock_run(run_dir, "dcgan train") if chief else contextlib.nullcontext():
        if chief:
            check_classes(gan, run_dir, resume_dir is not None)
        return _train_locked(cfg, gan, data.images, data.labels, run_dir, resume_dir is not None,
                             chief, quiet, callbacks)


def check_classes(gan: GAN, run_dir: Path, resuming: bool) -> None:
    """A conditional run's class names go into classes.json; a resumed run's data must still have the same classes."""
    if gan.classes is None:
        return
    if resuming and check_resumed_classes(run_dir, gan.cfg, gan.classes):
        return
    write_classes(run_dir, gan.classes)


def _train_locked(cfg: Config, gan: GAN, images: np.ndarray, labels: np.ndarray | None, run_dir: Path, resuming: bool,
                  chief: bool, quiet: bool, extra: Sequence[Callback]) -> Path:
    t = cfg.train
    steps = total_steps(cfg, len(images))
    per_epoch = batches_per_epoch(len(images), cfg.data.batch_size)
    manager = checkpoint_manager(gan, run_dir)  # the chief's checkpoints: every worker resumes from them
    saver = manager if chief else checkpoint_manager(gan, run_dir, worker_checkpoint_dir(run_dir / CHECKPOINT_DIR, gan.strategy))
    start = resume(gan, manager, run_dir, chief) if resuming else 0
    if start >= steps:
        _log(f"{run_dir}: already at step {start} of {steps}; nothing to do")
        if chief:  # a run killed while finishing gets its final artifacts; config.yaml keeps the steps it trained
            finish(gan, run_dir)
        return run_dir
    if chief:
        write_config(run_dir, cfg)
    batches = training_batches(cfg, gan, images, labels, start)
    metrics = MetricsLog(run_dir / METRICS_FILE, resume_step=start) if chief else None
    writer = tf.summary.create_file_writer(str(run_dir / "tb")) if chief else tf.summary.create_noop_writer()
    checkpoints, grid = CheckpointWriter(saver, gan.strategy), SampleGrid(gan, run_dir) if chief else None
    callbacks = Callbacks(run_callbacks(gan, images, labels, grid, checkpoints, quiet, extra) if chief else [checkpoints], _log)
    _log(f"{'resuming' if start else 'training'} {run_dir} from step {start} to {steps} ({len(images)} images, {per_epoch} batches/epoch)")
    callbacks.on_start(Run(gan, run_dir, start, steps, metrics, writer))
    window = Window(time.perf_counter())
    try:
        for step in range(start + 1, steps + 1):
            logs = gan.train_step(next(batches))
            window.steps += 1
            callbacks.on_step(step)
            out_of_time = t.time_budget_s is not None and any_worker(
                gan.strategy, time.perf_counter() - window.wall_start >= t.time_budget_s)  # workers must stop at the same step
            due = due_at(t, step, last=step == steps or out_of_time, evaluates=chief and bool(t.eval_every))
            if step % t.log_every == 0 or due.last:
                _check_finite(gan, manager)
                callbacks.on_log(step, window.record(gan, step, logs, per_epoch))
            if due.sample or due.checkpoint or due.eval:
                _check_finite(gan, manager)  # on every worker, so that all of them stop at the same step
                gan.recalibrate_ema()  # before pictures, a checkpoint or scores: the EMA copy's BatchNorm statistics
                callbacks.on_checkpoint(step, due)
            if out_of_time:
                _log(f"time budget of {t.time_budget_s:g} s reached at step {step}")
                break
    finally:
        callbacks.on_end()
    if chief:
        finish(gan, run_dir, grid)
    return run_dir


def training_batches(cfg: Config, gan: GAN, images, labels: np.ndarray | None, start: int):
    """The run's batches from step `start` on, in the same (seed, epoch) order on every worker and every resume."""
    t = cfg.train
    return datalib.training_batches(images, labels, gan.strategy, cfg.data.batch_size, t.seed, start_batch=start * t.d_steps,
                                    group=t.d_steps)


def run_callbacks(gan: GAN, images, labels: np.ndarray | None, grid: SampleGrid, checkpoints: Callback, quiet: bool,
                  extra: Sequence[Callback]) -> list[Callback]:
    """The chief's callbacks, in calling order: probes, the sampler choice, grid, checkpoint, evaluation, the
    caller's own, then the writers of each logged record."""
    t = gan.cfg.train
    periodic_eval = TrainingEval(gan, grid.run_dir) if t.eval_every else None
    choose_sampler = SamplerChoice(gan, images) if gan.ema_generator is not None else None
    heldout_gap, no_gap = HeldOutGap.for_run(gan, images, labels)
    for note in (no_gap, grid.note()):
        if note:
            _log(note)
    found = [c for c in (heldout_gap, choose_sampler, grid, checkpoints, periodic_eval, *extra) if c is not None]
    return [*found, MetricsFile(), TensorBoard(), ProgressBar(quiet, found)]


# ---------------------------------------------------------------- the periodic duties


def due_at(t, step: int, last: bool, evaluates: bool) -> Due:
    return Due(sample=step % t.sample_every == 0 or last, checkpoint=step % t.checkpoint_every == 0 or last,
               eval=evaluates and (step % t.eval_every == 0 or last), last=last)


class CheckpointWriter(Callback):
    """At every checkpoint_every steps (and the last): save the checkpoint (a worker's own, on other workers)."""

    def __init__(self, saver, strategy):
        self.saver, self.strategy = saver, strategy

    def on_checkpoint(self, step: int, due: Due) -> None:
        if due.checkpoint:
            write_checkpoint(self.saver, step, self.strategy)


class Window:
    """Throughput over the steps since the last log line, and the run's wall clock."""

    def __init__(self, now: float):
        self.wall_start = self.start = now
        self.steps = 0

    def record(self, gan: GAN, step: int, logs: dict, per_epoch: int) -> dict:
        """The metrics.jsonl line for this step; starts the next window."""
        t, now = gan.cfg.train, time.perf_counter()
        images_per_s = self.steps * gan.cfg.data.batch_size * t.d_steps / max(now - self.start, 1e-9)
        epoch = (step * t.d_steps) // per_epoch
        gan.epoch.assign(epoch)
        record = {"step": step, "epoch": epoch, **{k: float(v) for k, v in logs.items()},
                  "images_per_s": round(images_per_s, 1), "wall_s": round(now - self.wall_start, 2)}
        if t.on_nan == "skip_step":
            record["skipped_steps"] = int(gan.skipped_steps.numpy())
        self.start, self.steps = time.perf_counter(), 0
        return record


def write_checkpoint(saver, step: int, strategy) -> None:
    """Save, or stop in one line when the disk refuses (the previous checkpoints stay intact)."""
    try:
        save_checkpoint(saver, step, strategy)
    except (tf.errors.OpError, OSError) as e:
        raise DcganError(f"cannot write the checkpoint of step {step} in {saver.directory}: {first_line(e)}") from None


def _check_finite(gan: GAN, manager) -> None:
    bad = int(gan.first_nonfinite_step.numpy())
    if bad >= 0 and gan.cfg.train.on_nan == "stop":
        last = manager.latest_checkpoint
        kept = f"the last good checkpoint {Path(last).name} is intact" if last else "no checkpoint had been written"
        raise DcganError(f"non-finite loss at step {bad}; training stopped ({kept})")


def _log(message: str) -> None:
    tqdm.write(message, file=sys.stderr)
