"""`dcgan inspect`: where a generator's checkerboard comes from, block by block, and whether D asks for it.

For every x2 block of the generator (as its builder lists them: dcgan.models.registry), at a run's checkpoint or
untrained (--init):

overlap pattern  Odena et al. 2016 (distill.pub/2016/deconv-checkerboard): the block's upsampling layers, rebuilt from
                 their configs (kernel, stride, padding, interpolation) with one channel, every weight 1 and no bias,
                 run on a constant input; a central 4x4 crop (two periods of the stride, far from the zero padding)
                 holds how many kernel taps land on each output pixel. Transposed 3x3: [[4, 2], [2, 1]] tiled, 5x5:
                 [[4, 6], [6, 9]], 4x4: 4 everywhere; resize-convolution k x k: k*k everywhere; sub-pixel with ICNR's
                 tied sub-kernels: k*k everywhere.
phase spread     the same constant input through the block's own upsampling layers (their weights, at this
                 checkpoint): r[p, c], the response at pixel phase p (of the 2x2 period) in output channel c, and
                 sqrt(mean_c var_p r) / sqrt(mean_c mean_p r^2), 0 when every channel is flat. The overlap pattern is
                 the op's geometry; this is what its weights do with it: a 4x4 transposed kernel overlaps evenly but is
                 four different sub-kernels, and ICNR's equal sub-kernels start at 0 and drift apart in training.
activations      the block's output (after its norm and ReLU; BatchNorm in inference mode) for N latents (seeds
                 0..N-1, as `dcgan sample` draws them): the mean map, and P, the centred power spectrum averaged over
                 latents and channels, each map's mean removed (for a grayscale image, metrics.power_spectrum).

The per-block checkerboard score. For an S x S spectrum P let M = metrics.artifact_mask(S, S), the rows and columns
at |f| = S/2 and S/4 where stride-2 upsampling leaves its marks, and B the smooth baseline: B = P off M; on M, the mean
of P over the pixels off M in the 3x3 neighbourhood (periodic, as the spectrum is; widened where it holds none). Then

    excess(P) = sum over M of (P - B) / sum of P

the share of the maps' power that stands out above its neighbourhood at N/2 and N/4: 0 = none, negative = a dip. It
splits into excess_N/2 (the pixels on the S/2 lines) and excess_N/4 (the rest of M). For block i with input X_i
(side S/2) and output Y_i (side S):

    score_i = excess_N/2(P(Y_i)) - share_N/2(P(nearest_x2(X_i)))

the checkerboard the block made at its own N/2, minus the power its input, merely repeated x2, already had on those
lines (share_N/2: power on the S/2 lines over all power). That second term is 0 up to rounding: pixel repetition
cancels N/2 exactly, so whatever stands out at a block's N/2, the block put there. A stride-2 op repeats every 2
pixels, so N/2 is where a block leaves its own mark; what sits at its N/4 is the previous block's N/2 mark, already
that block's score, so it is reported (inherited: excess_N/4 of the repeated input; kept: of the output) and not
scored again. Each of the image's two artifact frequencies thus has one author: N/2 the last block, N/4 the one
before it. The image's own excess(P(G(z))) is reported beside: what of the blocks' marks survives to the pixels.

The gradient side: G learns from dD(x)/dx at x = G(z) (D's logit, inference mode). Its power spectrum, averaged over
latents and channels, its share of power on the N/2 and N/4 lines (metrics.artifact_share), the share white noise
would have there (the lines' share of the pixels) and its excess. A share far above white noise means the gradient
that trains G has a checkerboard in it: D is sensitive to exactly those frequencies, and pushes G's there.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dcgan.training.checkpoints import Checkpoint, find_checkpoint
from dcgan.core.errors import DcganError, first_line
from dcgan.evaluation.metrics import excess, line_profile, line_shares, shares_profile, smooth_baseline, white_shares
from dcgan.training.rundir import default_run_name, read_run_config
from dcgan.core.files import atomic_write, check_output, inside, lock_run
from dcgan.tools.anatomy_blocks import (BATCH, PERIOD, Block, activation_model, generator_blocks, image_gradient,  # noqa: F401
                                        latents_per_batch, overlap_pattern, phase_spread)
from dcgan.tools.sample import latents

DEFAULT_LATENTS = 256
MAX_LATENTS = 10_000  # spectra converge long before; more is only minutes
OUT_DIR = "inspect"
FIGURE_FILE = "inspect.png"
REPORT_FILE = "inspect.json"
# every block's S x S spectrum and mean map go into the report, and a batch holds a latent's activations at full size
MAX_IMAGE_SIZE = 256


def nearest_x2(maps: np.ndarray) -> np.ndarray:
    """(B, H, W, C) -> (B, 2H, 2W, C), each pixel repeated: upsampling that adds nothing of its own."""
    return maps.repeat(2, axis=1).repeat(2, axis=2)


class MapStats:
    """Running mean map and mean centred power spectrum of (B, H, W, C) maps, over samples and channels."""

    CHUNK = 1 << 22  # values per FFT call: bounds the complex128 temporaries at 64 MB

    def __init__(self):
        self.map_sum = self.power_sum = None
        self.count = 0

    def add(self, maps: np.ndarray) -> None:
        b, h, w, c = maps.shape
        power = np.zeros((h, w))
        step = max(1, self.CHUNK // (b * h * w))
        for k in range(0, c, step):  # a few channels at a time: float64 copies of a whole batch can be large
            part = np.asarray(maps[..., k : k + step], np.float64)
            part = part - part.mean(axis=(1, 2), keepdims=True)  # the mean would sit at DC and dwarf the rest
            power += (np.abs(np.fft.fft2(part, axes=(1, 2))) ** 2).sum(axis=(0, 3))
        maps_sum = np.asarray(maps).sum(axis=(0, 3), dtype=np.float64)
        self.map_sum = maps_sum if self.map_sum is None else self.map_sum + maps_sum
        self.power_sum = power if self.power_sum is None else self.power_sum + power
        self.count += b * c

    @property
    def mean_map(self) -> np.ndarray:
        return self.map_sum / self.count

    @property
    def spectrum(self) -> np.ndarray:
        return np.fft.fftshift(self.power_sum / self.count)


@dataclass
class Measured:
    inputs: list[MapStats]  # each block's input, nearest-upsampled to the block's size
    outputs: list[MapStats]
    image: MapStats
    gradient: MapStats


def measure(generator, discriminator, blocks: list[Block], z: np.ndarray, batch: int = BATCH,
            labels: np.ndarray | None = None) -> Measured:
    """Run the latents (with a conditional generator's labels) through the generator (and D's gradient) in batches
    (fewer latents than `batch` when that many would not fit the activation budget), accumulating every block's statistics."""
    model = activation_model(generator, blocks)
    batch = latents_per_batch(generator, discriminator, batch=batch)
    k = len(blocks)
    m = Measured([MapStats() for _ in blocks], [MapStats() for _ in blocks], MapStats(), MapStats())
    for start in range(0, len(z), batch):
        y = None if labels is None else labels[start : start + batch]
        inputs = z[start : start + batch] if y is None else [z[start : start + batch], y]
        arrays = [np.asarray(a, np.float32) for a in model(inputs, training=False)]
        for i in range(k):
            m.inputs[i].add(nearest_x2(arrays[i]))
            m.outputs[i].add(arrays[k + i])
        m.image.add(arrays[-1])
        m.gradient.add(image_gradient(discriminator, arrays[-1], y))
    return m


# ---------------------------------------------------------------- the report


def _rounded(a, digits: int = 6) -> list:
    """An array as nested lists of floats cut to `digits` significant digits: the JSON stays readable."""
    return np.vectorize(lambda v: float(f"{v:.{digits}g}"))(np.asarray(a, np.float64)).tolist()


def spectrum_record(stats: MapStats) -> dict:
    spectrum = stats.spectrum
    total = spectrum.sum() if spectrum.sum() > 0 else 1.0
    return {"size": int(spectrum.shape[0]), "excess": excess(spectrum), "profile": _rounded(shares_profile(spectrum)),
            "baseline_profile": _rounded(line_profile(smooth_baseline(spectrum)) / total),
            "mean_map": _rounded(stats.mean_map), "spectrum": _rounded(spectrum)}


def block_record(block: Block, inp: MapStats, out: MapStats) -> dict:
    pattern = overlap_pattern(block)
    record = {"name": block.name, "mode": block.mode, "layers": [layer.name for layer in block.ops],
              "kernel_size": int(block.kernel_size), "input_size": int(inp.spectrum.shape[0] // 2),
              "channels": int(block.output.output.shape[-1]), "overlap": _rounded(pattern),
              "overlap_ratio": float(pattern.max() / pattern.min()), "phase_spread": phase_spread(block),
              **spectrum_record(out)}
    record["input_excess"] = excess(inp.spectrum)
    record["input_share"] = line_shares(inp.spectrum)
    record["input_profile"] = _rounded(shares_profile(inp.spectrum))
    record["score"] = record["excess"]["n2"] - record["input_share"]["n2"]
    return record


def gradient_record(stats: MapStats) -> dict:
    size = stats.spectrum.shape[0]
    return {**spectrum_record(stats), "share": line_shares(stats.spectrum), "white_share": white_shares(size)}


def analyse(generator, discriminator, z: np.ndarray, batch: int = BATCH) -> dict:
    """Everything `dcgan inspect` reports about a generator and its discriminator, as plain data.

    A conditional generator draws the classes in turn (0, 1, ..., K-1, 0, ...), as evaluation does."""
    from dcgan.evaluation.evaluator import sample_labels
    from dcgan.models.registry import is_conditional

    blocks = generator_blocks(generator)
    labels = sample_labels(len(z), generator) if is_conditional(generator) else None
    m = measure(generator, discriminator, blocks, z, batch, labels)
    return {"n": len(z),
            "blocks": [block_record(b, i, o) for b, i, o in zip(blocks, m.inputs, m.outputs)],
            "image": spectrum_record(m.image), "gradient": gradient_record(m.gradient)}


def _pct(x: float) -> str:
    return f"{100 * x:+.2f}%"


def pattern_text(pattern) -> str:
    """One period of the overlap pattern as a small text array, e.g. [[4 2] [2 1]]."""
    cell = np.asarray(pattern)[:PERIOD, :PERIOD]
    return "[" + " ".join("[" + " ".join(f"{v:g}" for v in row) + "]" for row in cell) + "]"


def format_table(report: dict) -> str:
    rows = [("block", "mode", "size", "overlap", "max:min", "phase spread", "score (excess N/2)", "N/4 inherited -> kept")]
    for b in report["blocks"]:
        rows.append((b["name"], f"{b['mode']} k{b['kernel_size']}", f"{b['input_size']}->{b['size']}", pattern_text(b["overlap"]),
                     f"{b['overlap_ratio']:g}", f"{b['phase_spread']:.3f}", _pct(b["score"]),
                     f"{_pct(b['input_excess']['n4'])} -> {_pct(b['excess']['n4'])}"))
    img = report["image"]["excess"]
    rows.append(("image", "", str(report["image"]["size"]), "", "", "", f"excess N/2 {_pct(img['n2'])}",
                 f"N/4 {_pct(img['n4'])}, total {_pct(img['total'])}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    grad = report["gradient"]
    share, white = grad["share"], grad["white_share"]
    lines.append(f"D gradient: {100 * share['n2']:.2f}% of its power at N/2, {100 * share['n4']:.2f}% at N/4 "
                 f"(white noise: {100 * white['n2']:.2f}%, {100 * white['n4']:.2f}%); excess {_pct(grad['excess']['total'])}")
    return "\n".join(lines)


# ---------------------------------------------------------------- the command


@dataclass
class Source:
    """What to inspect, resolved without TensorFlow: a run's checkpoint, or a config's untrained models."""

    cfg: object  # dcgan.core.config.Config
    checkpoint: Checkpoint | None
    out: Path
    label: str  # for titles and errors: the run directory, or the config and the run name it would get


def default_name(cfg) -> str:
    return cfg.run.name or default_run_name(cfg)


def resolve(target: str | None, init: str | None, overrides=(), step: int | None = None,
            use_ema: bool | None = None, n: int = DEFAULT_LATENTS, out: str | None = None) -> Source:
    """Check the arguments and find the run or config; nothing is created or imported from TensorFlow yet."""
    if (target is None) == (init is None):
        raise DcganError("give a run directory, or --init CONFIG for an untrained generator (not both)")
    if not 1 <= n <= MAX_LATENTS:
        raise DcganError(f"--n {n}: must be between 1 and {MAX_LATENTS}")
    if init is None:
        if overrides:
            raise DcganError("--set applies to --init only: a run's config is the one it was trained with")
        checkpoint = find_checkpoint(target, step)
        cfg = check_size(read_run_config(checkpoint.run_dir))
        return Source(cfg, checkpoint, Path(out) if out else checkpoint.run_dir / OUT_DIR, str(checkpoint.run_dir))
    if step is not None or use_ema is not None:
        raise DcganError("--step, --ema and --no-ema pick a run's checkpoint; --init inspects untrained models")
    from dcgan.core.config import load_config

    cfg = check_size(load_config(init or None, list(overrides)))
    name = default_name(cfg)
    return Source(cfg, None, Path(out) if out else Path(f"inspect-{name}"), f"{init or 'defaults'}: {name}")


def check_size(cfg):
    if cfg.data.image_size > MAX_IMAGE_SIZE:
        raise DcganError(f"data.image_size {cfg.data.image_size}: inspect handles at most {MAX_IMAGE_SIZE} px (it keeps "
                         f"every block's full spectrum and a whole latent's activations in memory)")
    return cfg


def load_models(source: Source, use_ema: bool | None):
    """(generator, discriminator, description): the checkpoint's sampling generator and D, or untrained ones."""
    import tensorflow as tf

    from dcgan.data import pipeline as datalib
    from dcgan.core.config import is_conditional
    from dcgan.tools.handle import describe_copy
    from dcgan.training.gan import GAN, run_gan
    from dcgan.training.restoring import restore

    if source.checkpoint is not None:
        gan = run_gan(source.checkpoint.run_dir, source.cfg)
        restore(gan, source.checkpoint.path)
        model = gan.sampling_generator(use_ema)
        described = describe_copy(source.checkpoint.step, ema=model is gan.ema_generator,
                                  chosen=use_ema is None and gan.ema_generator is not None)
        return model, gan.discriminator, described
    # an untrained conditional pair needs only the class count: the data's class names
    classes = datalib.load_labelled_images(source.cfg.data).classes if is_conditional(source.cfg) else None
    try:
        gan = GAN(source.cfg, classes=classes)
    except (ValueError, TypeError, tf.errors.OpError) as e:  # what validation cannot foresee, Keras refuses here
        raise DcganError(f"cannot build the models of {source.label}: {first_line(e)}") from None
    return gan.generator, gan.discriminator, f"untrained generator (train.seed {source.cfg.train.seed})"


@dataclass
class Inspection:
    """What `dcgan inspect` measured (the dict inspect.json holds) and where it wrote the figure and the json."""

    report: dict
    figure: Path
    json: Path
    latents: int

    def __str__(self) -> str:
        return (f"{self.report['source']}: {self.report['generator']}, {self.latents} latents -> {self.figure}, "
                f"{self.json.name}\n{format_table(self.report)}")


def inspect_run(source: Source, use_ema: bool | None = None, n: int = DEFAULT_LATENTS) -> Inspection:
    """`dcgan inspect` on a resolved source: write inspect.png and inspect.json into its folder."""
    check_output(source.out, is_dir=True)
    into_run = source.checkpoint is not None and inside(source.out, source.checkpoint.run_dir)
    with lock_run(source.checkpoint.run_dir, "dcgan inspect") if into_run else contextlib.nullcontext():
        return _inspect(source, use_ema, n)


def _inspect(source: Source, use_ema: bool | None, n: int) -> Inspection:
    from dcgan.core import plots

    start = time.perf_counter()
    generator, discriminator, described = load_models(source, use_ema)
    report = {"source": source.label, "generator": described,
              **analyse(generator, discriminator, latents(range(n), source.cfg.model.generator.latent_dim))}
    report["seconds"] = round(time.perf_counter() - start, 2)
    try:
        atomic_write(source.out / REPORT_FILE, json.dumps(report) + "\n")
        plots.plot_anatomy(source.out / FIGURE_FILE, report)
    except OSError as e:
        raise DcganError(f"cannot write into {source.out}: {e.strerror or e}") from None
    return Inspection(report, source.out / FIGURE_FILE, source.out / REPORT_FILE, n)
