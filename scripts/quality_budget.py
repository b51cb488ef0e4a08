#!/usr/bin/env python
"""Quality per CPU-minute: FID after a fixed wall-clock budget, the app's config against the TF tutorial.

    python scripts/quality_budget.py                         # configs/fashion_mnist.yaml, 600 s, seeds 0,1
    python scripts/quality_budget.py --seconds 1800 --seeds 0 --variants default
    python scripts/quality_budget.py --jobs 2                # two trainings side by side, one core each

For each seed it trains (a) the config with `dcgan train` and train.time_budget_s,
scored on the generator `dcgan sample` uses by default (the copy the run chose: EMA
or raw) and, beside it, on both copies, and (b) the TensorFlow DCGAN tutorial's model and hyper-parameters (Dense ->
7x7x256, Conv2DTranspose 5x5 128/64/1, D conv 64/128 5x5 + dropout 0.3, Adam 1e-4,
batch 256) with the minimal reference loop (dcgan.tools.reference), for the same budget.
Both are scored with the project's classifier-feature FID and KID on --n samples
against the Fashion-MNIST test split. Grids of both land in --out. The last line
prints both mean FIDs and their ratio.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def run_one(variant: str, seed: int, seconds: float, n: int, config: str, out: Path, sets: list[str]) -> dict:
    """Train and score one variant in this process; returns its figures."""

    from dcgan.core import viz
    from dcgan.core.config import load_config
    from dcgan.evaluation.evaluator import Evaluator, sample_latents
    from dcgan.models.sampling import generate_images

    cfg = load_config(config, [f"train.seed={seed}", *sets])
    evaluator = Evaluator(cfg.data, ("fid", "kid"), quiet=True)
    t0 = time.perf_counter()
    if variant == "default":
        from dcgan.training.gan import GAN
        from dcgan.training.restoring import restore
        from dcgan.tools.sample import find_checkpoint
        from dcgan.training.loop import train

        run_cfg = load_config(config, [f"train.seed={seed}", "train.steps=10000000", f"train.time_budget_s={seconds}",
                                       f"run.dir={out / 'runs'}", f"run.name=default-seed{seed}", *sets])
        gan = GAN(run_cfg)
        restore(gan, find_checkpoint(train(run_cfg, quiet=True)).path)  # the latest checkpoint, as `dcgan sample` loads it
        model, steps = gan.sampling_generator(), int(gan.step.numpy())
        sampler = "ema" if model is gan.ema_generator else "raw"
        copies = {c: m for c, m in (("ema", gan.ema_generator), ("raw", gan.generator)) if m is not None and m is not model}
    else:
        from dcgan.data.pipeline import load_images
        from dcgan.tools.reference import train_reference

        model, steps = train_reference(load_images(cfg.data), seconds, seed=seed)
        sampler, copies = "raw", {}
    train_s = time.perf_counter() - t0
    scores, _ = evaluator.evaluate_model(model, n, seed=0)
    fids = {sampler: scores["fid"], **{c: evaluator.evaluate_model(m, n, seed=0)[0]["fid"] for c, m in copies.items()}}
    grid = generate_images(model, sample_latents(64, model.input_shape[-1], 1234))
    viz.save_png(out / f"grid-{variant}-seed{seed}.png", viz.upscale(viz.image_grid(grid, 8, 8), 2))
    return {"variant": variant, "seed": seed, "steps": int(steps), "train_s": round(train_s, 1), "sampler": sampler,
            "fid": round(scores["fid"], 3), "fid_raw": round(fids["raw"], 3),
            "fid_ema": round(fids["ema"], 3) if "ema" in fids else None,
            "kid": round(scores["kid"], 5), "n": n}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(Path(__file__).resolve().parent.parent / "configs" / "fashion_mnist.yaml"))
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--n", type=int, default=10000, help="generated images scored per run")
    parser.add_argument("--variants", default="default,reference")
    parser.add_argument("--jobs", type=int, default=1, help="trainings at once, each pinned to its own core")
    parser.add_argument("--out", default="runs/quality-budget")
    parser.add_argument("--set", action="append", default=[], help="config override for the default variant")
    parser.add_argument("--one", nargs=2, metavar=("VARIANT", "SEED"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.one:
        result = run_one(args.one[0], int(args.one[1]), args.seconds, args.n, args.config, out, args.set)
        (out / f"{args.one[0]}-seed{args.one[1]}.json").write_text(json.dumps(result))
        return 0

    jobs = [(v, int(s)) for s in args.seeds.split(",") for v in args.variants.split(",")]
    cores = os.sched_getaffinity(0)
    results, running = [], []
    for i, (variant, seed) in enumerate(jobs):
        cmd = [sys.executable, __file__, "--one", variant, str(seed), "--seconds", str(args.seconds), "--n", str(args.n),
               "--config", args.config, "--out", str(out)] + [x for s in args.set for x in ("--set", s)]
        env = dict(os.environ)
        if args.jobs > 1:
            core = sorted(cores)[len(running) % len(cores)]
            cmd = ["taskset", "-c", str(core)] + cmd
            env.update(TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1")
        running.append((variant, seed, subprocess.Popen(cmd, env=env)))
        if len(running) >= args.jobs or i == len(jobs) - 1:
            for v, s, proc in running:
                if proc.wait() != 0:
                    print(f"quality_budget: {v} seed {s} failed", file=sys.stderr)
                    return 1
                results.append(json.loads((out / f"{v}-seed{s}.json").read_text()))
            running = []
    print("| variant | seed | steps | samples from | FID | FID raw G / EMA copy | KID |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        ema = f"{r['fid_ema']:.2f}" if r["fid_ema"] is not None else "-"
        print(f"| {r['variant']} | {r['seed']} | {r['steps']} | {r['sampler']} | {r['fid']:.2f} | {r['fid_raw']:.2f} / {ema} | {r['kid']:.4f} |")
    (out / "results.json").write_text(json.dumps(results, indent=2))
    fids = {v: [r["fid"] for r in results if r["variant"] == v] for v in ("default", "reference")}
    mean = {v: sum(f) / len(f) for v, f in fids.items() if f}
    ratio = f" ratio {mean['default'] / mean['reference']:.3f}" if len(mean) == 2 else ""
    print("FID " + " ".join(f"{v} {fid:.2f}" for v, fid in mean.items()) + ratio +
          f" ({args.seconds:g} s, seeds {args.seeds}, n {args.n}, jobs {args.jobs})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
