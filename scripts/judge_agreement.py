#!/usr/bin/env python
"""Do two feature networks rank checkpoints alike? FID under both at every checkpoint the runs keep.

    python scripts/judge_agreement.py RUN_DIR [RUN_DIR ...]                       # classifier vs selfsup
    python scripts/judge_agreement.py runs/a runs/b --networks inception,selfsup --n 2000 --out agreement.json

For every kept checkpoint of every run (oldest first) it generates --n images from the copy the checkpoint
samples from, on `dcgan evaluate`'s latents (seed 0), and scores them against the run's dataset test split
(an image folder or prepared dataset: all of it) with each feature network. It prints one line per
checkpoint, the table, and the Spearman rank correlation of the two FID columns over all checkpoints
(1: the networks order the checkpoints alike). Keep every checkpoint when training
(train.keep_checkpoints=100) to have a curve to rank. --out writes the rows and the correlation as JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

from dcgan.core.errors import DcganError  # TensorFlow is imported only once the arguments are parsed


def rank(values) -> np.ndarray:
    """1-based ranks, ties sharing the average of the ranks they span."""
    from scipy.stats import rankdata  # scipy: a dependency already (FID's sqrtm)

    return rankdata(np.asarray(values, np.float64), method="average")


def spearman(a, b) -> float:
    """Spearman's rank correlation (the Pearson correlation of the average-tie ranks); nan when undefined
    (fewer than 2 values, or a column that is all one value)."""
    from scipy.stats import spearmanr

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"two columns of the same length expected, got {a.shape} and {b.shape}")
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def score_runs(run_dirs: list[Path], networks: tuple[str, str], n: int, quiet: bool = False) -> list[dict]:
    from dcgan.training.checkpoints import run_checkpoint, run_steps
    from dcgan.evaluation.evaluator import Evaluator, sample_labels, sample_latents
    from dcgan.training.gan import run_gan
    from dcgan.models.registry import latent_dim
    from dcgan.models.sampling import generate_images
    from dcgan.training.restoring import restore
    from dcgan.models.networks import is_conditional
    from dcgan.training.rundir import read_run_config

    evaluators: dict[str, Evaluator] = {}  # one per dataset and network: the real side is computed once
    rows = []
    for run_dir in run_dirs:
        cfg = read_run_config(run_dir)
        steps = run_steps(run_dir)
        if not steps:
            raise DcganError(f"{run_dir}: no checkpoint kept; train the run first")
        data_key = json.dumps(dataclasses.asdict(cfg.data), sort_keys=True)
        for net in networks:
            if f"{data_key}|{net}" not in evaluators:
                evaluators[f"{data_key}|{net}"] = Evaluator(cfg.data, ("fid",), quiet=quiet, network=net)
        gan = run_gan(run_dir, cfg)
        for step in steps:
            restore(gan, run_checkpoint(run_dir, step).path)
            model = gan.sampling_generator()
            labels = sample_labels(n, model) if is_conditional(model) else None
            images = generate_images(model, sample_latents(n, latent_dim(model), 0), labels)
            row = {"run": str(run_dir), "step": step, "n": n}
            for net in networks:
                ev = evaluators[f"{data_key}|{net}"]
                row[f"fid_{net}"] = float(ev.score(images, 0)["fid"])
                row[f"feature_network_{net}"] = ev.feature_network
            rows.append(row)
            if not quiet:
                print(f"{run_dir} step {step}: " + " ".join(f"{net} {row[f'fid_{net}']:.4g}" for net in networks),
                      file=sys.stderr, flush=True)
    return rows


def table(rows: list[dict], networks: tuple[str, str]) -> str:
    lines = [("run", "step", *(f"FID {net}" for net in networks))]
    lines += [(r["run"], str(r["step"]), *(f"{r[f'fid_{net}']:.4f}" for net in networks)) for r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in lines)


def parse_networks(text: str) -> tuple[str, str]:
    from dcgan.core.config import FEATURE_NETWORKS

    names = tuple(t.strip() for t in text.split(",") if t.strip())
    if len(names) != 2 or names[0] == names[1] or any(t not in FEATURE_NETWORKS for t in names):
        raise argparse.ArgumentTypeError(f"expected two different networks of {', '.join(FEATURE_NETWORKS)}, got {text!r}")
    return names


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR", help="run directories")
    parser.add_argument("--networks", type=parse_networks, default=("classifier", "selfsup"),
                        help="the two feature networks, comma-separated (default classifier,selfsup)")
    parser.add_argument("--n", type=int, default=5000, help="generated images per checkpoint (default 5000)")
    parser.add_argument("--out", type=Path, help="write the rows and the rank correlation to this JSON file")
    parser.add_argument("--quiet", "-q", action="store_true", help="no per-checkpoint progress lines")
    args = parser.parse_args(argv)
    if args.n < 2:
        parser.error(f"--n: {args.n} is too small; FID needs at least 2 generated images")
    try:
        rows = score_runs(args.runs, args.networks, args.n, quiet=args.quiet)
    except DcganError as e:
        print(f"judge_agreement: error: {e}", file=sys.stderr)
        return 2
    a, b = args.networks
    rho = spearman([r[f"fid_{a}"] for r in rows], [r[f"fid_{b}"] for r in rows])
    print(table(rows, args.networks))
    print(f"Spearman rank correlation of FID {a} and FID {b} over {len(rows)} checkpoints: {rho:.3f}")
    if args.out:
        from dcgan.core.files import atomic_write

        result = {"networks": list(args.networks), "n": args.n, "checkpoints": len(rows),
                  "spearman": None if np.isnan(rho) else rho, "rows": rows}
        atomic_write(args.out, json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
