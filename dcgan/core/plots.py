"""Every matplotlib figure of the package, written as PNG through core.files.atomic_write.

matplotlib is imported on the first figure (`_pyplot`), not with this module, so the
command line and its help stay fast; its backend is set there, once, to Agg: figures
are files, never windows.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np

from dcgan.core import viz
from dcgan.core.files import atomic_write


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


SIGNALS = {"d_real_sign": "r_t = E[sign D(x)]", "d_gap": "d_gap = D(seen) - D(unseen)", "ada_p": "ADA's p"}


def plot_losses(path: str | Path, records: list[dict]) -> Path:
    """Generator and discriminator loss against step, from metrics.jsonl records; beneath them, when the records
    hold them, D's overfitting signals (r_t, the held-out gap, ADA's p), so memorisation shows in the run's plot."""
    plt = _pyplot()
    records = [r for r in records if "g_loss" in r]
    signals = [k for k in SIGNALS if any(k in r for r in records)]
    fig, axes = plt.subplots(1 + bool(signals), 1, figsize=(7, 6 if signals else 3.5), dpi=100, sharex=True, squeeze=False)
    losses = axes[0, 0]
    steps = [r["step"] for r in records]
    losses.plot(steps, [r["d_loss"] for r in records], label="discriminator")
    losses.plot(steps, [r["g_loss"] for r in records], label="generator")
    losses.set_ylabel("loss")
    if signals:
        low = axes[1, 0]
        for k in signals:
            noisy = k == "d_real_sign"  # one batch a point
            low.plot(*zip(*[(r["step"], r[k]) for r in records if k in r]), label=SIGNALS[k], lw=0.8 if noisy else 1.5,
                     alpha=0.5 if noisy else 1.0)
        low.axhline(0, color="grey", lw=0.5)
        low.set_ylabel("D's overfitting signals")
    axes[-1, 0].set_xlabel("step")
    for ax in axes[:, 0]:
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.tight_layout()
    return save_figure(fig, path)


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


def plot_fid(path: str | Path, curves: dict[str, list[list[dict]]], key: str = "fid", ylabel: str = "FID (lower is better)",
             title: str = "FID during training") -> Path:
    """FID (or another logged value: key) against step; one line per run, one colour per label (its first run solid,
    further ones dashed).

    curves: label -> one curve per run, each a list of {"step", key} points.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    values = []
    for i, (label, runs) in enumerate(curves.items()):
        for j, curve in enumerate(runs):
            steps, ys = [c["step"] for c in curve], [c[key] for c in curve]
            values += ys
            ax.plot(steps, ys, marker="o" if len(curve) < 50 else None, markersize=3, color=f"C{i}", alpha=1.0 if j == 0 else 0.5,
                    linestyle="-" if j == 0 else "--", label=label if j == 0 else None)
    _log_if_wide(ax, values)
    ax.set_xlabel("training step")
    ax.set_ylabel(ylabel)
    ax.set_title(title + (" (dashed: further seeds)" if any(len(r) > 1 for r in curves.values()) else ""))
    return _finish(fig, ax, path, legend_size=8)


def plot_anatomy(path: str | Path, report: dict) -> Path:
    """`dcgan inspect`'s figure (report: anatomy.analyse's plain data): one column per generator block, then the image
    and D's gradient.

    Rows: the overlap pattern (kernel taps per output pixel, unit weights), the mean map (activation, image, gradient),
    and the spectrum's line profile (mean share of the power on the rows and columns at each frequency) with N/4 and N/2 dashed,
    the smooth baseline there as crosses and, for a block, its nearest-upsampled input dotted: a block's score is the
    gap at N/2, what it inherited the dotted line at N/4.
    """
    plt = _pyplot()
    blocks = report["blocks"]
    ncols = len(blocks) + 2
    fig, axes = plt.subplots(3, ncols, figsize=(2.8 * ncols, 8.2), dpi=100, squeeze=False)
    for col, block in zip(axes.T, blocks):
        _pattern_panel(col[0], block)
        _map_panel(col[1], block["mean_map"], f"mean activation {block['size']}x{block['size']}")
        _profile_panel(col[2], block, f"{block['name']} score {100 * block['score']:+.1f}%", block["input_profile"])
    image, gradient = report["image"], report["gradient"]
    _text_panel(axes[0, -2], "image G(z)", [f"excess N/2 {100 * image['excess']['n2']:+.2f}%",
                                           f"excess N/4 {100 * image['excess']['n4']:+.2f}%",
                                           f"total {100 * image['excess']['total']:+.2f}%"])
    _map_panel(axes[1, -2], image["mean_map"], "mean image")
    _profile_panel(axes[2, -2], image, f"image excess {100 * image['excess']['total']:+.1f}%")
    share, white = gradient["share"], gradient["white_share"]
    _text_panel(axes[0, -1], "D gradient dD/dx", [f"N/2 {100 * share['n2']:.1f}% of power (white {100 * white['n2']:.1f}%)",
                                                  f"N/4 {100 * share['n4']:.1f}% (white {100 * white['n4']:.1f}%)",
                                                  f"excess {100 * gradient['excess']['total']:+.2f}%"])
    _map_panel(axes[1, -1], gradient["mean_map"], "mean gradient", cmap="RdBu_r", centred=True)
    _profile_panel(axes[2, -1], gradient, f"gradient: {100 * share['total']:.1f}% at N/2, N/4")
    fig.suptitle(f"{report['source']}: {report['generator']}, {report['n']} latents", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def _pattern_panel(ax, block: dict) -> None:
    pattern = np.asarray(block["overlap"])
    ax.imshow(pattern, cmap="viridis", vmin=0, vmax=pattern.max(), interpolation="nearest")
    for (y, x), v in np.ndenumerate(pattern):
        ax.text(x, y, f"{v:g}", ha="center", va="center", color="white" if v < 0.6 * pattern.max() else "black", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"{block['name']}: {block['mode']} k{block['kernel_size']}\noverlap {block['overlap_ratio']:g}:1, "
                 f"phase spread {block['phase_spread']:.2f}", fontsize=9)


def _map_panel(ax, values, title: str, cmap: str = "gray", centred: bool = False) -> None:
    values = np.asarray(values)
    limit = float(np.abs(values).max()) or 1.0
    ax.imshow(values, cmap=cmap, interpolation="nearest", **({"vmin": -limit, "vmax": limit} if centred else {}))
    ax.axis("off")
    ax.set_title(title, fontsize=9)


def _profile_panel(ax, record: dict, title: str, input_profile=None) -> None:
    """Line profile from frequency 1 (DC is removed), log scale, framed by the output's own range (nearest
    upsampling leaves an exact null at N/2 that would stretch the axis to 1e-30); the baseline where it differs."""
    size = record["size"]
    profile, baseline = np.asarray(record["profile"]), np.asarray(record["baseline_profile"])
    freqs = np.arange(len(profile))
    shown = profile[1:][profile[1:] > 0]
    low, high = (shown.min() / 3, shown.max() * 3) if len(shown) else (1e-12, 1.0)
    ax.semilogy(freqs[1:], np.clip(profile[1:], low, None), color="C0", label="this map")
    if input_profile is not None:
        ax.semilogy(freqs[1:], np.clip(np.asarray(input_profile)[1:], low, None), color="gray", linestyle=":",
                    label="input, nearest x2")
    marks = [f for f in (round(size / 4), size // 2) if baseline[f] > 0]  # the frequencies artifact_mask reads
    ax.plot(marks, np.clip(baseline[marks], low, None), "x", color="C3", label="smooth baseline")
    for f in (round(size / 4), size // 2):
        ax.axvline(f, color="gray", linestyle="--", linewidth=0.8)
    ax.set_ylim(low, high)
    ax.set_xlabel("frequency (dashed: N/4, N/2)", fontsize=8)
    ax.set_ylabel("share of power per bin", fontsize=7)
    ax.tick_params(labelsize=7)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)


def _text_panel(ax, title: str, lines: list[str]) -> None:
    ax.axis("off")
    ax.set_title(title, fontsize=9)
    ax.text(0.02, 0.9, "\n".join(lines), transform=ax.transAxes, va="top", fontsize=8, family="monospace")


def plot_data_histograms(path: str | Path, sides: list[tuple[int, int]], modes: dict) -> Path:
    """`dcgan data`'s figure: the pictures' shorter sides and aspect ratios (log axes), and their channel modes."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    short = np.array([min(s) for s in sides], float) if sides else np.ones(1)
    ratio = np.array([w / h for h, w in sides], float) if sides else np.ones(1)
    axes[0].hist(short, bins=np.geomspace(max(short.min(), 1), max(short.max(), 2), 30))
    axes[0].set(xscale="log", xlabel="shorter side (px)", ylabel="pictures", title="sizes")
    axes[1].hist(ratio, bins=np.geomspace(min(ratio.min(), 0.99), max(ratio.max(), 1.01), 30))
    axes[1].axvline(1.0, color="k", lw=0.8, ls="--")
    axes[1].set(xscale="log", xlabel="width / height", title="aspect ratios (1 = square)")
    axes[2].bar(list(modes), list(modes.values()))
    axes[2].set(title="channel modes", ylabel="pictures")
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    for ax in axes[:2]:  # plain numbers on the log axes (768, 1.5), not powers of ten
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)
