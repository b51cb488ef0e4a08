"""Throughput benchmark: the app's train step against a minimal reference loop.

In one process and on identical models, it times in interleaved windows
(so drift in machine load hits every variant alike):

    reference       reference.reference_step on an in-memory batch
    app_synthetic   GAN.train_step (EMA, finite checks, metrics) on an in-memory batch
    app_pipeline    GAN.train_step fed by the real tf.data pipeline, logs read every log_every steps
    app_unconditional  (a conditional config only) app_synthetic of the same config without its conditioning:
                    what the class input costs a step

and prints images/s (median of the windows), the ratios to the reference, FLOPs
per training image counted from the layers, achieved GFLOP/s and the machine's
float32 matmul peak. Optional: sampling images/s and FID evaluation time.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import subprocess
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from dcgan.data import pipeline as datalib
from dcgan.core.config import Config, is_conditional
from dcgan.core.errors import DcganError
from dcgan.tools.flops import forward_flops, training_flops_per_image
from dcgan.models.networks import build_discriminator, build_generator
from dcgan.tools.reference import reference_step
from dcgan.training.gan import GAN
from dcgan.models.sampling import generate_images


def matmul_peak_gflops(n: int = 2048, repeats: int = 20) -> float:
    """float32 GFLOP/s of a large matmul at its best: the practical peak of this machine for TensorFlow."""
    a = tf.random.normal([n, n])
    b = tf.random.normal([n, n])
    mm = tf.function(lambda x, y: tf.matmul(x, y))
    mm(a, b).numpy()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        mm(a, b).numpy()
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / min(times) / 1e9  # the best repeat: a peak, not a typical figure


BENCHMARK_CLASSES = 10  # a conditional config's class count when it is timed on synthetic labels


def unconditional(cfg: Config) -> Config:
    """The same config with neither network conditioned."""
    model = cfg.model
    return dataclasses.replace(cfg, model=dataclasses.replace(
        model, generator=dataclasses.replace(model.generator, condition="none"),
        discriminator=dataclasses.replace(model.discriminator, condition="none")))


def _reference_runner(cfg: Config, batch):
    cfg = unconditional(cfg)  # the reference loop has no class input: it times the same model without one
    keras.utils.set_random_seed(cfg.train.seed)
    gen, disc = build_generator(cfg), build_discriminator(cfg)
    t = cfg.train
    step = reference_step(gen, disc, keras.optimizers.Adam(t.lr_g, beta_1=t.beta1), keras.optimizers.Adam(t.lr_d, beta_1=t.beta1),
                          cfg.model.generator.latent_dim)
    images = (batch[0] if isinstance(batch, tuple) else batch)[:, -1]

    def run(n):
        for _ in range(n):
            out = step(images)
        out[0].numpy()

    return run


def _app_runner(cfg: Config, batch=None, images=None):
    conditional = is_conditional(cfg)
    gan = GAN(cfg, classes=[str(k) for k in range(BENCHMARK_CLASSES)] if conditional else None)
    log_every = cfg.train.log_every
    if not conditional and isinstance(batch, tuple):  # the unconditional twin of a conditional config
        batch = batch[0]
    if images is not None:
        labels = synthetic_labels(len(images)) if conditional else None
        it = iter(datalib.make_dataset(images, cfg.data.batch_size, cfg.train.seed, group=cfg.train.d_steps, labels=labels))
        next_batch = lambda: next(it)  # noqa: E731
    else:
        next_batch = lambda: batch  # noqa: E731
    counter = [0]

    def run(n):
        for _ in range(n):
            logs = gan.train_step(next_batch())
            counter[0] += 1
            if counter[0] % log_every == 0:
                {k: float(v) for k, v in logs.items()}  # the loop's per-log host sync
        float(logs["g_loss"])

    return run


def synthetic_labels(n: int) -> np.ndarray:
    return np.arange(n) % BENCHMARK_CLASSES


def time_variants(runners: dict, window_steps: int, windows: int, warmup_steps: int) -> dict:
    """Interleaved windows; returns each variant's per-window seconds."""
    for run in runners.values():
        run(warmup_steps)  # trace, build, fill the pipeline
    seconds = {name: [] for name in runners}
    for _ in range(windows):
        for name, run in runners.items():
            t0 = time.perf_counter()
            run(window_steps)
            seconds[name].append(time.perf_counter() - t0)
    return seconds


def load_or_synthesize(cfg: Config, synthetic: bool) -> np.ndarray:
    """The config's dataset, or random uint8 images of its shape (throughput ignores content)."""
    if not synthetic:
        return datalib.load_images(cfg.data)
    size, channels = cfg.data.image_size, cfg.data.channels
    return np.random.default_rng(0).integers(0, 256, (cfg.data.limit or 10000, size, size, channels), dtype=np.uint8)


def benchmark_training(cfg: Config, images: np.ndarray, window_steps: int = 20, windows: int = 5, warmup_steps: int = 5) -> dict:
    b, d = cfg.data.batch_size, cfg.train.d_steps
    batch = tf.constant(datalib.to_float(images[: b * d].astype(np.float32)).reshape(d, b, *images.shape[1:]).swapaxes(0, 1))
    conditional = is_conditional(cfg)
    if conditional:
        batch = (batch, tf.constant(synthetic_labels(b * d).reshape(b, d), tf.int32))
    runners = {
        "reference": _reference_runner(cfg, batch),
        "app_synthetic": _app_runner(cfg, batch=batch),
        "app_pipeline": _app_runner(cfg, images=images),
        **({"app_unconditional": _app_runner(unconditional(cfg), batch=batch)} if conditional else {}),
    }
    seconds = time_variants(runners, window_steps, windows, warmup_steps)
    images_per_step = b * d
    result = {name: images_per_step * window_steps / statistics.median(s) for name, s in seconds.items()}
    gen, disc = build_generator(unconditional(cfg)), build_discriminator(unconditional(cfg))  # conv/dense FLOPs
    flops = training_flops_per_image(gen, disc)
    return {
        "images_per_s": {k: round(v, 1) for k, v in result.items()},
        **({"ratio_conditional": round(result["app_synthetic"] / result["app_unconditional"], 3)} if conditional else {}),
        "ratio_app_synthetic": round(result["app_synthetic"] / result["reference"], 3),
        "ratio_app_pipeline": round(result["app_pipeline"] / result["reference"], 3),
        "generator_gflops_per_image": round(forward_flops(gen) / 1e9, 4),
        "train_gflops_per_image": round(flops / 1e9, 4),
        "achieved_gflops_per_s": round(flops * result["app_pipeline"] / 1e9, 1),
        "window_seconds": {k: [round(x, 3) for x in v] for k, v in seconds.items()},
    }


def _generator(cfg: Config):
    return build_generator(cfg, classes=BENCHMARK_CLASSES if is_conditional(cfg) else 0)


def benchmark_sampling(cfg: Config, n: int = 10000) -> float:
    gen = _generator(cfg)
    z = np.random.default_rng(0).standard_normal((n, cfg.model.generator.latent_dim)).astype(np.float32)
    labels = synthetic_labels(n) if is_conditional(cfg) else None
    generate_images(gen, z[:500], None if labels is None else labels[:500])  # trace
    t0 = time.perf_counter()
    generate_images(gen, z, labels)
    return n / (time.perf_counter() - t0)


def benchmark_startup() -> dict:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "dcgan", "--help"], check=True, capture_output=True)
    return {"help_s": round(time.perf_counter() - t0, 3)}


def format_report(cfg: Config, res: dict, peak: float) -> str:
    ips = res["images_per_s"]
    lines = [
        f"config: {cfg.data.name} {cfg.data.image_size}x{cfg.data.image_size}x{cfg.data.channels}, "
        f"upsampling={cfg.model.generator.upsampling}, batch {cfg.data.batch_size}, EMA {cfg.train.ema_decay}",
        f"reference loop      {ips['reference']:8.1f} images/s",
        f"app (in-memory)     {ips['app_synthetic']:8.1f} images/s   ratio {res['ratio_app_synthetic']:.3f}",
        f"app (tf.data)       {ips['app_pipeline']:8.1f} images/s   ratio {res['ratio_app_pipeline']:.3f}",
        *([f"app unconditional  {ips['app_unconditional']:8.1f} images/s   conditional/unconditional "
           f"{res['ratio_conditional']:.3f} ({cfg.model.generator.condition} G, {cfg.model.discriminator.condition} D)"]
          if "ratio_conditional" in res else []),
        f"FLOPs: generator {res['generator_gflops_per_image']:.4f} GFLOP/image forward, "
        f"training {res['train_gflops_per_image']:.4f} GFLOP/image",
        f"achieved {res['achieved_gflops_per_s']:.1f} GFLOP/s of a {peak:.1f} GFLOP/s matmul peak "
        f"({100 * res['achieved_gflops_per_s'] / peak:.0f}%)",
    ]
    return "\n".join(lines)


def run(cfg: Config, windows: int, window_steps: int, sampling: bool, fid: bool, synthetic: bool, as_json: str | None) -> dict:
    if windows < 1:  # checked before minutes of building and timing end in the median of nothing
        raise DcganError(f"--windows {windows}: must be at least 1 (the median of the timed windows is reported)")
    if window_steps < 1:
        raise DcganError(f"--window-steps {window_steps}: must be at least 1 (train steps per timed window)")
    peak = matmul_peak_gflops()
    res = benchmark_training(cfg, load_or_synthesize(cfg, synthetic), window_steps=window_steps, windows=windows)
    report = {"peak_gflops_per_s": round(peak, 1), **res}
    print(format_report(cfg, res, peak))
    if sampling:
        report["sampling_images_per_s"] = round(benchmark_sampling(cfg), 1)
        print(f"sampling            {report['sampling_images_per_s']:8.1f} images/s (10,000 images, batch 500)")
    if fid:
        report["fid_10k_seconds"] = round(benchmark_fid(cfg), 1)
        print(f"FID, 10,000 images  {report['fid_10k_seconds']:8.1f} s (features + statistics, real stats cached)")
    report.update(benchmark_startup())
    print(f"dcgan --help        {report['help_s']:8.3f} s")
    if as_json:
        from dcgan.core.files import atomic_write

        atomic_write(as_json, json.dumps(report, indent=2))
    return report


def benchmark_fid(cfg: Config, n: int = 10000) -> float:
    """Seconds to generate n images and compute their FID (feature network and real statistics warmed)."""
    from dcgan.evaluation.evaluator import Evaluator

    gen = _generator(cfg)
    evaluator = Evaluator(cfg.data, ("fid",), quiet=True)
    evaluator.evaluate_model(gen, 500)  # trace the generator and the feature network
    t0 = time.perf_counter()
    evaluator.evaluate_model(gen, n)
    return time.perf_counter() - t0
