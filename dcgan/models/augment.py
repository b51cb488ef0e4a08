"""Differentiable augmentation of what the discriminator sees (DiffAugment), and ADA's adaptive probability.

DiffAugment (Zhao et al. 2020) transforms real AND generated images, with differentiable
ops, every time they enter the discriminator, so that D cannot memorise a small training
set and G still gets gradients through the transform. Three ops, on images in [-1, 1]:

    translation  shift by up to 1/8 of the height and width, zero padding
    cutout       a square of half the height and width set to zero, centred anywhere in the image
    color        brightness, saturation (RGB only) and contrast, then clipped to [-1, 1]

Each op is a pure function of the images and per-image uniforms in [0, 1); `Pipeline.draw`
takes those uniforms from a `tf.random.Generator` (the GAN's checkpointed one), so the same
generator state gives the same augmented batch. "Zero" is the middle of the pixel range.

With ADA (Karras et al. 2020) each op of the pipeline is applied per image with probability
p, and `AdaptiveP` moves p after every `interval` steps by sign(r_t - target) * images /
speed, where r_t = E[sign(D(real))] over the interval: a discriminator that calls most real
images real (r_t high) is overfitting, so augment more.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

OPS = ("translation", "cutout", "color")
ADA_DEFAULT = OPS  # what ADA augments when train.augment is empty
UNIFORMS = {"translation": 2, "cutout": 2, "color": 3}  # per image and op


def policy(augment: Sequence[str], adaptive: bool) -> tuple[str, ...]:
    """The ops a run applies: train.augment, or with ADA and an empty list ADA_DEFAULT."""
    return tuple(augment) or (ADA_DEFAULT if adaptive else ())


# ---------------------------------------------------------------- the ops: (images, uniforms [B, k]) -> images


def translation(x, u):
    """Shift each image by whole pixels, up to 1/8 of its size each way; what comes in is 0."""
    h, w = x.shape[1], x.shape[2]
    rows = _shift_matrix(h, u[:, 0], x.dtype)  # [B, H, H]: out row i = in row i - dy
    cols = _shift_matrix(w, u[:, 1], x.dtype)
    x = tf.einsum("bij,bjwc->biwc", rows, x)
    return tf.einsum("bkw,biwc->bikc", cols, x)


def _shift_matrix(n: int, u, dtype):
    """[B, n, n] with a 1 at (i, i - shift): one_hot gives an all-zero row for a source outside the image."""
    reach = n // 8
    shift = tf.clip_by_value(tf.cast(tf.floor(u * (2 * reach + 1)), tf.int32) - reach, -reach, reach)
    return tf.one_hot(tf.range(n)[None, :] - shift[:, None], n, dtype=dtype)


def cutout(x, u):
    """Zero a (H/2 x W/2) square per image, centred anywhere in the image (so it may hang over an edge)."""
    h, w = x.shape[1], x.shape[2]
    inside_rows = _span(h, u[:, 0])
    inside_cols = _span(w, u[:, 1])
    hole = tf.cast(inside_rows[:, :, None] & inside_cols[:, None, :], x.dtype)  # [B, H, W]
    return x * (1.0 - hole)[..., None]


def _span(n: int, u):
    """[B, n] bool: the pixels of a run of n // 2 whose centre is uniform over the n (+1 when the run is even) places."""
    size = n // 2
    places = n + 1 - size % 2
    centre = tf.minimum(tf.cast(tf.floor(u * places), tf.int32), places - 1)
    start = centre - size // 2
    index = tf.range(n)[None, :]
    return (index >= start[:, None]) & (index < start[:, None] + size)


def color(x, u):
    """Brightness +[-0.5, 0.5), saturation x[0, 2) (RGB), contrast x[0.5, 1.5), as DiffAugment; then clip to [-1, 1]."""
    x = x + (u[:, 0] - 0.5)[:, None, None, None]
    if x.shape[-1] > 1:  # one channel has no saturation
        mean = tf.reduce_mean(x, axis=3, keepdims=True)
        x = (x - mean) * (2.0 * u[:, 1])[:, None, None, None] + mean
    mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
    x = (x - mean) * (u[:, 2] + 0.5)[:, None, None, None] + mean
    return tf.clip_by_value(x, -1.0, 1.0)


FUNCTIONS = {"translation": translation, "cutout": cutout, "color": color}


# ---------------------------------------------------------------- a pipeline of ops


class Pipeline:
    """The ops of a policy, in order. adaptive: each op is applied per image with probability p (ADA)."""

    def __init__(self, ops: Sequence[str], adaptive: bool = False):
        unknown = [op for op in ops if op not in FUNCTIONS]
        if unknown or not ops:
            raise ValueError(f"augmentation ops must be some of {', '.join(OPS)}; got {list(ops)}")
        self.ops, self.adaptive = tuple(ops), adaptive
        self.n_uniforms = sum(UNIFORMS[op] for op in self.ops)
        # per image: each op's uniforms, then (ADA) one 0/1 gate per op
        self.n_params = self.n_uniforms + (len(self.ops) if adaptive else 0)

    def draw(self, rng: tf.random.Generator, shape: Sequence[int], p=None):
        """Per-image parameters, [*shape, n_params], from rng (in the order the ops use them). p: ADA's probability."""
        params = rng.uniform([*shape, self.n_uniforms])
        if self.adaptive:
            gates = tf.cast(rng.uniform([*shape, len(self.ops)]) < p, params.dtype)
            params = tf.concat([params, gates], axis=-1)
        return params

    def __call__(self, x, params):
        """Augment images [B, H, W, C] in [-1, 1] with their parameters [B, n_params]."""
        with tf.name_scope("augment"):
            offset = 0
            for i, op in enumerate(self.ops):
                y = FUNCTIONS[op](x, params[:, offset : offset + UNIFORMS[op]])
                offset += UNIFORMS[op]
                if self.adaptive:  # exact: the image as it was or as transformed, no blend
                    x = tf.where(params[:, self.n_uniforms + i, None, None, None] > 0.5, y, x)
                else:
                    x = y
            return x


def augment(x, ops: Sequence[str], rng: tf.random.Generator, p=None):
    """Augment one batch with parameters drawn from rng: the same rng state, the same batch."""
    pipeline = Pipeline(ops, adaptive=p is not None)
    return pipeline(x, pipeline.draw(rng, [tf.shape(x)[0]], p))


# ---------------------------------------------------------------- ADA


class AdaptiveP(tf.Module):
    """ADA's augmentation probability p, in [0, 1], and the overfitting signal it collects.

    Every step adds its r = E[sign(D(real))] (`update`); after `interval` steps, r_t is their mean and
    p += sign(r_t - target) * images / speed, images being the real images D saw meanwhile
    (`images_per_step` each step). All three variables belong in the checkpoint.
    """

    def __init__(self, target: float, interval: int, speed: int, images_per_step: int):
        super().__init__(name="ada")
        self.target, self.interval, self.speed, self.images_per_step = target, interval, speed, images_per_step
        self.p = tf.Variable(0.0, trainable=False, name="p")
        self.sign_sum = tf.Variable(0.0, trainable=False, name="sign_sum")
        self.steps = tf.Variable(0, dtype=tf.int64, trainable=False, name="steps")

    def update(self, real_sign):
        """One step's E[sign(D(real))]; adjusts p when the interval is full. Returns p."""
        with tf.name_scope("ada"):
            self.sign_sum.assign_add(tf.cast(real_sign, tf.float32))
            self.steps.assign_add(1)
            due = self.steps >= self.interval
            steps = tf.cast(self.steps, tf.float32)
            adjusted = adjust(self.p, self.sign_sum / steps, self.target, steps * self.images_per_step, self.speed)
            self.p.assign(tf.where(due, adjusted, self.p))
            self.sign_sum.assign(tf.where(due, 0.0, self.sign_sum))
            self.steps.assign(tf.where(due, tf.constant(0, tf.int64), self.steps))
            return self.p.read_value()


def adjust(p, r_t, target: float, images, speed: int):
    """ADA's rule: p + sign(r_t - target) * images / speed, clipped to [0, 1]."""
    return tf.clip_by_value(p + tf.sign(r_t - target) * tf.cast(images, tf.float32) / speed, 0.0, 1.0)
