"""A self-supervised feature network for any dataset: a small encoder trained on the dataset's own images, offline.

SimCLR (Chen et al. 2020): each batch is seen as two random views of every image (a random resized crop, a
horizontal flip, colour jitter); a small CNN encoder and an MLP projection head learn to tell each view's
partner from the other 2N - 2 views (the NT-Xent loss). The encoder's pooled layer (`FEATURE_LAYER`, 256-d)
is the feature space; the head exists only for the loss and is not saved.

Training takes the dataset's training images at SIZE x SIZE (its own channel count), at most MAX_IMAGES of
them (a seeded subset), for `steps()` steps with a fixed seed, so every run of a dataset is scored by the
same encoder. It is cached like the feature classifier: cache_dir()/features/selfsup-<dataset>-<hash>/ with
encoder.keras and info.json (written last: its presence marks a complete entry), the hash covering the
training images, RECIPE_VERSION and the step count. Its scores are named `selfsup-<dataset>-<hash>`: they
compare runs of one dataset with each other, never with Inception FID.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from dcgan.data import pipeline as datalib
from dcgan.core.errors import DcganError
from dcgan.evaluation.cachefiles import DamagedCache, entry_hash, note, read_info
from dcgan.evaluation.featurenet import FEATURE_LAYER, FeatureNet, check_keras_file, content_hash, load_keras, sub_model
from dcgan.core.files import cache_dir, atomic_path, atomic_write

RECIPE_VERSION = 1  # bump when the architecture, the augmentations or the training change: part of the cache key
SIZE = 32  # every dataset is trained (and scored) at 32 x 32
WIDTHS = (32, 64, 128, 256)  # the stride-2 3x3 convolutions; the last one's width is the feature size
PROJECTION = (256, 128)  # the projection head: hidden width, output width
MAX_IMAGES = 50_000  # a seeded subset of a larger training set
BATCH = 256  # images per step (2 x 256 views)
STEPS = 2000  # default step count; tests lower it, and so does $DCGAN_SELFSUP_STEPS
STEPS_ENV = "DCGAN_SELFSUP_STEPS"
LEARNING_RATE = 1e-3
TEMPERATURE = 0.5  # SimCLR's best for CIFAR-10 at small batches
SEED = 0  # fixed: every run of a dataset gets the same encoder, so their scores compare
CROP_SCALE = (0.35, 1.0)  # share of the image's area a random crop keeps
CROP_RATIO = (3 / 4, 4 / 3)  # its aspect ratio
JITTER = 0.4  # brightness, contrast and saturation factors drawn from [1 - JITTER, 1 + JITTER]
JITTER_P = 0.8  # share of views that are colour-jittered
GRAY_P = 0.2  # share of (colour) views turned gray
ENCODER_FILE = "encoder.keras"
INFO_FILE = "info.json"


def steps() -> int:
    """The step count of a new encoder: $DCGAN_SELFSUP_STEPS when set, else STEPS."""
    text = os.environ.get(STEPS_ENV)
    if text is None or not text.strip():
        return STEPS
    try:
        value = int(text.strip())
    except ValueError:
        value = 0
    if value < 1:
        raise DcganError(f"{STEPS_ENV}: {text.strip()[:40]!r} is not a positive whole number of steps")
    return value


# ---------------------------------------------------------------- the model


def build_encoder(channels: int, seed: int = SEED):
    """float32 pixels in [0, 255] at SIZE x SIZE -> a 256-d feature vector (the `features` layer)."""
    import keras
    from keras import layers

    inputs = keras.Input((SIZE, SIZE, channels))
    x = layers.Rescaling(1 / 127.5, offset=-1.0)(inputs)
    for i, width in enumerate(WIDTHS):
        x = layers.Conv2D(width, 3, strides=2, padding="same", use_bias=False,
                          kernel_initializer=keras.initializers.HeNormal(seed=seed * 100 + i))(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
    outputs = layers.GlobalAveragePooling2D(name=FEATURE_LAYER)(x)
    return keras.Model(inputs, outputs, name="selfsup_encoder")


def build_head(seed: int = SEED):
    """The projection head: the loss is taken on its output, the features before it (as in SimCLR)."""
    import keras
    from keras import layers

    inputs = keras.Input((WIDTHS[-1],))
    x = layers.Dense(PROJECTION[0], activation="relu",
                     kernel_initializer=keras.initializers.HeNormal(seed=seed * 100 + 50))(inputs)
    outputs = layers.Dense(PROJECTION[1], kernel_initializer=keras.initializers.GlorotUniform(seed=seed * 100 + 51))(x)
    return keras.Model(inputs, outputs, name="selfsup_head")


# ---------------------------------------------------------------- the views and the loss


def augment(images, seed):
    """One random view of each image: uint8 or float (B, H, W, C) in [0, 255] -> float32 (B, SIZE, SIZE, C) in [0, 255].

    seed: a stateless seed (2 integers); the same seed gives the same view.
    """
    import tensorflow as tf

    x = tf.cast(images, tf.float32) / 255.0
    channels = images.shape[-1]
    b = tf.shape(x)[0]
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 10)

    def uniform(i, low=0.0, high=1.0):
        return tf.random.stateless_uniform([b], seeds[i], low, high)

    # random resized crop: a box of CROP_SCALE of the area and CROP_RATIO aspect, resized to SIZE (bilinear)
    area = uniform(0, *CROP_SCALE)
    ratio = tf.exp(uniform(1, math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1])))
    h = tf.minimum(tf.sqrt(area / ratio), 1.0)
    w = tf.minimum(tf.sqrt(area * ratio), 1.0)
    y0, x0 = uniform(2) * (1.0 - h), uniform(3) * (1.0 - w)
    boxes = tf.stack([y0, x0, y0 + h, x0 + w], axis=1)
    x = tf.image.crop_and_resize(x, boxes, tf.range(b), (SIZE, SIZE))
    # horizontal flip
    flip = uniform(4) < 0.5
    x = tf.where(flip[:, None, None, None], tf.reverse(x, axis=[2]), x)

    # colour jitter (on JITTER_P of the views): brightness, contrast, saturation (colour images only)
    jittered = uniform(5) < JITTER_P

    def factor(i):
        return tf.where(jittered, uniform(i, 1.0 - JITTER, 1.0 + JITTER), 1.0)[:, None, None, None]

    x = x * factor(6)
    mean = tf.reduce_mean(_gray(x), axis=[1, 2, 3], keepdims=True)
    x = (x - mean) * factor(7) + mean
    if channels == 3:
        gray = _gray(x)
        x = gray + (x - gray) * factor(8)
        gray_view = uniform(9) < GRAY_P
        x = tf.where(gray_view[:, None, None, None], tf.broadcast_to(_gray(x), tf.shape(x)), x)
    return tf.clip_by_value(x, 0.0, 1.0) * 255.0


def _gray(x):
    import tensorflow as tf

    if x.shape[-1] == 1:
        return x
    return tf.reduce_sum(x * tf.constant(datalib.LUMA, tf.float32), axis=-1, keepdims=True)


def two_views(images, seed: int, step):
    """The two views of a batch at a training step: `augment` with the seeds (seed, 2 step) and (seed, 2 step + 1)."""
    import tensorflow as tf

    step = tf.cast(step, tf.int64)
    seed = tf.cast(seed, tf.int64)
    return augment(images, tf.stack([seed, 2 * step])), augment(images, tf.stack([seed, 2 * step + 1]))


def nt_xent(z1, z2, temperature: float = TEMPERATURE):
    """SimCLR's loss: view i of z1 must find its partner i of z2 (and back) among the 2N - 1 other views.

    Cosine similarities over `temperature`, each view's own similarity left out; the mean cross-entropy
    of the partner over all 2N views.
    """
    import tensorflow as tf

    z = tf.math.l2_normalize(tf.concat([z1, z2], axis=0), axis=1)
    n = tf.shape(z1)[0]
    logits = tf.matmul(z, z, transpose_b=True) / temperature
    logits = logits - tf.eye(2 * n) * 1e9  # a view is not its own partner
    partners = tf.concat([tf.range(n, 2 * n), tf.range(n)], axis=0)
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=partners, logits=logits))


# ---------------------------------------------------------------- training


def train_encoder(images: np.ndarray, steps: int, seed: int = SEED, batch_size: int = BATCH, quiet: bool = True):
    """Train an encoder on uint8 (N, SIZE, SIZE, C) images; (encoder, losses), deterministic given the seed.

    Each epoch is a seeded permutation of the images cut into batches of min(batch_size, N).
    """
    import keras
    import tensorflow as tf

    if images.ndim != 4 or images.shape[1:3] != (SIZE, SIZE):
        raise ValueError(f"expected uint8 (N, {SIZE}, {SIZE}, C) images, got {images.shape}")
    n = len(images)
    if n < 2:
        raise DcganError(f"a self-supervised encoder needs at least 2 training images, got {n}")
    batch = min(batch_size, n)
    encoder, head = build_encoder(images.shape[-1], seed), build_head(seed)
    variables = encoder.trainable_variables + head.trainable_variables
    optimizer = keras.optimizers.Adam(LEARNING_RATE)
    optimizer.build(variables)

    @tf.function
    def train_step(x, step):
        v1, v2 = two_views(x, seed, step)
        with tf.GradientTape() as tape:
            z = head(encoder(tf.concat([v1, v2], axis=0), training=True), training=True)
            loss = nt_xent(z[:batch], z[batch:])
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    rng = np.random.default_rng(seed)
    order, at, losses = rng.permutation(n), 0, []
    start = time.perf_counter()
    for step in range(steps):
        if at + batch > n:
            order, at = rng.permutation(n), 0
        losses.append(float(train_step(tf.constant(images[np.sort(order[at : at + batch])]), tf.constant(step, tf.int64))))
        at += batch
        if not quiet and (step + 1) % max(1, steps // 10) == 0:
            print(f"features: self-supervised step {step + 1}/{steps}, loss {np.mean(losses[-50:]):.4f} "
                  f"({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)
    return encoder, losses


# ---------------------------------------------------------------- the dataset's encoder, cached


def training_images(data_cfg, seed: int = SEED) -> np.ndarray:
    """The dataset's training images the encoder learns from: uint8 at SIZE x SIZE, at most MAX_IMAGES.

    The whole training split (not data.limit), a seeded subset when larger; a prepared dataset is never
    read whole, only its subset.
    """
    import dataclasses

    whole = dataclasses.replace(data_cfg, limit=None)
    if datalib.streams(data_cfg):
        stream = datalib.load_images(whole, stream=True)
        images = datalib.image_subset(stream, min(MAX_IMAGES, len(stream)), seed)
    else:
        images = datalib.load_images(whole, split="train")
        if len(images) > MAX_IMAGES:
            images = datalib.image_subset(images, MAX_IMAGES, seed)
    return datalib.conform(images, SIZE, images.shape[-1])


def encoder_dir(name: str, images: np.ndarray, n_steps: int) -> Path:
    salt = f"selfsup{RECIPE_VERSION}-steps{n_steps}-seed{SEED}"
    return cache_dir() / "features" / f"selfsup-{name}-{content_hash(images, salt=salt)}"


def train_cached(name: str, images: np.ndarray, n_steps: int | None = None, quiet: bool = False) -> tuple[Path, dict]:
    """The encoder (.keras file) for these training images and its info, trained on first use and cached."""
    n_steps = steps() if n_steps is None else n_steps
    folder = encoder_dir(name, images, n_steps)
    model_file, info_file = folder / ENCODER_FILE, folder / INFO_FILE
    if info_file.exists():
        try:
            check_keras_file(model_file, "self-supervised encoder")
            return model_file, {**read_info(info_file, entry_hash(folder), ("steps",)), "cached": True}
        except (DamagedCache, DcganError) as e:
            note(quiet, f"features: the cached self-supervised encoder in {folder} is damaged ({e}); training it again")
    if not quiet:
        print(f"features: training a self-supervised encoder on {len(images)} images of {name} ({n_steps} steps) -> {folder}",
              file=sys.stderr, flush=True)
    start = time.perf_counter()
    encoder, losses = train_encoder(images, n_steps, quiet=quiet)
    seconds = time.perf_counter() - start
    with atomic_path(model_file) as tmp:
        encoder.save(tmp)
    info = {
        "dataset": name, "hash": entry_hash(folder), "recipe_version": RECIPE_VERSION, "steps": n_steps,
        "batch": min(BATCH, len(images)), "temperature": TEMPERATURE, "seed": SEED, "train_images": len(images),
        "size": SIZE, "channels": int(images.shape[-1]), "final_loss": round(float(np.mean(losses[-50:])), 4),
        "train_seconds": round(seconds, 1), "feature_layer": FEATURE_LAYER,
    }
    atomic_write(info_file, json.dumps(info, indent=2) + "\n")  # written last: its presence marks a complete entry
    return model_file, {**info, "cached": False}


def selfsup_net(data_cfg, quiet: bool = False) -> FeatureNet:
    """The dataset's self-supervised feature network (trained on first use): key selfsup-<dataset>-<hash>."""
    images = training_images(data_cfg)
    model_file, _ = train_cached(data_cfg.name, images, quiet=quiet)
    model = load_keras(model_file, "self-supervised encoder")
    return sub_model(model, FEATURE_LAYER, model_file, key=f"selfsup-{data_cfg.name}-{entry_hash(model_file.parent)}")
