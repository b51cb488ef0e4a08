"""The generator's upsampling modes, declared once: config validation, the model builders, `dcgan inspect` and
`dcgan compare`'s --modes grammar all read them from here.

No TensorFlow (the config imports this): dcgan.models.upsampling holds each mode's layers and checks at import
that it builds exactly the modes declared here.

    transpose  Conv2DTranspose, stride 2 (can leave checkerboard artifacts when the kernel is not divisible by
               the stride: Odena et al. 2016); its kernel is model.generator.transpose_kernel_size (`:k4`)
    upsample   UpSampling2D (nearest or bilinear: model.generator.interpolation, `:bilinear`) then Conv2D at
               the higher resolution: resize-convolution, artifact-free, ~4x the conv cost
    subpixel   Conv2D to 4x channels then depth-to-space (Shi et al. 2016), ICNR-initialised so it starts as
               nearest-neighbour upsampling
"""

from __future__ import annotations

from dataclasses import dataclass

from dcgan.core.errors import ConfigError


@dataclass(frozen=True)
class UpsamplingMode:
    name: str
    kernel_option: bool = False  # takes its own kernel size: `:kN`, model.generator.transpose_kernel_size
    interpolation_option: bool = False  # takes a resize: `:nearest` / `:bilinear`, model.generator.interpolation


MODES = {m.name: m for m in (UpsamplingMode("transpose", kernel_option=True),
                             UpsamplingMode("upsample", interpolation_option=True),
                             UpsamplingMode("subpixel"))}
UPSAMPLING_MODES = tuple(MODES)
INTERPOLATIONS = ("nearest", "bilinear")


def upsampling_plan(image_size: int) -> tuple[int, int]:
    """(start size s, number of x2 blocks k) with image_size = s * 2^k, 4 <= s <= 8, k >= 1."""
    size, blocks = image_size, 0
    while size % 2 == 0 and size // 2 >= 4:
        size //= 2
        blocks += 1
    if blocks == 0 or size > 8:
        raise ConfigError(
            f"data.image_size: {image_size} is not supported; use s*2^k with 4 <= s <= 8 and k >= 1 "
            "(e.g. 28, 32, 64, 128)"
        )
    return size, blocks


def block_modes(gen, blocks: int) -> list[str]:
    """The upsampling mode of each block (gen: a GeneratorConfig)."""
    if isinstance(gen.upsampling, list):
        return list(gen.upsampling)
    return [gen.upsampling] * blocks


def block_antialias(gen, blocks: int) -> list[bool]:
    """Whether each block's x2 output is low-passed (gen.antialias: one bool for all, or one per block)."""
    if isinstance(gen.antialias, list):
        return list(gen.antialias)
    return [gen.antialias] * blocks
