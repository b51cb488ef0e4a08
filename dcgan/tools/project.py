"""`dcgan project RUN IMAGE...`: the latent (and, for a conditional run, the class) whose image is closest to a real
picture: "can my generator make this?", and a memorisation probe when training and unseen pictures are compared.

Each picture is read and resized exactly as the run's dataset was (a folder's fit and filter; a picture of another
size is resized like the dataset's images). z is optimised with Adam from --starts random starts at once, on
    feature_weight * |f(G(z)) - f(x)|^2 / D  +  pixel_weight * mean((G(z) - x)^2)  +  prior_weight * (|z|^2 / d - 1)^2
where f is the run's own feature network (its train.feature_network: the dataset classifier, the selfsup encoder
or InceptionV3) made differentiable (FeatureNet.embed), the pixel term is on [-1, 1] images, and the prior term
keeps |z| where a standard normal latent's norm lies (sqrt(d)), so the result stays a typical latent rather than
one the generator never saw. The start with the lowest final loss is kept. A conditional run searches every class
(each start in each class) unless --class names one.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dcgan.core.errors import DcganError

DEFAULTS = dict(steps=200, starts=4, lr=0.05, feature_weight=1.0, pixel_weight=1.0, prior_weight=0.1)
VIDEO_FRAMES = 50  # frames of the optimisation video: the best start's image, evenly over the steps


@dataclass
class Projection:
    """One picture's projection: the target and the image of the kept latent (uint8), the latent, its class."""

    name: str
    target: np.ndarray
    image: np.ndarray
    z: np.ndarray  # (latent_dim,)
    label: int | None
    losses: list[float]  # the kept start's total loss, every step
    distances: dict  # feature and pixel distances of the final image, the prior term, |z|
    frames: list[np.ndarray] = field(default_factory=list)  # the kept start's image along the way (video)
    seconds: float = 0.0


def read_target(path: Path, cfg) -> np.ndarray:
    """A picture as the run's dataset decodes one (uint8 size x size x channels); one line when it can't be used."""
    from dcgan.data.fit import Fit
    from dcgan.data.image_folder import decode_image

    if not path.is_file():
        raise DcganError(f"IMAGE: {path} does not exist" if not path.exists() else f"IMAGE: {path} is not a file")
    fit = Fit.of(cfg.data) if cfg.data.name == "folder" else Fit()
    if fit.fit == "random":
        fit = Fit("center", fit.resize, fit.pad)  # evaluation's view of a random-crop run: the centre
    image = decode_image(path, cfg.data.image_size, cfg.data.channels, fit)
    if isinstance(image, str):
        raise DcganError(f"IMAGE: {path} is not a usable PNG or JPEG (skipped as a dataset would skip it: {image})")
    return image


def project(gen, net, targets: dict[str, np.ndarray], steps: int, starts: int, seed: int, label: int | None = None,
            lr: float = DEFAULTS["lr"], feature_weight: float = DEFAULTS["feature_weight"],
            pixel_weight: float = DEFAULTS["pixel_weight"], prior_weight: float = DEFAULTS["prior_weight"],
            video: bool = False) -> list[Projection]:
    """Project each target (uint8 HWC) through gen (a GeneratorHandle) with feature network net.

    Pictures are optimised together, up to MAX_LATENTS latents (pictures x classes x starts) at a time, each row
    against its own picture: one traced step serves them all. Every picture gets the same starts (seeded by seed),
    so a picture's result does not depend on which others share its batch.
    """
    if steps < 1 or starts < 1:
        raise DcganError(f"--steps {steps} --starts {starts}: both must be at least 1")
    classes = [label] if label is not None else (list(range(len(gen.classes))) if gen.classes else [None])
    weights = (feature_weight, pixel_weight, prior_weight)
    z0 = np.random.default_rng(seed).standard_normal((starts, gen.latent_dim)).astype(np.float32)
    names = list(targets)
    per_picture = len(classes) * starts
    chunk = max(1, MAX_LATENTS // per_picture)
    results = []
    for i in range(0, len(names), chunk):
        group = names[i : i + chunk]
        results += _project_group(gen, net, group, np.stack([targets[n] for n in group]), z0, classes, steps, lr,
                                  weights, video)
    return results


MAX_LATENTS = 512  # latents optimised at once


def _project_group(gen, net, names, targets, z0, classes, steps, lr, weights, video) -> list[Projection]:
    import tensorflow as tf

    begin = time.perf_counter()
    n, starts, d = len(names), len(z0), gen.latent_dim
    rows = len(classes) * starts  # per picture: every start in every class
    z = tf.Variable(np.tile(z0, (n * len(classes), 1)))  # picture-major, then class, then start
    labels = None if classes == [None] else tf.constant(np.tile(np.repeat(classes, starts), n).astype(np.int32))
    pixels = np.repeat(targets.astype(np.float32), rows, axis=0)
    x = tf.constant(pixels / 127.5 - 1.0)
    f_target = net.embed(tf.constant(pixels))
    m, v = tf.Variable(tf.zeros_like(z)), tf.Variable(tf.zeros_like(z))  # Adam's moments (Kingma & Ba 2015)
    feature_weight, pixel_weight, prior_weight = weights

    def terms(images, z):
        feature = tf.reduce_mean(tf.square(net.embed((images + 1.0) * 127.5) - f_target), axis=1)
        pixel = tf.reduce_mean(tf.square(images - x), axis=[1, 2, 3])
        prior = tf.square(tf.reduce_sum(tf.square(z), axis=1) / d - 1.0)
        return feature, pixel, prior

    @tf.function
    def step(t):
        with tf.GradientTape() as tape:
            images = gen(z, labels)
            feature, pixel, prior = terms(images, z)
            loss = feature_weight * feature + pixel_weight * pixel + prior_weight * prior
            total = tf.reduce_sum(loss)  # each row's loss depends on its own z only
        grad = tape.gradient(total, z)
        m.assign(0.9 * m + 0.1 * grad)
        v.assign(0.999 * v + 0.001 * tf.square(grad))
        z.assign_sub(lr * (m / (1.0 - 0.9**t)) / (tf.sqrt(v / (1.0 - 0.999**t)) + 1e-8))
        return loss, images

    history, snapshots = [], []
    every = max(1, steps // VIDEO_FRAMES)
    for i in range(steps):
        loss, images = step(tf.constant(i + 1, tf.float32))
        history.append(loss.numpy())
        if video and (i % every == 0 or i == steps - 1):
            snapshots.append(_to_uint8(images.numpy()))
    final = gen(z, labels)
    feature, pixel, prior = (t.numpy() for t in terms(final, z))
    total = feature_weight * feature + pixel_weight * pixel + prior_weight * prior
    images, zs, seconds = _to_uint8(final.numpy()), z.numpy(), (time.perf_counter() - begin) / n
    results = []
    for k, name in enumerate(names):
        best = k * rows + int(np.argmin(total[k * rows : (k + 1) * rows]))
        results.append(Projection(
            name, targets[k], images[best], zs[best], None if labels is None else int(labels.numpy()[best]),
            [float(h[best]) for h in history],
            {"feature": float(feature[best]), "pixel_mse": float(pixel[best]), "prior": float(prior[best]),
             "z_norm": float(np.linalg.norm(zs[best])), "total": float(total[best]), "start": (best - k * rows) % starts},
            [s[best] for s in snapshots], seconds))
    return results


def _to_uint8(a: np.ndarray) -> np.ndarray:
    return np.clip(np.round((np.asarray(a) + 1.0) * 127.5), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- the command


def project_command(args) -> str:
    """`dcgan project`: one folder per picture under --out (target_vs_projection.png, latent.npz, projection.json,
    optionally optimisation.mp4 or .gif); returns the summary lines."""
    from dcgan.core.files import atomic_write, check_output
    from dcgan.core.viz import image_grid, save_gif, save_png, upscale
    from dcgan.evaluation.features import feature_net_for
    from dcgan.tools.handle import load_handle
    from dcgan.tools.latent_files import write_latents
    from dcgan.tools.latents import resolve_classes

    gen = load_handle(args.run, step=args.step, ema=args.use_ema)
    cfg = gen.config
    label = None
    if args.classes is not None:
        if not gen.classes:
            raise DcganError("--class: this run is unconditional; it has no classes")
        picked = resolve_classes(args.classes, gen.classes, gen.checkpoint.run_dir)
        if len(picked) != 1:
            raise DcganError(f"--class {args.classes!r}: give one class (or none, to search them all)")
        label = picked[0]
    paths = [Path(p) for p in args.images]
    targets = {p.stem: read_target(p, cfg) for p in paths}
    if len(set(p.stem for p in paths)) != len(paths):
        raise DcganError("IMAGE: two pictures share a file name; each one's results go into --out/<name>/")
    out = Path(args.out) if args.out else gen.checkpoint.run_dir / "projections"
    taken = [out / name for name in targets if (out / name).exists()]
    if taken and not args.force:
        raise DcganError(f"--out: {taken[0]} exists; pass --force to replace the projection files in it")
    check_output(out, is_dir=True)
    net = feature_net_for(cfg.data, network=cfg.train.feature_network, quiet=args.quiet)
    results = project(gen, net, targets, args.steps, args.starts, args.seed, label, video=bool(args.video))
    lines = []
    for r in results:
        folder = out / r.name
        side = image_grid(np.stack([r.target, r.image]), 1, 2)
        save_png(folder / "target_vs_projection.png", upscale(side, max(1, 128 // r.image.shape[0])))
        write_latents(folder / "latent.npz", r.z[None], None if r.label is None else np.array([r.label]), gen.classes)
        report = {"image": str(paths[list(targets).index(r.name)]), "run": str(gen.checkpoint.run_dir),
                  "step": gen.step, "ema": gen.ema, "feature_network": net.key, "steps": args.steps,
                  "starts": args.starts, "seed": args.seed,
                  "class": None if r.label is None else gen.classes[r.label], **r.distances,
                  "losses": [round(v, 6) for v in r.losses], "seconds": round(r.seconds, 2)}
        atomic_write(folder / "projection.json", json.dumps(report, indent=1) + "\n")
        if args.video:
            frames = [image_grid(np.stack([r.target, f]), 1, 2) for f in r.frames]
            if args.video == "gif":
                save_gif(folder / "optimisation.gif", frames, duration_ms=100)
            else:
                from dcgan.core.video import save_mp4

                save_mp4(folder / "optimisation.mp4", np.stack(frames), fps=10)
        cls = "" if r.label is None else f", class {gen.classes[r.label]}"
        lines.append(f"{folder}: feature distance {r.distances['feature']:.4g}, pixel MSE {r.distances['pixel_mse']:.4g}"
                     f"{cls} ({r.seconds:.1f} s)")
    return "\n".join(lines)
