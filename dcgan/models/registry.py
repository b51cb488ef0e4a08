"""Architectures by name: `model.generator.arch` and `model.discriminator.arch` pick a registered builder.

A builder is `builder(cfg, sync_batchnorm, classes) -> Built(model, blocks)`: the Keras model (a generator takes
z, or [z, label] when classes > 0, and returns images in [-1, 1]; a discriminator takes an image, or [image,
label], and returns one logit) and its blocks (dcgan.models.spec.Block), earliest first. Register one with

    @register_generator("mine")
    def build(cfg, sync_batchnorm, classes): ...

from any module: the registry is one per process, so training, sampling, `dcgan inspect` and `dcgan export`
all find it. The networks built here carry their `Spec` (`spec_of`), which is how tools know their blocks,
classes and latent size. The builtin architecture is `dcgan` (dcgan.models.dcgan).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import keras

from dcgan.core.errors import ConfigError, DcganError, show
from dcgan.core.upsampling import MODES
from dcgan.models import dcgan as builtin
from dcgan.models.conditioning import check_classes
from dcgan.models.spec import Built, Spec

ROLES = ("generator", "discriminator")
_BUILDERS: dict[str, dict[str, Callable]] = {role: {} for role in ROLES}
SPEC_ATTR = "_dcgan_spec"  # a plain attribute: Keras saves and TensorFlow checkpoints ignore it


def register(role: str, name: str, builder: Callable | None = None):
    """Register `builder` as the `name` architecture of `role`; without a builder, a decorator that does."""
    if role not in ROLES:
        raise ValueError(f"role {role!r}: one of {', '.join(ROLES)}")

    def add(fn: Callable) -> Callable:
        _BUILDERS[role][name] = fn
        return fn

    return add if builder is None else add(builder)


def register_generator(name: str, builder: Callable | None = None):
    return register("generator", name, builder)


def register_discriminator(name: str, builder: Callable | None = None):
    return register("discriminator", name, builder)


def architectures(role: str) -> tuple[str, ...]:
    return tuple(_BUILDERS[role])


def check_arch(cfg) -> None:
    """One line for an architecture no builder is registered under (before any model or folder is made)."""
    for role in ROLES:
        name = getattr(cfg.model, role).arch
        if name not in _BUILDERS[role]:
            raise ConfigError(f"model.{role}.arch: unknown architecture {show(name)}; registered: "
                              f"{', '.join(architectures(role))}")


def build(role: str, cfg, sync_batchnorm: bool = False, classes: int = 0) -> keras.Model:
    """The `role` network of cfg's architecture, carrying its Spec."""
    check_arch(cfg)
    classes = check_classes(cfg, classes)
    arch = getattr(cfg.model, role).arch
    built = _BUILDERS[role][arch](cfg, sync_batchnorm, classes)
    if not isinstance(built, Built):
        raise DcganError(f"model.{role}.arch: the builder of {arch!r} returned {type(built).__name__}, not a Built")
    latent = cfg.model.generator.latent_dim if role == "generator" else None
    spec = Spec(role, arch, tuple(built.blocks), classes, latent)
    _check_built(built.model, spec, cfg)
    setattr(built.model, SPEC_ATTR, spec)
    return built.model


def build_generator(cfg, sync_batchnorm: bool = False, classes: int = 0) -> keras.Model:
    """sync_batchnorm: BatchNorm statistics over all replicas' batches (only matters under a multi-replica strategy).

    classes: the number of classes of a conditional config (model.generator.condition), whose model takes [z, label].
    """
    return build("generator", cfg, sync_batchnorm, classes)


def build_discriminator(cfg, sync_batchnorm: bool = False, classes: int = 0) -> keras.Model:
    return build("discriminator", cfg, sync_batchnorm, classes)


def _check_built(model, spec: Spec, cfg) -> None:
    """A builder keeps the contract every caller relies on: its inputs, its output shape, blocks that exist."""
    size, channels = cfg.data.image_size, cfg.data.channels
    inputs = 2 if spec.classes else 1
    image = (size, size, channels)
    want_in, want_out = ((spec.latent_dim,), image) if spec.role == "generator" else (image, (1,))
    got_in, got_out = tuple(model.inputs[0].shape[1:]), tuple(model.output_shape[1:])
    problems = []
    if len(model.inputs) != inputs or got_in != want_in:
        problems.append(f"takes {len(model.inputs)} input(s) of shape {got_in}, not {inputs} with {want_in} first")
    if got_out != want_out:
        problems.append(f"returns shape {got_out}, not {want_out}")
    names = {layer.name for layer in model.layers}
    for block in spec.blocks:
        if not {*block.layers, block.output} <= names or not block.layers:
            problems.append(f"block {block.name!r} names layers the model does not have")
        if spec.role == "generator" and block.mode not in MODES:
            problems.append(f"block {block.name!r} has mode {block.mode!r}, not one of {', '.join(MODES)}")
    if problems:
        raise DcganError(f"model.{spec.role}.arch: the {spec.arch!r} builder's network {problems[0]}")


def spec_of(model) -> Spec:
    spec = getattr(model, SPEC_ATTR, None)
    if spec is None:
        raise DcganError(f"model {getattr(model, 'name', model)!r} was not built by dcgan.models.registry, "
                         "so its blocks and classes are unknown")
    return spec


def is_conditional(model) -> bool:
    """A conditional generator or discriminator takes (input, label)."""
    return spec_of(model).classes > 0


def num_classes(model) -> int:
    """The classes a conditional generator or discriminator knows (0: unconditional)."""
    return spec_of(model).classes


def latent_dim(model) -> int:
    """The size of z a generator takes."""
    return spec_of(model).latent_dim


def blocks_of(model):
    return spec_of(model).blocks


def clone_generator(generator: keras.Model) -> keras.Model:
    """A copy with the same architecture, weights and Spec (for the EMA generator)."""
    copy = keras.models.clone_model(generator)
    copy.set_weights(generator.get_weights())
    setattr(copy, SPEC_ATTR, dataclasses.replace(spec_of(generator)))
    return copy


register_generator("dcgan", builtin.build_generator)
register_discriminator("dcgan", builtin.build_discriminator)
