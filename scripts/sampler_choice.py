#!/usr/bin/env python
"""Replay the sampler choice at every checkpoint a run keeps, and judge it on the test split.

    python scripts/sampler_choice.py RUN_DIR                 # every kept checkpoint
    python scripts/sampler_choice.py RUN_DIR --steps 3000,3500 --n 5000

For each checkpoint it makes the choice that training makes (train.select_sampler: both
copies against train.select_samples training images) and scores both copies against the
test split on --n samples with `dcgan evaluate`'s latents (seed 0). One JSON line per
checkpoint, then a summary: at how many checkpoints the choice picked the copy with the
lower test FID, the worst miss, and the mean test FID of the chosen copy, the EMA copy
and the raw generator. Keep every checkpoint when training (train.keep_checkpoints=100)
to see the whole curve.
"""

import argparse
import json
import sys
from pathlib import Path

from dcgan.core.errors import DcganError  # TensorFlow is imported only once the arguments are parsed


class Lines:
    """The metrics log SamplerChoice writes to: kept in memory."""

    def __init__(self):
        self.records = []

    def write(self, kind: str, record: dict) -> None:
        self.records.append({"kind": kind, **record})


def replay(run_dir: Path, steps: list[int] | None, n: int) -> list[dict]:
    from dcgan.training.checkpoints import run_checkpoint, run_steps
    from dcgan.data.pipeline import load_images
    from dcgan.evaluation.evaluator import Evaluator
    from dcgan.training.gan import GAN
    from dcgan.training.restoring import restore
    from dcgan.training.callbacks import SamplerChoice
    from dcgan.training.rundir import read_run_config

    cfg = read_run_config(run_dir)
    if cfg.train.ema_decay == 0:
        raise DcganError(f"{run_dir}: the run has no EMA copy (train.ema_decay 0): there is nothing to choose")
    gan = GAN(cfg)
    choose, log = SamplerChoice(gan, load_images(cfg.data)), Lines()
    test = Evaluator(cfg.data, ("fid",), quiet=True, network=cfg.train.feature_network)
    results = []
    for step in steps or run_steps(run_dir):
        restore(gan, run_checkpoint(run_dir, step).path)
        why = choose(gan, step, log, decide=True)
        if not log.records or log.records[-1]["step"] != step:
            raise DcganError(f"{run_dir}: no choice can be made: {why}")
        chosen = log.records[-1]["sampler"]
        test_fid = {name: test.evaluate_model(model, n, seed=0)[0]["fid"]
                    for name, model in (("ema", gan.ema_generator), ("raw", gan.generator))}
        results.append({"step": step, **chosen, "test_fid_ema": test_fid["ema"], "test_fid_raw": test_fid["raw"], "test_n": n})
        print(json.dumps(results[-1]), flush=True)
    return results


def summary(results: list[dict]) -> str:
    def test_fid(r, copy):
        return r[f"test_fid_{copy}"]

    misses = [r for r in results if test_fid(r, r["choice"]) > min(test_fid(r, "ema"), test_fid(r, "raw"))]
    mean = {c: sum(test_fid(r, c) for r in results) / len(results) for c in ("ema", "raw")}
    mean["chosen"] = sum(test_fid(r, r["choice"]) for r in results) / len(results)
    worst = max((test_fid(r, r["choice"]) - min(test_fid(r, "ema"), test_fid(r, "raw")), r["step"]) for r in misses) if misses else None
    return (f"choice agreed with the test split at {len(results) - len(misses)} of {len(results)} checkpoints"
            + (f" (worst miss {worst[0]:.3f} FID at step {worst[1]})" if worst else "")
            + f"; mean test FID: chosen {mean['chosen']:.3f}, EMA copy {mean['ema']:.3f}, raw G {mean['raw']:.3f}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a run directory")
    parser.add_argument("--steps", help="comma-separated checkpoint steps (default: every kept one)")
    parser.add_argument("--n", type=int, default=10000, help="generated images per test-split FID (default 10000)")
    args = parser.parse_args(argv)
    steps = [int(s) for s in args.steps.split(",")] if args.steps else None
    try:
        results = replay(args.run, steps, args.n)
    except DcganError as e:
        print(f"sampler_choice: error: {e}", file=sys.stderr)
        return 2
    print(summary(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
