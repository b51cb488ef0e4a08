#!/usr/bin/env python
"""Does augmentation help on small data? Fashion-MNIST cut to a few thousand images, with and without it.

    python scripts/augment_small_data.py                          # 1,000 and 5,000 images, seed 0: 6 runs
    python scripts/augment_small_data.py --seeds 0,1              # 12 runs (~15 min each on one core)
    python scripts/augment_small_data.py --limit 1000 --variants none,ada --set train.r1_gamma=1
    python scripts/augment_small_data.py --steps 20 --limit 300 --n 2000   # a smoke test of the whole thing

For each training-set size (data.limit), variant and seed it trains the default config
(`dcgan train`, the main job's 9,000 steps unless --steps) with

    none         no augmentation
    diffaugment  train.augment=[translation, cutout] (DiffAugment, always applied)
    ada          train.ada_target=0.6 (ADA over translation, cutout, color: brightness and contrast here)

then scores the run's sampling generator with `dcgan.evaluation.evaluator.evaluate` (classifier-feature FID
on --n generated images against the Fashion-MNIST TEST split: the held-out images a memorising
discriminator never saw) and by its memorisation score (are generated images nearer to the
training images than unseen ones are? FID cannot tell), and prints a table: FID per seed, their
mean, memorisation, the last logged r_t (d_real_sign, the overfitting signal) and p, and D's
held-out gap at the end (d_gap: its mean output on training images minus test images, at the
last step). Runs land in --out/<variant>-n<limit>-seed<seed>; one that is there already is resumed (or, when finished, only scored), so an interrupted
sweep continues where it stopped. --set adds overrides to every run. Results also go to
--out/results.json (merged with the rows already there, so seeds run side by side by separate
processes end up in one file), the FID curves of the runs' evaluations (--eval-every) to
--out/fid-n<limit>.png, and D's held-out gap over training to --out/gap-n<limit>.png. --report
rebuilds the table and the curves from results.json alone.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from sweep import add_common_arguments, choices, ints, merge_results

VARIANTS = {
    "none": [],
    "diffaugment": ["train.augment=translation,cutout"],
    "ada": ["train.ada_target=0.6"],
}


def run_one(out: Path, variant: str, limit: int, seed: int, steps: int | None, eval_every: int | None, n: int,
            sets: list[str]) -> dict:
    """Train (or resume) one run and score it; returns its row."""
    from dcgan.core.config import load_config
    from dcgan.tools.evaluate import evaluate
    from dcgan.training.rundir import METRICS_FILE, read_metrics
    from dcgan.training.loop import train

    name = f"{variant}-n{limit}-seed{seed}"
    overrides = ["data.name=fashion_mnist", f"data.limit={limit}", f"train.seed={seed}", f"run.dir={out}",
                 f"run.name={name}", *([f"train.steps={steps}"] if steps else []),
                 *([f"train.eval_every={eval_every}"] if eval_every else []), *VARIANTS[variant], *sets]
    cfg = load_config(None, overrides)
    run = out / name
    t0 = time.perf_counter()
    train(cfg, resume_dir=run if (run / "config.yaml").exists() else None, quiet=True)
    train_s = time.perf_counter() - t0
    scores = {r["metric"]: r for r in evaluate(run, n=n, metrics="fid,memorisation", quiet=True)}
    last = (read_metrics(run / METRICS_FILE, "train") or [{}])[-1]
    return {"variant": variant, "limit": limit, "seed": seed, "fid": scores["fid"]["value"],
            "memorisation": scores["memorisation"]["value"], "copies": scores["memorisation"]["copies"], "step": last.get("step"),
            "d_real_sign": last.get("d_real_sign"), "ada_p": last.get("ada_p"),
            "d_gap": round(last["d_gap"] if "d_gap" in last else final_gap(run), 4), "train_s": round(train_s, 1), "run": str(run)}


def final_gap(run: Path) -> float:
    """D's held-out gap (train.heldout_probe's d_gap) at the run's last checkpoint, for a run trained before it was
    logged (a newer run's last log line holds the same value)."""
    from dcgan.data import pipeline as datalib
    from dcgan.training.checkpoints import run_checkpoint
    from dcgan.training.gan import run_gan
    from dcgan.training.restoring import restore
    from dcgan.training.callbacks import HeldOutGap

    gan = run_gan(run)
    restore(gan, run_checkpoint(run).path)
    probe, why = HeldOutGap.for_run(gan, datalib.load_images(gan.cfg.data), None)
    if probe is None:
        raise SystemExit(f"{run}: {why or 'no held-out images'}")
    return probe(gan)["d_gap"]


def table(rows: list[dict], seeds: list[int]) -> str:
    """One line per (images, variant): FID per seed, mean (± sd over seeds), the last r_t and p."""
    head = ["images", "variant", *(f"FID seed {s}" for s in seeds), "mean FID", "memorisation (copies)", "r_t (last)", "p (last)", "d_gap (end)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    groups = {}
    for r in rows:
        groups.setdefault((r["limit"], r["variant"]), []).append(r)
    for (limit, variant), group in groups.items():
        by_seed = {r["seed"]: r for r in group}
        fids = [r["fid"] for r in group]
        mean = f"{statistics.mean(fids):.2f}" + (f" ± {statistics.stdev(fids):.2f}" if len(fids) > 1 else "")
        last = group[-1]
        copying = ", ".join(f"{r['memorisation']:.2f} ({100 * r['copies']:.2f}%)" for r in group if "memorisation" in r) or "-"
        cells = [f"{limit:,}", variant, *(f"{by_seed[s]['fid']:.2f}" if s in by_seed else "-" for s in seeds), mean, copying,
                 "-" if last["d_real_sign"] is None else f"{last['d_real_sign']:.2f}",
                 "-" if last["ada_p"] is None else f"{last['ada_p']:.3f}",
                 "-" if last.get("d_gap") is None else f"{last['d_gap']:+.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_curves(out: Path, rows: list[dict]) -> list[Path]:
    """Per training-set size, each variant's FID during training (train.eval_every, fid-n<limit>.png) and D's held-out
    gap (gap-n<limit>.png, where logged), a line per seed."""
    from dcgan.core.plots import plot_fid
    from dcgan.training.rundir import METRICS_FILE, read_metrics

    written = []
    for limit in sorted({r["limit"] for r in rows}):
        fids, gaps = {}, {}
        for r in (r for r in rows if r["limit"] == limit):
            records = read_metrics(Path(r["run"]) / METRICS_FILE, "all")
            fid = [{"step": e["step"], "fid": e["eval"]["fid"]} for e in records if e.get("kind") == "eval"]
            gap = [{"step": e["step"], "d_gap": e["d_gap"]} for e in records if "d_gap" in e]
            for curves, points in ((fids, fid), (gaps, gap)):
                if points:
                    curves.setdefault(r["variant"], []).append(points)
        if fids:
            written.append(plot_fid(out / f"fid-n{limit}.png", fids))
        if gaps:
            written.append(plot_fid(out / f"gap-n{limit}.png", gaps, key="d_gap", title="D's held-out gap",
                                    ylabel="d_gap = D(training images) - D(test images)"))
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=ints, default=[1000, 5000], help="training images, comma-separated (default 1000,5000)")
    parser.add_argument("--variants", type=choices(VARIANTS), default=list(VARIANTS), help=f"comma-separated, of {', '.join(VARIANTS)}")
    parser.add_argument("--steps", type=int, default=None, help="train steps per run (default: the config's, 9000)")
    parser.add_argument("--eval-every", type=int, default=1000,
                        help="steps between the FID evaluations of the curve (train.eval_every; 0 = none; default 1000)")
    add_common_arguments(parser, "runs/augment_small_data", "the table and curves")
    args = parser.parse_args(argv)
    if args.steps is not None and args.steps < 1:
        parser.error("--steps must be at least 1")
    if args.eval_every < 0:
        parser.error("--eval-every must be at least 0")
    if min(args.limit) < 1:
        parser.error("--limit must be at least 1")

    from dcgan.core.errors import DcganError

    results = args.out / "results.json"
    if args.report:
        if not results.is_file():
            parser.error(f"{results}: no results yet")
        rows = json.loads(results.read_text())
        plot_curves(args.out, rows)
        print(table(rows, sorted({r["seed"] for r in rows})))
        return 0
    plan = [(limit, variant, seed) for limit in args.limit for variant in args.variants for seed in args.seeds]
    rows = []
    args.out.mkdir(parents=True, exist_ok=True)
    for i, (limit, variant, seed) in enumerate(plan, 1):
        print(f"[{i}/{len(plan)}] {variant}, {limit} images, seed {seed}", file=sys.stderr, flush=True)
        try:
            rows.append(run_one(args.out, variant, limit, seed, args.steps, args.eval_every, args.n, args.sets))
        except DcganError as e:
            print(f"augment_small_data: error: {e}", file=sys.stderr)
            return 2
        r = rows[-1]
        p = "" if r["ada_p"] is None else f", p {r['ada_p']:.3f}"
        print(f"    FID {r['fid']:.2f}, r_t {r['d_real_sign']:.3f}{p}, trained in {r['train_s']} s", file=sys.stderr, flush=True)
        plot_curves(args.out, merge_results(results, rows, ("limit", "variant", "seed"), VARIANTS))
    print(table(rows, args.seeds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
