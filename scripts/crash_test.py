#!/usr/bin/env python
"""Kill test: SIGKILL a small training run again and again, resume it, and check nothing was lost.

    python scripts/crash_test.py                 # 10 kills, seed 0
    python scripts/crash_test.py --kills 20 --seed 3 --keep

It writes a tiny MNIST-format dataset (real IDX gz files) and trains a tiny
model on it in `dcgan train` subprocesses that it kills with SIGKILL at random
moments, resuming each time with `dcgan train --resume RUN`; then it trains the
same config uninterrupted (in this process) as the reference. Kills are drawn
from three kinds:

    startup     at a random time after the process starts (import, data, restore)
    training    at a random time after training has started
    checkpoint  while a checkpoint is being written: the k-th save after the
                resume is watched for and the process is killed a random few
                milliseconds into it

Checks: every resume succeeds; no resume starts before the last checkpoint that
was completed when the process died; the final metrics.jsonl is whole (every
line valid JSON, each step once, strictly increasing) and its losses equal the
reference's step for step; every checkpoint variable of the final state equals
the reference's. The last line printed is the figures; the exit status is 1 on
any failure.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

KINDS = ("startup", "training", "checkpoint")
CHECKPOINT_EVERY = 5
STEP_LINE = re.compile(r"^step (\d+)/(\d+) ")
START_LINE = re.compile(r"^(?:training|resuming) .* from step (\d+) to (\d+)")
LATEST = re.compile(r'^model_checkpoint_path: "ckpt-(\d+)"', re.M)

_children: list[subprocess.Popen] = []  # every process started, so none outlives the test


# ---------------------------------------------------------------- set-up


def write_dataset(folder: Path, n: int = 256, size: int = 28, seed: int = 0) -> Path:
    """n random-rectangle images as MNIST's train-images-idx3-ubyte.gz (the real IDX format)."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, size, size), np.uint8)
    for img in images:
        y, x = rng.integers(0, size // 2, 2)
        h, w = rng.integers(size // 4, size // 2, 2)
        img[y : y + h, x : x + w] = rng.integers(128, 256)
    folder.mkdir(parents=True, exist_ok=True)
    header = bytes([0, 0, 0x08, 3]) + struct.pack(">3I", n, size, size)
    with gzip.open(folder / "train-images-idx3-ubyte.gz", "wb") as f:
        f.write(header + images.tobytes())
    return folder


def overrides(data_dir: Path, runs: Path, steps: int, seed: int) -> list[str]:
    """A tiny deterministic run that checkpoints often (every 5 steps, keeping 2) and logs every step."""
    return [
        "data.name=mnist", f"data.path={data_dir}", "data.batch_size=16", f"run.dir={runs}",
        "model.generator.latent_dim=8", "model.generator.base_channels=4", "model.discriminator.base_channels=4",
        "model.discriminator.dropout=0.2",  # dropout's RNG state must survive the kills too
        f"train.steps={steps}", f"train.seed={seed}", "train.deterministic=true", "train.ema_decay=0.9",
        "train.log_every=1", "train.sample_every=20", f"train.checkpoint_every={CHECKPOINT_EVERY}", "train.keep_checkpoints=2",
        "train.sample_grid=2",
    ]


def set_args(sets: list[str]) -> list[str]:
    return [a for s in sets for a in ("--set", s)]


def train_reference(sets: list[str]) -> Path:
    """The uninterrupted run, in this process (TensorFlow is imported once, for the comparison too)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from dcgan.core.config import load_config
    from dcgan.training.loop import train

    return train(load_config(None, sets), quiet=True)


# ---------------------------------------------------------------- one training process


class Trainer:
    """A `dcgan train` subprocess whose stderr is read line by line as it comes."""

    def __init__(self, args: list[str], env: dict):
        cmd = [sys.executable, "-m", "dcgan", "train", "--quiet", *args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        _children.append(self.proc)
        self.started = time.monotonic()
        self.lines: list[str] = []
        self.start_step: int | None = None  # from the "training/resuming ... from step N" line
        self.training_at: float | None = None
        self.last_step = -1  # from the per-step log lines
        self.training = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))
            step = STEP_LINE.match(line)
            if step:
                self.last_step = int(step.group(1))
            m = START_LINE.match(line)
            if m:
                self.start_step = int(m.group(1))
                self.training_at = time.monotonic()
                self.training.set()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> bool:
        """SIGKILL; False if the process had already ended on its own."""
        if not self.alive():
            return False
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        return True

    def wait(self) -> int:
        rc = self.proc.wait()  # bounded by the watchdog
        self._reader.join(5)
        return rc

    def tail(self, n: int = 5) -> str:
        return "\n".join(self.lines[-n:])


def kill_at(trainer: Trainer, kind: str, rng: random.Random, ckpt_dir: Path, startup_s: float, span: int) -> bool:
    """Kill the process at a moment of the given kind, at most `span` steps into training; False if it ended first.

    Moments are counted in steps, not seconds, so a slow machine makes the test
    slower but not different.
    """
    if kind == "startup":
        deadline = trainer.started + rng.uniform(0.2, 1.2) * startup_s
        while trainer.alive() and time.monotonic() < deadline and not trainer.training.is_set():
            time.sleep(0.005)
        return trainer.kill()
    if not _wait(trainer.training.is_set, trainer):
        return trainer.kill()
    if kind == "training":  # a random step, then a random moment in what follows it (sample, save, next step)
        target = trainer.start_step + rng.randint(1, span)
        _wait(lambda: trainer.last_step >= target, trainer, 0.001)
        time.sleep(rng.uniform(0.0, 0.02))
        return trainer.kill()
    # checkpoint: let some saves pass (so the run makes progress), then kill a few milliseconds into the next
    for _ in range(rng.randint(1, max(1, min(3, span // CHECKPOINT_EVERY)))):
        if not _wait(lambda: not _saving(ckpt_dir), trainer) or not _wait(lambda: _saving(ckpt_dir), trainer, 0.0005):
            return trainer.kill()
    time.sleep(rng.uniform(0.0, 0.008))  # a save takes ~5-10 ms: shards, merge, state file, sweep
    return trainer.kill()


def _wait(condition, trainer: Trainer, poll: float = 0.002) -> bool:
    while trainer.alive():
        if condition():
            return True
        time.sleep(poll)
    return False


def _saving(ckpt_dir: Path) -> bool:
    """TensorFlow writes a checkpoint's shards into <prefix>_temp/ before merging them."""
    try:
        return any(name.endswith("_temp") for name in os.listdir(ckpt_dir))
    except FileNotFoundError:
        return False


def latest_checkpoint_step(ckpt_dir: Path) -> int:
    """The step of the checkpoint TensorFlow's state file names (0 when there is none)."""
    try:
        m = LATEST.search((ckpt_dir / "checkpoint").read_text())
    except FileNotFoundError:
        return 0
    return int(m.group(1)) if m else 0


def interrupted_save(ckpt_dir: Path, latest: int) -> bool:
    """Whether the kill left a save half done: shards in _temp/ or a checkpoint newer than the state file's."""
    if not ckpt_dir.is_dir():
        return False
    for name in os.listdir(ckpt_dir):
        m = re.match(r"ckpt-(\d+)(_temp|\.index)$", name)
        if m and (m.group(2) == "_temp" or int(m.group(1)) > latest):
            return True
    return False


# ---------------------------------------------------------------- checks


def check_metrics(path: Path) -> tuple[list[dict], list[str]]:
    """The records of a metrics file and what is wrong with it (torn, invalid or repeated lines)."""
    problems, records = [], []
    text = path.read_text() if path.exists() else ""
    if text and not text.endswith("\n"):
        problems.append("last line is torn (no newline)")
    for i, line in enumerate(text.splitlines(), 1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            problems.append(f"line {i} is not valid JSON: {line[:60]!r}")
            continue
        if records and record.get("step", -1) <= records[-1].get("step", -1):
            problems.append(f"line {i}: step {record.get('step')} after step {records[-1].get('step')}")
        records.append(record)
    return records, problems


def compare_metrics(crashed: list[dict], reference: list[dict]) -> int:
    """Steps whose losses differ from the reference's (or that only one run logged)."""
    keys = ("d_loss", "g_loss", "d_real", "d_fake")
    a = {r["step"]: tuple(r[k] for k in keys) for r in crashed}
    b = {r["step"]: tuple(r[k] for k in keys) for r in reference}
    return sum(a.get(s) != b.get(s) for s in set(a) | set(b))


def compare_weights(crashed_run: Path, reference_run: Path, steps: int) -> int:
    """How many checkpoint variables of the final checkpoints differ."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from dcgan.training.rundir import read_run_config
    from dcgan.training.gan import GAN
    from dcgan.training.checkpoints import CHECKPOINT_DIR
    from dcgan.training.restoring import restore

    states = []
    for run in (crashed_run, reference_run):
        gan = GAN(read_run_config(run))
        restore(gan, str(run / CHECKPOINT_DIR / f"ckpt-{steps}"))
        states.append(gan.state_arrays())
    if len(states[0]) != len(states[1]):
        return max(len(states[0]), len(states[1]))
    return sum(not np.array_equal(x, y) for x, y in zip(*states))


def stale_temporaries(run: Path) -> list[str]:
    """Temporary files or folders a kill left behind (resuming removes them)."""
    return [str(p.relative_to(run)) for p in run.rglob("*") if re.search(r"(\.tmp|_temp)", p.name)]


# ---------------------------------------------------------------- the test


def run(args) -> tuple[dict, list[str]]:
    rng = random.Random(args.seed)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="dcgan-crash-"))
    runs = work / "runs"
    data = Path(args.data) if args.data else write_dataset(work / "data", seed=args.seed)
    common = overrides(data, runs, args.steps, args.seed)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
    crashed, ckpt_dir = runs / "crashed", runs / "crashed" / "checkpoints"
    kinds = args.kinds.split(",") if args.kinds else None
    fig = dict(kills=0, resumes=0, failed_resumes=0, backward=0, kills_in_save=0, kills_before_first_ckpt=0,
               torn_lines_seen=0, invalid_metrics=0, metric_mismatches=0, mismatches=0, stale_tmp=0)
    failures: list[str] = []
    started = time.monotonic()
    watchdog = threading.Timer(args.timeout, _kill_children)  # a hung process must not hang the test
    watchdog.start()

    trainer = Trainer(set_args([*common, "run.name=crashed"]), env)
    startup_s, completed_before = 5.0, 0
    try:
        for i in range(args.kills):
            kind = kinds[i % len(kinds)] if kinds else rng.choice(KINDS if i else KINDS[1:])
            if i == 0 or kind == "startup":  # the first process must create the run before it can be resumed
                _wait(lambda: (crashed / "config.yaml").exists(), trainer)
            # at most an equal share of the remaining steps per kill, so the run cannot finish before the last kill
            span = max(1, (args.steps - completed_before) // (args.kills - i + 1))
            killed = kill_at(trainer, kind, rng, ckpt_dir, startup_s, span)
            rc = trainer.wait()
            if i > 0:
                _check_resume(trainer, rc, completed_before, killed, fig, failures)
            if i == 0 and trainer.training_at is not None:  # 'startup' kills are drawn within this time
                startup_s = max(1.0, trainer.training_at - trainer.started)
            if not killed:
                failures.append(f"kill {i + 1}: the run ended before it could be killed (rc {rc}); raise --steps")
                break
            fig["kills"] += 1
            completed_before = latest_checkpoint_step(ckpt_dir)
            fig["kills_in_save"] += interrupted_save(ckpt_dir, completed_before)
            fig["kills_before_first_ckpt"] += completed_before == 0
            metrics_text = (crashed / "metrics.jsonl").read_bytes() if (crashed / "metrics.jsonl").exists() else b""
            fig["torn_lines_seen"] += bool(metrics_text) and not metrics_text.endswith(b"\n")
            print(f"kill {i + 1}: {kind:<10} after {time.monotonic() - trainer.started:5.2f}s, "
                  f"last completed checkpoint {completed_before}", file=sys.stderr)
            trainer = Trainer(["--resume", str(crashed)], env)
        else:
            rc = trainer.wait()
            _check_resume(trainer, rc, completed_before, False, fig, failures)
    finally:
        watchdog.cancel()
        _kill_children()  # nothing outlives the test, whatever happened
    if time.monotonic() - started >= args.timeout:
        failures.insert(0, f"timed out after {args.timeout} s; every process was killed")

    if not failures:
        train_reference([*common, "run.name=reference"])
        records, problems = check_metrics(crashed / "metrics.jsonl")
        ref_records, ref_problems = check_metrics(runs / "reference" / "metrics.jsonl")
        fig["invalid_metrics"] = len(problems) + len(ref_problems)
        failures += [f"metrics.jsonl: {p}" for p in problems + ref_problems]
        fig["metric_mismatches"] = compare_metrics(records, ref_records)
        if fig["metric_mismatches"]:
            failures.append(f"{fig['metric_mismatches']} logged steps differ from the uninterrupted run's")
        fig["mismatches"] = compare_weights(crashed, runs / "reference", args.steps)
        if fig["mismatches"]:
            failures.append(f"{fig['mismatches']} checkpoint variables differ from the uninterrupted run's")
        stale = stale_temporaries(crashed)
        fig["stale_tmp"] = len(stale)
        if stale:
            failures.append(f"temporaries left in the finished run: {', '.join(stale[:5])}")
    fig["steps"] = args.steps
    fig["seconds"] = round(time.monotonic() - started, 1)
    if not args.keep and not args.workdir and not failures:
        shutil.rmtree(work, ignore_errors=True)
    else:
        fig["workdir"] = str(work)
    return fig, failures


def _kill_children() -> None:
    for proc in _children:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _check_resume(trainer: Trainer, rc: int, completed_before: int, killed: bool, fig: dict, failures: list) -> None:
    """A resume succeeded if it was killed or finished cleanly, from no earlier than the last completed checkpoint."""
    fig["resumes"] += 1
    if not killed and rc != 0:
        fig["failed_resumes"] += 1
        failures.append(f"resume {fig['resumes']} failed (rc {rc}):\n{trainer.tail()}")
    if trainer.start_step is not None and trainer.start_step < completed_before:
        fig["backward"] += 1
        failures.append(f"resume {fig['resumes']} started at step {trainer.start_step}, "
                        f"before the completed checkpoint {completed_before}")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kills", type=int, default=10, help="how many times to SIGKILL the run (default 10)")
    p.add_argument("--seed", type=int, default=0, help="seed of the kill schedule, the data and the run")
    p.add_argument("--steps", type=int, default=None, help="training steps (default 20 + 20 per kill)")
    p.add_argument("--kinds", help="comma-separated kill kinds to cycle through instead of random ones: " + ", ".join(KINDS))
    p.add_argument("--data", help="an MNIST IDX folder to train on (default: a small one written for the test)")
    p.add_argument("--workdir", help="where to put data and runs (default: a temporary folder, removed on success)")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")
    p.add_argument("--timeout", type=float, default=1800, help="give up (and kill everything) after this many seconds")
    args = p.parse_args(argv)
    if args.steps is None:
        args.steps = 20 + 20 * args.kills
    if args.kinds and not set(args.kinds.split(",")) <= set(KINDS):
        p.error(f"--kinds: choose from {', '.join(KINDS)}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    fig, failures = run(args)
    for failure in failures:
        print(f"FAIL: {failure}", file=sys.stderr)
    print(" ".join(f"{k}={v}" for k, v in fig.items()))
    return 0 if fig["kills"] == args.kills and not failures else 1


if __name__ == "__main__":
    raise SystemExit(main())
