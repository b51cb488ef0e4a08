"""The GAN's state: models, optimizers, the compiled step, and everything a checkpoint holds.

`GAN` holds the generator, the discriminator, the generator's EMA copy, both
optimizers and all state a checkpoint needs (weights, optimizer moments, step,
RNG state, fixed noise, which copy samples, and with augmentation its RNG and ADA's
p). A conditional GAN (model.*.condition) also knows its classes: real images come with their labels, fake
labels are drawn balanced from the checkpointed RNG, and both networks take (input, label). Its step for d_steps = 1 is the classic simultaneous update (one generator
forward pass feeds both tapes, as in the TensorFlow DCGAN tutorial); for d_steps > 1
the extra discriminator updates come first. Every image D sees, real or generated,
goes through the run's augmentation (dcgan.models.augment) when it has one; the R1 penalty,
when on, joins D's loss; the spectral term (train.spectral_weight), when on, joins G's
and compares the un-augmented images. G and D come from the model registry (model.*.arch). `restore`
(dcgan.training.restoring) loads a checkpoint into it; `generate_images` (dcgan.models.sampling) draws pictures.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from dcgan.models import augment
from dcgan.data import pipeline as datalib
from dcgan.core.config import Config
from dcgan.training.distribute import check_strategy
from dcgan.training.microbatch import in_micro_batches
from dcgan.core.errors import DcganError
from dcgan.models.losses import discriminator_loss, generator_loss, r1_penalty, spectral_loss
from dcgan.models.batchnorm import BatchNormRecalibration
from dcgan.models.networks import balanced_labels, build_discriminator, build_generator, clone_generator
from dcgan.models.registry import check_arch
from dcgan.training.rundir import read_classes, read_run_config

RECALIBRATION_BATCH = 512


class GAN(tf.Module):
    """Models, optimizers and training state, checkpointable as one object."""

    def __init__(self, cfg: Config, strategy: tf.distribute.Strategy | None = None, classes: list[str] | None = None):
        """classes: a conditional config's class names (index = label), from its data or its run's classes.json."""
        super().__init__(name="gan")
        check_arch(cfg)  # before any model is built or folder made
        self.cfg = cfg
        self.classes = list(classes) if cfg.model.generator.condition != "none" and classes else None
        if cfg.model.generator.condition != "none" and not self.classes:
            raise DcganError("model.generator.condition: a conditional model needs class labels, and none were given")
        self.num_classes = len(self.classes) if self.classes else 0
        self.strategy = strategy or tf.distribute.get_strategy()
        check_strategy(cfg, self.strategy)
        t = cfg.train
        keras.utils.set_random_seed(t.seed)  # weights are initialised from it
        # one replica: plain BatchNorm (synchronising it would only change how the moments are computed)
        sync_bn = cfg.distribute.sync_batchnorm and self.strategy.num_replicas_in_sync > 1
        with self.strategy.scope(), dtype_policy(t.mixed_precision):
            self.generator = build_generator(cfg, sync_batchnorm=sync_bn, classes=self.num_classes)
            self.discriminator = build_discriminator(cfg, sync_batchnorm=sync_bn, classes=self.num_classes)
            self.ema_generator = clone_generator(self.generator) if t.ema_decay > 0 else None
        with self.strategy.scope():
            self.g_optimizer = make_optimizer(t.lr_g, t)
            self.d_optimizer = make_optimizer(t.lr_d, t)
            self.g_optimizer.build(self.generator.trainable_variables)
            self.d_optimizer.build(self.discriminator.trainable_variables)
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
            self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
            self.skipped_steps = tf.Variable(0, dtype=tf.int64, trainable=False, name="skipped_steps")
            self.first_nonfinite_step = tf.Variable(-1, dtype=tf.int64, trainable=False, name="first_nonfinite_step")
            # set by any update of this step that was skipped (d_steps > 1 has several): the step counts once
            self.step_skipped = tf.Variable(False, trainable=False, name="step_skipped")
            self.rng = tf.random.Generator.from_seed(t.seed)
            # augmentation draws from its own stream, so turning it on changes no latent and no dropout mask
            adaptive = t.ada_target is not None
            ops = augment.policy(t.augment, adaptive)
            self.augmenter = augment.Pipeline(ops, adaptive) if ops else None
            self.augment_rng = tf.random.Generator.from_seed(t.seed + 2**32) if ops else None
            self.ada = augment.AdaptiveP(t.ada_target, t.ada_interval, t.ada_speed, cfg.data.batch_size * t.d_steps) if adaptive else None
        # the fixed-noise grid: sample_grid x sample_grid, or for a conditional GAN one row per class, each row the
        # same sample_grid latents (a column is one style in every class)
        rows, cols = self.grid_shape
        noise = tf.random.stateless_normal([cols if self.num_classes else rows * cols, cfg.model.generator.latent_dim], seed=[t.seed, 1])
        self.fixed_noise = tf.Variable(tf.tile(noise, [rows, 1]) if self.num_classes else noise, trainable=False, name="fixed_noise")
        self.fixed_labels = np.repeat(np.arange(self.num_classes, dtype=np.int32), cols) if self.num_classes else None
        # which copy pictures come from; saved with each checkpoint, since the better copy changes as training goes
        self.sample_from_ema = tf.Variable(self.ema_generator is not None, trainable=False, name="sample_from_ema")
        self.checkpointed = dict(
            generator=self.generator, discriminator=self.discriminator, g_optimizer=self.g_optimizer,
            d_optimizer=self.d_optimizer, step=self.step, epoch=self.epoch, rng=self.rng,
            fixed_noise=self.fixed_noise, skipped_steps=self.skipped_steps, layer_seeds=self._layer_seeds(),
            **({"ema_generator": self.ema_generator, "sample_from_ema": self.sample_from_ema} if self.ema_generator is not None else {}),
            **({"augment_rng": self.augment_rng} if self.augment_rng is not None else {}),
            **({"ada": self.ada} if self.ada is not None else {}),
        )
        self.checkpoint = tf.train.Checkpoint(**self.checkpointed)
        # the EMA copy's BatchNorm statistics, measured a bounded chunk of latents at a time; traced once
        self._recalibration = BatchNormRecalibration(self.ema_generator) if self.ema_generator is not None else None
        # XLA is chosen per run, so the update it compiles is wrapped here; train_step is the graph either way
        self._update = tf.function(self._update_all, jit_compile=True, autograph=False) if t.jit_compile else self._update_all

    def _layer_seeds(self) -> dict:
        """Dropout's seed-generator states: Keras tracks them, tf.train.Checkpoint does not."""
        models = [m for m in (self.generator, self.discriminator) if m is not None]
        return {f"{m.name}/{layer.name}": layer.seed_generator.state
                for m in models for layer in m.layers if getattr(layer, "seed_generator", None) is not None}

    @property
    def grid_shape(self) -> tuple[int, int]:
        """(rows, columns) of the fixed-noise grid."""
        n = self.cfg.train.sample_grid
        return (self.num_classes or n, n)

    def balanced_labels(self, n: int) -> np.ndarray | None:
        """0, 1, ..., K-1, 0, 1, ...: n labels as evenly spread over the classes as n allows (None: unconditional)."""
        return balanced_labels(n, self.num_classes) if self.num_classes else None

    # ------------------------------------------------------------ the step

    def sampling_generator(self, use_ema: bool | None = None):
        """The generator pictures come from: the EMA copy (True), the raw one (False), or (None) the copy the run
        chose, which is the EMA copy unless the sampler choice found the raw generator better; raw when there is no EMA."""
        if use_ema is None:
            use_ema = bool(self.sample_from_ema.numpy())
        return self.ema_generator if use_ema and self.ema_generator is not None else self.generator

    # autograph off: the step's Python control flow is over config values and its tensor branches are explicit
    # tf.cond, so conversion changes no op; it only cost ~1.4 s of every run's first step (the same losses either way)
    @tf.function(autograph=False)
    def train_step(self, real):
        """One step: d_steps discriminator updates, one generator update, the EMA. Traced once per run.

        real: (global_batch, d_steps, H, W, C), or for a conditional GAN (images, labels) with labels
        (global_batch, d_steps). Returns the step's mean losses.
        """
        return self._update(real)

    def _update_all(self, real):
        # The latents of the whole global batch are drawn here, in cross-replica context, and each replica
        # takes its slice: inside strategy.run a tf.random.Generator gives every replica its own stream, so
        # the noise (and with it every loss) would depend on the replica count. Drawn once per global batch,
        # one device and N replicas see the same numbers for the same seed.
        # The augmentation's parameters follow the same rule: [global batch, d_steps, real/fake, params].
        t = self.cfg.train
        latents = self.rng.normal([self.cfg.data.batch_size, t.d_steps, self.cfg.model.generator.latent_dim])
        extras = {}
        if self.num_classes:
            extras["fake_labels"] = balanced_fake_labels(self.rng, self.cfg.data.batch_size, t.d_steps, self.num_classes)
        if self.augmenter is not None:
            with tf.name_scope("augment_params"):
                extras["augment"] = self.augmenter.draw(self.augment_rng, [self.cfg.data.batch_size, t.d_steps, 2],
                                                        p=self.ada.p if self.ada is not None else None)
        if t.r1_gamma > 0 and t.r1_every > 1:
            extras["r1_now"] = tf.equal(self.step % t.r1_every, 0)  # steps 1, k + 1, 2k + 1, ...
        self.step_skipped.assign(False)
        logs = self.strategy.run(self._replica_step, args=(real, latents, extras))
        logs = {k: self.strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in logs.items()}
        self.skipped_steps.assign_add(tf.cast(self.step_skipped, tf.int64))
        if self.ada is not None:
            logs["ada_p"] = self.ada.update(logs["d_real_sign"])
        if self.ema_generator is not None:
            self._update_ema()
        self.step.assign_add(1)
        return logs

    def _replica_step(self, real, latents, extras):
        t = self.cfg.train
        real, real_labels = real if isinstance(real, (tuple, list)) else (real, None)
        if real.dtype == tf.uint8:  # the pipeline ships pixels as bytes: scaling here is free, there it is not
            real = datalib.to_float(real)
        global_batch = self.cfg.data.batch_size
        replicas = tf.distribute.get_replica_context().num_replicas_in_sync
        batch = tf.shape(real)[0]
        real_target = 1.0 - t.label_smoothing
        # this replica's rows, in the order experimental_distribute_dataset splits the real batch
        replica = tf.cast(tf.distribute.get_replica_context().replica_id_in_sync_group, tf.int32)
        inputs = dict(real=real, real_labels=real_labels, latents=latents[replica * batch : (replica + 1) * batch])
        inputs["params"] = extras["augment"][replica * batch : (replica + 1) * batch] if "augment" in extras else None
        inputs["fake_labels"] = extras["fake_labels"][replica * batch : (replica + 1) * batch] if "fake_labels" in extras else None
        rows = global_batch // replicas
        parts = max(rows // t.micro_batch, 1) if t.micro_batch else 1  # the config and strategy checks make it exact
        d_vars, g_vars = self.discriminator.trainable_variables, self.generator.trainable_variables

        def gen(x, i):  # update i's generated images
            z = x["latents"][:, i]
            return self.generator(z if x["fake_labels"] is None else [z, x["fake_labels"][:, i]], training=True)

        def disc(images, labels, i):  # D's logits for update i's real or generated images, with their labels
            return self.discriminator(images if labels is None else [images, labels[:, i]], training=True)

        def average(per_example):
            return tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)

        def seen(x, images, i, which):  # what D sees of update i's real (0) or generated (1) images
            return images if x["params"] is None else self.augmenter(images, x["params"][:, i, which])

        def with_r1(x, d_loss, real_in, i):  # D's loss plus the R1 term (this replica's share of the batch mean)
            if t.r1_gamma == 0:
                return d_loss
            with tf.name_scope("r1"):
                def term():
                    return average(0.5 * t.r1_gamma * t.r1_every * r1_penalty(lambda y: disc(y, x["real_labels"], i), real_in))
                return d_loss + (term() if t.r1_every == 1 else tf.cond(extras["r1_now"], term, lambda: tf.constant(0.0)))

        def real_sign(logits):  # the overfitting signal: how many real images D calls real, in [-1, 1]
            return average(tf.sign(tf.reshape(tf.cast(logits, tf.float32), [-1])))

        def extra_d_update(i):  # an extra discriminator update's gradients on (a micro-batch of) the batch
            def update(x):
                fake = gen(x, i)
                with tf.GradientTape() as tape:
                    real_in = seen(x, x["real"][:, i], i, 0)
                    real_logits = disc(real_in, x["real_labels"], i)
                    d_loss = average(discriminator_loss(t.loss, real_logits, disc(seen(x, fake, i, 1), x["fake_labels"], i), real_target))
                    d_total = with_r1(x, d_loss, real_in, i)
                    scaled = self._scale(self.d_optimizer, d_total)
                return [tape.gradient(scaled, d_vars)], {"d_total": d_total, "sign": real_sign(real_logits)}
            return update

        signs = []
        for i in range(t.d_steps - 1):  # extra discriminator updates (unrolled: d_steps is static)
            (d_grads,), out = in_micro_batches(extra_d_update(i), inputs, rows, parts)
            self._apply(self.d_optimizer, d_grads, d_vars, out["d_total"])
            signs.append(out["sign"])

        last = t.d_steps - 1

        def last_update(x):  # the simultaneous D and G update's gradients on (a micro-batch of) the batch
            with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
                fake = gen(x, last)
                real_in = seen(x, x["real"][:, -1], last, 0)
                real_logits = disc(real_in, x["real_labels"], last)
                fake_logits = disc(seen(x, fake, last, 1), x["fake_labels"], last)
                d_loss = average(discriminator_loss(t.loss, real_logits, fake_logits, real_target))
                g_loss = average(generator_loss(t.loss, fake_logits))
                with g_tape.stop_recording():  # the generator's gradient never needs it
                    d_total = with_r1(x, d_loss, real_in, last)
                g_total, out = g_loss, {}
                if t.spectral_weight > 0:  # on the un-augmented images: augmentation would put its own edges in the spectrum
                    with d_tape.stop_recording(), tf.name_scope("spectral"):
                        # this replica's (micro-)batch against its real images, its share of the mean over replicas and parts
                        out["spectral"] = spectral_loss(fake, x["real"][:, -1]) / (replicas * parts)
                        g_total = g_loss + t.spectral_weight * out["spectral"]
                d_scaled, g_scaled = self._scale(self.d_optimizer, d_total), self._scale(self.g_optimizer, g_total)
            grads = [d_tape.gradient(d_scaled, d_vars), g_tape.gradient(g_scaled, g_vars)]
            out.update(d_loss=d_loss, g_loss=g_loss, total=d_total + g_total, sign=real_sign(real_logits),
                       d_real=average(tf.sigmoid(tf.reshape(tf.cast(real_logits, tf.float32), [-1]))),
                       d_fake=average(tf.sigmoid(tf.reshape(tf.cast(fake_logits, tf.float32), [-1]))))
            return grads, out

        (d_grads, g_grads), out = in_micro_batches(last_update, inputs, rows, parts)
        self._apply(self.d_optimizer, d_grads, d_vars, out["total"])
        self._apply(self.g_optimizer, g_grads, g_vars, out["total"])
        signs.append(out["sign"])
        logs = {
            "d_loss": out["d_loss"],  # the adversarial loss: without the R1 term, comparable with and without it
            "g_loss": out["g_loss"],
            "d_real": out["d_real"],
            "d_fake": out["d_fake"],
            "d_real_sign": tf.add_n(signs) / len(signs),  # over all of the step's discriminator updates
        }
        if "spectral" in out:
            logs["spectral"] = out["spectral"]  # unweighted: the term before train.spectral_weight scales it
        return logs

    @staticmethod
    def _scale(optimizer, loss):
        """float16 needs loss scaling; the LossScaleOptimizer unscales in apply_gradients."""
        return optimizer.scale_loss(loss) if isinstance(optimizer, keras.optimizers.LossScaleOptimizer) else loss

    def _apply(self, optimizer, grads, variables, loss):
        """Apply gradients only when the (all-replica) loss is finite; remember the first bad step."""
        context = tf.distribute.get_replica_context()
        finite = tf.math.is_finite(context.all_reduce(tf.distribute.ReduceOp.SUM, loss))

        def apply(grads):
            optimizer.apply_gradients(zip(grads, variables))
            return tf.constant(True)

        def skip():
            self.step_skipped.assign(True)
            self.first_nonfinite_step.assign(tf.where(self.first_nonfinite_step < 0, self.step + 1, self.first_nonfinite_step))
            return tf.constant(False)

        if tf.__internal__.distribute.strategy_supports_no_merge_call():
            tf.cond(finite, lambda: apply(grads), skip)
            return

        # MirroredStrategy: a cond in replica context must not hold the optimizer's gradient all-reduce (a
        # merge_call), so branch in cross-replica context and apply per replica there, as keras'
        # LossScaleOptimizer does. `finite` is all-reduced: every replica holds the same value. The
        # gradients travel through merge_call's args so that each replica applies its own.
        def branch(distribution, finite, grads):
            def apply_all():
                distribution.extended.call_for_each_replica(apply, args=(grads,))
                return tf.constant(True)

            tf.cond(distribution.experimental_local_results(finite)[0], apply_all, skip)

        context.merge_call(branch, args=(finite, grads))

    def _update_ema(self):
        t = self.cfg.train
        decay = tf.constant(t.ema_decay, tf.float32)
        if t.ema_warmup > 0:  # average over a window that grows from nothing: early weights are noise
            ramp = tf.minimum(tf.cast(self.step, tf.float32) / t.ema_warmup, 1.0)
            decay = decay * ramp
        for ema_var, var in zip(self.ema_generator.trainable_variables, self.generator.trainable_variables):
            ema_var.assign(decay * ema_var + (1.0 - decay) * var)

    def state_arrays(self) -> list[np.ndarray]:
        """Every value a checkpoint holds, in a fixed order (for equality checks)."""
        models = [m for m in (self.generator, self.discriminator, self.ema_generator) if m is not None]
        variables = [v for m in models for v in m.variables]
        variables += list(self.g_optimizer.variables) + list(self.d_optimizer.variables)
        variables += [self.step, self.rng.state, self.fixed_noise, self.sample_from_ema]
        if self.augment_rng is not None:
            variables.append(self.augment_rng.state)
        if self.ada is not None:
            variables += [self.ada.p, self.ada.sign_sum, self.ada.steps]
        return [np.asarray(v.numpy() if hasattr(v, "numpy") else v) for v in variables]

    # ------------------------------------------------------------ pictures

    def recalibrate_ema(self) -> None:
        if self.ema_generator is not None:
            z = tf.random.stateless_normal([RECALIBRATION_BATCH, self.cfg.model.generator.latent_dim], seed=[self.cfg.train.seed, 2])
            labels = self.balanced_labels(RECALIBRATION_BATCH)  # every class's share of BatchNorm's statistics
            self._recalibration(z if labels is None else [z, labels])


def balanced_fake_labels(rng: tf.random.Generator, batch: int, d_steps: int, classes: int):
    """int32 (batch, d_steps): every class in turn from a random start, so each class gets its share of every
    step to within one image (uniform draws leave some class out of a 64-image batch of 10 classes about once in 85 steps)."""
    start = rng.uniform([], 0, classes, dtype=tf.int64)
    labels = (tf.range(batch * d_steps, dtype=tf.int64) + start) % classes
    return tf.transpose(tf.reshape(tf.cast(labels, tf.int32), [d_steps, batch]))


@contextlib.contextmanager
def dtype_policy(mixed_precision: str):
    """Build layers under a mixed-precision policy, then restore the global one."""
    previous = keras.mixed_precision.dtype_policy()
    if mixed_precision != "none":
        keras.mixed_precision.set_dtype_policy(f"mixed_{mixed_precision}")
    try:
        yield
    finally:
        keras.mixed_precision.set_dtype_policy(previous)


def make_optimizer(learning_rate: float, t) -> keras.optimizers.Optimizer:
    optimizer = keras.optimizers.Adam(learning_rate, beta_1=t.beta1, beta_2=t.beta2)
    if t.mixed_precision == "float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


# ---------------------------------------------------------------- checkpoints


def run_gan(run_dir: Path, cfg=None) -> GAN:
    """A fresh GAN shaped like a run's (its config.yaml, or cfg when the caller has read it; its classes.json)."""
    cfg = cfg or read_run_config(run_dir)
    return GAN(cfg, classes=read_classes(run_dir, cfg))
