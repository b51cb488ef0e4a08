"""The runs under a studio's folder, found and described from their files alone (no TensorFlow).

A request names a run by its id, the run's path below the folder ('compare-modes/transpose-seed0'). An id is
only ever looked up among the runs found by walking the folder, never joined to it, so no request can reach
a path outside it; the walk does not follow symbolic links, so a link cannot lead it out either.
"""

from __future__ import annotations

import functools
import os
import re
import stat
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from dcgan.core.errors import DcganError, first_line
from dcgan.core.files import LOCK_FILE, read_bytes
from dcgan.tools.compare import RESULT_FILE, SESSIONS_FILE, read_result
from dcgan.training.checkpoints import BEST_DIR, CHECKPOINT_DIR, checkpoint_steps, read_best, run_steps
from dcgan.training.rundir import CONFIG_FILE, METRICS_FILE, read_classes, read_metrics, read_run_config, record_kind

MAX_DEPTH = 3  # RUNS/run, RUNS/compare-x/run, RUNS/group/compare-x/run
FINAL_FILE = "generator.keras"  # what a run writes when it ends
CURVE_POINTS = 400  # a loss curve sent to the page is thinned to about this many points
RESCAN_S = 2.0  # how long a walk of the folder is trusted before the next lookup walks it again
# The pictures of a run the page may show, by name: nothing else of a run is ever read out to a request.
PICTURES = {"losses": "losses.png", "progress": "progress.gif", "inspect": "inspect/inspect.png"}
SAMPLE_GRID = re.compile(r"step_(\d{7})\.png")
PICTURE_LIMIT = 256 << 20


class NotFound(DcganError):
    """A request named a run, comparison or picture that the folder does not hold."""


@dataclass
class Run:
    id: str
    path: Path
    config: object | None  # dcgan.core.config.Config; None when config.yaml cannot be read
    problem: str = ""  # why the run cannot be used, in one line
    steps: list[int] = field(default_factory=list)
    comparison: str | None = None  # the id of the comparison folder it belongs to

    def summary(self) -> dict:
        cfg = self.config
        best = checkpoint_steps(self.path / CHECKPOINT_DIR / BEST_DIR)  # kept apart from the rotating checkpoints
        out = {"id": self.id, "name": self.path.name, "comparison": self.comparison, "status": status(self),
               "steps": self.steps, "step": self.steps[-1] if self.steps else 0, "problem": self.problem,
               "best_checkpoint": best[-1] if best else None}
        if cfg is None:
            return out
        modes = cfg.model.generator.upsampling
        conditional = cfg.model.generator.condition != "none"
        out.update(dataset=cfg.data.name if cfg.data.name != "folder" else f"folder {Path(str(cfg.data.path)).name}",
                   mode=",".join(modes) if isinstance(modes, list) else modes, conditional=conditional,
                   target_steps=cfg.train.steps, image_size=cfg.data.image_size, channels=cfg.data.channels,
                   latent_dim=cfg.model.generator.latent_dim, ema=cfg.train.ema_decay > 0, best=best_score(self),
                   classes=self.classes() if conditional else None)
        return out

    def classes(self) -> list[str] | None:
        try:
            return read_classes(self.path, self.config)
        except DcganError:
            return None


def status(run: Run) -> str:
    """training | finished | interrupted | new (nothing saved yet) | broken (see .problem)."""
    if run.problem:
        return "broken"
    if is_locked(run.path / LOCK_FILE):
        return "training"
    if not run.steps:
        return "new"
    if (run.path / RESULT_FILE).is_file():
        return "finished"
    final, newest = run.path / FINAL_FILE, run.path / CHECKPOINT_DIR / f"ckpt-{run.steps[-1]}.index"
    try:  # a run resumed after it ended saves checkpoints newer than its generator.keras
        return "finished" if final.stat().st_mtime >= newest.stat().st_mtime else "interrupted"
    except OSError:
        return "interrupted"


def is_locked(path: Path) -> bool:
    """Whether a process holds the run's writer lock, read from /proc/locks: looking takes no lock, so a
    `dcgan train --resume` started at that moment never finds the run in use by the studio."""
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError:
        return False
    if not stat.S_ISREG(st.st_mode):
        return False
    try:
        table = Path("/proc/locks").read_text()
    except OSError:
        return _probe_lock(path)
    inode = f":{st.st_ino} "
    dev = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}{inode}"
    return any(" FLOCK " in line and dev in line for line in table.splitlines())


def _probe_lock(path: Path) -> bool:
    """Where there is no /proc/locks: try a shared lock for an instant."""
    import fcntl

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)


def best_score(run: Run) -> dict | None:
    """{'metric', 'value', 'step', 'what'}: the best FID of the evaluations during training (the best checkpoint),
    else the comparison's final FID, else the sampler choice's; None before any score."""
    try:
        best = read_best(run.path / CHECKPOINT_DIR / BEST_DIR)
    except DcganError:
        best = None
    if best is not None:
        return {"metric": "fid", "value": best["fid"], "step": best["step"], "what": "best checkpoint"}
    result = comparison_result(run.path)
    if result and isinstance(result.get("fid"), (int, float)):
        return {"metric": "fid", "value": result["fid"], "step": result.get("step"), "what": "comparison"}
    for record in reversed(metrics(run)["sampler"]):
        choice = record["sampler"].get("choice")
        value = record["sampler"].get(f"fid_{choice}")
        if isinstance(value, (int, float)):
            return {"metric": "fid", "value": value, "step": record["step"], "what": f"sampler choice ({choice})"}
    return None


def comparison_result(run_dir: Path) -> dict | None:
    """The run's compare_result.json; None for a run of no comparison, or one whose result is damaged."""
    try:
        return read_result(run_dir)
    except DcganError:
        return None


def metrics(run: Run) -> dict[str, list[dict]]:
    """The run's metrics.jsonl by kind; an unreadable file reads as empty. Read again only when the file changed:
    the page asks for every run's summary every few seconds."""
    try:
        st = os.stat(run.path / METRICS_FILE)
    except OSError:
        return {"train": [], "eval": [], "sampler": []}
    return _metrics(str(run.path / METRICS_FILE), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=64)
def _metrics(path: str, mtime_ns: int, size: int) -> dict[str, list[dict]]:  # the file's stat is the cache key
    try:
        records = read_metrics(path, "all")
    except DcganError:
        records = []
    kinds = {"train": [], "eval": [], "sampler": []}
    for record in records:
        kinds[record_kind(record)].append(record)
    return kinds


def curves(run: Run) -> dict:
    """What the page plots: the losses (thinned to about CURVE_POINTS points) and every evaluation's scores."""
    kinds = metrics(run)
    train = kinds["train"]
    every = max(1, len(train) // CURVE_POINTS)
    keep = train[::every] + ([train[-1]] if train and (len(train) - 1) % every else [])
    losses = {key: [[r["step"], r[key]] for r in keep if isinstance(r.get(key), (int, float))] for key in ("d_loss", "g_loss")}
    scores: dict[str, list] = {}
    for record in kinds["eval"]:
        for key, value in record.get("eval", {}).items():
            if isinstance(value, (int, float)):
                scores.setdefault(key, []).append([record["step"], value])
    return {"losses": losses, "scores": scores}


def newest_grid(run: Run) -> Path | None:
    """The run's latest fixed-noise grid (samples/step_NNNNNNN.png)."""
    found = []
    try:
        with os.scandir(run.path / "samples") as entries:
            found = [e.name for e in entries if SAMPLE_GRID.fullmatch(e.name) and e.is_file(follow_symlinks=False)]
    except OSError:
        return None
    return run.path / "samples" / max(found) if found else None


class RunsFolder:
    """The runs (and comparisons) below one folder, walked again when older than RESCAN_S."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DcganError(f"{root}: no such folder of runs (train one with `dcgan train`, or name the folder)")
        self._lock = threading.Lock()
        self._when = 0.0
        self._runs: dict[str, Run] = {}
        self._comparisons: dict[str, list[str]] = {}

    def scan(self, fresh: bool = False) -> tuple[dict[str, Run], dict[str, list[str]]]:
        with self._lock:
            if fresh or time.monotonic() - self._when > RESCAN_S:
                self._runs, self._comparisons = {}, {}
                self._walk(self.root, 0)
                self._when = time.monotonic()
            return self._runs, self._comparisons

    def _walk(self, folder: Path, depth: int) -> None:
        try:
            with os.scandir(folder) as entries:
                subfolders = sorted(e.name for e in entries if e.is_dir(follow_symlinks=False) and not e.name.startswith("."))
        except OSError:
            return
        for name in subfolders:
            path = folder / name
            if _is_file(path / CONFIG_FILE):
                self._add(path)
            elif depth + 1 < MAX_DEPTH:
                self._walk(path, depth + 1)

    def _add(self, path: Path) -> None:
        rid = path.relative_to(self.root).as_posix()
        try:
            run = Run(rid, path, read_run_config(path), steps=run_steps(path))
        except DcganError as e:
            run = Run(rid, path, None, problem=first_line(e))
        if (path / RESULT_FILE).is_file() or _is_file(path.parent / SESSIONS_FILE) or \
                path.parent.name.startswith("compare-"):
            run.comparison = path.parent.relative_to(self.root).as_posix() or "."
            self._comparisons.setdefault(run.comparison, []).append(rid)
        self._runs[rid] = run

    def run(self, rid: str, fresh: bool = False) -> Run:
        run = self.scan(fresh)[0].get(rid) or self.scan(fresh=True)[0].get(rid)  # or one that appeared since the last walk
        if run is None:
            raise NotFound(f"no run {rid!r} under {self.root}")
        if run.problem:
            raise DcganError(f"run {rid}: {run.problem}")
        return run

    def comparison(self, cid: str) -> list[Run]:
        runs, comparisons = self.scan()
        if cid not in comparisons:
            raise NotFound(f"no comparison {cid!r} under {self.root}")
        return [runs[r] for r in comparisons[cid]]

    def picture(self, rid: str, name: str) -> tuple[bytes, str]:
        """(bytes, media type) of one of a run's pictures: a PICTURES name, 'grid' (its newest grid) or a
        samples/step_NNNNNNN.png name. Opened without following a link, and only a regular file."""
        run = self.run(rid)
        if name == "grid":
            path = newest_grid(run)
        elif name in PICTURES:
            path = run.path / PICTURES[name]
        elif SAMPLE_GRID.fullmatch(name):
            path = run.path / "samples" / name
        else:
            raise NotFound(f"run {rid} has no picture {name!r}")
        if path is None or not _is_file(path) or any(p.is_symlink() for p in _between(run.path, path)):
            raise NotFound(f"run {rid} has no picture {name!r} yet")
        return read_bytes(path, PICTURE_LIMIT, "a run's picture"), "image/gif" if path.suffix == ".gif" else "image/png"

    def summary(self) -> dict:
        runs, comparisons = self.scan(fresh=True)
        return {"root": str(self.root), "runs": [r.summary() for r in runs.values()],
                "comparisons": [{"id": cid, "runs": ids} for cid, ids in comparisons.items()]}


def _is_file(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.stat(path, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _between(top: Path, path: Path) -> list[Path]:
    """path and every folder from it up to (not including) top."""
    chain = [path]
    while chain[-1].parent != top and chain[-1].parent != chain[-1]:
        chain.append(chain[-1].parent)
    return chain
