#!/usr/bin/env python
"""How much FID moves with the resize filter alone (clean-fid's point, stylegan2-ada-pytorch #283): one folder's
pictures decoded with each `data.resize` filter, scored by one feature network against the area-filtered ones
(real against real) and against one trained run's samples.

    python scripts/filter_fid.py ~/colour/clipart --size 32                     # real against real
    python scripts/filter_fid.py ~/colour/clipart --size 32 --run runs/clip     # and a run trained on area images

The feature network is the folder's self-supervised encoder (offline; trained on the area-filtered images, once,
and cached), or --network inception where its weights are on disk. FID on all the folder's images (real) and
--n samples (the run). The area row of "real against real" is 0 by construction; the floor row is two random
halves of the area-filtered images, the spread that sampling alone gives.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from dcgan.core.config import load_config
from dcgan.core.schema import RESIZE_FILTERS
from dcgan.data import pipeline as datalib
from dcgan.evaluation.features import feature_net_for
from dcgan.evaluation.metrics import feature_stats, fid


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folder")
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--channels", type=int, default=3)
    p.add_argument("--run", help="a run trained on the folder (data.resize: area) whose samples are scored too")
    p.add_argument("--n", type=int, default=10000, help="samples of --run (default 10000)")
    p.add_argument("--network", default="selfsup", choices=("selfsup", "inception"))
    p.add_argument("--json", help="also write the rows here")
    args = p.parse_args(argv)

    def data_cfg(resize: str):
        return load_config(None, ["data.name=folder", f"data.path={args.folder}", f"data.image_size={args.size}",
                                  f"data.channels={args.channels}", f"data.resize={resize}"]).data

    net = feature_net_for(data_cfg("area"), network=args.network)
    real = {f: net(datalib.load_images(data_cfg(f))) for f in RESIZE_FILTERS}
    ref = feature_stats(real["area"])
    order = np.random.default_rng(0).permutation(len(real["area"]))
    halves = real["area"][order[: len(order) // 2]], real["area"][order[len(order) // 2 :]]
    rows = [{"filter": "floor (two halves, area)", "real": fid(*feature_stats(halves[0]), *feature_stats(halves[1]))}]
    fake = None
    if args.run:
        import dcgan

        fake = feature_stats(net(dcgan.load(args.run).sample(n=args.n)))
    for f in RESIZE_FILTERS:
        stats = feature_stats(real[f])
        row = {"filter": f, "real": fid(*ref, *stats)}
        if fake is not None:
            row["run"] = fid(*fake, *stats)
        rows.append(row)
    print(f"| real images decoded with | FID against the area-decoded real images ({args.size}px) |"
          + (" FID of the run's samples against them |" if fake else ""))
    print("|---|---|" + ("---|" if fake else ""))
    for r in rows:
        print(f"| {r['filter']} | {r['real']:.3f} |" + (f" {r['run']:.3f} |" if "run" in r else (" - |" if fake else "")))
    print(f"feature network: {net.key}; {len(real['area'])} real images", file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
