from dcgan.core.config import load_config
from dcgan.tools.flops import describe, forward_flops, training_flops_per_image
from dcgan.models.networks import build_discriminator, build_generator


def cfg(mode):
    return load_config(None, [f"model.generator.upsampling={mode}", "model.generator.transpose_kernel_size=4",
                              "model.generator.base_channels=64", "model.discriminator.base_channels=64"])


def test_generator_flops_by_hand():
    gen = build_generator(cfg("upsample"))  # z 100 -> 7x7x256 -> 14x14x128 -> 28x28x64 -> 28x28x1
    expected = (2 * 100 * 7 * 7 * 256 + 2 * 9 * 256 * 128 * 14 * 14 + 2 * 9 * 128 * 64 * 28 * 28 + 2 * 9 * 64 * 1 * 28 * 28)
    assert forward_flops(gen) == expected
    assert [name for name, _ in describe(gen)] == ["project", "block0_conv", "block1_conv", "to_image"]


def test_resize_convolution_costs_more_than_transpose_4x4_and_as_much_as_subpixel():
    up, tr, sp = (forward_flops(build_generator(cfg(m))) for m in ("upsample", "transpose", "subpixel"))
    # transpose 4x4 runs 16 taps at the low resolution; resize-conv 9 taps at 4x the pixels;
    # sub-pixel 9 taps at the low resolution into 4x the channels: the same as resize-conv
    assert tr < up == sp
    tr_block = 2 * 16 * 256 * 128 * 7 * 7
    assert dict(describe(build_generator(cfg("transpose"))))["block0_deconv"] == tr_block


def test_training_flops_count_both_networks():
    c = cfg("upsample")
    gen, disc = build_generator(c), build_discriminator(c)
    d = 2 * 16 * 1 * 64 * 14 * 14 + 2 * 16 * 64 * 128 * 7 * 7 + 2 * 7 * 7 * 128
    assert forward_flops(disc) == d
    assert training_flops_per_image(gen, disc) == 3 * forward_flops(gen) + 6 * d
