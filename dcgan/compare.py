"""`dcgan compare`: one run per upsampling mode (and seed) under one budget, evaluated, reported.

Fair by construction: every run of a comparison is the same config (the user's
file and --set overrides) except the generator's upsampling. For seed k every
mode gets train.seed = k, which fixes the data order (make_dataset shuffles by
the seed), the training noise and the fixed sample latents; the final scores of
every run use the same evaluation latents (seed 0) against the same real set.

    --budget steps    every run trains the same number of steps; the FID curve
                      comes from train.eval_every (default steps/5)
    --budget seconds  every run trains the same wall-clock time on this machine
                      (train.time_budget_s). The budget is cut into segments
                      (default 5) and each segment ends with an evaluation done
                      outside the timed training, so evaluating costs no mode
                      training time (with eval_every, faster modes would be
                      evaluated more often and lose more of their budget).
                      Each segment resumes from the last one's checkpoint, and
                      its first step traces the graph again (seconds, about
                      the same for every mode), which the budget includes, as
                      it includes the first trace of any run; --eval-every
                      equal to --seconds means one segment and one trace

Each run is a normal run directory under runs/compare-<name>/ (resumable with
`dcgan train --resume`). A run is finished when compare_result.json, written
last, is present; an interrupted comparison skips finished runs and resumes the
others from their latest checkpoint. For the seconds budget the time already
spent counts against the budget: compare_sessions.json records at which step
each training session started, so the wall time of every session (its last
metrics.jsonl wall_s up to the checkpoint it was resumed from) adds up. Work
lost after the last checkpoint is neither counted nor kept, so the budget is
spent exactly once on the training that the run holds. (Restarting instead
would waste up to a whole budget per kill.)
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import re
import shlex
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dcgan import metrics as M
from dcgan import viz
from dcgan.config import UPSAMPLING_MODES, Config, diff_keys, from_dict, load_config, to_dict
from dcgan.errors import ConfigError, DcganError
from dcgan.checkpoints import find_checkpoint, latest_step
from dcgan.rundir import CONFIG_FILE, METRICS_FILE, MetricsLog, atomic_write, lock_run, read_metrics, read_run_config, resume_config
from dcgan.sample import parse_seeds

RESULT_FILE = "compare_result.json"
SESSIONS_FILE = "compare_sessions.json"
REPORT_MD, REPORT_JSON = "report.md", "report.json"
SAMPLES_FIG, SPECTRA_FIG, FID_FIG = "samples.png", "spectra.png", "fid.png"
BUDGETS = ("steps", "seconds")
DEFAULT_POINTS = 5  # evaluations along the budget
STEP_CAP = 10**9  # train.steps of a seconds-budget run: the time budget ends it
EVAL_SEED = 0  # latents of every final evaluation, the same for every run
GRID_ROWS = GRID_COLS = 8
LOSS_TAIL = 5  # final losses: mean of the last logged values (one batch each is noisy)
TIME_TOLERANCE_S = 0.1  # wall_s is logged rounded to 0.01 s
MIN_EVAL_SAMPLES = 16


# ---------------------------------------------------------------- mode specs


@dataclass(frozen=True)
class Mode:
    """One generator variant: the upsampling of each block plus its options."""

    blocks: tuple[str, ...]  # one mode for all blocks, or one per block (earliest first)
    kernel: int | None = None  # transpose_kernel_size
    interpolation: str | None = None  # of upsample blocks

    @property
    def label(self) -> str:
        """The canonical spec: transpose+upsample:bilinear:k4."""
        return "+".join(self.blocks) + (f":{self.interpolation}" if self.interpolation else "") + (
            f":k{self.kernel}" if self.kernel else "")

    @property
    def slug(self) -> str:
        return self.label.replace(":", "-")

    def apply(self, gen: dict) -> None:
        """Write this mode into a generator config dict."""
        gen["upsampling"] = list(self.blocks) if len(self.blocks) > 1 else self.blocks[0]
        if self.kernel is not None:
            gen["transpose_kernel_size"] = self.kernel
        if self.interpolation is not None:
            gen["interpolation"] = self.interpolation


def parse_mode(spec: str) -> Mode:
    """'transpose:k4', 'upsample:bilinear', 'subpixel', 'transpose+upsample:k5' -> Mode."""
    text = spec.strip()
    if not text:
        raise DcganError("--modes: empty mode (two commas in a row or a trailing comma?)")
    head, *options = text.split(":")
    blocks = tuple(b.strip() for b in head.split("+"))
    for b in blocks:
        if b not in UPSAMPLING_MODES:
            raise DcganError(f"--modes {text!r}: unknown upsampling {b!r}; use {', '.join(UPSAMPLING_MODES)}, "
                             "or one per block joined by + (e.g. transpose+upsample)")
    kernel = interpolation = None
    for opt in (o.strip() for o in options):
        if m := re.fullmatch(r"k(\d+)", opt):
            if kernel is not None:
                raise DcganError(f"--modes {text!r}: the kernel is given twice")
            if "transpose" not in blocks:
                raise DcganError(f"--modes {text!r}: :{opt} sets the kernel of transpose blocks and this mode has none "
                                 "(use --set model.generator.kernel_size=N for the other convolutions)")
            kernel = int(m[1])
        elif opt in ("nearest", "bilinear"):
            if interpolation is not None:
                raise DcganError(f"--modes {text!r}: the interpolation is given twice")
            if "upsample" not in blocks:
                raise DcganError(f"--modes {text!r}: :{opt} is the resize of upsample blocks and this mode has none")
            interpolation = opt
        else:
            raise DcganError(f"--modes {text!r}: unknown option {opt!r}; options are kN (transpose kernel) "
                             "and nearest or bilinear (upsample resize)")
    return Mode(blocks, kernel, interpolation)


def parse_modes(text: str) -> list[Mode]:
    modes = [parse_mode(s) for s in text.split(",")]
    labels = [m.label for m in modes]
    for label in labels:
        if labels.count(label) > 1:
            raise DcganError(f"--modes: {label!r} is given twice")
    return modes


# ---------------------------------------------------------------- the plan


@dataclass
class Plan:
    """A validated comparison: which runs, under which budget, evaluated how."""

    base: Config
    modes: list[Mode]
    seeds: list[int]
    budget: str  # steps | seconds
    amount: float  # steps or seconds
    eval_every: float  # steps between evaluations, or seconds between them
    eval_samples: int
    name: str
    config_path: str | None = None
    overrides: list[str] = dataclasses.field(default_factory=list)

    @property
    def directory(self) -> Path:
        return Path(self.base.run.dir) / f"compare-{self.name}"

    def run_name(self, mode: Mode, seed: int) -> str:
        return f"{mode.slug}-seed{seed}"

    def run_dir(self, mode: Mode, seed: int) -> Path:
        return self.directory / self.run_name(mode, seed)

    def run_config(self, mode: Mode, seed: int) -> Config:
        """The base config with this mode, seed and budget; everything else identical across runs."""
        data = to_dict(self.base)
        mode.apply(data["model"]["generator"])
        t = data["train"]
        t["seed"] = seed
        if self.budget == "steps":
            t.update(steps=int(self.amount), epochs=None, time_budget_s=None, eval_every=int(self.eval_every))
        else:  # time_budget_s is set per training session (see train_for_seconds)
            t.update(steps=STEP_CAP, epochs=None, time_budget_s=None, eval_every=None)
        data["run"] = {"dir": str(self.directory), "name": self.run_name(mode, seed)}
        try:
            return from_dict(data)
        except ConfigError as e:
            raise DcganError(f"--modes {mode.label!r}: {e}") from None

    def targets(self) -> list[float]:
        """Seconds budget: the spent time at which each evaluation happens (the last = the budget)."""
        n = max(1, math.ceil(self.amount / self.eval_every - 1e-9))
        return [min(i * self.eval_every, self.amount) for i in range(1, n + 1)]

    def describe_budget(self) -> str:
        if self.budget == "steps":
            return f"same number of training steps: {int(self.amount)} per run"
        return f"same wall-clock training time on this machine: {self.amount:g} s per run"

    def command(self) -> str:
        """The canonical command line that reproduces (or resumes) this comparison."""
        parts = ["dcgan", "compare"] + (["--config", self.config_path] if self.config_path else [])
        parts += ["--modes", ",".join(m.label for m in self.modes), "--budget", self.budget]
        parts += ["--steps", str(int(self.amount))] if self.budget == "steps" else ["--seconds", f"{self.amount:g}"]
        parts += ["--seeds", ",".join(map(str, self.seeds)), "--name", self.name]
        for s in self.overrides:
            parts += ["--set", s]
        parts += ["--eval-samples", str(self.eval_samples), "--eval-every", f"{self.eval_every:g}"]
        return shlex.join(parts)


def plan(config: str | None = None, modes: str = "", budget: str = "steps", steps: int | None = None,
         seconds: float | None = None, seeds: str | None = None, name: str | None = None, overrides=(),
         eval_samples: int = 10000, eval_every: float | None = None) -> Plan:
    """Check every argument and every run's config (no TensorFlow needed)."""
    base = load_config(config, list(overrides))
    parsed = parse_modes(modes)
    if budget not in BUDGETS:
        raise DcganError(f"--budget {budget!r}: choose steps or seconds")
    if budget == "steps":
        if seconds is not None:
            raise DcganError("--seconds applies to --budget seconds")
        amount = steps if steps is not None else base.train.steps
        if amount is None:
            raise DcganError("--budget steps: give --steps N (the config sets no train.steps)")
        if amount < 1 or int(amount) != amount:
            raise DcganError(f"--steps {amount}: must be a whole number of at least 1")
    else:
        if steps is not None:
            raise DcganError("--steps applies to --budget steps")
        if seconds is None:
            raise DcganError("--budget seconds: give --seconds S")
        if not seconds >= 1 or not math.isfinite(seconds):
            raise DcganError(f"--seconds {seconds}: must be a number of at least 1")
        amount = float(seconds)
    if eval_every is None:
        eval_every = max(1, int(amount) // DEFAULT_POINTS) if budget == "steps" else max(1.0, amount / DEFAULT_POINTS)
    at_least_one = eval_every >= 1 and math.isfinite(eval_every)  # nan and inf first: int() raises on them
    if budget == "steps" and not (at_least_one and int(eval_every) == eval_every):
        raise DcganError(f"--eval-every {eval_every:g}: with --budget steps it is a whole number of steps, at least 1")
    if budget == "seconds" and not at_least_one:
        raise DcganError(f"--eval-every {eval_every:g}: with --budget seconds it is a number of seconds, at least 1")
    if eval_samples < MIN_EVAL_SAMPLES:
        raise DcganError(f"--eval-samples {eval_samples}: must be at least {MIN_EVAL_SAMPLES}")
    seed_list = parse_seeds(seeds) if seeds is not None else [base.train.seed]
    if len(set(seed_list)) != len(seed_list):
        raise DcganError(f"--seeds {seeds!r}: a seed is repeated")
    unit = f"{int(amount)}steps" if budget == "steps" else f"{amount:g}s"
    name = name if name is not None else f"{base.data.name}-{unit}"
    if not name or "/" in name or name in (".", "..") or not name.isprintable():
        raise DcganError(f"--name {name!r}: must be a plain directory name")
    p = Plan(base, parsed, seed_list, budget, amount, float(eval_every), eval_samples, name, config, list(overrides))
    seen = {}
    for mode in parsed:  # validates each mode against the image size, and catches two specs of one model
        model = json.dumps(to_dict(p.run_config(mode, seed_list[0]).model), sort_keys=True)
        if model in seen:
            raise DcganError(f"--modes: {mode.label!r} builds the same generator as {seen[model]!r}")
        seen[model] = mode.label
    return p


# ---------------------------------------------------------------- wall time of a run


def read_sessions(run_dir: Path) -> list[int]:
    path = run_dir / SESSIONS_FILE
    return json.loads(path.read_text())["starts"] if path.is_file() else []


def kept_records(run_dir: Path) -> list[dict]:
    """metrics.jsonl up to the latest checkpoint: what a resume keeps (later lines are lost work)."""
    last = latest_step(run_dir)
    return [r for r in read_metrics(run_dir / METRICS_FILE) if r.get("step", 0) <= last]


def spent_seconds(records: list[dict], starts: list[int]) -> float:
    """Training wall time of a run made of several sessions.

    wall_s restarts at 0 in each session. A session ends where the next one starts
    (a step in `starts`) or where wall_s falls back (a resume compare did not see,
    e.g. `dcgan train --resume`); each session contributes its last wall_s.
    """
    total, last, prev_step = 0.0, None, 0
    for r in (r for r in records if "wall_s" in r):
        boundary = any(prev_step <= s < r["step"] for s in starts if s > 0)
        if last is not None and (boundary or r["wall_s"] < last):
            total += last
        last, prev_step = r["wall_s"], r["step"]
    return total + (last or 0.0)


def run_seconds(run_dir: Path) -> float:
    return spent_seconds(kept_records(run_dir), read_sessions(run_dir))


# ---------------------------------------------------------------- training


def check_same_settings(run_dir: Path, wanted: Config) -> None:
    """A run directory of this comparison must hold exactly the run we would train."""
    saved = read_run_config(run_dir)
    changed = [k for k in diff_keys(to_dict(saved), to_dict(wanted)) if k != "train.time_budget_s"]
    if changed:
        raise DcganError(f"{run_dir} was trained with other settings ({', '.join(changed)}); "
                         "use another --name, or remove that directory")


def train_session(cfg: Config, run_dir: Path, time_budget: float | None, quiet: bool) -> None:
    """Start or resume the run in run_dir (one `train` call), noting the step it starts from."""
    from dcgan import train as trainlib

    if (run_dir / CONFIG_FILE).is_file():
        cfg = resume_config(run_dir)
    if time_budget is not None:
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, time_budget_s=max(time_budget, 1.0)))
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(run_dir / SESSIONS_FILE, json.dumps({"starts": read_sessions(run_dir) + [latest_step(run_dir)]}) + "\n")
    trainlib.train(cfg, resume_dir=run_dir, quiet=quiet)


def train_for_seconds(p: Plan, cfg: Config, run_dir: Path, evaluator, quiet: bool) -> None:
    """Train segment by segment up to each target time, evaluating between segments (untimed).

    An evaluation record carries the time spent when it was taken, so a resumed
    run skips the segments it has done and finishes the one it was in.
    """
    for target in p.targets():
        evals = [r for r in kept_records(run_dir) if "eval" in r]
        if any(r.get("spent_s", -1) >= target - TIME_TOLERANCE_S for r in evals):
            continue
        spent = run_seconds(run_dir)
        if spent < target - TIME_TOLERANCE_S:
            train_session(cfg, run_dir, target - spent, quiet)
        gen = load_latest(run_dir)
        scores, _ = evaluator.evaluate_model(gen.model, cfg.train.eval_samples, cfg.train.seed)
        MetricsLog(run_dir / METRICS_FILE).write({"step": gen.checkpoint.step, "eval": scores,
                                                  "spent_s": round(run_seconds(run_dir), 2)})


def load_latest(run_dir: Path):
    """The generator `dcgan sample` uses by default: latest checkpoint, the copy the run chose."""
    from dcgan.sample import load_generator

    return load_generator(find_checkpoint(run_dir))


# ---------------------------------------------------------------- one run's result


def machine() -> dict:
    import tensorflow as tf

    return {"cpu_count": os.cpu_count(), "platform": platform.platform(), "cpu": cpu_name(),
            "python": platform.python_version(), "tensorflow": tf.__version__,
            "gpus": [d.name for d in tf.config.list_physical_devices("GPU")]}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def evaluate_run(p: Plan, mode: Mode, seed: int, run_dir: Path, evaluator, gen) -> dict:
    """Score the run's final generator (`gen`, from load_latest) and collect everything the report shows."""
    from dcgan.flops import forward_flops, gflops
    from dcgan.models import count_params

    scores, images = evaluator.evaluate_model(gen.model, p.eval_samples, EVAL_SEED)
    records = kept_records(run_dir)
    losses = [r for r in records if "d_loss" in r][-LOSS_TAIL:]
    speeds = [r["images_per_s"] for r in records if "images_per_s" in r]
    if not losses or not speeds:
        raise DcganError(f"{run_dir}/{METRICS_FILE}: no training records; remove the run directory and compare again")
    return {
        "mode": mode.label, "seed": seed, "run_dir": str(run_dir), "step": gen.checkpoint.step, "ema": gen.ema,
        "generator_params": count_params(gen.model), "generator_gflops": gflops(forward_flops(gen.model)),
        "images_per_s": float(statistics.median(speeds)), "wall_s": round(run_seconds(run_dir), 2),
        "d_loss": float(np.mean([r["d_loss"] for r in losses])), "g_loss": float(np.mean([r["g_loss"] for r in losses])),
        **{k: float(v) for k, v in scores.items()},
        "eval_samples": p.eval_samples, "feature_network": evaluator.feature_network,
        "curve": [{"step": r["step"], "fid": r["eval"]["fid"], **({"spent_s": r["spent_s"]} if "spent_s" in r else {})}
                  for r in records if "eval" in r],
        "spectrum": M.radial_profile(M.power_spectrum(images)).tolist(),
        "real_spectrum": M.radial_profile(evaluator.real_spectrum).tolist(),
        "machine": machine(),
    }


def read_result(run_dir: Path) -> dict | None:
    path = run_dir / RESULT_FILE
    return json.loads(path.read_text()) if path.is_file() else None


# ---------------------------------------------------------------- the comparison


def compare(p: Plan, quiet: bool = False) -> Path:
    """Train, evaluate and report every (mode, seed) run not finished yet; returns report.md's path."""
    try:
        p.directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DcganError(f"cannot create {p.directory}: {e.strerror or e}") from None
    with lock_run(p.directory, "dcgan compare"):  # a second compare of the same name would train the same runs
        return _compare_locked(p, quiet)


def _compare_locked(p: Plan, quiet: bool) -> Path:
    _log(f"{p.directory}: {len(p.modes) * len(p.seeds)} runs, {p.describe_budget()} (run the same command again to resume)")
    evaluator = None
    results, loaded = [], {}  # loaded: generators kept for the sample figure (building a GAN takes a while)
    runs = [(mode, seed) for seed in p.seeds for mode in p.modes]  # seed-major: an early stop leaves whole seeds
    for i, (mode, seed) in enumerate(runs, 1):
        run_dir, cfg = p.run_dir(mode, seed), p.run_config(mode, seed)
        if (run_dir / CONFIG_FILE).is_file():
            check_same_settings(run_dir, cfg)
        result = read_result(run_dir)
        if result is not None:
            _log(f"[{i}/{len(runs)}] {mode.label} seed {seed}: finished earlier, not retrained ({run_dir})")
        else:
            how = "resuming" if (run_dir / CONFIG_FILE).is_file() else "training"
            _log(f"[{i}/{len(runs)}] {mode.label} seed {seed}: {how} {run_dir}")
            if evaluator is None:
                from dcgan.evaluate import METRICS, Evaluator

                evaluator = Evaluator(p.base.data, METRICS, quiet=quiet)  # the real side, computed once
            try:
                if p.budget == "steps":
                    train_session(cfg, run_dir, None, quiet)
                else:
                    train_for_seconds(p, cfg, run_dir, evaluator, quiet)
            except DcganError as e:
                raise DcganError(f"{run_dir.name}: {e}") from None
            gen = load_latest(run_dir)
            result = evaluate_run(p, mode, seed, run_dir, evaluator, gen)
            atomic_write(run_dir / RESULT_FILE, json.dumps(result, indent=1) + "\n")  # last: marks the run finished
            if seed == p.seeds[0]:
                loaded[mode.label] = gen
        results.append(result)
    return write_report(p, results, loaded)


# ---------------------------------------------------------------- report

COLUMNS = (  # key, header, format
    ("generator_params", "G params", "int"),
    ("generator_gflops", "G GFLOPs/image", "g"),
    ("images_per_s", "train images/s", "f1"),
    ("wall_s", "wall s", "f1"),
    ("step", "steps", "int"),
    ("fid", "FID ↓", "g"),
    ("kid", "KID ↓", "g"),
    ("precision", "precision ↑", "f3"),
    ("recall", "recall ↑", "f3"),
    ("checkerboard", "checkerboard (1 = real)", "f3"),
    ("d_loss", "D loss", "f3"),
    ("g_loss", "G loss", "f3"),
)


def fmt(value: float, kind: str) -> str:
    if kind == "int":
        return f"{int(round(value)):,}"
    if kind == "g":
        return f"{value:.4g}"
    return f"{value:.{kind[1:]}f}"


def summarize(results: list[dict]) -> dict:
    """Per column: mean, std over seeds (sample std; null with one seed) and n."""
    out = {}
    for key, _, _ in COLUMNS:
        values = [float(r[key]) for r in results]
        out[key] = {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)) if len(values) > 1 else None,
                    "n": len(values)}
    return out


def cell(stat: dict, kind: str) -> str:
    if stat["std"] is None or stat["std"] == 0:
        return fmt(stat["mean"], kind)
    spread = f"{stat['std']:.2g}" if kind in ("int", "g") else fmt(stat["std"], kind)  # two digits of a spread suffice
    return f"{fmt(stat['mean'], kind)} ± {spread}"


def noise_verdicts(summaries: dict[str, dict]) -> dict[str, str]:
    """FID of each mode against the best mean: a difference under 2 standard errors is within noise."""
    best = min(summaries, key=lambda m: summaries[m]["fid"]["mean"])
    b = summaries[best]["fid"]
    out = {}
    for mode, s in summaries.items():
        f = s["fid"]
        if mode == best:
            out[mode] = "best"
            continue
        se = math.sqrt(f["std"] ** 2 / f["n"] + b["std"] ** 2 / b["n"])
        diff = f["mean"] - b["mean"]
        out[mode] = f"+{diff:.3g} ({'within noise' if diff <= 2 * se else 'beyond noise'})"
    return out


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows]) + "\n"


def scored_copies(results: list[dict]) -> str:
    """Which copy of G the runs were scored on: each run samples from the one it chose."""
    n_ema = sum(bool(r["ema"]) for r in results)
    if n_ema in (0, len(results)):
        return f"{'EMA' if n_ema else 'raw'} generator"
    return f"sampling generator, the copy each run chose (EMA in {n_ema} runs, raw in {len(results) - n_ema})"


def write_report(p: Plan, results: list[dict], loaded: dict | None = None) -> Path:
    by_mode = {m.label: [r for r in results if r["mode"] == m.label] for m in p.modes}
    summaries = {label: summarize(rs) for label, rs in by_mode.items()}
    several = len(p.seeds) > 1
    verdicts = noise_verdicts(summaries) if several else {}
    figures = write_figures(p, by_mode, loaded or {})
    header = ["mode"] + [h for _, h, _ in COLUMNS] + (["FID vs best"] if several else [])
    rows = [[f"`{label}`"] + [cell(summaries[label][k], kind) for k, _, kind in COLUMNS] + ([verdicts[label]] if several else [])
            for label in by_mode]
    per_run = [[f"`{r['mode']}`", str(r["seed"])] + [fmt(r[k], kind) for k, _, kind in COLUMNS] for r in results]
    mach = machine()
    first = results[0]
    cfg = p.base
    machines = {json.dumps({k: r["machine"][k] for k in ("cpu_count", "platform", "cpu")}) for r in results}
    lines = [
        f"# Upsampling comparison `{p.name}`",
        "",
        f"- **Budget:** {p.describe_budget()}.",
        f"- **Machine:** {mach['cpu']}, os.cpu_count() = {mach['cpu_count']}, {mach['platform']}, "
        f"Python {mach['python']}, TensorFlow {mach['tensorflow']}, GPUs: {', '.join(mach['gpus']) or 'none'}."
        + ("" if len(machines) == 1 else " **Note:** the runs were evaluated on different machines; see report.json."),
        f"- **Command:** `{p.command()}`",
        f"- **Data and model:** {cfg.data.name} {cfg.data.image_size}x{cfg.data.image_size}x{cfg.data.channels}, "
        f"batch {cfg.data.batch_size}, loss {cfg.train.loss}, EMA decay {cfg.train.ema_decay}; every run identical "
        "except the generator's upsampling.",
        f"- **Seeds:** {', '.join(map(str, p.seeds))}. Seed k sets train.seed = k in every mode: same data order, "
        "same training noise. " + ("Cells show mean ± sample std over the seeds." if several else "One seed: no spread shown."),
        f"- **Scores:** the final checkpoint's {scored_copies(results)} (what `dcgan sample` uses), "
        f"{p.eval_samples} images from the same latents (seed {EVAL_SEED}) for every run, against the "
        f"{cfg.data.name} test split; features: `{first['feature_network']}`. Checkerboard: excess spectral power at "
        "N/2 and N/4 over the real images' (1 = none).",
        f"- **FID curve:** {curve_note(p)}",
        "- **train images/s:** median of the logged training windows; **wall s:** training wall time "
        + ("(includes the periodic evaluations, sample grids and checkpoints)" if p.budget == "steps"
           else "(the budget; evaluations are not counted)") + f"; **D/G loss:** mean of the last {LOSS_TAIL} logged values.",
        "",
        "## Per mode",
        "",
        markdown_table(header, rows),
    ]
    if several:
        lines += ["FID vs best: difference of the mean FID to the best mode's; *within noise* when it is under two "
                  "standard errors of that difference over the seeds (a rough check with few seeds).", ""]
    lines += ["## Per run", "", markdown_table(["mode", "seed"] + [h for _, h, _ in COLUMNS], per_run),
              "## Figures", "",
              f"Samples: the same {GRID_ROWS * GRID_COLS} latents (`dcgan sample RUN --n {GRID_ROWS * GRID_COLS}`) "
              f"for every mode, seed {p.seeds[0]} runs.", "", f"![samples]({SAMPLES_FIG})", "",
              "Power spectra of the generated images (mean over seeds) against the real test images.", "",
              f"![spectra]({SPECTRA_FIG})", "", "FID during training.", "", f"![FID]({FID_FIG})", ""]
    report = {
        "name": p.name, "command": p.command(), "budget": {"kind": p.budget, "amount": p.amount, "eval_every": p.eval_every},
        "machine": mach, "seeds": p.seeds, "eval_samples": p.eval_samples, "config": to_dict(cfg), "overrides": p.overrides,
        "modes": [{"mode": label, "summary": summaries[label], **({"fid_vs_best": verdicts[label]} if several else {}),
                   "runs": [{k: v for k, v in r.items() if k not in ("spectrum", "real_spectrum")} for r in rs]}
                  for label, rs in by_mode.items()],
        "figures": figures,
    }
    atomic_write(p.directory / REPORT_JSON, json.dumps(report, indent=1) + "\n")
    return atomic_write(p.directory / REPORT_MD, "\n".join(lines))


def curve_note(p: Plan) -> str:
    if p.budget == "steps":
        return (f"train.eval_every = {int(p.eval_every)} steps, train.eval_samples = {p.base.train.eval_samples} "
                "images (FID, KID and checkerboard logged in each run's metrics.jsonl).")
    return (f"evaluated after every {p.eval_every:g} s of training ({len(p.targets())} points), "
            f"train.eval_samples = {p.base.train.eval_samples} images, outside the timed training; each segment "
            "resumes from the previous one's checkpoint, and the budget includes its first step's graph trace.")


# ---------------------------------------------------------------- figures


def sample_panels(run_dirs: dict[str, Path], n: int = GRID_ROWS * GRID_COLS,
                  loaded: dict | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(z, {label: images}): the same n latents through every run's latest generator (`loaded`: ones at hand)."""
    from dcgan.sample import generate, latents

    gens = {label: (loaded or {}).get(label) or load_latest(d) for label, d in run_dirs.items()}
    dims = {g.latent_dim for g in gens.values()}
    if len(dims) != 1:
        raise DcganError(f"the runs have different latent sizes {sorted(dims)}; their samples cannot share latents")
    z = latents(range(n), dims.pop())  # seeds 0..n-1, as `dcgan sample --n` draws them
    return z, {label: generate(g, z) for label, g in gens.items()}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_panels(path: Path, panels: dict[str, np.ndarray], rows: int = GRID_ROWS, cols: int = GRID_COLS) -> Path:
    """One labelled panel (rows x cols grid) per mode, side by side."""
    plt = _pyplot()
    grids = {label: viz.image_grid(images, rows, cols) for label, images in panels.items()}
    h, w = next(iter(grids.values())).shape[:2]
    scale = 2 if h < 300 else 1
    ncols = min(len(grids), 4)
    nrows = math.ceil(len(grids) / ncols)
    dpi = 100
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * (w * scale + 20) / dpi, nrows * (h * scale + 40) / dpi),
                             dpi=dpi, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (label, grid) in zip(axes.flat, grids.items()):
        ax.imshow(grid[..., 0] if grid.shape[-1] == 1 else grid, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        ax.set_title(label, fontsize=10)
    fig.tight_layout()
    return viz.save_figure(fig, path)


def plot_spectra(path: Path, by_mode: dict[str, list[dict]], size: int) -> Path:
    """Every mode's mean radial power spectrum and the real one, log scale."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    real = np.asarray(next(iter(by_mode.values()))[0]["real_spectrum"])
    ax.semilogy(np.arange(1, len(real)), real[1:], color="black", linewidth=2.5, label="real")  # radius 0 (DC) left out
    for label, results in by_mode.items():
        profile = np.mean([r["spectrum"] for r in results], axis=0)
        ax.semilogy(np.arange(1, len(profile)), profile[1:], linewidth=1.2, label=label)
    for f in (size / 4, size / 2):
        ax.axvline(f, color="gray", linestyle="--", linewidth=0.8)
    ax.set_xlabel("spatial frequency (cycles per image; dashed: N/4, N/2)")
    ax.set_ylabel("mean power")
    ax.set_title("azimuthally averaged power spectrum of generated images")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return viz.save_figure(fig, path)


def plot_fid(path: Path, by_mode: dict[str, list[dict]]) -> Path:
    """FID against step; one line per run, one colour per mode."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    values = []
    for i, (label, results) in enumerate(by_mode.items()):
        for j, r in enumerate(results):
            steps, fids = [c["step"] for c in r["curve"]], [c["fid"] for c in r["curve"]]
            values += fids
            ax.plot(steps, fids, marker="o", markersize=3, color=f"C{i}", alpha=1.0 if j == 0 else 0.5,
                    linestyle="-" if j == 0 else "--", label=label if j == 0 else None)
    if values and min(values) > 0 and max(values) / min(values) > 10:
        ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel("FID (lower is better)")
    ax.set_title("FID during training" + (" (dashed: further seeds)" if any(len(r) > 1 for r in by_mode.values()) else ""))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return viz.save_figure(fig, path)


def write_figures(p: Plan, by_mode: dict[str, list[dict]], loaded: dict) -> dict[str, str]:
    first_seed = {label: Path(rs[0]["run_dir"]) for label, rs in by_mode.items()}
    _, panels = sample_panels(first_seed, loaded=loaded)
    paths = {
        "samples": plot_panels(p.directory / SAMPLES_FIG, panels),
        "spectra": plot_spectra(p.directory / SPECTRA_FIG, by_mode, p.base.data.image_size),
        "fid": plot_fid(p.directory / FID_FIG, by_mode),
    }
    return {k: v.name for k, v in paths.items()}


def _log(message: str) -> None:
    print(f"compare: {message}", file=sys.stderr, flush=True)
