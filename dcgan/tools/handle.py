"""A trained generator alone, for programs and notebooks: `dcgan.load` and `dcgan sample` read runs through it.

Only the generator that pictures come from is built and restored (no discriminator, no optimizers, no
second copy): the checkpoint is read through a `tf.train.Checkpoint` holding just that model, so sampling
costs the generator's memory and nothing else. Which copy: the EMA copy (ema=True), the raw generator
(ema=False), or the one the run chose at that checkpoint (None; train.select_sampler records it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from dcgan.core.config import Config
from dcgan.core.errors import DcganError, first_line
from dcgan.models.networks import build_generator
from dcgan.models.sampling import generate_images
from dcgan.tools.latents import (DEFAULT_SEEDS, check_n, check_truncation, default_seeds, in_classes, latents,
                                 parse_seeds, resolve_classes, walk)
from dcgan.training.checkpoints import Checkpoint, find_checkpoint
from dcgan.training.gan import dtype_policy
from dcgan.training.rundir import read_classes, read_run_config

DEFAULT_FRAMES = 16


@dataclass
class GeneratorHandle:
    """One generator of a run's checkpoint, with what a caller needs to feed it."""

    model: object  # keras.Model: z (and an int32 label when conditional) -> images in [-1, 1]
    config: Config  # the run's
    checkpoint: Checkpoint
    ema: bool  # the EMA copy (else the raw generator)
    chosen: bool  # the copy the run chose for this checkpoint, not one the caller asked for
    classes: list[str] | None = None  # a conditional run's class names (index = label)

    @property
    def latent_dim(self) -> int:
        return self.config.model.generator.latent_dim

    @property
    def step(self) -> int:
        return self.checkpoint.step

    def describe(self) -> str:
        return describe_copy(self.checkpoint.step, self.ema, self.chosen)

    def __call__(self, z, labels=None) -> tf.Tensor:
        """Float images in [-1, 1] for latents z (and a conditional run's labels), differentiable in z."""
        if (labels is not None) != bool(self.classes):
            raise DcganError("a conditional generator takes one label per latent; an unconditional one takes none"
                             if self.classes else "this run is unconditional: it takes no labels")
        z = tf.convert_to_tensor(z, tf.float32)
        return self.model(z if labels is None else [z, tf.cast(tf.convert_to_tensor(labels), tf.int32)], training=False)

    def labels(self, classes) -> list[int] | None:
        """Class names or indices (a list, one of them, or a --class text like '0-3,sneaker') -> labels; None: all."""
        if classes is None or isinstance(classes, str):
            return resolve_classes(classes, self.classes, self.checkpoint.run_dir)
        picks = [classes] if isinstance(classes, (int, np.integer)) else list(classes)
        return [label for pick in picks for label in resolve_classes(str(pick), self.classes, self.checkpoint.run_dir)]

    def generate(self, z: np.ndarray, labels: np.ndarray | None = None, batch_size: int = 500) -> np.ndarray:
        """uint8 NHWC images for latents z (and one label each, conditional), in batches."""
        return generate_images(self.model, z, labels=labels, batch_size=batch_size)

    def sample(self, n: int | None = None, seeds=None, classes=None, truncation: float | None = None,
               batch_size: int = 500) -> np.ndarray:
        """uint8 NHWC images, one per seed (and class, class-major), equal to `dcgan sample --out FILE.npz`'s.

        seeds: a list of ints or a text like '0-15,42'; n: seeds 0..n-1; neither: 64 seeds, or 8 in each class.
        classes: names, indices or a --class text (None: every class of a conditional run).
        """
        labels = self.labels(classes)
        z = latents(choose_seeds(n, seeds, labels), self.latent_dim, checked_truncation(truncation))
        return self.generate(*in_classes(z, labels), batch_size=batch_size)

    def walk(self, seeds=(0, 1), frames: int = DEFAULT_FRAMES, classes=None, truncation: float | None = None,
             batch_size: int = 500) -> np.ndarray:
        """A spherical walk through the seeds' latents: (len(seeds) - 1) * frames + 1 uint8 frames, as
        `dcgan sample --interpolate` draws them. A conditional run walks within one class."""
        chosen = parse_seeds(seeds) if isinstance(seeds, str) else [int(s) for s in seeds]
        if len(chosen) < 2 or frames < 1:
            raise DcganError(f"a walk needs at least 2 seeds and 1 frame per segment, got {len(chosen)} and {frames}")
        labels = self.labels(classes)
        if labels is not None and len(labels) != 1:
            raise DcganError(f"a walk stays within one class of a conditional run, not {len(labels)}: give one class")
        z = walk(latents(chosen, self.latent_dim, checked_truncation(truncation)), frames)
        return self.generate(*in_classes(z, labels), batch_size=batch_size)

    def class_walk(self, seed: int, classes=(0, 1), frames: int = DEFAULT_FRAMES, truncation: float | None = None) -> np.ndarray:
        """One latent (the seed's) walked from one class of a conditional run to another: frames + 1 uint8 images.

        Frame t draws the label (1 - t) * onehot(a) + t * onehot(b): every class embedding of the generator (the
        label joined to z, conditional BatchNorm's gammas and betas) is that mix of its two rows. The rows are
        written in place for each frame and restored after, so a handle must not draw elsewhere meanwhile.
        """
        import keras

        picks = [label for pick in classes for label in self.labels(str(pick))] if self.classes else []
        if len(picks) != 2 or frames < 1:
            raise DcganError("a class walk needs a conditional run, two classes and at least 1 frame")
        a, b = picks
        z = latents([seed], self.latent_dim, checked_truncation(truncation))
        tables = [layer.embeddings for layer in self.model.layers if isinstance(layer, keras.layers.Embedding)]
        saved = [table.numpy() for table in tables]
        out = []
        try:
            for t in np.linspace(0.0, 1.0, frames + 1, dtype=np.float32):
                for table, rows in zip(tables, saved):
                    mixed = rows.copy()
                    mixed[a] = (1 - t) * rows[a] + t * rows[b]
                    table.assign(mixed)
                out.append(self.generate(z, np.array([a], np.int32)))
        finally:
            for table, rows in zip(tables, saved):
                table.assign(rows)
        return np.concatenate(out)


def describe_copy(step: int, ema: bool, chosen: bool) -> str:
    """'ckpt-900 (EMA generator, the run's choice)': which generator of which checkpoint pictures come from."""
    whose = ", the run's choice" if chosen else ""
    return f"ckpt-{step} ({'EMA' if ema else 'raw'} generator{whose})"


def choose_seeds(n: int | None, seeds, labels: list[int] | None) -> list[int]:
    if n is not None and seeds is not None:
        raise DcganError("give seeds or n, not both")
    if n is not None:
        check_n(n)
        return list(range(n))
    if seeds is None:
        return default_seeds(labels) if labels is not None else list(range(DEFAULT_SEEDS))
    return parse_seeds(seeds) if isinstance(seeds, str) else [int(s) for s in seeds]


def checked_truncation(truncation: float | None) -> float:
    truncation = 1.0 if truncation is None else float(truncation)
    check_truncation(truncation)
    return truncation


def load_handle(target: str | Path | Checkpoint, step: int | None = None, ema: bool | None = None,
                cfg: Config | None = None) -> GeneratorHandle:
    """The generator of a run's latest checkpoint (or `step`'s, or a checkpoint path's), restored alone.

    cfg: the run's config when the caller has read it already.
    """
    checkpoint = target if isinstance(target, Checkpoint) else find_checkpoint(target, step)
    cfg = cfg or read_run_config(checkpoint.run_dir)
    classes = read_classes(checkpoint.run_dir, cfg) if cfg.model.generator.condition != "none" else None
    has_ema = cfg.train.ema_decay > 0
    chosen = ema is None and has_ema
    use_ema = has_ema and (run_chose_ema(checkpoint.path) if ema is None else ema)
    with dtype_policy(cfg.train.mixed_precision):
        model = build_generator(cfg, classes=len(classes) if classes else 0)
    restore_only(checkpoint.path, **{"ema_generator" if use_ema else "generator": model})
    return GeneratorHandle(model, cfg, checkpoint, ema=use_ema, chosen=chosen, classes=classes)


def run_chose_ema(path: str) -> bool:
    """The copy the run recorded for this checkpoint; one written before runs chose samples from the EMA copy."""
    choice = tf.Variable(True, trainable=False)
    try:
        saved = {name.split("/", 1)[0] for name, _ in tf.train.list_variables(path)}
    except (tf.errors.OpError, ValueError, IndexError) as e:
        raise DcganError(f"cannot restore checkpoint {path}: {first_line(e)}") from None
    if "sample_from_ema" in saved:
        restore_only(path, sample_from_ema=choice)
    return bool(choice.numpy())


def restore_only(path: str, **objects) -> None:
    """Restore these entries of a checkpoint (named as GAN.checkpointed names them), insisting each is whole."""
    try:
        # expect_partial: the rest of the checkpoint (D, optimizers, the other copy) is left unread on purpose
        tf.train.Checkpoint(**objects).restore(path).expect_partial().assert_existing_objects_matched()
    except (tf.errors.OpError, AssertionError, ValueError, IndexError) as e:  # IndexError: a truncated data file
        raise DcganError(f"cannot restore checkpoint {path}: {first_line(e)}") from None


def serving_endpoint(model):
    """The function the SavedModel serves and its input signature: z, and a conditional generator's labels."""
    import tensorflow as tf

    from dcgan.models.registry import is_conditional

    z = tf.TensorSpec([None, model.inputs[0].shape[-1]], tf.float32, name="z")
    if is_conditional(model):
        label = tf.TensorSpec([None], tf.int32, name="label")
        return (lambda z, label: model([z, label], training=False)), [z, label]
    return (lambda z: model(z, training=False)), [z]
