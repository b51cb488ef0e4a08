#!/usr/bin/env python
"""The same pictures under every `data.fit`: one labelled contact sheet per fit, side by side (docs/data.md).

    python scripts/fit_sheets.py FOLDER --size 64 --n 16 --out docs/data_fits.png

The pictures are the first --n of FOLDER's pictures in a seeded shuffle that every fit can decode, sorted by name; each is decoded exactly as a run with
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
        shuffled = np.random.default_rng(args.seed).permutation(pictures.names).tolist()
    decoded = {}  # name -> {fit: image}: the first --n names that every fit can decode (none skipped)
    for name in shuffled:
        images = {fit: image_folder.decode_image(pictures.root / name, args.size, 3, Fit(fit, args.resize)) for fit in FITS}
        if not any(isinstance(image, str) for image in images.values()):
            decoded[name] = images
            if len(decoded) == args.n:
                break
    names = sorted(decoded)
    panels = {fit: np.stack([decoded[name][fit] for name in names]) for fit in FITS}
    panels["random"] = centre(panels["random"], args.size)
    cols = math.ceil(math.sqrt(len(names)))
    rows = math.ceil(len(names) / cols)
    blank = np.full((rows * cols - len(names), args.size, args.size, 3), 255, np.uint8)  # a short last row
    plot_panels(args.out, {fit: np.concatenate([images, blank]) for fit, images in panels.items()}, rows, cols)
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
