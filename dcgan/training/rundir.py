"""The run directory: naming, the saved config, classes and metrics.jsonl, resume checks.

A run directory is self-describing (config.yaml, metrics.jsonl, samples/,
checkpoints/, tb/). Every file that is replaced as a whole is written to a
temporary name and renamed, so a kill never leaves a half-written file under
its final name.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from dcgan.training.checkpoints import BEST_DIR, CHECKPOINT_DIR, STATE_FILE, checkpoint_steps, read_best
from dcgan.core.config import Config, ConfigError, apply_overrides, diff_keys, dump_config, from_dict, load_config, to_dict
from dcgan.core.errors import DcganError, first_line, printable, show
from dcgan.core.files import atomic_path, atomic_write, check_regular, probe_writable, read_bytes
from dcgan.core.yamlio import MAX_FILE_BYTES, yaml_from_bytes

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"
CLASSES_FILE = "classes.json"  # a conditional run's class names, index = label

# What a run's own files may weigh when read back: far above what a run writes (a metrics line is ~300 bytes,
# a class name at most a few hundred), far below what a link to /dev/zero would make of them.
CLASSES_LIMIT = 16 << 20
METRICS_LIMIT = 256 << 20
STATE_LIMIT = 1 << 20  # TensorFlow's checkpoint state file: one line per kept checkpoint


def default_run_name(cfg: Config) -> str:
    modes = cfg.model.generator.upsampling
    mode = "-".join(modes) if isinstance(modes, list) else modes
    conditional = "-conditional" if cfg.model.generator.condition != "none" else ""
    return f"{cfg.data.name}-{mode}{conditional}"


def new_run_dir(cfg: Config) -> Path:
    """runs/<name>; an explicit name must be free, a default one gets a number if taken."""
    parent = Path(cfg.run.dir)
    if parent.exists() and not parent.is_dir():
        raise DcganError(f"run.dir: {parent} is a file, not a directory")
    if cfg.run.name:
        path = parent / cfg.run.name
        if path.exists() and not path.is_dir():
            raise DcganError(f"run.name: {path} is an existing file; choose another run.name")
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


def write_classes(run_dir: Path, classes: list[str]) -> None:
    atomic_write(run_dir / CLASSES_FILE, json.dumps({"classes": list(classes)}, indent=2) + "\n")


def read_classes(run_dir: str | Path, cfg: Config) -> list[str] | None:
    """A conditional run's class names (None for an unconditional run); one line when the file is missing or bad."""
    if cfg.model.generator.condition == "none":
        return None
    classes = _saved_classes(Path(run_dir))
    if classes is None:
        raise DcganError(f"{run_dir} is a conditional run without {CLASSES_FILE} (it is written when training starts)")
    return classes


def _saved_classes(run_dir: Path) -> list[str] | None:
    """The class names in RUN/classes.json, None when there is no such file; one line when it is bad."""
    path = run_dir / CLASSES_FILE
    try:
        classes = json.loads(read_bytes(path, CLASSES_LIMIT, "a run's class list")).get("classes")
    except FileNotFoundError:
        return None
    except (ValueError, AttributeError, RecursionError) as e:
        raise DcganError(f"{path}: unreadable ({first_line(e)})") from None
    if not (isinstance(classes, list) and classes and all(isinstance(c, str) and c for c in classes)):
        raise DcganError(f"{path}: 'classes' must be a non-empty list of class names")
    return classes


def check_resumed_classes(run_dir: Path, cfg: Config, classes: list[str]) -> bool:
    """Whether a resumed conditional run already records these classes (False: none yet, write them).

    Label i must mean the same class to the checkpoint and to the data, so a run with a checkpoint but no
    classes.json is refused: nothing else would notice the data's classes renamed or reordered.
    """
    saved = _saved_classes(Path(run_dir))
    if saved is None:
        if checkpoint_steps(Path(run_dir) / CHECKPOINT_DIR):
            raise DcganError(f"cannot resume {printable(str(run_dir))}: it is a conditional run without {CLASSES_FILE}, "
                             "so the data's classes cannot be checked against the ones it was trained on; restore it")
        return False
    if saved != classes:
        raise DcganError(f"cannot resume {printable(str(run_dir))}: its classes differ from the data's "
                         f"({_first_difference(saved, classes)})")
    return True


def _first_difference(saved: list[str], data: list[str]) -> str:
    """Where two class lists part, with names quoted on one bounded line (folder names can hold anything)."""
    for i, (a, b) in enumerate(zip(saved, data)):
        if a != b:
            return f"class {i} is {show(a)} in the run and {show(b)} in the data"
    return f"the run has {len(saved)} classes and the data {len(data)}"


def read_run_config(run_dir: str | Path) -> Config:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DcganError(f"run directory not found: {run_dir}")
    try:
        raw = read_bytes(run_dir / CONFIG_FILE, MAX_FILE_BYTES, "a run's config")
    except FileNotFoundError:
        raise DcganError(f"{run_dir} is not a run directory (no {CONFIG_FILE})") from None
    try:
        return from_dict(yaml_from_bytes(raw, run_dir / CONFIG_FILE))
    except ConfigError as e:
        raise DcganError(f"{run_dir / CONFIG_FILE}: {e}") from None


def resume_config(run_dir: str | Path, config_path: str | None = None, overrides: list[str] = ()) -> Config:
    """The saved config of a run, with train changes allowed and model/data changes refused.

    Overrides apply on top of the saved config (or of config_path when given).
    """
    saved = read_run_config(run_dir)
    check_resumable(run_dir)
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


def check_resumable(run_dir: Path) -> None:
    """Refuse, before anything is written, a resume that would silently start over.

    With no complete checkpoint, training restarts from step 0 only when the run never got as far as its
    first checkpoint (train.checkpoint_every, as the run was trained): no logged step at or beyond it and
    no generator.keras, which is what a kill before the first save leaves. A run with more history but no
    checkpoints (the folder deleted, or a file in its place) is refused: its logs are never cut for steps
    it cannot restore.
    """
    run_dir = Path(run_dir)
    # a folder compare made for a run it has not started yet has no config: any history there is too much
    first_checkpoint = read_run_config(run_dir).train.checkpoint_every if (run_dir / CONFIG_FILE).is_file() else 1
    folder = run_dir / CHECKPOINT_DIR
    if folder.exists() and not folder.is_dir():
        raise DcganError(f"cannot resume {run_dir}: {folder} is not a directory")
    for writable in (run_dir, folder) if folder.is_dir() else (run_dir,):
        try:  # now, not after the data is loaded and the model built
            probe_writable(writable)
        except OSError as e:
            raise DcganError(f"cannot resume {run_dir}: cannot write into {writable}: {e.strerror or e}") from None
    if checkpoint_steps(folder):
        _check_state_files(run_dir, folder)
        return
    logged = max((r["step"] for r in read_metrics(run_dir / METRICS_FILE, "all")), default=0)
    if logged >= first_checkpoint or (run_dir / "generator.keras").exists():
        what = f"logged steps up to {logged}" if logged else "wrote generator.keras"
        raise DcganError(f"cannot resume {run_dir}: it {what} but {folder} holds no checkpoint; "
                         "restore the checkpoints, or start a new run")


def _check_state_files(run_dir: Path, folder: Path) -> None:
    """The files a resume reads besides the checkpoint, checked now: not after the data is loaded and the model built."""
    for path, limit, what in ((folder / STATE_FILE, STATE_LIMIT, "a checkpoint state file"),
                              (run_dir / METRICS_FILE, METRICS_LIMIT, "a run's metrics log")):
        try:
            check_regular(path, limit, what)
        except FileNotFoundError:
            pass
    read_best(folder / BEST_DIR)


class MetricsLog:
    """Append-only JSON lines: each record a step and its kind (see RECORD_KINDS), then its values.

    On resume, lines from steps after the restored checkpoint (work that was
    lost with the kill) and any torn last line are dropped, so the log never
    holds a step twice.
    """

    def __init__(self, path: str | Path, resume_step: int | None = None):
        self.path = Path(path)
        if resume_step is not None and self.path.exists():
            kept = [r for r in read_metrics(self.path, "all") if r["step"] <= resume_step]
            atomic_write(self.path, "".join(json.dumps(r) + "\n" for r in kept))

    def write(self, kind: str, record: dict) -> None:
        """Append {"step": ..., "kind": kind, ...the rest of record}."""
        if kind not in RECORD_KINDS:
            raise ValueError(f"unknown metrics record kind {kind!r}")
        line = json.dumps({"step": record["step"], "kind": kind, **record}) + "\n"
        try:  # never appended through a link: it would write into whatever the link names
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o666)
        except OSError as e:
            raise DcganError(f"cannot write {printable(str(self.path))}: {e.strerror or e} (a link or special file?)") from None
        try:
            check_regular(self.path, None, "a run's metrics log", os.fstat(fd))
            os.write(fd, line.encode())
        finally:
            os.close(fd)


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
        check_regular(path, None, "a TensorBoard event file")
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


RECORD_KINDS = ("train", "eval", "sampler")  # a logged step's losses; an evaluation's scores; the sampler choice


def record_kind(record: dict) -> str:
    """A record's kind; files written before records carried one are told apart by their keys."""
    kind = record.get("kind")
    if kind in RECORD_KINDS:
        return kind
    return "eval" if "eval" in record else "sampler" if "sampler" in record else "train"


def read_metrics(path: str | Path, kind: str) -> list[dict]:
    """The records of one kind ('train', 'eval', 'sampler', or 'all') that can be placed: objects with an integer step.

    A torn line is skipped, and so is a record whose step is not an integer: resume, the loss
    plot and compare place records by step. A file that is not UTF-8 text is an error naming it.
    """
    path = Path(path)
    if path.is_dir():
        raise DcganError(f"{path}: is a directory, not a metrics file")
    try:
        raw = read_bytes(path, METRICS_LIMIT, "a run's metrics log")
    except FileNotFoundError:
        return []
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise DcganError(f"{path}: line {line} is not UTF-8 text (not a metrics file?)") from None
    records = []
    for line in text.split("\n"):  # JSON lines end in \n only; splitlines() would also cut at \u2028
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):  # a torn line; a 5000-digit number or deep nesting is no record either
            continue
        if isinstance(record, dict) and type(record.get("step")) is int:  # bool is an int too
            records.append(record)
    return records if kind == "all" else [r for r in records if record_kind(r) == kind]
