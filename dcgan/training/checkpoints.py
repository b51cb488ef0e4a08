"""Where a run's checkpoints are, and which one a command means. No TensorFlow at import.

A run keeps `tf.train.CheckpointManager` checkpoints in RUN/checkpoints (ckpt-<step>.index
and .data-*; the .index file is written last, so its presence marks a complete checkpoint)
and, with train.eval_every, the best one by FID in RUN/checkpoints/best. Commands that read
a run (sample, export, evaluate, compare) find their checkpoint here, from the files on disk
(the state file TensorFlow keeps beside them is only needed to resume training).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from dcgan.core.errors import DcganError, first_line
from dcgan.core.files import check_regular, read_bytes

CHECKPOINT_DIR = "checkpoints"
STATE_FILE = "checkpoint"  # TensorFlow's CheckpointState text file
BEST_DIR = "best"
BEST_FILE = "best.json"
PREFIX = "ckpt"
BEST_LIMIT = 64 << 10  # best.json is three short fields


@dataclass
class Checkpoint:
    run_dir: Path
    path: str  # the prefix tf.train.Checkpoint.restore takes: .../checkpoints/ckpt-<step>
    step: int


def checkpoint_steps(folder: Path) -> list[int]:
    """Steps of the complete checkpoints in a folder, oldest first."""
    if not folder.is_dir():
        return []
    return sorted(int(m[1]) for p in folder.glob(f"{PREFIX}-*.index") if (m := re.fullmatch(rf"{PREFIX}-(\d+)\.index", p.name)))


def run_steps(run_dir: Path) -> list[int]:
    return checkpoint_steps(Path(run_dir) / CHECKPOINT_DIR)


def latest_step(run_dir: Path) -> int:
    """The step of the run's newest complete checkpoint, 0 when there is none."""
    steps = run_steps(run_dir)
    return steps[-1] if steps else 0


def run_checkpoint(run_dir: Path, step: int | str | None = None) -> Checkpoint:
    """The run's latest checkpoint, the one saved at `step`, or its best by FID (step='best')."""
    run_dir = Path(run_dir)
    folder = run_dir / CHECKPOINT_DIR
    if step == "best":
        best = checkpoint_steps(folder / BEST_DIR)
        if not best:
            raise DcganError(f"{run_dir}: no best checkpoint in {folder / BEST_DIR} (train with train.eval_every set)")
        return _checked(Checkpoint(run_dir, str(folder / BEST_DIR / f"{PREFIX}-{best[-1]}"), best[-1]))
    steps = checkpoint_steps(folder)
    if not steps:
        raise DcganError(f"no checkpoint in {folder}; train the run first (dcgan train) or check the path")
    if step is None:
        step = steps[-1]
    elif step not in steps:
        raise DcganError(f"--step {step}: no checkpoint {PREFIX}-{step} in {folder}; available steps: {', '.join(map(str, steps))}")
    return _checked(Checkpoint(run_dir, str(folder / f"{PREFIX}-{step}"), step))


def find_checkpoint(target: str | Path, step: int | None = None) -> Checkpoint:
    """A run directory (latest checkpoint, or --step) or an explicit checkpoint path."""
    path = Path(target)
    if path.is_dir():
        return run_checkpoint(path, step)
    m = re.fullmatch(rf"({PREFIX}-(\d+))(\.index|\.data-\d+-of-\d+)?", path.name)
    if m and path.with_name(f"{m[1]}.index").is_file():
        if step is not None:
            raise DcganError(f"--step picks a checkpoint of a run directory; {target} already names one")
        prefix = path.with_name(m[1])
        folder = prefix.parent.parent if prefix.parent.name == BEST_DIR else prefix.parent  # RUN/checkpoints[/best]
        return _checked(Checkpoint(folder.parent, str(prefix), int(m[2])))
    raise DcganError(f"run directory or checkpoint not found: {target}")


def _checked(checkpoint: Checkpoint) -> Checkpoint:
    """checkpoint, once its files are regular ones: TensorFlow's restore would block on a FIFO among them."""
    prefix = Path(checkpoint.path)
    for path in (prefix.with_name(f"{prefix.name}.index"), *prefix.parent.glob(f"{prefix.name}.data-*")):
        check_regular(path, None, "a checkpoint file")
    return checkpoint


def read_best(best_dir: Path) -> dict | None:
    """The record of the best checkpoint by FID in best_dir (None before the first evaluation); one line if damaged."""
    path = Path(best_dir) / BEST_FILE
    try:
        best = json.loads(read_bytes(path, BEST_LIMIT, "a best-checkpoint record"))
    except FileNotFoundError:
        return None
    except (ValueError, RecursionError) as e:
        raise DcganError(f"{path}: damaged ({first_line(e)}); restore it, or remove it to choose the best checkpoint anew") from None
    if not (isinstance(best, dict) and type(best.get("fid")) in (int, float) and type(best.get("step")) is int):
        raise DcganError(f"{path}: damaged (not an object with a numeric 'fid' and an integer 'step'); "
                         "restore it, or remove it to choose the best checkpoint anew")
    return best
