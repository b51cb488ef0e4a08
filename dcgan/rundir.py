"""The run directory: naming, atomic writes, the saved config and metrics.jsonl.

A run directory is self-describing (config.yaml, metrics.jsonl, samples/,
checkpoints/, tb/). Every file that is replaced as a whole is written to a
temporary name and renamed, so a kill never leaves a half-written file under
its final name.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from dcgan.config import Config, ConfigError, apply_overrides, diff_keys, dump_config, from_dict, load_config, read_yaml, to_dict
from dcgan.errors import DcganError

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"


def atomic_write(path: str | Path, data: bytes | str) -> Path:
    """Write data to path via a temporary file in the same directory and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fchmod(f.fileno(), 0o666 & ~_umask())  # mkstemp makes 0600; a plain open() would honour the umask
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_path(path: str | Path):
    """A temporary sibling path for writers that need a filename; call commit() to publish."""
    return _AtomicPath(Path(path))


class _AtomicPath:
    def __init__(self, final: Path):
        self.final = final
        final.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp{final.suffix}")

    def __enter__(self) -> Path:
        return self.tmp

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                os.replace(self.tmp, self.final)
        finally:  # the writer or the rename failed: no temporary is left behind
            self._remove_tmp()
        return False

    def _remove_tmp(self):
        if self.tmp.is_dir():
            import shutil

            shutil.rmtree(self.tmp, ignore_errors=True)
        else:
            self.tmp.unlink(missing_ok=True)


def default_run_name(cfg: Config) -> str:
    modes = cfg.model.generator.upsampling
    mode = "-".join(modes) if isinstance(modes, list) else modes
    return f"{cfg.data.name}-{mode}"


def new_run_dir(cfg: Config) -> Path:
    """runs/<name>; an explicit name must be free, a default one gets a number if taken."""
    parent = Path(cfg.run.dir)
    if cfg.run.name:
        path = parent / cfg.run.name
        if path.exists() and any(path.iterdir()):
            raise DcganError(f"run directory {path} already exists; resume it with --resume {path} or choose another run.name")
        return path
    base = default_run_name(cfg)
    path, n = parent / base, 1
    while path.exists():
        n += 1
        path = parent / f"{base}-{n}"
    return path


def write_config(run_dir: Path, cfg: Config) -> None:
    atomic_write(run_dir / CONFIG_FILE, dump_config(cfg))


def read_run_config(run_dir: str | Path) -> Config:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DcganError(f"run directory not found: {run_dir}")
    if not (run_dir / CONFIG_FILE).exists():
        raise DcganError(f"{run_dir} is not a run directory (no {CONFIG_FILE})")
    try:
        return from_dict(read_yaml(run_dir / CONFIG_FILE))
    except ConfigError as e:
        raise DcganError(f"{run_dir / CONFIG_FILE}: {e}") from None


def resume_config(run_dir: str | Path, config_path: str | None = None, overrides: list[str] = ()) -> Config:
    """The saved config of a run, with train changes allowed and model/data changes refused.

    Overrides apply on top of the saved config (or of config_path when given).
    """
    saved = read_run_config(run_dir)
    if config_path:
        wanted = load_config(config_path, overrides)
    else:
        wanted = from_dict(apply_overrides(to_dict(saved), list(overrides)))
    a, b = to_dict(saved), to_dict(wanted)
    changed = diff_keys(a["model"], b["model"], "model.") + diff_keys(a["data"], b["data"], "data.")
    if changed:
        raise DcganError(f"cannot resume {run_dir}: the model/data config differs in {', '.join(changed)}")
    # train and distribute may change: a run can continue on another number of devices
    return Config(data=saved.data, model=saved.model, train=wanted.train, run=saved.run, distribute=wanted.distribute)


class MetricsLog:
    """Append-only JSON lines, one per logged step.

    On resume, lines from steps after the restored checkpoint (work that was
    lost with the kill) and any torn last line are dropped, so the log never
    holds a step twice.
    """

    def __init__(self, path: str | Path, resume_step: int | None = None):
        self.path = Path(path)
        if resume_step is not None and self.path.exists():
            kept = [r for r in read_metrics(self.path) if r.get("step", 0) <= resume_step]
            atomic_write(self.path, "".join(json.dumps(r) + "\n" for r in kept))

    def write(self, record: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()


def trim_event_files(folder: str | Path, last_step: int) -> int:
    """Drop TensorBoard events logged after `last_step`; returns how many were dropped.

    On resume those steps were lost with the kill and are trained and logged again;
    left in place, TensorBoard would draw each of them twice. A torn last record
    (a kill mid-write) is dropped too.
    """
    import tensorflow as tf
    from tensorflow.core.util.event_pb2 import Event

    dropped = 0
    for path in sorted(Path(folder).glob("events.out.tfevents.*")):
        records, torn = _readable_records(path)
        kept = [r for r in records if Event.FromString(r).step <= last_step]
        if torn or len(kept) < len(records):
            dropped += len(records) - len(kept)
            with atomic_path(path) as tmp, tf.io.TFRecordWriter(str(tmp)) as writer:
                for record in kept:
                    writer.write(record)
    return dropped


def _readable_records(path: Path) -> tuple[list[bytes], bool]:
    """The records of a TFRecord file up to the first bad one, and whether there was one (a torn end)."""
    import tensorflow as tf

    records, iterator = [], iter(tf.data.TFRecordDataset(str(path)))
    while True:
        try:
            records.append(next(iterator).numpy())
        except StopIteration:
            return records, False
        except tf.errors.DataLossError:
            return records, True


def read_metrics(path: str | Path) -> list[dict]:
    """Every complete JSON line of a metrics file (a torn final line is ignored)."""
    records = []
    path = Path(path)
    if not path.exists():
        return records
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records
