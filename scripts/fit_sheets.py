#!/usr/bin/env python
"""The same pictures under every `data.fit`: one labelled contact sheet per fit, side by side (docs/data.md).

    python scripts/fit_sheets.py FOLDER --size 64 --n 16 --out docs/data_fits.png

The pictures are FOLDER's first --n (sorted by name) after a seeded shuffle; each is decoded exactly as a run with
that data.fit decodes it (data.resize: area; pad and center-wide on white; random shows the centre window, which
is what evaluation sees; training sees a window that moves).
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from dcgan.core.plots import plot_panels
from dcgan.core.schema import FITS
from dcgan.data import image_folder
from dcgan.data.crops import centre
from dcgan.data.fit import Fit
from dcgan.data.pictures import open_pictures


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folder")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--n", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resize", default="area")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    with open_pictures(args.folder, image_folder.MAX_IMAGE_FILE_BYTES) as pictures:
        names = sorted(np.random.default_rng(args.seed).permutation(pictures.names)[: args.n].tolist())
    panels = {}
    for fit in FITS:
        images = np.stack([image_folder.decode_image(pictures.root / name, args.size, 3, Fit(fit, args.resize))
                           for name in names])
        panels[fit] = centre(images, args.size) if fit == "random" else images
    cols = math.ceil(math.sqrt(len(names)))
    plot_panels(args.out, panels, math.ceil(len(names) / cols), cols)
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
