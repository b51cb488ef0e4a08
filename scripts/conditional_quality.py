#!/usr/bin/env python
"""Which conditioning methods? Class-conditional Fashion-MNIST at the main job's budget, every method, two seeds.

    python scripts/conditional_quality.py --jobs 2                  # 4 variants x seeds 0,1, two runs side by side
    python scripts/conditional_quality.py --variants cbn-projection --seeds 0
    python scripts/conditional_quality.py --steps 20 --n 500 --variants cbn-projection,none   # a smoke test

Each variant trains configs/fashion_mnist_conditional.yaml (`dcgan train`, the main job's 4,500 steps) with the
generator's and the discriminator's conditioning method set by its name, <generator>-<discriminator>:

    cbn-projection      conditional BatchNorm in G, projection D (the config's choice)
    concat-projection   class embedding joined to z, projection D
    cbn-concat          conditional BatchNorm, one-hot label maps beside D's input
    concat-concat       both networks take the label as extra input (keras-io's conditional GAN)
    none                the unconditional model at the same steps (configs/fashion_mnist_4500steps.yaml): the FID to match

then scores the run's sampling generator with `dcgan.evaluation.evaluator.evaluate` on --n images against the test split:
classifier-feature FID, class_accuracy (with the classifier's own test accuracy beside it: the target) and intra-FID.
With --jobs 2 two runs train side by side, each pinned to one core. A run that is there already is resumed or, when
finished, only scored. Results go to --out/results.json; the table to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = ("cbn-projection", "concat-projection", "cbn-concat", "concat-concat", "none")
METRICS = "fid,class_accuracy,intra_fid"


def run_one(out: Path, variant: str, seed: int, steps: int | None, n: int, sets: list[str]) -> dict:
    """Train (or resume) one run and score it; returns its row."""
    from dcgan.core.config import load_config
    from dcgan.tools.evaluate import evaluate
    from dcgan.training.rundir import METRICS_FILE, read_metrics
    from dcgan.training.loop import train

    name = f"{variant}-seed{seed}"
    if variant == "none":
        config, methods, metrics = ROOT / "configs" / "fashion_mnist_4500steps.yaml", [], "fid"
    else:
        g, d = variant.split("-")
        config, metrics = ROOT / "configs" / "fashion_mnist_conditional.yaml", METRICS
        methods = [f"model.generator.condition={g}", f"model.discriminator.condition={d}"]
    overrides = [f"train.seed={seed}", f"run.dir={out}", f"run.name={name}", *([f"train.steps={steps}"] if steps else []),
                 *methods, *sets]
    cfg = load_config(config, overrides)
    run = out / name
    t0 = time.perf_counter()
    train(cfg, resume_dir=run if (run / "config.yaml").exists() else None, quiet=True)
    total_s = time.perf_counter() - t0
    records = {r["metric"]: r for r in evaluate(run, n=n, metrics=metrics, quiet=True)}
    last = (read_metrics(run / METRICS_FILE, "train") or [{}])[-1]
    row = {"variant": variant, "seed": seed, "fid": records["fid"]["value"], "step": last.get("step"),
           "train_s": last.get("wall_s"), "images_per_s": last.get("images_per_s"), "total_s": round(total_s, 1), "run": str(run)}
    if "class_accuracy" in records:
        row.update(class_accuracy=records["class_accuracy"]["value"], intra_fid=records["intra_fid"]["value"],
                   classifier_test_accuracy=records["class_accuracy"].get("classifier_test_accuracy"))
    return row


def table(rows: list[dict]) -> str:
    """One line per variant: mean ± sd over seeds of FID, class accuracy and intra-FID, and the seeds' values."""
    head = ["variant", "seeds", "FID", "class accuracy", "intra-FID", "classifier on real test images", "train s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(r["variant"], []).append(r)

    def cell(group, key, digits):
        vals = [r[key] for r in group if r.get(key) is not None]
        if not vals:
            return "-"
        mean = f"{statistics.mean(vals):.{digits}f}" + (f" ± {statistics.stdev(vals):.{digits}f}" if len(vals) > 1 else "")
        return mean + " (" + ", ".join(f"{v:.{digits}f}" for v in vals) + ")"

    for variant, group in groups.items():
        lines.append("| " + " | ".join([variant, ",".join(str(r["seed"]) for r in group), cell(group, "fid", 2),
                                         cell(group, "class_accuracy", 3), cell(group, "intra_fid", 2),
                                         cell(group, "classifier_test_accuracy", 3), cell(group, "train_s", 0)]) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", default=",".join(VARIANTS[:4]), help=f"comma-separated, of {', '.join(VARIANTS)}")
    parser.add_argument("--seeds", default="0,1", help="comma-separated seeds (default 0,1)")
    parser.add_argument("--steps", type=int, default=None, help="train steps per run (default: the config's, 4500)")
    parser.add_argument("--n", type=int, default=10000, help="generated images per score (default 10000)")
    parser.add_argument("--jobs", type=int, default=1, help="runs side by side, each pinned to its own core (default 1)")
    parser.add_argument("--out", type=Path, default=Path("runs/conditional_quality"), help="parent of the runs")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="a config override for every run (repeatable)")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # VARIANT:SEED, a child process of --jobs
    args = parser.parse_args(argv)
    if args.one:
        variant, seed = args.one.rsplit(":", 1)
        row = run_one(args.out, variant, int(seed), args.steps, args.n, args.sets)
        print(json.dumps(row))
        return 0
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or not variants:
        parser.error(f"--variants: choose from {', '.join(VARIANTS)}; got {args.variants!r}")
    plan = [(v, int(s)) for v in variants for s in args.seeds.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    rows = run_all(plan, args)
    (args.out / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(table(rows))
    return 0


def run_all(plan: list[tuple[str, int]], args) -> list[dict]:
    """Each (variant, seed) in a child process; up to --jobs at once, child i pinned to core i % cores."""
    cores = sorted(os.sched_getaffinity(0))
    pending, running, rows, started = list(plan), [], [], 0
    while pending or running:
        while pending and len(running) < args.jobs:
            variant, seed = pending.pop(0)
            core = cores[started % len(cores)] if args.jobs > 1 else None
            started += 1
            cmd = [sys.executable, __file__, "--one", f"{variant}:{seed}", "--n", str(args.n), "--out", str(args.out),
                   *(["--steps", str(args.steps)] if args.steps else []), *(f"--set={s}" for s in args.sets)]
            pin = (lambda c=core: os.sched_setaffinity(0, {c})) if core is not None else None
            print(f"{variant} seed {seed}" + (f" on core {core}" if core is not None else ""), file=sys.stderr, flush=True)
            running.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, preexec_fn=pin, text=True))
        done = running.pop(0)
        out, _ = done.communicate()
        if done.returncode != 0:
            raise SystemExit(f"conditional_quality: a run failed (exit {done.returncode}): {' '.join(done.args)}")
        rows.append(json.loads(out.strip().splitlines()[-1]))
        print(f"    {rows[-1]}", file=sys.stderr, flush=True)
    return rows


if __name__ == "__main__":
    sys.exit(main())
