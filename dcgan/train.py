"""The training loop: the run directory, data, logs, pictures and checkpoints around `GAN.train_step`.

`train` wires a `dcgan.gan.GAN` to the data pipeline, the run directory and the
logs: it resumes from the latest checkpoint, logs every `log_every` steps, draws
the fixed-noise grid, saves checkpoints, evaluates and chooses the sampling copy
of the generator when asked, and stops at the step or time budget.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from dcgan import data as datalib
from dcgan import viz
from dcgan.config import Config
from dcgan.distribute import (any_worker, check_same_step, distribute_dataset, is_chief, make_strategy,
                              new_shared_run_dir, save_checkpoint, worker_checkpoint_dir)
from dcgan.errors import DcganError
from dcgan.evaluate import SamplerChoice, TrainingEval
from dcgan.gan import CHECKPOINT_DIR, GAN, checkpoint_manager, restore, save_generator
from dcgan.rundir import MetricsLog, read_metrics, trim_event_files, write_config

# ---------------------------------------------------------------- schedule and resume


def total_steps(cfg: Config, n_images: int) -> int:
    if cfg.train.steps is not None:
        return cfg.train.steps
    per_epoch = datalib.batches_per_epoch(n_images, cfg.data.batch_size)
    return max(1, cfg.train.epochs * per_epoch // cfg.train.d_steps)


def check_checkpoint_state(manager: tf.train.CheckpointManager, run_dir: Path) -> None:
    """Refuse to resume from step 0 when the checkpoint state file exists but cannot be read.

    TensorFlow writes that file atomically, so a kill never leaves it torn; an
    unreadable one was damaged afterwards, and ignoring it (as TensorFlow does)
    would retrain from scratch over the run's checkpoints and metrics.
    """
    state = run_dir / CHECKPOINT_DIR / "checkpoint"
    if state.exists() and not manager.latest_checkpoint:
        raise DcganError(f"cannot resume {run_dir}: the checkpoint state file {state} is unreadable; "
                         f"repair it or move {state.parent} away to start over")


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
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


# ---------------------------------------------------------------- the run


def train(cfg: Config, resume_dir: Path | None = None, quiet: bool = False, strategy=None) -> Path:
    """Train to cfg.train.steps, writing everything into a run directory; returns it.

    strategy: a tf.distribute strategy (None: made from cfg.distribute here; the CLI makes it first
    because MultiWorkerMirroredStrategy must exist before TensorFlow runs anything).
    """
    if strategy is None:
        strategy = make_strategy(cfg.distribute)
    t = cfg.train
    if t.deterministic:
        tf.config.experimental.enable_op_determinism()
    images = datalib.load_images(cfg.data)
    steps = total_steps(cfg, len(images))
    per_epoch = datalib.batches_per_epoch(len(images), cfg.data.batch_size)
    gan = GAN(cfg, strategy)
    # only the chief writes the run's files; other workers (multi_worker) train and save throwaway checkpoints
    chief = is_chief(gan.strategy)

    run_dir = resume_dir if resume_dir is not None else new_shared_run_dir(cfg, gan.strategy)
    if chief:
        run_dir.mkdir(parents=True, exist_ok=True)
    manager = checkpoint_manager(gan, run_dir)  # the chief's checkpoints: every worker resumes from them
    saver = manager if chief else checkpoint_manager(gan, run_dir, worker_checkpoint_dir(run_dir / CHECKPOINT_DIR, gan.strategy))
    if resume_dir is not None:
        check_checkpoint_state(manager, run_dir)
    if resume_dir is not None and manager.latest_checkpoint:
        restore(gan, manager.latest_checkpoint)
    start = int(gan.step.numpy())
    check_same_step(gan.strategy, start)
    if chief and resume_dir is not None:
        remove_interrupted_writes(run_dir)
        trim_event_files(run_dir / "tb", start)
    if chief:
        write_config(run_dir, cfg)
    if start >= steps:
        _log(f"{run_dir}: already at step {start} of {steps}; nothing to do")
        if chief:
            finish(gan, run_dir)
        return run_dir

    dataset = datalib.make_dataset(images, cfg.data.batch_size, t.seed, start_batch=start * t.d_steps, group=t.d_steps)
    dataset = distribute_dataset(gan.strategy, dataset)
    batches = iter(dataset)
    metrics = MetricsLog(run_dir / "metrics.jsonl", resume_step=start) if chief else None
    writer = tf.summary.create_file_writer(str(run_dir / "tb")) if chief else tf.summary.create_noop_writer()
    if chief:
        (run_dir / "samples").mkdir(exist_ok=True)
    periodic_eval = TrainingEval(gan, run_dir) if chief and t.eval_every else None
    choose_sampler = SamplerChoice(gan, images) if chief and gan.ema_generator is not None else None
    _log(f"{'resuming' if start else 'training'} {run_dir} from step {start} to {steps} ({len(images)} images, {per_epoch} batches/epoch)")

    bar = tqdm(total=steps, initial=start, disable=quiet or not chief, unit="step", dynamic_ncols=True, file=sys.stderr)
    window_start, window_steps, wall_start = time.perf_counter(), 0, time.perf_counter()
    try:
        for step in range(start + 1, steps + 1):
            logs = gan.train_step(next(batches))
            window_steps += 1
            bar.update(1)
            out_of_time = t.time_budget_s is not None and any_worker(
                gan.strategy, time.perf_counter() - wall_start >= t.time_budget_s)  # workers must stop at the same step
            is_last = step == steps or out_of_time
            if step % t.log_every == 0 or is_last:
                _check_finite(gan, manager)
                now = time.perf_counter()
                images_per_s = window_steps * cfg.data.batch_size * t.d_steps / max(now - window_start, 1e-9)
                epoch = (step * t.d_steps) // per_epoch
                gan.epoch.assign(epoch)
                record = {"step": step, "epoch": epoch, **{k: float(v) for k, v in logs.items()}, "images_per_s": round(images_per_s, 1),
                          "wall_s": round(now - wall_start, 2)}
                if t.on_nan == "skip_step":
                    record["skipped_steps"] = int(gan.skipped_steps.numpy())
                if chief:
                    metrics.write(record)
                with writer.as_default(step=step):
                    for k in ("d_loss", "g_loss", "d_real", "d_fake", "images_per_s"):
                        tf.summary.scalar(k, record[k])
                bar.set_postfix(d=f"{record['d_loss']:.3f}", g=f"{record['g_loss']:.3f}", ips=f"{images_per_s:.0f}")
                if quiet and chief:
                    _log(f"step {step}/{steps} d_loss {record['d_loss']:.4f} g_loss {record['g_loss']:.4f} "
                               f"D(x) {record['d_real']:.3f} D(G(z)) {record['d_fake']:.3f} {images_per_s:.0f} img/s")
                window_start, window_steps = time.perf_counter(), 0
            due_sample = step % t.sample_every == 0 or is_last
            due_checkpoint = step % t.checkpoint_every == 0 or is_last
            due_eval = periodic_eval is not None and (step % t.eval_every == 0 or is_last)
            if due_sample or due_checkpoint or due_eval:
                _check_finite(gan, manager)  # on every worker, so that all of them stop at the same step
                gan.recalibrate_ema()  # the EMA copy's BatchNorm statistics, for pictures, checkpoint and scores
                if choose_sampler is not None:
                    why = choose_sampler(gan, step, metrics, decide=t.select_sampler and (is_last or due_eval))
                    if why:
                        _log(why)
            if due_sample and chief:
                grid = write_sample_grid(gan, run_dir, step)
                with writer.as_default(step=step):
                    tf.summary.image("samples", grid[None], step=step)
            if due_checkpoint:
                save_checkpoint(saver, step, gan.strategy)
            if due_eval:
                scores = periodic_eval(gan, step, metrics)
                with writer.as_default(step=step):
                    for k, v in scores.items():
                        tf.summary.scalar(f"eval/{k}", v)
                _log(f"eval step {step}: " + " ".join(f"{k} {v:.4g}" for k, v in scores.items()))
            if out_of_time:
                _log(f"time budget of {t.time_budget_s:g} s reached at step {step}")
                break
    finally:
        bar.close()
        writer.flush()
    if chief:
        finish(gan, run_dir)
    return run_dir


def _check_finite(gan: GAN, manager) -> None:
    bad = int(gan.first_nonfinite_step.numpy())
    if bad >= 0 and gan.cfg.train.on_nan == "stop":
        last = manager.latest_checkpoint
        kept = f"the last good checkpoint {Path(last).name} is intact" if last else "no checkpoint had been written"
        raise DcganError(f"non-finite loss at step {bad}; training stopped ({kept})")


def write_sample_grid(gan: GAN, run_dir: Path, step: int) -> np.ndarray:
    n = gan.cfg.train.sample_grid
    images = gan.generate(gan.fixed_noise.numpy())
    grid = viz.image_grid(images, n, n)
    viz.save_png(run_dir / "samples" / f"step_{step:07d}.png", viz.upscale(grid, 2 if images.shape[1] < 48 else 1))
    return grid


def finish(gan: GAN, run_dir: Path) -> None:
    """The end-of-run artifacts: loss plot, progress GIF, the sampling generator as .keras."""
    records = read_metrics(run_dir / "metrics.jsonl")
    if records:
        viz.plot_losses(run_dir / "losses.png", records)
    frames = [viz.read_png(p) for p in sorted((run_dir / "samples").glob("step_*.png"))]
    if frames:
        viz.save_gif(run_dir / "progress.gif", frames, duration_ms=300)
    save_generator(gan.sampler, run_dir / "generator.keras")


def _log(message: str) -> None:
    tqdm.write(message, file=sys.stderr)
