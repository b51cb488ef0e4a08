"""Every matplotlib figure of the package, written as PNG through rundir.atomic_write.

matplotlib is imported on the first figure (`_pyplot`), not with this module, so the
command line and its help stay fast; its backend is set there, once, to Agg: figures
are files, never windows.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np

from dcgan import viz
from dcgan.rundir import atomic_write


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display on servers; the files are the output
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path) -> Path:
    """Render into memory and publish atomically: a failed write leaves no half PNG."""
    buf = io.BytesIO()
    fig.savefig(buf, format=Path(path).suffix.lstrip(".") or "png")
    _pyplot().close(fig)  # pyplot keeps every open figure alive otherwise
    return atomic_write(path, buf.getvalue())


def _finish(fig, ax, path: str | Path, legend_size=None) -> Path:
    """The common end of a one-axes figure: light grid, legend, tight layout, saved."""
    ax.grid(alpha=0.3)
    ax.legend(fontsize=legend_size)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_losses(path: str | Path, records: list[dict]) -> Path:
    """Generator and discriminator loss against step, from metrics.jsonl records."""
    plt = _pyplot()
    records = [r for r in records if "g_loss" in r]
    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=100)
    steps = [r["step"] for r in records]
    ax.plot(steps, [r["d_loss"] for r in records], label="discriminator")
    ax.plot(steps, [r["g_loss"] for r in records], label="generator")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    return _finish(fig, ax, path)


def _log_if_wide(ax, values: list[float]) -> None:
    """Log scale when values span more than a factor 10: the early steps would flatten the tail."""
    if values and min(values) > 0 and max(values) > 10 * min(values):
        ax.set_yscale("log")


def plot_curve(path: str | Path, records: list[dict]) -> Path:
    """Each metric of eval.json records against the checkpoint step, one panel per metric."""
    plt = _pyplot()
    names = list(dict.fromkeys(r["metric"] for r in records))
    fig, axes = plt.subplots(1, len(names), figsize=(3.5 * len(names), 3), dpi=100, squeeze=False)
    for ax, name in zip(axes[0], names):
        points = [(r["checkpoint_step"], r["value"]) for r in records if r["metric"] == name]
        ax.plot(*zip(*points), marker="o")
        _log_if_wide(ax, [v for _, v in points])
        ax.set_xlabel("step")
        ax.set_title(name)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_spectra(path: str | Path, profiles: dict[str, np.ndarray], size: int, title: str,
                 reference: str | None = None) -> Path:
    """Azimuthally averaged power spectra of labelled image sets, log scale, N/4 and N/2 dashed.

    profiles: label -> radial profile (metrics.radial_profile of a power spectrum), one line each;
    size: the images' side N. `reference` names the set the others are read against (the real
    images), drawn thick and black so it stays findable among many lines.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    for label, profile in profiles.items():
        profile = np.asarray(profile)
        style = dict(color="black", linewidth=2.5) if label == reference else {}
        ax.semilogy(np.arange(1, len(profile)), profile[1:], label=label, **style)  # radius 0 (DC) left out
    for f in (size / 4, size / 2):  # where stride-2 upsampling leaves its checkerboard
        ax.axvline(f, color="gray", linestyle="--", linewidth=0.8)
    ax.set_xlabel("spatial frequency (cycles per image; dashed: N/4, N/2)")
    ax.set_ylabel("mean power")
    ax.set_title(title)
    return _finish(fig, ax, path, legend_size=8 if len(profiles) > 2 else None)


def plot_panels(path: str | Path, panels: dict[str, np.ndarray], rows: int, cols: int) -> Path:
    """One labelled panel (a rows x cols grid of uint8 images) per label, side by side, four a row at most."""
    plt = _pyplot()
    grids = {label: viz.image_grid(images, rows, cols) for label, images in panels.items()}
    h, w = next(iter(grids.values())).shape[:2]
    scale = 2 if h < 300 else 1  # small images stay legible
    ncols = min(len(grids), 4)
    nrows = math.ceil(len(grids) / ncols)
    dpi = 100
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * (w * scale + 20) / dpi, nrows * (h * scale + 40) / dpi),
                             dpi=dpi, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (label, grid) in zip(axes.flat, grids.items()):
        ax.imshow(grid[..., 0] if grid.shape[-1] == 1 else grid, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        ax.set_title(label, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_fid(path: str | Path, curves: dict[str, list[list[dict]]]) -> Path:
    """FID against step; one line per run, one colour per label (its first run solid, further ones dashed).

    curves: label -> one curve per run, each a list of {"step", "fid"} points.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    values = []
    for i, (label, runs) in enumerate(curves.items()):
        for j, curve in enumerate(runs):
            steps, fids = [c["step"] for c in curve], [c["fid"] for c in curve]
            values += fids
            ax.plot(steps, fids, marker="o", markersize=3, color=f"C{i}", alpha=1.0 if j == 0 else 0.5,
                    linestyle="-" if j == 0 else "--", label=label if j == 0 else None)
    _log_if_wide(ax, values)
    ax.set_xlabel("training step")
    ax.set_ylabel("FID (lower is better)")
    ax.set_title("FID during training" + (" (dashed: further seeds)" if any(len(r) > 1 for r in curves.values()) else ""))
    return _finish(fig, ax, path, legend_size=8)
