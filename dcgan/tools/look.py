"""`dcgan data PATH`: a look at an image folder or archive before training on it.

One pass over every picture's bytes (headers parsed, nothing decoded): how many there are, their sizes and aspect
ratios, their channel modes, the classes and their counts, what would be skipped and why, and the exact duplicates
(the same bytes). Then a random sample decoded exactly as training would decode it (data.fit, data.resize,
data.pad at data.image_size), as a contact sheet: what the model will see. `look` returns it all as a `DataLook`;
the command writes data.json, contact.png and histograms.png and prints the summary.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dcgan.core.errors import DcganError
from dcgan.core.files import atomic_write, check_output
from dcgan.data import image_folder
from dcgan.data.fit import Fit, pad_colour
from dcgan.data.pictures import open_pictures

OUTPUT_FILES = ("data.json", "contact.png", "histograms.png")
MAX_CONTACT = 1024  # pictures on one contact sheet
ASPECT_BINS = (0, 0.5, 0.75, 0.95, 1.05, 1.34, 1.6, 2.1, math.inf)  # width / height: portrait .. square .. wide


@dataclass
class DataLook:
    report: dict  # what data.json holds
    contact: np.ndarray | None  # uint8 grid of the sample, after the crop and resize
    sides: list[tuple[int, int]] = field(default_factory=list)  # (height, width) of every readable picture

    def __str__(self) -> str:
        return summary(self.report)


def look(path, size: int = 64, channels: int = 3, fit: Fit = Fit(), labels: bool | str = False, n: int = 64,
         seed: int = 0) -> DataLook:
    """Scan the pictures at path and decode n of them (chosen by seed) at size by fit."""
    path = Path(path)
    _check(size, n, fit)
    with open_pictures(path, image_folder.MAX_IMAGE_FILE_BYTES) as pictures:
        names, classes = pictures.names, None
        if labels:
            found = image_folder.labelling(pictures, labels if isinstance(labels, str) else None)
            per_class = Counter(found.labels)
            classes = {"source": labels if isinstance(labels, str) else "subfolders",
                       "counts": {c: per_class[i] for i, c in enumerate(found.classes)},
                       "unlabelled": found.unlabelled}
        scan = _scan(pictures, names, size, fit)
    usable = scan["usable"]
    chosen = sorted(np.random.default_rng(seed).choice(len(usable), min(n, len(usable)), replace=False)) if usable else []
    sample, failed = _decode_sample(path, [usable[i] for i in chosen], size, channels, fit)
    report = {
        "path": str(path), "kind": "folder" if path.is_dir() else "archive", "pictures": len(names),
        "readable": len(usable), "other_files": pictures.others,
        "skipped": dict(scan["skipped"]), "sample_decode_failures": failed, "channel_modes": dict(scan["modes"]),
        "shorter_side": _quantiles([min(s) for s in scan["sides"]]),
        "aspect_ratio": _aspect_histogram(scan["sides"]),
        "duplicates": {"count": sum(len(v) - 1 for v in scan["copies"].values()),
                       "examples": [v for v in scan["copies"].values()][:10]},
        "classes": classes,
        "contact": {"size": size, "channels": channels, "fit": fit.fit, "resize": fit.resize, "pad": fit.pad,
                    "n": len(sample), "seed": seed, "names": [usable[i] for i in chosen]},
    }
    contact = _sheet(sample) if len(sample) else None
    return DataLook(report, contact, scan["sides"])


def _check(size: int, n: int, fit: Fit) -> None:
    if not 8 <= size <= 1024:
        raise DcganError(f"--size: {size} is not a side from 8 to 1024 pixels")
    if not 1 <= n <= MAX_CONTACT:
        raise DcganError(f"--n: {n} is not 1 to {MAX_CONTACT} pictures")
    try:
        pad_colour(fit.pad)
    except ValueError as e:
        raise DcganError(str(e).replace("data.pad", "--pad")) from None


def _scan(pictures, names: list[str], size: int, fit: Fit) -> dict:
    """Every picture's bytes read once: size, mode, hash; or why it would be skipped (the header checks)."""
    skipped, modes, sides, usable, first = Counter(pictures.skipped), Counter(), [], [], {}
    copies: dict[str, list[str]] = {}
    for name, source in pictures.read(names):
        encoded = image_folder.read_picture(source, size, fit)
        if isinstance(encoded, str):
            skipped[encoded] += 1
            continue
        try:
            height, width = image_folder.image_size_of(encoded)
        except ValueError:
            skipped[image_folder.UNREADABLE] += 1
            continue
        digest = hashlib.sha256(encoded).hexdigest()
        if digest in first:
            copies.setdefault(digest, [first[digest]]).append(name)
        first.setdefault(digest, name)
        modes[image_folder.channel_mode(encoded)] += 1
        sides.append((height, width))
        usable.append(name)
    order = {name: i for i, name in enumerate(names)}  # an archive read front to back: the listing's order
    keep = sorted(range(len(usable)), key=lambda i: order[usable[i]])
    return {"skipped": skipped, "modes": modes, "sides": [sides[i] for i in keep], "usable": [usable[i] for i in keep],
            "copies": {k: sorted(v, key=order.get) for k, v in copies.items()}}


def _decode_sample(path: Path, names: list[str], size: int, channels: int, fit: Fit) -> tuple[np.ndarray, dict]:
    """The sample decoded as training decodes it, in the listing's order; and the reasons any of it failed."""
    order, images, failed = {name: i for i, name in enumerate(names)}, {}, Counter()
    with open_pictures(path, image_folder.MAX_IMAGE_FILE_BYTES) as pictures:
        for name, result, _ in image_folder.decode_images(pictures, names, size, channels, fit, threads=0):
            if isinstance(result, str):
                failed[result] += 1
            else:
                images[name] = result
    kept = [images[name] for name in sorted(images, key=order.get)]
    side = fit.stored_size(size)
    return (np.stack(kept) if kept else np.zeros((0, side, side, channels), np.uint8)), dict(failed)


def _quantiles(values: list[int]) -> dict:
    if not values:
        return {}
    q = np.percentile(values, [0, 10, 50, 90, 100])
    return dict(zip(("min", "p10", "median", "p90", "max"), (int(round(v)) for v in q)))


def _aspect_histogram(sides: list[tuple[int, int]]) -> dict:
    ratios = np.array([w / h for h, w in sides]) if sides else np.zeros(0)
    counts, _ = np.histogram(ratios, bins=ASPECT_BINS)
    labels = [f"{lo:g}-{hi:g}" if hi != math.inf else f"over {lo:g}" for lo, hi in zip(ASPECT_BINS, ASPECT_BINS[1:])]
    return dict(zip(labels, counts.tolist()))


def _sheet(images: np.ndarray) -> np.ndarray:
    from dcgan.core.viz import image_grid

    cols = math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / cols)
    filled = np.concatenate([images, np.full((rows * cols - len(images), *images.shape[1:]), 255, np.uint8)])
    return image_grid(filled, rows, cols)


def summary(report: dict) -> str:
    lines = [f"{report['path']} ({report['kind']}): {report['pictures']} picture(s), {report['readable']} readable, "
             f"{report['other_files']} other file(s)"]
    if report["skipped"]:
        lines.append("skipped: " + ", ".join(f"{n} {reason}" for reason, n in report["skipped"].items()))
    if report["shorter_side"]:
        s = report["shorter_side"]
        lines.append(f"shorter side: min {s['min']}, median {s['median']}, max {s['max']} px (10-90%: {s['p10']}-{s['p90']})")
    lines.append("aspect ratio (width/height): " + ", ".join(f"{k}: {v}" for k, v in report["aspect_ratio"].items() if v))
    lines.append("channel modes: " + ", ".join(f"{k} {v}" for k, v in report["channel_modes"].items()))
    dup = report["duplicates"]
    if dup["count"]:
        lines.append(f"exact duplicates: {dup['count']} (e.g. {' = '.join(dup['examples'][0])}); `dcgan prepare --dedupe` "
                     "drops them")
    else:
        lines.append("exact duplicates: none")
    if report["classes"]:
        counts = report["classes"]["counts"]
        shown = ", ".join(f"{c} {k}" for c, k in list(counts.items())[:20])
        more = f" and {len(counts) - 20} more" if len(counts) > 20 else ""
        lines.append(f"classes ({report['classes']['source']}): {len(counts)}: {shown}{more}")
    c = report["contact"]
    lines.append(f"contact sheet: {c['n']} picture(s) at {c['size']}x{c['size']}, fit {c['fit']}, resize {c['resize']}"
                 + (f", pad {c['pad']}" if c["fit"] in ("pad", "center-wide") else ""))
    return "\n".join(lines)


# ---------------------------------------------------------------- the command


def look_command(args) -> str:
    """`dcgan data PATH`: the look, written to --out (data.json, contact.png, histograms.png); returns the summary."""
    path = Path(args.path)
    out = Path(args.out) if args.out else Path(f"data-{path.name.split('.')[0] or 'pictures'}")
    existing = [name for name in OUTPUT_FILES if (out / name).exists() or (out / name).is_symlink()]
    if existing and not args.force:
        raise DcganError(f"--out: {out / existing[0]} exists; pass --force to replace an earlier `dcgan data`'s files")
    check_output(out, is_dir=True)
    result = look(path, args.size, args.channels, Fit(args.fit, args.resize, args.pad), args.labels, args.n, args.seed)
    write(result, out)
    print(f"data: wrote {out}/data.json, contact.png, histograms.png", file=sys.stderr)
    return str(result)


def write(result: DataLook, out: Path) -> None:
    from dcgan.core.plots import plot_data_histograms
    from dcgan.core.viz import save_png, upscale

    atomic_write(out / "data.json", json.dumps(result.report, indent=1) + "\n")
    if result.contact is not None:
        save_png(out / "contact.png", upscale(result.contact, max(1, 128 // result.report["contact"]["size"])))
    plot_data_histograms(out / "histograms.png", result.sides, result.report["channel_modes"])
