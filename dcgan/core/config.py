"""Configuration: typed sections with a default for every key, YAML in and out.

A config is plain data (nested dataclasses). `load_config` reads an optional YAML
file (through dcgan.core.yamlio, which reads it safely and bounded), applies
`--set dotted.key=value` overrides and validates every value, so
the rest of the program can trust what it is given. Every field carries its
help text and constraints in `metadata`, which is also what the config reference in
docs/config.md is generated from (`python scripts/update_docs.py`; `python -m dcgan.core.config` prints it).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import yaml

from dcgan.core.errors import ConfigError, clip, show
from dcgan.core.yamlio import read_value, read_yaml

UPSAMPLING_MODES = ("transpose", "upsample", "subpixel")
LOSSES = ("bce", "hinge", "lsgan")
DATASETS = ("mnist", "fashion_mnist", "cifar10", "folder", "prepared")
STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")
G_CONDITIONS = ("none", "concat", "cbn")
D_CONDITIONS = ("none", "projection", "concat")
AUGMENT_OPS = ("translation", "cutout", "color")  # dcgan.models.augment.OPS (this module imports no TensorFlow)
FEATURE_NETWORKS = ("auto", "classifier", "inception", "selfsup")  # dcgan.evaluation.features.feature_net_for
CLASSIFIER_DATASETS = ("mnist", "fashion_mnist")  # the datasets whose FID features can come from their own classifier


def _f(default, help, **rules):
    """A config field: its default, one line of help, and validation rules."""
    kwargs = {"default_factory": lambda: list(default)} if isinstance(default, list) else {"default": default}
    return field(metadata={"help": help, **rules}, **kwargs)


@dataclass
class DataConfig:
    name: str = _f("fashion_mnist", "dataset", choices=DATASETS)
    path: Union[str, None] = _f(None, "local files: mnist.npz or IDX folder, cifar-10-batches-py or its tar.gz, image folder, "
                                  "or the folder `dcgan prepare` wrote (data.name: prepared)")
    split: str = _f("train", "which split to train on", choices=("train", "test"))
    image_size: int = _f(28, "output side in pixels; must be s*2^k with 4 <= s <= 8", min=8, max=1024)
    channels: int = _f(1, "1 (grayscale) or 3 (RGB)", choices=(1, 3))
    batch_size: int = _f(64, "global batch size", min=1, max=65536)
    limit: Union[int, None] = _f(None, "use only the first N images (null = all)", min=1)
    holdout: int = _f(0, "image folders: keep N of the images (spread evenly over the sorted listing) out of training, "
                      "as D's unseen images for the held-out gap d_gap (train.heldout_probe); other datasets use their "
                      "test split (0 = none)", min=0)


@dataclass
class GeneratorConfig:
    latent_dim: int = _f(100, "size of the latent vector z", min=1, max=4096)
    base_channels: int = _f(32, "channels of the last upsampling block; doubled per earlier block", min=1, max=4096)
    max_channels: int = _f(512, "cap on channels of any block", min=1, max=8192)
    upsampling: Union[str, list] = _f(
        "upsample",
        "transpose | upsample | subpixel, or a list with one mode per x2 block",
        choices=UPSAMPLING_MODES,
    )
    interpolation: str = _f("nearest", "resize used by `upsample` blocks", choices=("nearest", "bilinear"))
    kernel_size: int = _f(3, "kernel of each block's convolution", min=1, max=9)
    transpose_kernel_size: Union[int, None] = _f(
        None, "kernel of `transpose` blocks (null = kernel_size; 4 avoids uneven overlap)", min=1, max=9
    )
    norm: str = _f("batch", "normalisation after each block", choices=("batch", "none"))
    condition: str = _f(
        "none", "class conditioning: concat (a learned class embedding joins z; Mirza & Osindero 2014) | cbn "
        "(conditional BatchNorm: class-dependent gamma and beta in every norm; needs norm: batch) | none",
        choices=G_CONDITIONS)
    embed_dim: int = _f(32, "size of the class embedding that condition: concat joins to z", min=1, max=4096)


@dataclass
class DiscriminatorConfig:
    base_channels: int = _f(32, "channels of the first block; doubled per later block", min=1, max=4096)
    max_channels: int = _f(512, "cap on channels of any block", min=1, max=8192)
    kernel_size: int = _f(4, "kernel of each strided convolution", min=1, max=9)
    dropout: float = _f(0.0, "dropout after each block", min=0.0, max=0.95)
    norm: str = _f("none", "normalisation after each block but the first", choices=("batch", "layer", "none"))
    spectral_norm: bool = _f(False, "wrap every conv and dense layer in SpectralNormalization")
    condition: str = _f(
        "none", "class conditioning: projection (logit + <embed(y), features>; Miyato & Koyama 2018) | concat "
        "(one-hot label maps join the image's channels, as keras-io's conditional GAN) | none; set with the "
        "generator's condition", choices=D_CONDITIONS)


@dataclass
class ModelConfig:
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)


@dataclass
class TrainConfig:
    steps: Union[int, None] = _f(9000, "generator steps to train for (null: use epochs)", min=1)
    epochs: Union[int, None] = _f(None, "epochs to train for, used when steps is null", min=1)
    lr_g: float = _f(2e-4, "generator Adam learning rate", min=0.0, max=1.0)
    lr_d: float = _f(2e-4, "discriminator Adam learning rate", min=0.0, max=1.0)
    beta1: float = _f(0.5, "Adam beta1", min=0.0, max=0.999999)
    beta2: float = _f(0.999, "Adam beta2", min=0.0, max=0.999999)
    loss: str = _f("bce", "bce (non-saturating) | hinge | lsgan", choices=LOSSES)
    label_smoothing: float = _f(0.0, "one-sided: real targets become 1 - s (bce, lsgan)", min=0.0, max=0.5)
    d_steps: int = _f(1, "discriminator updates per generator update", min=1, max=20)
    augment: list = _f(
        [], "DiffAugment ops applied to real and generated images whenever D sees them: translation (up to 1/8 "
        "of the size, zero padding), cutout (a half-size square set to 0), color (brightness, saturation, contrast); "
        "[] = off (with ADA: all three)", choices=AUGMENT_OPS, empty=True, unique=True)
    ada_target: Union[float, None] = _f(
        None, "adaptive augmentation (ADA): each augment op is applied per image with probability p, raised while "
        "E[sign(D(real))] is above this target and lowered while below (e.g. 0.6; null = off, ops always applied)",
        gt=0.0, lt=1.0)
    ada_interval: int = _f(4, "ADA: steps between adjustments of p", min=1, max=100000)
    ada_speed: int = _f(
        100_000, "ADA: real images over which p can go from 0 to 1 (ADA's 500k is for long runs; 100k lets p move "
        "0 -> 1 in ~1,600 steps of 64, a third of the default run, 0.0026 per 4-step adjustment)", min=1)
    r1_gamma: float = _f(0.0, "R1 penalty gamma/2 * E[|grad_x D(x)|^2] on the real images D sees, after "
                         "augmentation (0 = off)", min=0.0, max=1e6)
    r1_every: int = _f(16, "R1 on every k-th step only, scaled by k (lazy regularisation, StyleGAN2's 16; "
                       "1 = every step)", min=1, max=10000)
    spectral_weight: float = _f(
        0.0, "weight of a spectral term in G's loss: mean squared difference of the batch-mean radial (azimuthally "
        "averaged) log power spectra of generated and real images (Durall et al. 2020, differentiable here), on the "
        "un-augmented images; costs one FFT of each batch per step (0 = off)", min=0.0, max=1e6)
    ema_decay: float = _f(0.995, "decay of the generator's moving average copy, which sampling uses unless select_sampler "
                          "finds the raw G better (0 = off)", min=0.0, max=0.99999)
    ema_warmup: int = _f(500, "steps over which the EMA decay ramps up from 0", min=0)
    select_sampler: bool = _f(
        True, "at the last step and each evaluation, sample from whichever of the EMA copy and the raw generator "
        "has the lower FID against the training images (needs a feature network)")
    select_samples: int = _f(5000, "generated (and training) images the sampler choice compares", min=16, max=100000)
    seed: int = _f(0, "seed for weights, data order and noise", min=0, max=2**31 - 1)
    deterministic: bool = _f(False, "enable TensorFlow op determinism (bitwise-reproducible, slower)")
    log_every: int = _f(50, "steps between metrics.jsonl lines", min=1)
    heldout_probe: int = _f(
        256, "at every log line, D's mean output on this many fixed training images and as many held-out ones "
        "(the other split of mnist, fashion_mnist, cifar10; an image folder's data.holdout): d_seen, d_unseen and "
        "their gap d_gap, which grows as D memorises its training set (0 = off)", min=0, max=10000)
    sample_every: int = _f(500, "steps between fixed-noise sample grids", min=1)
    checkpoint_every: int = _f(500, "steps between checkpoints", min=1)
    keep_checkpoints: int = _f(3, "how many recent checkpoints to keep", min=1, max=1000)
    sample_grid: int = _f(8, "the fixed-noise grid is N x N", min=1, max=32)
    on_nan: str = _f("stop", "stop | skip_step when a loss is not finite", choices=("stop", "skip_step"))
    eval_every: Union[int, None] = _f(
        None, "steps between evaluations (FID, KID, checkerboard) of the sampling generator; keeps the best checkpoint by FID (null = off)", min=1
    )
    eval_samples: int = _f(2000, "generated images per evaluation during training", min=16, max=100000)
    feature_network: str = _f(
        "auto", "the feature network of every FID/KID (evaluations, the sampler choice, `dcgan evaluate`, `dcgan "
        "compare`): classifier (the dataset's own classifier; mnist, fashion_mnist) | inception (InceptionV3 ImageNet "
        "weights, downloaded once) | selfsup (a self-supervised encoder trained on the dataset's own images, offline, "
        "cached) | auto (classifier where there is one, else inception)", choices=FEATURE_NETWORKS)
    mixed_precision: str = _f("none", "none | bfloat16 | float16 (GPU/TPU; float16 uses loss scaling)",
                              choices=("none", "bfloat16", "float16"))
    jit_compile: bool = _f(False, "compile the train step with XLA")
    time_budget_s: Union[float, None] = _f(None, "stop after this many seconds of training (null = no limit)", min=1.0)


@dataclass
class RunConfig:
    dir: str = _f("runs", "parent directory of run directories")
    name: Union[str, None] = _f(None, "run directory name (null = <dataset>-<upsampling>, numbered if taken)")


@dataclass
class DistributeConfig:
    strategy: str = _f("default", "default (one device) | mirrored (local GPUs) | multi_worker (TF_CONFIG) | tpu",
                       choices=STRATEGIES)
    devices: Union[list, None] = _f(None, "mirrored: devices to use, e.g. [/gpu:0, /gpu:1] (null = all local GPUs)")
    sync_batchnorm: bool = _f(True, "BatchNorm statistics over the global batch (true) or each replica's share (false)")
    tpu: Union[str, None] = _f(None, "tpu: TPU name or grpc:// address (null = $TPU_NAME, else the TPU VM's local TPU)")


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    run: RunConfig = field(default_factory=RunConfig)
    distribute: DistributeConfig = field(default_factory=DistributeConfig)


# ---------------------------------------------------------------- conversion


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


def from_dict(data: Any, cls=Config, prefix: str = "") -> Any:
    """Build and validate a (nested) config dataclass from plain data."""
    where = prefix.rstrip(".") or "config"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {show(data)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key in data:
        if key not in fields:
            raise ConfigError(_unknown_key(prefix, key, fields))
    values = {}
    for name, f in fields.items():
        if name not in data:
            continue
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            values[name] = from_dict(data[name], tp, f"{prefix}{name}.")
        else:
            values[name] = _check_value(f"{prefix}{name}", data[name], tp, f.metadata)
    cfg = cls(**values)
    if cls is Config:
        _check_cross_fields(cfg)
    return cfg


def _unknown_key(prefix: str, key: Any, fields: dict) -> str:
    text = key if isinstance(key, str) else show(key)
    close = difflib.get_close_matches(text[:100], list(fields), n=1)  # a 1 MB key would make difflib slow
    hint = f"; did you mean '{prefix}{close[0]}'?" if close else f"; valid keys: {', '.join(fields)}"
    return f"unknown config key '{clip(prefix + text)}'{hint}"


def _check_value(key: str, value: Any, tp: Any, rules: dict) -> Any:
    """Coerce and validate one scalar (or mode list) against its type and rules."""
    args = typing.get_args(tp)
    optional = type(None) in args
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{key}: null is not allowed")
    kinds = [a for a in args if a is not type(None)] or [tp]
    if list in kinds and isinstance(value, (list, tuple)):
        if not value and not rules.get("empty"):
            raise ConfigError(f"{key}: the list must not be empty")
        items = [_check_value(f"{key}[{i}]", v, str, rules) for i, v in enumerate(value)]
        if rules.get("unique") and len(set(items)) < len(items):
            twice = next(v for i, v in enumerate(items) if v in items[:i])
            raise ConfigError(f"{key}: {show(twice)} is listed twice")
        return items
    scalar_kinds = [k for k in kinds if k is not list]
    if not scalar_kinds:  # a list-only field given a scalar
        raise ConfigError(f"{key}: expected a list, got {show(value)}")
    value = _coerce(key, value, scalar_kinds[0])
    if "choices" in rules and value not in rules["choices"]:
        allowed = " | ".join(str(c) for c in rules["choices"])
        raise ConfigError(f"{key}: {show(value)} is not allowed; choose one of {allowed}")
    if "min" in rules and value < rules["min"]:
        raise ConfigError(f"{key}: {show(value)} is below the minimum {rules['min']}")
    if "max" in rules and value > rules["max"]:
        raise ConfigError(f"{key}: {show(value)} is above the maximum {rules['max']}")
    if ("gt" in rules and value <= rules["gt"]) or ("lt" in rules and value >= rules["lt"]):  # exclusive bounds
        bounds = " and ".join(f"{word} {rules[k]:g}" for k, word in (("gt", "above"), ("lt", "below")) if k in rules)
        raise ConfigError(f"{key}: {show(value)} is not allowed; it must be {bounds}")
    return value


INT_LIMIT = 2**63 - 1  # step counters and seeds end up in int64 tensors
MAX_TEXT = 4096  # characters of a string value: Linux's PATH_MAX (in bytes), and far beyond any name


def _coerce(key: str, value: Any, kind: type) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
    elif kind is int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            if abs(value) > INT_LIMIT:
                raise ConfigError(f"{key}: {show(value)} is out of range (at most {INT_LIMIT})")
            return value
        if isinstance(value, str):  # 0x10, 017, 1:30 are not read as numbers: say how to write one
            raise ConfigError(f"{key}: {show(value)} is not a valid int (write decimal digits, e.g. 1000 or 1_000)")
    elif kind is float:
        if isinstance(value, str):  # YAML 1.1 reads "1e-4" (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if value != value or abs(value) > sys.float_info.max:  # nan, inf, or an int float() overflows on
                raise ConfigError(f"{key}: {show(value)} is not a finite number")
            return float(value)
    elif kind is str:
        if isinstance(value, str):
            _check_text(key, value)
        if isinstance(value, str) and value:
            return value
    raise ConfigError(f"{key}: {show(value)} is not a valid {kind.__name__}")


def _check_text(key: str, value: str) -> None:
    """Strings end up as file names and paths: refuse what every file call would fail on later."""
    if len(value) > MAX_TEXT:
        raise ConfigError(f"{key}: a string of {len(value)} characters is too long (at most {MAX_TEXT})")
    if "\x00" in value:
        raise ConfigError(f"{key}: {show(value)} contains a NUL character")
    try:
        os.fsencode(value)
    except UnicodeError:  # a lone surrogate from a "\ud800" escape
        raise ConfigError(f"{key}: {show(value)} cannot be encoded as a file name") from None


def check_dir_name(name: str, what: str = "run.name") -> None:
    """A name that becomes one directory (run.name, compare's --name) and is printed in every log line."""
    if not name.isprintable():
        raise ConfigError(f"{what}: {show(name)} contains a non-printable character (newline, tab, ...)")
    if not name or "/" in name or name in (".", ".."):
        raise ConfigError(f"{what}: {show(name)} must be a plain directory name")
    size = len(os.fsencode(name))
    if size > 255:  # NAME_MAX of every common filesystem
        raise ConfigError(f"{what}: {show(name)} is {size} bytes in UTF-8; a directory name has at most 255")


def _check_cross_fields(cfg: Config) -> None:
    if cfg.train.steps is None and cfg.train.epochs is None:
        raise ConfigError("train.steps and train.epochs are both null; set one of them")
    if cfg.data.name == "folder" and not cfg.data.path:
        raise ConfigError("data.path: the folder dataset needs a path to a directory of images")
    if cfg.data.holdout and cfg.data.name != "folder":
        raise ConfigError(f"data.holdout: only an image folder holds images out ({cfg.data.name} has "
                          f"{'a test split, which d_gap uses' if cfg.data.name != 'prepared' else 'its one split'})")
    if cfg.data.name == "prepared" and not cfg.data.path:
        raise ConfigError("data.path: the prepared dataset needs the path of the folder `dcgan prepare` wrote")
    if cfg.distribute.devices is not None and cfg.distribute.strategy != "mirrored":
        raise ConfigError(f"distribute.devices: only distribute.strategy=mirrored takes a device list "
                          f"(strategy is {cfg.distribute.strategy})")
    if cfg.data.name in ("mnist", "fashion_mnist") and cfg.data.channels != 1:
        raise ConfigError(f"data.channels: {cfg.data.name} is grayscale; set data.channels=1")
    if cfg.data.name == "cifar10" and cfg.data.channels != 3:
        raise ConfigError("data.channels: cifar10 is RGB; set data.channels=3")
    if cfg.run.name is not None:
        check_dir_name(cfg.run.name)
    check_feature_network(cfg.train.feature_network, cfg.data.name)
    _check_conditioning(cfg.model)
    if cfg.train.r1_gamma > 0 and cfg.model.discriminator.norm == "batch":
        raise ConfigError("train.r1_gamma: R1 penalises each real image's own gradient, and batch norm in the "
                          "discriminator mixes the images of a batch; set model.discriminator.norm=layer or none")
    start_size, blocks = upsampling_plan(cfg.data.image_size)
    modes = cfg.model.generator.upsampling
    if isinstance(modes, list) and len(modes) != blocks:
        raise ConfigError(
            f"model.generator.upsampling: {len(modes)} modes given but image_size "
            f"{cfg.data.image_size} needs {blocks} x2 blocks (from {start_size}x{start_size})"
        )


def check_feature_network(network: str, dataset: str, what: str = "train.feature_network") -> None:
    """One line when the feature network asked for does not exist for the dataset."""
    if network == "classifier" and dataset not in CLASSIFIER_DATASETS:
        raise ConfigError(f"{what}: classifier: only {' and '.join(CLASSIFIER_DATASETS)} have a feature classifier (a small "
                          f"CNN trained on their labels); data.name={dataset}: choose auto, inception or selfsup")


def _check_conditioning(model: ModelConfig) -> None:
    g, d = model.generator.condition, model.discriminator.condition
    if (g == "none") != (d == "none"):  # a conditional network facing an unconditional one learns to ignore the label
        off, on = ("generator", "discriminator") if g == "none" else ("discriminator", "generator")
        raise ConfigError(f"model.{off}.condition: the {on} is conditioned ({on}.condition="
                          f"{d if g == 'none' else g}); condition both networks or neither")
    if g == "cbn" and model.generator.norm != "batch":
        raise ConfigError("model.generator.condition: cbn conditions the BatchNorm layers; set model.generator.norm=batch")


def is_conditional(cfg: Config) -> bool:
    return cfg.model.generator.condition != "none"


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


def block_modes(gen: GeneratorConfig, blocks: int) -> list[str]:
    """The upsampling mode of each block."""
    if isinstance(gen.upsampling, list):
        return list(gen.upsampling)
    return [gen.upsampling] * blocks


# ---------------------------------------------------------------- overrides and files


def parse_override(text: str) -> tuple[list[str], Any]:
    """'train.steps=200' -> (['train', 'steps'], 200); the value is a YAML scalar or list."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or not key.isprintable():
        raise ConfigError(f"--set {show(text)}: expected dotted.key=value")
    value = read_value(raw, f"--set {clip(key)}")
    # "transpose,upsample" (or "/gpu:0,/gpu:1") is a convenient way to give a list on the command line
    if isinstance(value, str) and "," in value and key.endswith(("upsampling", "devices")):
        value = [v.strip() for v in value.split(",")]
    if isinstance(value, str) and key.endswith("augment"):  # a list of ops, even of one: translation,cutout
        value = [v.strip() for v in value.split(",")]
    return key.split("."), value


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Write each dotted override into the nested dict (validated later by from_dict)."""
    for text in overrides:
        path, value = parse_override(text)
        node = data
        for i, part in enumerate(path[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise ConfigError(f"--set {'.'.join(path)}: '{'.'.join(path[: i + 1])}' is not a section")
            node = child
        node[path[-1]] = value
    return data


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> Config:
    data = read_yaml(path) if path else {}
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    return from_dict(apply_overrides(data, list(overrides)))


def dump_config(cfg: Config) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def diff_keys(a: dict, b: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested dicts."""
    keys = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            keys += diff_keys(va, vb, f"{prefix}{k}.")
        elif va != vb:
            keys.append(f"{prefix}{k}")
    return keys


# ---------------------------------------------------------------- reference


def reference_markdown(cls=Config, prefix: str = "") -> str:
    """Every key with its default and meaning, as a Markdown table (for docs/config.md)."""
    rows = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            rows.append(reference_markdown(hints[f.name], f"{prefix}{f.name}.").strip())
            continue
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default
        rows.append(f"| `{prefix}{f.name}` | `{yaml.safe_dump(default).strip().removesuffix('...').strip()}` | {f.metadata['help'].replace('|', chr(92) + '|')} |")  # a bare | would end the cell
    body = "\n".join(rows)
    if prefix:
        return body
    return "| key | default | meaning |\n|---|---|---|\n" + body + "\n"


if __name__ == "__main__":
    print(reference_markdown())
