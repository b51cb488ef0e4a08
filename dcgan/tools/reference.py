"""The yardstick: the TensorFlow DCGAN tutorial's model and its minimal train step.

`reference_step` is the smallest correct GAN update there is (one tf.function, two
GradientTapes, plain BCE, Adam, nothing else). The benchmark runs it on the app's
own models to show what the app's loop costs on top; the quality budget runs it
on the tutorial's model and hyper-parameters as the baseline to beat.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers


def tutorial_generator(latent_dim: int = 100) -> keras.Model:
    """Dense -> 7x7x256, Conv2DTranspose 5x5 128 (stride 1) / 64 / 1, as the tutorial."""
    return keras.Sequential([
        keras.Input((latent_dim,)),
        layers.Dense(7 * 7 * 256, use_bias=False), layers.BatchNormalization(), layers.LeakyReLU(),
        layers.Reshape((7, 7, 256)),
        layers.Conv2DTranspose(128, 5, strides=1, padding="same", use_bias=False), layers.BatchNormalization(), layers.LeakyReLU(),
        layers.Conv2DTranspose(64, 5, strides=2, padding="same", use_bias=False), layers.BatchNormalization(), layers.LeakyReLU(),
        layers.Conv2DTranspose(1, 5, strides=2, padding="same", use_bias=False, activation="tanh"),
    ], name="tutorial_generator")


def tutorial_discriminator() -> keras.Model:
    """Conv 64 / 128 5x5 stride 2, LeakyReLU, dropout 0.3, one logit, as the tutorial."""
    return keras.Sequential([
        keras.Input((28, 28, 1)),
        layers.Conv2D(64, 5, strides=2, padding="same"), layers.LeakyReLU(), layers.Dropout(0.3),
        layers.Conv2D(128, 5, strides=2, padding="same"), layers.LeakyReLU(), layers.Dropout(0.3),
        layers.Flatten(), layers.Dense(1),
    ], name="tutorial_discriminator")


TUTORIAL_HPARAMS = {"lr": 1e-4, "beta1": 0.9, "batch_size": 256}


def reference_step(generator, discriminator, g_optimizer, d_optimizer, latent_dim: int):
    """A compiled train step: images (B, H, W, C) in [-1, 1] -> (g_loss, d_loss)."""
    bce = keras.losses.BinaryCrossentropy(from_logits=True)

    @tf.function
    def step(images):
        noise = tf.random.normal([tf.shape(images)[0], latent_dim])
        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            fake = generator(noise, training=True)
            real_out = discriminator(images, training=True)
            fake_out = discriminator(fake, training=True)
            g_loss = bce(tf.ones_like(fake_out), fake_out)
            d_loss = bce(tf.ones_like(real_out), real_out) + bce(tf.zeros_like(fake_out), fake_out)
        g_grads = g_tape.gradient(g_loss, generator.trainable_variables)
        d_grads = d_tape.gradient(d_loss, discriminator.trainable_variables)
        g_optimizer.apply_gradients(zip(g_grads, generator.trainable_variables))
        d_optimizer.apply_gradients(zip(d_grads, discriminator.trainable_variables))
        return g_loss, d_loss

    return step


def train_reference(images, seconds: float, seed: int = 0, latent_dim: int = 100) -> tuple[keras.Model, int]:
    """The tutorial's model and hyper-parameters, trained by reference_step for a wall-clock budget.

    Returns (generator, steps). Data order comes from the app's own pipeline, so
    the two differ only in model, hyper-parameters and loop.
    """
    import time

    from dcgan.data.pipeline import make_dataset, to_float

    keras.utils.set_random_seed(seed)
    gen, disc = tutorial_generator(latent_dim), tutorial_discriminator()
    hp = TUTORIAL_HPARAMS
    step = reference_step(gen, disc, keras.optimizers.Adam(hp["lr"], beta_1=hp["beta1"]),
                          keras.optimizers.Adam(hp["lr"], beta_1=hp["beta1"]), latent_dim)
    batches = iter(make_dataset(images, hp["batch_size"], seed).map(lambda x: to_float(x[:, 0])))
    start, steps = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        step(next(batches))
        steps += 1
    return gen, steps
