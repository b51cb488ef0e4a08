"""What the studio draws: grids, walks, spectra and anatomies of a run's generators, as `dcgan sample` and
`dcgan inspect` make them.

A grid is `dcgan sample`'s request, latents and picture (dcgan.tools.sample), so the PNG the page shows is
byte for byte the file `dcgan sample RUN --seeds S --class C --truncation T --step N` writes, and the npz it
offers is that command's `--out FILE.npz`. Generators are loaded once per (run, step, copy) and kept, a few at
a time; TensorFlow is imported by the first request that draws.
"""

from __future__ import annotations

import collections
import contextlib
import json
import tempfile
import threading
from pathlib import Path

import numpy as np

from dcgan.core import viz
from dcgan.core.errors import DcganError
from dcgan.core.files import LOCK_FILE
from dcgan.studio.runs import Run, RunsFolder, best_score, comparison_result, is_locked
from dcgan.tools.latents import parse_seeds

KEPT_GENERATORS = 6  # loaded generators kept in memory (the default model is 3 MB of weights)
MAX_GRID = 1024  # images one grid request may draw: a 32x32 grid
MAX_FRAMES = 120
SPECTRUM_IMAGES = 256  # images a mode's spectrum is averaged over when its comparison recorded none


class Generators:
    """Loaded generators by (run, step, copy), the least recently used dropped past KEPT_GENERATORS.

    One lock for all drawing: a TensorFlow CPU forward pass already uses every core, and a class walk
    rewrites its generator's embeddings for a moment.
    """

    def __init__(self, folder: RunsFolder):
        self.folder = folder
        self.lock = threading.RLock()
        self._kept: collections.OrderedDict = collections.OrderedDict()

    def get(self, rid: str, step: int | str | None = None, ema: bool | None = None):
        """The generator of a run's checkpoint: its latest (None), the one of a step, or its best by FID ('best')."""
        from dcgan.tools.handle import load_handle

        run = self.folder.run(rid)
        if step == "best":
            checkpoint = best_checkpoint(run)
            key = (rid, "best", checkpoint.step, ema)
            with self.lock:
                if key not in self._kept:
                    self._kept[key] = load_handle(checkpoint, ema=ema, cfg=run.config)
                return self._keep(key)
        if step is not None and step not in run.steps:  # a checkpoint saved since the last walk of the folder
            run = self.folder.run(rid, fresh=True)
        if not run.steps:
            raise DcganError(f"run {rid}: no checkpoint yet")
        step = run.steps[-1] if step is None else step
        if step not in run.steps:
            raise DcganError(f"run {rid}: no checkpoint at step {step}; it has {', '.join(map(str, run.steps))}")
        key = (rid, step, ema)
        with self.lock:
            if key not in self._kept:
                self._kept[key] = load_handle(run.path, step=step, ema=ema, cfg=run.config)
            return self._keep(key)

    def _keep(self, key):
        self._kept.move_to_end(key)
        while len(self._kept) > KEPT_GENERATORS:
            self._kept.popitem(last=False)
        return self._kept[key]


def best_checkpoint(run: Run):
    """The run's best checkpoint by FID (RUN/checkpoints/best), or one line saying it has none."""
    from dcgan.training.checkpoints import run_checkpoint

    return run_checkpoint(run.path, "best")


def grid(gens: Generators, rid: str, seeds: str | None, classes: str | None = None, truncation: float = 1.0,
         step: int | None = None, ema: bool | None = None, as_npz: bool = False) -> tuple[bytes, dict]:
    """(PNG, about): the grid `dcgan sample` draws for these arguments; as_npz: its npz instead. No seeds: the
    command's default (64 seeds; 8 in each class of a conditional run); no classes: every class of a conditional run."""
    from dcgan.tools.sample import grid_picture, npz_record, parse_request, request_latents

    with gens.lock:
        gen = gens.get(rid, step, ema)
        labels = gen.labels(classes or None)
        request = parse_request(seeds=seeds, truncation=truncation, classes=labels)
        if request.generated() > MAX_GRID:
            raise DcganError(f"{request.generated():,} images in one grid; the studio draws at most {MAX_GRID:,}")
        z, y = request_latents(request, gen.latent_dim, truncation)
        images = gen.generate(z, y)
        body = npz_record(request, images, y, gen, truncation) if as_npz else viz.png_bytes(grid_picture(request, images))
        return body, {"generator": gen.describe(), "images": len(images), "rows": request.grid[0],
                          "cols": request.grid[1], "size": images.shape[1], "step": gen.step}


def walk(gens: Generators, rid: str, seeds: str, classes: str | None = None, frames: int = 16, truncation: float = 1.0,
         step: int | None = None, ema: bool | None = None) -> tuple[bytes, dict]:
    """(PNG, about): a walk's frames side by side in one row, no padding, for the page to play one at a time.

    seeds 'A,B' walks between two latents (within one class of a conditional run); one seed and two classes
    walks that latent from the first class to the second (GeneratorHandle.class_walk).
    """
    if not 1 <= frames <= MAX_FRAMES:
        raise DcganError(f"frames {frames}: must be between 1 and {MAX_FRAMES}")
    chosen = parse_seeds(seeds)
    with gens.lock:
        gen = gens.get(rid, step, ema)
        picks = gen.labels(classes) if gen.classes and classes else None
        if len(chosen) == 1:
            if picks is None or len(picks) != 2:
                raise DcganError("one seed walks between two classes of a conditional run: give two classes, or two seeds")
            images = gen.class_walk(chosen[0], picks, frames, truncation)
        elif len(chosen) == 2:
            if gen.classes and (picks is None or len(picks) != 1):
                raise DcganError("two seeds walk within one class of a conditional run: give one class")
            images = gen.walk(chosen, frames, classes=picks, truncation=truncation)
        else:
            raise DcganError(f"a walk goes between 2 seeds (or 1 seed and 2 classes), got {len(chosen)}")
        strip = np.concatenate(list(images), axis=1)
        return viz.png_bytes(strip), {"generator": gen.describe(), "frames": len(images), "size": images.shape[1]}


def spectrum(gens: Generators, run: Run, seeds: str = f"0-{SPECTRUM_IMAGES - 1}") -> dict:
    """A run's radial power spectrum (generated and real): its comparison's, or one drawn from these seeds."""
    from dcgan.evaluation.metrics import power_spectrum, radial_profile

    result = comparison_result(run.path)
    if result and isinstance(result.get("spectrum"), list):
        return {"generated": result["spectrum"], "real": result.get("real_spectrum"), "from": "comparison"}
    with gens.lock:
        gen = gens.get(run.id)
        images = gen.sample(seeds=seeds, classes=None)
    return {"generated": radial_profile(power_spectrum(images)).tolist(), "real": None, "from": f"{len(images)} samples"}


def scores(run: Run) -> dict:
    """A comparison run's final scores (compare_result.json, without its curves), else the run's best."""
    result = comparison_result(run.path)
    if result:
        return {k: v for k, v in result.items() if isinstance(v, (int, float, str, bool)) and k != "run_dir"}
    return {"best": best_score(run)}


class Anatomies:
    """`dcgan inspect` of a run's checkpoint, computed once on request: into RUN/inspect/ as the command writes it
    (and read back from there while it still describes that checkpoint and copy), or, while another process
    holds the run (it is training), into a folder of the studio's own that goes when the studio stops."""

    def __init__(self):
        self.lock = threading.Lock()
        self._scratch = tempfile.TemporaryDirectory(prefix="dcgan-studio-")
        self._kept: dict[tuple, tuple[dict, bytes]] = {}

    def close(self) -> None:
        self._scratch.cleanup()

    def get(self, run: Run, step: int | str | None, ema: bool | None) -> tuple[dict, bytes]:
        from dcgan.tools.anatomy import FIGURE_FILE, REPORT_FILE, inspect_run, resolve
        from dcgan.tools.handle import describe_copy

        if not run.steps:
            raise DcganError(f"run {run.id}: no checkpoint yet")
        if step == "best":  # a checkpoint path names its step: resolve takes no --step with it
            best = best_checkpoint(run)
            target, step, asked = best.path, best.step, None
        else:
            step = run.steps[-1] if step is None else step
            target, asked = run.path, step
        has_ema = run.config.train.ema_decay > 0
        key = (run.id, str(target), step, ema)
        with self.lock:
            if key in self._kept:
                return self._kept[key]
            wanted = [describe_copy(step, copy, ema is None and has_ema) for copy in ((True, False) if ema is None else (ema,))]
            cached = _read_inspection(run.path / "inspect", wanted, REPORT_FILE, FIGURE_FILE)
            if cached is not None:
                self._kept[key] = cached
                return cached
            source = resolve(str(target), None, (), asked, ema)
            if is_locked(run.path / LOCK_FILE):  # training: the run's folder is its trainer's alone
                source.out = Path(self._scratch.name) / run.id.replace("/", "__") / f"ckpt-{step}-{ema}"
            inspection = inspect_run(source, ema)
            self._kept[key] = (inspection.report, inspection.figure.read_bytes())
            return self._kept[key]


def _read_inspection(folder: Path, wanted: list[str], report_file: str, figure_file: str) -> tuple[dict, bytes] | None:
    """(report, figure) from a folder `dcgan inspect` wrote, if its report is of one of the wanted generators."""
    from dcgan.core.files import read_bytes

    with contextlib.suppress(OSError, ValueError, RecursionError, DcganError):
        report = json.loads(read_bytes(folder / report_file, 16 << 20, "an inspect report"))
        if isinstance(report, dict) and report.get("generator") in wanted:
            return report, read_bytes(folder / figure_file, 256 << 20, "an inspect figure")
    return None
