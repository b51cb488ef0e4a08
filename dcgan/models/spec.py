"""What a builder returns and what a built network carries: its blocks, by the names of their layers.

Tools (`dcgan inspect`, conditioning checks, `dcgan compare`) read a network through its `Spec`, never by
parsing layer names: a new architecture says what its blocks are once, in its builder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Block:
    """One resolution step: a generator's x2 upsampling block or a discriminator's downsampling one."""

    name: str
    mode: str  # a generator block's upsampling mode (dcgan.core.upsampling.MODES); a discriminator's: how it downsamples
    layers: tuple[str, ...]  # the layers that change the resolution, in order (the block's input is the first's input)
    output: str  # the block's last layer (after its norm and activation)
    resolution: int  # the side of its output


@dataclass(frozen=True)
class Built:
    """A builder's result: the Keras model and its blocks, earliest first."""

    model: Any  # keras.Model
    blocks: tuple[Block, ...]


@dataclass(frozen=True)
class Spec:
    """What the registry attaches to every network it builds (and copies to a clone)."""

    role: str  # generator | discriminator
    arch: str
    blocks: tuple[Block, ...]
    classes: int  # 0: unconditional; else the model takes (input, int32 label)
    latent_dim: int | None  # the generator's z size (None for a discriminator)
