"""`dcgan compare`: train and evaluate one run per mode and seed of a Plan (dcgan.tools.modes), then report.

Each run is a normal run directory under runs/compare-<name>/ (resumable with
`dcgan train --resume`). A run is finished when compare_result.json, written
last, is present; an interrupted comparison skips finished runs and resumes the
others from their latest checkpoint. (Restarting instead would waste up to a
whole budget per kill.)

With --budget seconds the budget is cut into segments and each segment ends
with an evaluation done outside the timed training, so evaluating costs no mode
training time (with eval_every, faster modes would be evaluated more often and
lose more of their budget). Each segment resumes from the last one's checkpoint,
and its first step traces the graph again (seconds, about the same for every
mode), which the budget includes, as it includes the first trace of any run;
--eval-every equal to --seconds means one segment and one trace.

The time already spent counts against the budget: compare_sessions.json records
at which step each training session started, so the wall time of every session
(its last metrics.jsonl wall_s up to the checkpoint it was resumed from) adds up.
Work lost after the last checkpoint is neither counted nor kept, so the budget
is spent exactly once on the training that the run holds.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import sys
from pathlib import Path

import numpy as np

from dcgan.training.checkpoints import find_checkpoint, latest_step
from dcgan.core.config import Config, diff_keys, to_dict
from dcgan.core.errors import DcganError, first_line
from dcgan.evaluation.metrics import power_spectrum, radial_profile
from dcgan.tools.modes import Mode, Plan
from dcgan.tools.report import EVAL_SEED, GRID_COLS, GRID_ROWS, LOSS_TAIL, machine, write_report
from dcgan.training.rundir import CONFIG_FILE, METRICS_FILE, MetricsLog, read_metrics, read_run_config, resume_config
from dcgan.core.files import atomic_write, lock_run, read_bytes

RESULT_FILE = "compare_result.json"
SESSIONS_FILE = "compare_sessions.json"
SESSIONS_LIMIT, RESULT_LIMIT = 1 << 20, 16 << 20  # bytes: far above what a comparison writes into them
TIME_TOLERANCE_S = 0.1  # wall_s is logged rounded to 0.01 s


# ---------------------------------------------------------------- wall time of a run


def read_sessions(run_dir: Path) -> list[int]:
    """The step each training session of the run started from (compare_sessions.json); one line when it is damaged."""
    path = run_dir / SESSIONS_FILE
    starts = _read_json(path, SESSIONS_LIMIT, "a comparison's session record", {"starts": []}).get("starts")
    if not (isinstance(starts, list) and all(type(s) is int and s >= 0 for s in starts)):
        raise DcganError(f"{path}: damaged ('starts' must be a list of steps); restore it, or remove the run directory "
                         "and compare again")
    return starts


def _read_json(path: Path, limit: int, what: str, missing: dict | None) -> dict | None:
    """A JSON object a comparison wrote into a run (missing when there is none); one line naming a damaged one."""
    try:
        value = json.loads(read_bytes(path, limit, what))
    except FileNotFoundError:
        return missing
    except (ValueError, RecursionError) as e:
        raise DcganError(f"{path}: damaged ({first_line(e)}); remove the run directory and compare again") from None
    if not isinstance(value, dict):
        raise DcganError(f"{path}: damaged (not a JSON object); remove the run directory and compare again")
    return value


def kept_records(run_dir: Path, kind: str) -> list[dict]:
    """metrics.jsonl records of one kind up to the latest checkpoint: what a resume keeps (later lines are lost work)."""
    last = latest_step(run_dir)
    return [r for r in read_metrics(run_dir / METRICS_FILE, kind) if r["step"] <= last]


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
    return spent_seconds(kept_records(run_dir, "train"), read_sessions(run_dir))


# ---------------------------------------------------------------- training


def check_same_settings(run_dir: Path, wanted: Config) -> None:
    """A run directory of this comparison must hold exactly the run we would train."""
    saved = read_run_config(run_dir)
    # run.dir is where the comparison folder was: a moved or renamed folder, or one merged from comparisons that
    # ran their seeds in parallel (each on its own core), holds the same runs
    changed = [k for k in diff_keys(to_dict(saved), to_dict(wanted)) if k not in ("train.time_budget_s", "run.dir")]
    if changed:
        raise DcganError(f"{run_dir} was trained with other settings ({', '.join(changed)}); "
                         "use another --name, or remove that directory")


def train_session(cfg: Config, run_dir: Path, time_budget: float | None, quiet: bool) -> None:
    """Start or resume the run in run_dir (one `train` call), noting the step it starts from."""
    from dcgan.training import loop as trainlib

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
        evals = kept_records(run_dir, "eval")
        if any(r.get("spent_s", -1) >= target - TIME_TOLERANCE_S for r in evals):
            continue
        spent = run_seconds(run_dir)
        if spent < target - TIME_TOLERANCE_S:
            train_session(cfg, run_dir, target - spent, quiet)
        gen = load_latest(run_dir)
        scores, _ = evaluator.evaluate_model(gen.model, cfg.train.eval_samples, cfg.train.seed)
        MetricsLog(run_dir / METRICS_FILE).write("eval", {"step": gen.checkpoint.step, "eval": scores,
                                                  "spent_s": round(run_seconds(run_dir), 2)})


def load_latest(run_dir: Path):
    """The generator `dcgan sample` uses by default: latest checkpoint, the copy the run chose."""
    from dcgan.tools.handle import load_handle

    return load_handle(find_checkpoint(run_dir))


# ---------------------------------------------------------------- one run's result


def evaluate_run(p: Plan, mode: Mode, seed: int, run_dir: Path, evaluator, gen) -> dict:
    """Score the run's final generator (`gen`, from load_latest) and collect everything the report shows."""
    from dcgan.tools.flops import forward_flops, gflops
    from dcgan.models.networks import count_params

    scores, images = evaluator.evaluate_model(gen.model, p.eval_samples, EVAL_SEED)
    records = kept_records(run_dir, "train")
    losses = records[-LOSS_TAIL:]
    speeds = [r["images_per_s"] for r in records]
    if not losses or not speeds:
        raise DcganError(f"{run_dir}/{METRICS_FILE}: no training records; remove the run directory and compare again")
    return {
        "mode": mode.label, "seed": seed, "run_dir": str(run_dir), "step": gen.checkpoint.step, "ema": gen.ema,
        "generator_params": count_params(gen.model), "generator_gflops": gflops(forward_flops(gen.model)),
        "images_per_s": float(statistics.median(speeds)), "wall_s": round(run_seconds(run_dir), 2),
        "d_loss": float(np.mean([r["d_loss"] for r in losses])), "g_loss": float(np.mean([r["g_loss"] for r in losses])),
        **{k: float(v) for k, v in scores.items()},
        "eval_samples": p.eval_samples, "feature_network": evaluator.feature_network,
        **({"classifier_test_accuracy": evaluator.judge_accuracy} if evaluator.judge is not None else {}),
        "curve": [{"step": r["step"], "fid": r["eval"]["fid"], **({"spent_s": r["spent_s"]} if "spent_s" in r else {})}
                  for r in kept_records(run_dir, "eval")],
        "spectrum": radial_profile(power_spectrum(images)).tolist(),
        "real_spectrum": radial_profile(evaluator.real_spectrum).tolist(),
        "machine": machine(),
    }


def read_result(run_dir: Path) -> dict | None:
    """A finished run's result (compare_result.json), None for a run not finished."""
    return _read_json(run_dir / RESULT_FILE, RESULT_LIMIT, "a comparison's run result", None)


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
                from dcgan.evaluation.evaluator import Evaluator, check_per_class, default_metrics

                # the real side, computed once; conditional runs are scored per class too
                evaluator = Evaluator(p.base.data, default_metrics(p.base), quiet=quiet, network=p.base.train.feature_network)
                check_per_class(p.eval_samples, evaluator.metrics, len(evaluator.classes or ()), "--eval-samples")
            result, gen = run_one(p, mode, seed, cfg, evaluator, quiet)
            if seed == p.seeds[0]:
                loaded[mode.label] = gen
        results.append(result)
    _, panels = sample_panels({m.label: p.run_dir(m, p.seeds[0]) for m in p.modes}, loaded=loaded)
    return write_report(p, results, panels)


def run_one(p: Plan, mode: Mode, seed: int, cfg: Config, evaluator, quiet: bool) -> tuple[dict, object]:
    """Train one run (or the rest of it) under the plan's budget, score it and mark it finished: (result, generator)."""
    run_dir = p.run_dir(mode, seed)
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
    return result, gen


def sample_panels(run_dirs: dict[str, Path], n: int = GRID_ROWS * GRID_COLS,
                  loaded: dict | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(z, {label: images}): the same n latents through every run's latest generator (`loaded`: ones at hand).

    A conditional generator draws one class per grid row (row r: class r mod K), the same in every run.
    """
    from dcgan.models.sampling import generate_images
    from dcgan.models.networks import is_conditional, num_classes
    from dcgan.tools.sample import latents

    gens = {label: (loaded or {}).get(label) or load_latest(d) for label, d in run_dirs.items()}
    dims = {g.latent_dim for g in gens.values()}
    if len(dims) != 1:
        raise DcganError(f"the runs have different latent sizes {sorted(dims)}; their samples cannot share latents")
    z = latents(range(n), dims.pop())  # seeds 0..n-1, as `dcgan sample --n` draws them
    def labels(model):
        return (np.arange(n, dtype=np.int32) // GRID_COLS) % num_classes(model) if is_conditional(model) else None

    return z, {label: generate_images(g.model, z, labels(g.model)) for label, g in gens.items()}


def _log(message: str) -> None:
    print(f"compare: {message}", file=sys.stderr, flush=True)
