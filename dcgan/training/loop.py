"""The training loop: the run directory, data, logs, pictures and checkpoints around `GAN.train_step`.

`train` wires a `dcgan.training.gan.GAN` to the data pipeline, the run directory and the
logs: it resumes from the latest checkpoint, logs every `log_every` steps, draws
the fixed-noise grid, saves checkpoints, evaluates and chooses the sampling copy
of the generator when asked, and stops at the step or time budget.
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from dcgan.data.batching import batches_per_epoch
from dcgan.data import pipeline as datalib
from dcgan.core import plots
from dcgan.core import viz
from dcgan.core.config import Config, is_conditional
from dcgan.training.distribute import (any_worker, check_same_step, distribute_dataset, is_chief, make_strategy,
                              new_shared_run_dir, save_checkpoint, worker_checkpoint_dir)
from dcgan.training.checkpoints import CHECKPOINT_DIR
from dcgan.core.errors import DcganError, first_line
from dcgan.training.callbacks import HeldOutGap, SamplerChoice, TrainingEval
from dcgan.training.gan import GAN, checkpoint_manager, generate_images, restore, save_generator
from dcgan.training.rundir import CLASSES_FILE, METRICS_FILE, MetricsLog, check_resumable, read_classes, read_metrics, trim_event_files, write_classes, write_config
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


def train(cfg: Config, resume_dir: Path | None = None, quiet: bool = False, strategy=None) -> Path:
    """Train to cfg.train.steps, writing everything into a run directory; returns it.

    strategy: a tf.distribute strategy (None: made from cfg.distribute here; the CLI makes it first
    because MultiWorkerMirroredStrategy must exist before TensorFlow runs anything).
    """
    if strategy is None:
        strategy = make_strategy(cfg.distribute)
    if cfg.train.deterministic:
        tf.config.experimental.enable_op_determinism()
    if resume_dir is not None:
        check_resumable(resume_dir)
    # a prepared dataset stays on disk (dcgan.data.prepared); a conditional run's labels come with the images
    data = datalib.load_labelled_images(cfg.data, stream=True) if is_conditional(cfg) else None
    images = data.images if data is not None else datalib.load_images(cfg.data, stream=True)
    gan = GAN(cfg, strategy, classes=data.classes if data is not None else None)
    # only the chief writes the run's files; other workers (multi_worker) train and save throwaway checkpoints
    chief = is_chief(gan.strategy)
    run_dir = resume_dir if resume_dir is not None else new_shared_run_dir(cfg, gan.strategy)
    if chief:
        make_run_dir(run_dir, fresh=resume_dir is None)
    with lock_run(run_dir, "dcgan train") if chief else contextlib.nullcontext():
        if chief:
            check_classes(gan, run_dir, resume_dir is not None)
        return _train_locked(cfg, gan, images, data.labels if data is not None else None, run_dir, resume_dir is not None,
                             chief, quiet)


def check_classes(gan: GAN, run_dir: Path, resuming: bool) -> None:
    """A conditional run's class names go into classes.json; a resumed run's data must still have the same classes."""
    if gan.classes is None:
        return
    if resuming and (run_dir / CLASSES_FILE).exists():
        saved = read_classes(run_dir, gan.cfg)
        if saved != gan.classes:
            raise DcganError(f"cannot resume {run_dir}: its classes ({', '.join(saved)}) differ from the data's "
                             f"({', '.join(gan.classes)})")
        return
    write_classes(run_dir, gan.classes)


def _train_locked(cfg: Config, gan: GAN, images: np.ndarray, labels: np.ndarray | None, run_dir: Path, resuming: bool,
                  chief: bool, quiet: bool) -> Path:
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

    if cfg.data.name == "prepared":  # streamed from its shards, one pipeline per worker, in the same (seed, epoch) order
        batches = images.batches(gan.strategy, cfg.data.batch_size, t.seed, start_batch=start * t.d_steps, group=t.d_steps)
    else:
        dataset = datalib.make_dataset(images, cfg.data.batch_size, t.seed, start_batch=start * t.d_steps, group=t.d_steps,
                                       labels=labels)
        batches = iter(distribute_dataset(gan.strategy, dataset))
    metrics = MetricsLog(run_dir / METRICS_FILE, resume_step=start) if chief else None
    writer = tf.summary.create_file_writer(str(run_dir / "tb")) if chief else tf.summary.create_noop_writer()
    if chief:
        (run_dir / "samples").mkdir(exist_ok=True)
    periodic_eval = TrainingEval(gan, run_dir) if chief and t.eval_every else None
    choose_sampler = SamplerChoice(gan, images) if chief and gan.ema_generator is not None else None
    heldout_gap, no_gap = HeldOutGap.for_run(gan, images, labels) if chief else (None, None)
    if no_gap:
        _log(no_gap)
    _log(f"{'resuming' if start else 'training'} {run_dir} from step {start} to {steps} ({len(images)} images, {per_epoch} batches/epoch)")

    bar = tqdm(total=steps, initial=start, disable=quiet or not chief, unit="step", dynamic_ncols=True, file=sys.stderr)
    window = Window(time.perf_counter())
    try:
        for step in range(start + 1, steps + 1):
            logs = gan.train_step(next(batches))
            window.steps += 1
            bar.update(1)
            out_of_time = t.time_budget_s is not None and any_worker(
                gan.strategy, time.perf_counter() - window.wall_start >= t.time_budget_s)  # workers must stop at the same step
            is_last = step == steps or out_of_time
            if step % t.log_every == 0 or is_last:
                _check_finite(gan, manager)
                record = window.record(gan, step, logs, per_epoch)
                if heldout_gap is not None:
                    record.update(heldout_gap(gan))
                log_record(record, metrics, writer, bar, steps, quiet and chief)
            due_sample = step % t.sample_every == 0 or is_last
            due_checkpoint = step % t.checkpoint_every == 0 or is_last
            due_eval = periodic_eval is not None and (step % t.eval_every == 0 or is_last)
            if due_sample or due_checkpoint or due_eval:
                _check_finite(gan, manager)  # on every worker, so that all of them stop at the same step
                settle_sampler(gan, choose_sampler, step, metrics, decide=t.select_sampler and (is_last or due_eval))
            if due_sample and chief:
                write_sample_grid(gan, run_dir, step, writer)
            if due_checkpoint:
                write_checkpoint(saver, step, gan.strategy)
            if due_eval:
                evaluate_now(periodic_eval, gan, step, metrics, writer)
            if out_of_time:
                _log(f"time budget of {t.time_budget_s:g} s reached at step {step}")
                break
    finally:
        bar.close()
        writer.flush()
    if chief:
        finish(gan, run_dir)
    return run_dir


# ---------------------------------------------------------------- the periodic duties


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


def log_record(record: dict, metrics: MetricsLog | None, writer, bar, steps: int, print_line: bool) -> None:
    """One logged step: metrics.jsonl (chief), TensorBoard scalars, the progress bar or a log line."""
    if metrics is not None:
        metrics.write("train", record)
    ada = "ada_p" in record  # ADA's augmentation probability, when on
    with writer.as_default(step=record["step"]):
        # ADA's p, the spectral term, the held-out gap: when on
        optional = tuple(k for k in ("ada_p", "spectral", "d_seen", "d_unseen", "d_gap") if k in record)
        for k in ("d_loss", "g_loss", "d_real", "d_fake", "d_real_sign", *optional, "images_per_s"):
            tf.summary.scalar(k, record[k])
    bar.set_postfix(d=f"{record['d_loss']:.3f}", g=f"{record['g_loss']:.3f}", **({"p": f"{record['ada_p']:.3f}"} if ada else {}),
                    ips=f"{record['images_per_s']:.0f}")
    if print_line:
        _log(f"step {record['step']}/{steps} d_loss {record['d_loss']:.4f} g_loss {record['g_loss']:.4f} "
             f"D(x) {record['d_real']:.3f} D(G(z)) {record['d_fake']:.3f} r_t {record['d_real_sign']:.3f} "
             + (f"p {record['ada_p']:.3f} " if ada else "") + (f"gap {record['d_gap']:+.3f} " if "d_gap" in record else "")
             + (f"spectral {record['spectral']:.4f} " if "spectral" in record else "") + f"{record['images_per_s']:.0f} img/s")


def settle_sampler(gan: GAN, choose_sampler: SamplerChoice | None, step: int, metrics: MetricsLog | None, decide: bool) -> None:
    """Before pictures, a checkpoint or scores: the EMA copy's BatchNorm statistics, and which copy samples."""
    gan.recalibrate_ema()
    if choose_sampler is not None:
        why = choose_sampler(gan, step, metrics, decide=decide)
        if why:
            _log(why)


def write_checkpoint(saver, step: int, strategy) -> None:
    """Save, or stop in one line when the disk refuses (the previous checkpoints stay intact)."""
    try:
        save_checkpoint(saver, step, strategy)
    except (tf.errors.OpError, OSError) as e:
        raise DcganError(f"cannot write the checkpoint of step {step} in {saver.directory}: {first_line(e)}") from None


def evaluate_now(periodic_eval: TrainingEval, gan: GAN, step: int, metrics: MetricsLog, writer) -> None:
    scores = periodic_eval(gan, step, metrics)
    with writer.as_default(step=step):
        for k, v in scores.items():
            tf.summary.scalar(f"eval/{k}", v)
    _log(f"eval step {step}: " + " ".join(f"{k} {v:.4g}" for k, v in scores.items()))


def _check_finite(gan: GAN, manager) -> None:
    bad = int(gan.first_nonfinite_step.numpy())
    if bad >= 0 and gan.cfg.train.on_nan == "stop":
        last = manager.latest_checkpoint
        kept = f"the last good checkpoint {Path(last).name} is intact" if last else "no checkpoint had been written"
        raise DcganError(f"non-finite loss at step {bad}; training stopped ({kept})")


def write_sample_grid(gan: GAN, run_dir: Path, step: int, writer) -> None:
    """The fixed-noise grid, as a PNG in samples/ and an image in TensorBoard (conditional: one row per class)."""
    images = generate_images(gan.sampling_generator(), gan.fixed_noise.numpy(), gan.fixed_labels)
    grid = viz.image_grid(images, *gan.grid_shape)
    path = run_dir / "samples" / f"step_{step:07d}.png"
    try:
        viz.save_png(path, viz.upscale(grid, 2 if images.shape[1] < 48 else 1))
    except OSError as e:
        raise DcganError(f"cannot write {path}: {e.strerror or first_line(e)}") from None
    with writer.as_default(step=step):
        tf.summary.image("samples", grid[None], step=step)


def finish(gan: GAN, run_dir: Path) -> None:
    """The end-of-run artifacts: loss plot, progress GIF, the sampling generator as .keras."""
    try:
        records = read_metrics(run_dir / METRICS_FILE, "train")
        if records:
            plots.plot_losses(run_dir / "losses.png", records)
        frames = [viz.read_png(p) for p in sorted((run_dir / "samples").glob("step_*.png"))]
        if frames:
            viz.save_gif(run_dir / "progress.gif", frames, duration_ms=300)
        save_generator(gan.sampling_generator(), run_dir / "generator.keras")
    except OSError as e:  # the checkpoint is saved: a resume with the same steps writes these again
        raise DcganError(f"cannot write the final artifacts of {run_dir}: {e.strerror or first_line(e)} "
                         f"(the last checkpoint is intact; `dcgan train --resume {run_dir}` writes them again)") from None


def _log(message: str) -> None:
    tqdm.write(message, file=sys.stderr)
