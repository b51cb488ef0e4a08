#!/usr/bin/env python
"""Your own small folder, trained without and with configs/folder_small.yaml's augmentation, side by side.

    python scripts/folder_augment.py /path/to/images                     # 32x32, 10 minutes a run, seed 0
    taskset -c S python scripts/folder_augment.py IMAGES --seeds S        # one seed per core, side by side
    python scripts/folder_augment.py IMAGES --variants none,diffaugment,ada --seconds 1200
    python scripts/folder_augment.py IMAGES --seconds 20 --n 500          # a smoke test of the whole thing
    python scripts/folder_augment.py IMAGES --report                      # table and figure of what is there

Each run is `dcgan train -c configs/folder_small.yaml --set data.path=IMAGES` at --size, stopped after
--seconds of training (train.time_budget_s), with

    none         no augmentation (train.augment=[], train.ada_target=null)
    diffaugment  translation, cutout and color on every image D sees (ADA off)
    ada          the config as shipped: ADA over the three ops, p tuned to keep r_t at 0.6

A folder has no test split and, offline, no Inception weights: every run is scored by the
dataset's self-supervised encoder (train.feature_network=selfsup; FID and KID on --n generated
images against the folder's own images; trained once on first use and cached). The runs'
sample grids (the same latents for every run) go side by side into --out/grids.png, and a table
(FID, KID, steps reached, last r_t and p) is printed and kept in --out/results.json, merged with
rows other processes wrote there. A run already in --out is scored again, not retrained.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from sweep import add_common_arguments, choices, merge_results

VARIANTS = {
    "none": ["train.augment=[]", "train.ada_target=null"],
    "diffaugment": ["train.ada_target=null"],
    "ada": [],
}
CONFIG = Path(__file__).resolve().parent.parent / "configs" / "folder_small.yaml"
GRID = 8  # an 8x8 grid of each run's samples


def run_one(args, variant: str, seed: int) -> dict:
    """Train one run (unless it is there already) and score it with the folder's self-supervised encoder."""
    from dcgan.core.config import load_config
    from dcgan.tools.evaluate import evaluate
    from dcgan.training.rundir import METRICS_FILE, read_metrics
    from dcgan.training.loop import train

    name = f"{variant}-seed{seed}"
    run = args.out / name
    if not (run / "config.yaml").exists():
        overrides = [f"data.path={args.folder}", f"data.image_size={args.size}", f"train.seed={seed}",
                     f"train.time_budget_s={args.seconds}", "train.feature_network=selfsup", f"run.dir={args.out}",
                     f"run.name={name}", *VARIANTS[variant], *args.sets]
        train(load_config(CONFIG, overrides), quiet=True)
    scores = {r["metric"]: r["value"] for r in evaluate(run, n=args.n, metrics="fid,kid", quiet=True, network="selfsup")}
    last = (read_metrics(run / METRICS_FILE, "train") or [{}])[-1]
    return {"variant": variant, "seed": seed, "fid": scores["fid"], "kid": scores["kid"], "step": last.get("step"),
            "d_real_sign": last.get("d_real_sign"), "ada_p": last.get("ada_p"), "run": str(run)}


def plot_grids(out: Path, rows: list[dict]) -> Path:
    """Every run's GRID x GRID samples from the same latents (seeds 0..63), one labelled panel each."""
    from dcgan.training.checkpoints import find_checkpoint
    from dcgan.tools.handle import load_handle
    from dcgan.models.sampling import generate_images
    from dcgan.core.plots import plot_panels
    from dcgan.tools.sample import latents

    panels = {}
    for r in rows:
        gen = load_handle(find_checkpoint(r["run"]))
        images = generate_images(gen.model, latents(range(GRID * GRID), gen.latent_dim))
        panels[f"{r['variant']}, seed {r['seed']}: selfsup FID {r['fid']:.1f}"] = images
    return plot_panels(out / "grids.png", panels, GRID, GRID)


def table(rows: list[dict]) -> str:
    head = ["variant", "seed", "selfsup FID", "selfsup KID", "steps", "r_t (last)", "p (last)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["variant"], str(r["seed"]), f"{r['fid']:.2f}", f"{r['kid']:.4f}", f"{r['step']:,}",
                 "-" if r["d_real_sign"] is None else f"{r['d_real_sign']:.2f}",
                 "-" if r["ada_p"] is None else f"{r['ada_p']:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    by_variant = {}
    for r in rows:
        by_variant.setdefault(r["variant"], []).append(r["fid"])
    means = [f"{v} {statistics.mean(f):.2f}" + (f" ± {statistics.stdev(f):.2f}" if len(f) > 1 else "")
             for v, f in by_variant.items()]
    return "\n".join(lines) + "\n\nmean selfsup FID: " + ", ".join(means)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="the image folder (every PNG/JPEG under it)")
    parser.add_argument("--variants", type=choices(VARIANTS), default=["none", "ada"], help=f"comma-separated, of {', '.join(VARIANTS)} (default none,ada)")
    parser.add_argument("--size", type=int, default=32, help="image side (default 32)")
    parser.add_argument("--seconds", type=float, default=600.0, help="training seconds per run (default 600)")
    add_common_arguments(parser, "runs/folder_augment", "the table and figure")
    args = parser.parse_args(argv)
    if args.seconds <= 0:
        parser.error("--seconds must be positive")

    from dcgan.core.errors import DcganError

    results = args.out / "results.json"
    try:
        if args.report:
            if not results.is_file():
                parser.error(f"{results}: no results yet")
            rows = json.loads(results.read_text())
        else:
            args.out.mkdir(parents=True, exist_ok=True)
            rows = []
            for variant in args.variants:
                for seed in args.seeds:
                    print(f"{variant}, seed {seed}", file=sys.stderr, flush=True)
                    rows.append(run_one(args, variant, seed))
                    r = rows[-1]
                    print(f"    selfsup FID {r['fid']:.2f} at step {r['step']}", file=sys.stderr, flush=True)
            rows = merge_results(results, rows, ("variant", "seed"), VARIANTS)
        print(f"grids: {plot_grids(args.out, rows)}", file=sys.stderr)
    except DcganError as e:
        print(f"folder_augment: error: {e}", file=sys.stderr)
        return 2
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
