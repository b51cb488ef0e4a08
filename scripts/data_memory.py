"""Peak resident memory of training from an in-memory dataset (or a prepared, streamed one), against its pixels.

Tiles Fashion-MNIST's training images (or random images, with --synthetic) into one IDX file of about
--gigabytes of pixels, trains the default model a few steps from it in a fresh process
(`dcgan train --set data.path=...`), and prints that process's peak resident memory (ru_maxrss) next to
the data's size and the training images/s. The same command with --gigabytes 0.05 gives the constant
(TensorFlow, the model). With --prepared, the tiled file is first written as a prepared dataset
(`dcgan prepare`, timed and measured on its own) and training streams it (`data.name=prepared`).

    python scripts/data_memory.py --gigabytes 1.0
    python scripts/data_memory.py --gigabytes 1.0 --prepared
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FASHION = Path("/usr/share/datasets/fashion-mnist")


def source_images(synthetic: bool) -> np.ndarray:
    if synthetic or not FASHION.is_dir():
        return np.random.default_rng(0).integers(0, 256, (60000, 28, 28), dtype=np.uint8)
    with gzip.open(FASHION / "train-images-idx3-ubyte.gz", "rb") as f:
        raw = f.read()
    return np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 28, 28)


def write_tiled_idx(folder: Path, images: np.ndarray, n: int) -> None:
    """train/t10k images and labels as plain (not gzipped) IDX files, the training set tiled to n images."""
    with open(folder / "train-images-idx3-ubyte", "wb") as f:
        f.write(bytes([0, 0, 0x08, 3]) + struct.pack(">3I", n, 28, 28))
        for start in range(0, n, len(images)):
            f.write(images[: min(len(images), n - start)].tobytes())
    for prefix, count in (("train", n), ("t10k", 1000)):
        with open(folder / f"{prefix}-labels-idx1-ubyte", "wb") as f:
            f.write(bytes([0, 0, 0x08, 1]) + struct.pack(">I", count) + bytes(count))
    with open(folder / "t10k-images-idx3-ubyte", "wb") as f:
        f.write(bytes([0, 0, 0x08, 3]) + struct.pack(">3I", 1000, 28, 28) + images[:1000].tobytes())


def run_measured(cmd: list[str], work: Path, env: dict | None = None) -> tuple[int, float, float, str]:
    """(exit status, seconds, peak resident bytes of that one process, its stderr)."""
    with open(work / "out.log", "w") as out, open(work / "err.log", "w") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage (RUSAGE_CHILDREN mixes every child)
        seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, seconds, usage.ru_maxrss * 1024, (work / "err.log").read_text()  # Linux: KiB


def images_per_s(run: Path) -> float:
    """The median of the logged windows, the first (tracing) left out."""
    rates = [r["images_per_s"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if r.get("kind") == "train"]
    rates = sorted(rates[1:] or rates)
    return rates[len(rates) // 2]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gigabytes", type=float, default=1.0, help="pixels of the tiled training set (default 1.0)")
    parser.add_argument("--steps", type=int, default=50, help="training steps (default 50)")
    parser.add_argument("--synthetic", action="store_true", help="random images instead of Fashion-MNIST")
    parser.add_argument("--prepared", action="store_true", help="prepare the tiled data first and train from the prepared copy")
    args = parser.parse_args(argv)
    n = max(1000, int(args.gigabytes * 1e9 / (28 * 28)))
    work = Path(tempfile.mkdtemp(prefix="dcgan-memory-"))
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    try:
        write_tiled_idx(work, source_images(args.synthetic), n)
        data_bytes = n * 28 * 28
        data = ["--set", "data.name=mnist", "--set", f"data.path={work}"]
        if args.prepared:
            status, seconds, peak, err = run_measured(
                [sys.executable, "-m", "dcgan", "prepare", str(work), str(work / "prepared"), "--size", "28", "--channels", "1",
                 "--quiet"], work)
            if status != 0:
                print(err[-2000:], file=sys.stderr)
                return status
            size = sum(p.stat().st_size for p in (work / "prepared").iterdir())
            print(f"prepare: {n:,} images, {size / 1e9:.2f} GB of shards in {seconds:.0f} s, peak resident {peak / 1e9:.2f} GB")
            (work / "train-images-idx3-ubyte").unlink()  # training reads only the prepared copy
            data = ["--set", "data.name=prepared", "--set", f"data.path={work / 'prepared'}"]
        log_every = max(1, args.steps // 5)
        cmd = [sys.executable, "-m", "dcgan", "train", "--quiet", *data, "--set", f"train.steps={args.steps}",
               "--set", "train.select_sampler=false", "--set", f"train.log_every={log_every}",
               "--set", f"run.dir={work / 'runs'}", "--set", "run.name=memory"]
        status, seconds, peak, err = run_measured(cmd, work)
        if status != 0:
            print(err[-2000:], file=sys.stderr)
            return status
        print(f"{'prepared (streamed)' if args.prepared else 'in memory'}: images {n:,}  pixels {data_bytes / 1e9:.2f} GB  "
              f"peak resident {peak / 1e9:.2f} GB  ratio {peak / data_bytes:.2f}x  "
              f"{images_per_s(work / 'runs' / 'memory'):.0f} images/s  ({args.steps} steps, {seconds:.0f} s, {cpu}, "
              f"{os.cpu_count()} cores)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
