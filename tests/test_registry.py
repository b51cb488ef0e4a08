"""The model registry (dcgan.models.registry): a second architecture registered from this file alone trains,
samples, is inspected and exports; unknown names fail in one line before any run directory exists; every network
carries the blocks its builder declared."""

import json

import keras
import numpy as np
import pytest
from keras import layers

from dcgan.core.errors import ConfigError, DcganError
from dcgan.models import registry
from dcgan.models.spec import Block, Built
from helpers import cli_error, run_cli

TWO_BLOCK = ["model.generator.arch=two_block", "model.discriminator.arch=one_block", "train.ema_decay=0.9"]


@registry.register_generator("two_block")
def two_block_generator(cfg, sync_batchnorm, classes):
    """7x7 -> 14 (transposed 4x4, BatchNorm) -> 28 (bilinear resize-convolution): no dcgan layer in it."""
    if classes:
        raise ValueError("two_block is unconditional")
    z = keras.Input((cfg.model.generator.latent_dim,), name="z")
    x = layers.Reshape((7, 7, 4))(layers.Dense(7 * 7 * 4, name="fc")(z))
    x = layers.Conv2DTranspose(4, 4, 2, "same", name="up0")(x)
    x = layers.ReLU(name="act0")(layers.BatchNormalization(name="bn0")(x))
    x = layers.UpSampling2D(2, interpolation="bilinear", name="up1_resize")(x)
    x = layers.ReLU(name="act1")(layers.Conv2D(4, 3, padding="same", name="up1_conv")(x))
    image = layers.Conv2D(cfg.data.channels, 3, padding="same", activation="tanh", name="out")(x)
    blocks = (Block("up0", "transpose", ("up0",), "act0", 14), Block("up1", "upsample", ("up1_resize", "up1_conv"), "act1", 28))
    return Built(keras.Model(z, image, name="generator"), blocks)


@registry.register_discriminator("one_block")
def one_block_discriminator(cfg, sync_batchnorm, classes):
    image = keras.Input((cfg.data.image_size, cfg.data.image_size, cfg.data.channels), name="image")
    x = layers.LeakyReLU(0.2, name="act0")(layers.Conv2D(4, 4, 4, "same", name="down0")(image))
    logit = layers.Dense(1, name="logit")(layers.Flatten()(x))
    return Built(keras.Model(image, logit, name="discriminator"), (Block("down0", "strided_conv", ("down0",), "act0", 7),))


@pytest.fixture(scope="module")
def two_block_run(tmp_path_factory):
    from dcgan.core.config import load_config
    from dcgan.training.loop import train
    from helpers import mnist_sets, write_mnist

    root = tmp_path_factory.mktemp("two-block")
    cfg = load_config(None, [*mnist_sets(write_mnist(root / "mnist")), f"run.dir={root / 'runs'}", "run.name=two",
                             *TWO_BLOCK])
    return train(cfg, quiet=True), cfg


def test_a_registered_architecture_trains_and_its_networks_carry_their_blocks(two_block_run):
    from dcgan.training.gan import run_gan

    run_dir, cfg = two_block_run
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "train"] == [2, 4, 6]
    assert all(np.isfinite(r["d_loss"]) and np.isfinite(r["g_loss"]) for r in records if r["kind"] == "train")
    assert "arch: two_block" in (run_dir / "config.yaml").read_text()
    gan = run_gan(run_dir)
    assert gan.generator.get_layer("up0").kernel_size == (4, 4)
    assert [b.name for b in registry.blocks_of(gan.ema_generator)] == ["up0", "up1"]  # the EMA clone keeps them
    assert registry.spec_of(gan.discriminator).blocks[0].resolution == 7
    assert not registry.is_conditional(gan.generator) and registry.latent_dim(gan.generator) == 8


def test_it_samples_is_inspected_and_exports(two_block_run, tmp_path, capsys):
    from dcgan.tools.sample import latents
    from dcgan.training.checkpoints import find_checkpoint
    from dcgan.tools.handle import load_handle
    from dcgan.models.sampling import generate_images

    run_dir, cfg = two_block_run
    assert run_cli(capsys, "sample", run_dir, "--seeds", "0-3", "--out", tmp_path / "s.npz").status == 0
    with np.load(tmp_path / "s.npz") as f:
        sampled = f["images"]
    gen = load_handle(find_checkpoint(run_dir))
    np.testing.assert_array_equal(sampled, generate_images(gen.model, latents(range(4), 8)))

    status, out, _ = run_cli(capsys, "inspect", run_dir, "--n", "8", "--out", tmp_path / "inspect")
    report = json.loads((tmp_path / "inspect" / "inspect.json").read_text())
    assert status == 0 and [(b["name"], b["mode"], b["size"]) for b in report["blocks"]] == [
        ("up0", "transpose", 14), ("up1", "upsample", 28)]
    assert report["blocks"][0]["layers"] == ["up0"] and report["blocks"][0]["kernel_size"] == 4

    assert run_cli(capsys, "export", run_dir, "--out", tmp_path / "g.keras").status == 0
    loaded = keras.saving.load_model(tmp_path / "g.keras", safe_mode=True)
    z = latents(range(4), 8)
    np.testing.assert_allclose(loaded(z, training=False), gen.model(z, training=False), atol=1e-6)


def test_an_unknown_architecture_is_one_line_naming_the_key_and_the_known_names(tiny_config, mnist_dir, tmp_path, capsys):
    from dcgan.training.gan import GAN
    from helpers import mnist_sets

    with pytest.raises(ConfigError, match=r"^model\.generator\.arch: unknown architecture 'resnet'; registered: dcgan, "):
        GAN(tiny_config("model.generator.arch=resnet"))
    sets = [arg for s in [*mnist_sets(mnist_dir), f"run.dir={tmp_path / 'runs'}", "model.discriminator.arch=nope"]
            for arg in ("--set", s)]
    error = cli_error(capsys, "train", *sets)
    assert "model.discriminator.arch: unknown architecture 'nope'" in error and "one_block" in error
    assert not (tmp_path / "runs").exists()


def test_a_builder_that_breaks_the_contract_is_named(tiny_config):
    @registry.register_generator("wrong_size")
    def wrong_size(cfg, sync_batchnorm, classes):
        z = keras.Input((cfg.model.generator.latent_dim,))
        return Built(keras.Model(z, layers.Reshape((4, 4, 1))(layers.Dense(16)(z))), ())

    with pytest.raises(DcganError, match=r"'wrong_size' builder's network returns shape \(4, 4, 1\), not \(28, 28, 1\)"):
        registry.build_generator(tiny_config("model.generator.arch=wrong_size"))


def test_an_old_config_without_the_keys_is_the_dcgan_architecture(tmp_path):
    from dcgan.core.config import dump_config, load_config

    text = dump_config(load_config(None, []))
    old = tmp_path / "config.yaml"
    old.write_text("\n".join(line for line in text.splitlines() if "arch:" not in line) + "\n")
    cfg = load_config(old, [])
    assert cfg.model.generator.arch == cfg.model.discriminator.arch == "dcgan"
