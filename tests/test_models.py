import keras
import numpy as np
import pytest
import tensorflow as tf

from dcgan.core.config import load_config
from dcgan.models.layers import Blur, MinibatchStd
from dcgan.models.networks import ICNR, DepthToSpace, build_discriminator, build_generator, channel_plan, recalibrate_batchnorm

SHAPES = [(28, 1), (32, 3), (64, 3)]
LAYER_OF_MODE = {"transpose": keras.layers.Conv2DTranspose, "upsample": keras.layers.UpSampling2D, "subpixel": DepthToSpace}


def cfg_for(size, channels, *overrides):
    name = "cifar10" if channels == 3 else "mnist"
    return load_config(None, [f"data.name={name}", f"data.image_size={size}", f"data.channels={channels}",
                              "model.generator.base_channels=8", "model.discriminator.base_channels=8", *overrides])


@pytest.mark.parametrize("size, channels", SHAPES)
@pytest.mark.parametrize("mode", ["transpose", "upsample", "subpixel"])
def test_generator_mode_builds_expected_layers_and_shape(size, channels, mode):
    cfg = cfg_for(size, channels, f"model.generator.upsampling={mode}")
    gen = build_generator(cfg)
    blocks = {28: 2, 32: 3, 64: 4}[size]
    assert gen.output_shape == (None, size, size, channels)
    assert sum(isinstance(l, LAYER_OF_MODE[mode]) for l in gen.layers) == blocks
    others = set(LAYER_OF_MODE) - {mode}
    assert not any(isinstance(l, LAYER_OF_MODE[o]) for o in others for l in gen.layers)
    assert sum(isinstance(l, keras.layers.BatchNormalization) for l in gen.layers) == blocks + 1
    out = gen(np.random.default_rng(0).standard_normal((2, 100)).astype("float32"), training=False)
    assert out.shape == (2, size, size, channels)
    assert np.all(np.abs(out) <= 1.0)


def test_mixed_modes_and_kernel_sizes():
    cfg = cfg_for(32, 3, "model.generator.upsampling=transpose,subpixel,upsample",
                  "model.generator.transpose_kernel_size=4", "model.generator.interpolation=bilinear")
    gen = build_generator(cfg)
    assert gen.get_layer("block0_deconv").kernel_size == (4, 4)
    assert isinstance(gen.get_layer("block1_shuffle"), DepthToSpace)
    assert gen.get_layer("block2_resize").interpolation == "bilinear"
    assert gen.get_layer("block2_conv").kernel_size == (3, 3)


def test_blur_removes_the_checkerboard_keeps_a_constant_and_after_nearest_is_bilinear():
    checker = np.indices((8, 8)).sum(0) % 2 * 2.0 - 1.0  # +-1: all of its power at N/2
    x = np.stack([checker, np.full((8, 8), 3.0)], -1)[None].astype("float32")
    out = Blur()(x).numpy()
    np.testing.assert_allclose(out[0, 1:-1, 1:-1, 0], 0.0, atol=1e-6)  # interior: reflected borders keep some
    np.testing.assert_allclose(out[0, ..., 1], 3.0, atol=1e-6)  # a constant passes unchanged, borders included
    smooth = np.random.default_rng(0).standard_normal((1, 6, 6, 3)).astype("float32")
    nearest = np.repeat(np.repeat(smooth, 2, 1), 2, 2)
    bilinear = tf.image.resize(smooth, (12, 12), "bilinear").numpy()  # half-pixel centres
    np.testing.assert_allclose(Blur()(nearest).numpy()[:, 1:-1, 1:-1], bilinear[:, 1:-1, 1:-1], atol=1e-5)
    assert not Blur().weights  # nothing to train, nothing new in a checkpoint


@pytest.mark.parametrize("antialias, blurred", [("true", [0, 1, 2]), ("false,true,false", [1])])
def test_antialias_blurs_the_chosen_blocks_after_their_x2(antialias, blurred):
    from dcgan.models.registry import blocks_of

    gen = build_generator(cfg_for(32, 3, "model.generator.upsampling=transpose", f"model.generator.antialias={antialias}"))
    assert [i for i in range(3) if f"block{i}_blur" in [l.name for l in gen.layers]] == blurred
    assert [b.layers[-1].endswith("_blur") for b in blocks_of(gen)] == [i in blurred for i in range(3)]
    names = [l.name for l in gen.layers]
    assert names.index("block1_deconv") < names.index("block1_blur") < names.index("block1_bn")
    plain = build_generator(cfg_for(32, 3, "model.generator.upsampling=transpose"))
    assert len(gen.weights) == len(plain.weights)  # the same variables: only the filter is new


@pytest.mark.parametrize("kind, layer, strides", [("strided", None, (2, 2)), ("avgpool", keras.layers.AveragePooling2D, (1, 1)),
                                                  ("blurpool", Blur, (2, 2))])
def test_discriminator_downsampling_kinds(kind, layer, strides):
    from dcgan.models.registry import blocks_of

    disc = build_discriminator(cfg_for(32, 3, f"model.discriminator.downsampling={kind}", "model.discriminator.spectral_norm=true"))
    convs = [disc.get_layer(f"block{i}_conv_sn").layer for i in range(3)]
    assert [c.strides for c in convs] == [strides] * 3
    assert sum(isinstance(l, (keras.layers.AveragePooling2D, Blur)) for l in disc.layers) == (0 if layer is None else 3)
    assert layer is None or all(isinstance(disc.get_layer(b.layers[0]), layer) for b in blocks_of(disc))
    assert [b.resolution for b in blocks_of(disc)] == [16, 8, 4]  # every kind halves the image per block
    assert disc(np.zeros((2, 32, 32, 3), "float32")).shape == (2, 1)


def test_channel_plan_doubles_toward_the_start_and_caps():
    assert channel_plan(64, 512, 2) == [256, 128, 64]
    assert channel_plan(64, 256, 4) == [256, 256, 256, 128, 64]


def test_weights_are_normal_with_std_002():
    gen = build_generator(cfg_for(64, 3, "model.generator.base_channels=32"))
    kernel = gen.get_layer("block1_conv").kernel.numpy()
    assert abs(kernel.mean()) < 2e-3 and abs(kernel.std() - 0.02) < 2e-3


def test_depth_to_space_matches_tensorflow():
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 12)).astype("float32")
    np.testing.assert_array_equal(DepthToSpace(2)(x), tf.nn.depth_to_space(x, 2))


def test_icnr_subpixel_starts_as_nearest_upsampling():
    """With ICNR, conv + depth-to-space equals nearest upsampling of the conv's output: no checkerboard."""
    kernel = ICNR(seed=1)((3, 3, 4, 8 * 4)).numpy()
    x = np.random.default_rng(0).standard_normal((1, 6, 6, 4)).astype("float32")
    conv = tf.nn.conv2d(x, kernel, 1, "SAME")
    sub = tf.nn.depth_to_space(conv, 2).numpy()
    nearest = np.repeat(np.repeat(tf.nn.conv2d(x, kernel[..., :8], 1, "SAME").numpy(), 2, 1), 2, 2)
    np.testing.assert_allclose(sub, nearest, atol=1e-6)


@pytest.mark.parametrize("size, channels", SHAPES)
def test_discriminator_mirrors_generator(size, channels):
    cfg = cfg_for(size, channels, "model.discriminator.dropout=0.3", "model.discriminator.norm=layer")
    disc = build_discriminator(cfg)
    convs = [l for l in disc.layers if isinstance(l, keras.layers.Conv2D)]
    assert len(convs) == {28: 2, 32: 3, 64: 4}[size] and all(c.strides == (2, 2) for c in convs)
    assert [c.filters for c in convs] == [8 * 2**i for i in range(len(convs))]
    assert any(isinstance(l, keras.layers.LeakyReLU) and abs(l.negative_slope - 0.2) < 1e-9 for l in disc.layers)
    assert sum(isinstance(l, keras.layers.Dropout) for l in disc.layers) == len(convs)
    assert disc.output_shape == (None, 1)


def test_minibatch_std_appends_the_batch_spread_and_d_sees_a_collapsed_batch():
    x = np.random.default_rng(0).standard_normal((6, 4, 4, 3)).astype("float32")
    out = MinibatchStd()(x).numpy()
    assert out.shape == (6, 4, 4, 4) and np.array_equal(out[..., :3], x)
    np.testing.assert_allclose(out[..., 3], np.sqrt(x.var(axis=0) + 1e-8).mean(), rtol=1e-5)
    assert np.allclose(MinibatchStd()(np.repeat(x[:1], 6, 0)).numpy()[..., 3], 1e-4)  # copies: no spread
    disc = build_discriminator(cfg_for(28, 1, "model.discriminator.minibatch_std=true"))
    assert disc.get_layer("minibatch_std").output.shape == (None, 7, 7, 17) and not disc.get_layer("minibatch_std").weights
    same, varied = np.repeat(x[:1, :1, :1, :1], 4, 0) * np.ones((4, 28, 28, 1), "float32"), np.random.default_rng(1).uniform(
        -1, 1, (4, 28, 28, 1)).astype("float32")
    # one image's logit depends on the batch it is in
    assert not np.allclose(disc(np.concatenate([varied[:1], same[1:]]))[0], disc(varied)[0])


def test_spectral_norm_wraps_every_layer_with_weights():
    disc = build_discriminator(cfg_for(28, 1, "model.discriminator.spectral_norm=true"))
    wrapped = [l for l in disc.layers if isinstance(l, keras.layers.SpectralNormalization)]
    assert len(wrapped) == 3  # two convolutions and the logit
    x = np.random.default_rng(0).standard_normal((4, 28, 28, 1)).astype("float32")
    assert disc(x, training=True).shape == (4, 1)


def one_pass_statistics(gen, inputs) -> list:
    """What recalibration measured before it was chunked: one training-mode pass with momentum 0."""
    bns = [l for l in gen.layers if isinstance(l, keras.layers.BatchNormalization)]
    for bn in bns:
        bn.momentum = 0.0
    gen(inputs, training=True)
    return [(bn.moving_mean.numpy(), bn.moving_variance.numpy()) for bn in bns]


@pytest.mark.parametrize("overrides, classes", [((), 0), (("model.generator.condition=cbn", "model.discriminator.condition=projection"), 3)])
def test_chunked_batchnorm_recalibration_equals_the_one_pass_batch_statistics(overrides, classes):
    gen = build_generator(cfg_for(28, 1, *overrides), classes=classes)
    z = np.random.default_rng(0).standard_normal((200, 100)).astype("float32")
    inputs = [z, np.arange(200, dtype="int32") % 3] if classes else z
    recalibrate_batchnorm(gen, inputs, chunk=64)  # 64, 64, 64 and 8 latents
    chunked = [(l.moving_mean.numpy(), l.moving_variance.numpy()) for l in gen.layers if isinstance(l, keras.layers.BatchNormalization)]
    twin = keras.models.clone_model(gen)
    twin.set_weights(gen.get_weights())
    expected = one_pass_statistics(twin, inputs)
    assert len(chunked) == 3 and all(bn.momentum == 0.99 for bn in gen.layers if isinstance(bn, keras.layers.BatchNormalization))
    for (mean, var), (want_mean, want_var) in zip(chunked, expected):
        np.testing.assert_allclose(mean, want_mean, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(var, want_var, rtol=1e-4, atol=1e-7)
    assert np.abs(chunked[-1][1] - 1.0).max() > 1e-3  # measured, not left at the initial ones


def test_forward_passes_fit_the_activation_budget_at_any_resolution():
    from dcgan.models.batchnorm import CHUNK, BatchNormRecalibration
    from dcgan.models.sampling import activation_bytes, generate_images, latents_per_pass

    small = build_generator(cfg_for(28, 1))
    per = activation_bytes(small)
    assert latents_per_pass(small, 500, budget=3 * per + 1) == 3 and latents_per_pass(small, 500, budget=1) == 1
    assert latents_per_pass(small, 500) == 500 and BatchNormRecalibration(small).chunk == CHUNK  # unchanged at 28 px
    big = build_generator(cfg_for(256, 3, "model.generator.base_channels=32"))  # the default widths at 256 px
    assert activation_bytes(big) > 60e6 and BatchNormRecalibration(big).chunk == latents_per_pass(big, CHUNK) < 16
    z = np.random.default_rng(0).standard_normal((7, 100)).astype("float32")
    whole, parts = generate_images(small, z), generate_images(small, z, batch_size=2)  # passes of 2, 2, 2 and 1
    assert whole.shape == (7, 28, 28, 1) and np.abs(whole.astype(int) - parts).max() <= 1


def test_moments_of_parts_combine_into_the_moments_of_the_whole():
    from dcgan.models.batchnorm import combine_moments

    x = np.random.default_rng(1).standard_normal((10, 3)) * [1, 5, 0.1] + [0, 3, -2]
    parts = [(len(p), p.mean(0), p.var(0)) for p in (x[:4], x[4:9], x[9:])]
    mean, var = combine_moments(parts)
    np.testing.assert_allclose(mean, x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(var, x.var(0), rtol=1e-12)


def test_generator_round_trips_through_keras_file_in_safe_mode(tmp_path):
    gen = build_generator(cfg_for(28, 1, "model.generator.upsampling=subpixel"))
    gen.save(tmp_path / "g.keras")
    loaded = keras.saving.load_model(tmp_path / "g.keras", safe_mode=True)
    z = np.ones((1, 100), "float32")
    np.testing.assert_allclose(loaded(z, training=False), gen(z, training=False), atol=1e-6)


# ---------------------------------------------------------------- class-conditional models

CONDITIONAL = [("concat", "projection"), ("cbn", "projection"), ("cbn", "concat"), ("concat", "concat")]


def conditional_cfg(g: str, d: str, *overrides):
    return cfg_for(28, 1, f"model.generator.condition={g}", f"model.discriminator.condition={d}", *overrides)


@pytest.mark.parametrize("g, d", CONDITIONAL)
def test_conditional_models_take_a_label_and_the_label_changes_the_output(g, d):
    import keras

    from dcgan.models.networks import is_conditional, num_classes

    cfg = conditional_cfg(g, d)
    # seeded: an untrained D's logits are ~1e-6, and an unlucky initialisation (the global stream the tests
    # before this one left) could put two of them in the same 1e-7 bin
    keras.utils.set_random_seed(0)
    gen, disc = build_generator(cfg, classes=5), build_discriminator(cfg, classes=5)
    assert is_conditional(gen) and is_conditional(disc) and num_classes(gen) == num_classes(disc) == 5
    z = np.repeat(np.random.default_rng(0).standard_normal((1, 100)).astype("float32"), 5, axis=0)
    labels = np.arange(5, dtype="int32")
    images = gen([z, labels], training=False).numpy()
    assert images.shape == (5, 28, 28, 1) and np.all(np.abs(images) <= 1)
    assert all(not np.allclose(images[0], images[k]) for k in range(1, 5))  # same z, another class: another image
    logits = disc([np.repeat(images[:1], 5, axis=0), labels], training=False).numpy()
    assert logits.shape == (5, 1) and len(np.unique(logits.round(7))) == 5  # same image, another class: another logit


def test_cbn_replaces_each_batchnorms_scale_and_shift_by_the_classes_own():
    cfg = conditional_cfg("cbn", "projection")
    gen = build_generator(cfg, classes=3)
    bns = [l for l in gen.layers if isinstance(l, keras.layers.BatchNormalization)]
    assert len(bns) == 3 and not any(bn.center or bn.scale for bn in bns)  # project + 2 blocks, no own gamma/beta
    gamma, beta = gen.get_layer("block0_cbn_gamma"), gen.get_layer("block0_cbn_beta")
    assert gamma.embeddings.shape == beta.embeddings.shape == (3, 16)  # block0: 2 x base_channels 8
    # the block's output is normalised * gamma[y] + beta[y]: plant gamma = 0 and beta = c for class 1
    gamma.embeddings.assign(tf.tensor_scatter_nd_update(gamma.embeddings, [[1]], tf.zeros([1, 16])))
    beta.embeddings.assign(tf.tensor_scatter_nd_update(beta.embeddings, [[1]], tf.fill([1, 16], 0.25)))
    shifted = keras.Model(gen.inputs, gen.get_layer("block0_cbn_shift").output)
    z = np.random.default_rng(1).standard_normal((2, 100)).astype("float32")
    out = shifted([z, np.array([1, 0], "int32")], training=False).numpy()
    np.testing.assert_allclose(out[0], 0.25, atol=1e-6)
    assert out[1].std() > 0.01


def test_unconditional_models_keep_one_input_and_a_conditional_config_needs_classes():
    from dcgan.models.networks import is_conditional, num_classes

    plain = build_generator(cfg_for(28, 1))
    assert not is_conditional(plain) and num_classes(plain) == 0 and plain.input_shape == (None, 100)
    with pytest.raises(ValueError, match="number of classes"):
        build_generator(conditional_cfg("cbn", "projection"))


def test_a_conditional_generator_saves_and_loads_without_custom_layers(tmp_path):
    cfg = conditional_cfg("cbn", "projection")
    gen = build_generator(cfg, classes=4)
    gen.save(tmp_path / "g.keras")
    loaded = keras.saving.load_model(tmp_path / "g.keras", safe_mode=True)
    z, y = np.random.default_rng(2).standard_normal((4, 100)).astype("float32"), np.arange(4, dtype="int32")
    np.testing.assert_array_equal(loaded([z, y], training=False).numpy(), gen([z, y], training=False).numpy())
    assert not any(type(l).__module__.startswith("dcgan") for l in loaded.layers)
