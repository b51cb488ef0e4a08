"""Configuration: typed sections with a default for every key, YAML in and out.

A config is plain data (the nested dataclasses of dcgan.core.schema, re-exported here). `load_config` reads an optional YAML
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
import re
import sys
import typing
from pathlib import Path
from typing import Any

import yaml

from dcgan.core.errors import ConfigError, clip, show
from dcgan.core.upsampling import INTERPOLATIONS, UPSAMPLING_MODES, block_modes, upsampling_plan  # noqa: F401  (importers)
from dcgan.core.yamlio import read_value, read_yaml
from dcgan.core.schema import (AUGMENT_OPS, BUILTIN_DATASETS, D_CONDITIONS, DATASET_FACTS, FEATURE_NETWORKS,  # noqa: F401
                               G_CONDITIONS, LOSSES, STRATEGIES, Config, DataConfig, DatasetFacts, DiscriminatorConfig,
                               DistributeConfig, GeneratorConfig, ModelConfig, RunConfig, TrainConfig, classifier_datasets,
                               dataset_names, declare_dataset)


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
        items = [_check_value(f"{key}[{i}]", v, rules.get("item", str), rules) for i, v in enumerate(value)]
        if rules.get("unique") and len(set(items)) < len(items):
            twice = next(v for i, v in enumerate(items) if v in items[:i])
            raise ConfigError(f"{key}: {show(twice)} is listed twice")
        return items
    scalar_kinds = [k for k in kinds if k is not list]
    if not scalar_kinds:  # a list-only field given a scalar
        raise ConfigError(f"{key}: expected a list, got {show(value)}")
    value = _coerce(key, value, scalar_kinds[0])
    choices = rules.get("choices")
    choices = choices() if callable(choices) else choices  # data.name's grow as datasets are registered
    if choices is not None and value not in choices:
        allowed = " | ".join(str(c) for c in choices)
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
    _check_dataset(cfg.data)
    if cfg.distribute.devices is not None and cfg.distribute.strategy != "mirrored":
        raise ConfigError(f"distribute.devices: only distribute.strategy=mirrored takes a device list "
                          f"(strategy is {cfg.distribute.strategy})")
    if cfg.run.name is not None:
        check_dir_name(cfg.run.name)
    check_feature_network(cfg.train.feature_network, cfg.data.name)
    _check_conditioning(cfg.model)
    if cfg.train.r1_gamma > 0 and cfg.model.discriminator.norm == "batch":
        raise ConfigError("train.r1_gamma: R1 penalises each real image's own gradient, and batch norm in the "
                          "discriminator mixes the images of a batch; set model.discriminator.norm=layer or none")
    micro = cfg.train.micro_batch
    if micro is not None and (micro > cfg.data.batch_size or cfg.data.batch_size % micro):
        raise ConfigError(f"train.micro_batch: {micro} does not divide data.batch_size {cfg.data.batch_size} into "
                          "equal passes; use a divisor of the batch")
    start_size, blocks = upsampling_plan(cfg.data.image_size)
    modes = cfg.model.generator.upsampling
    if isinstance(modes, list) and len(modes) != blocks:
        raise ConfigError(
            f"model.generator.upsampling: {len(modes)} modes given but image_size "
            f"{cfg.data.image_size} needs {blocks} x2 blocks (from {start_size}x{start_size})"
        )
    antialias = cfg.model.generator.antialias
    if isinstance(antialias, list) and len(antialias) != blocks:
        raise ConfigError(f"model.generator.antialias: {len(antialias)} values given but image_size "
                          f"{cfg.data.image_size} needs {blocks} x2 blocks (from {start_size}x{start_size})")


def _check_dataset(data: DataConfig) -> None:
    """What the dataset's declared facts (schema.DATASET_FACTS) ask of the data section."""
    facts = DATASET_FACTS[data.name]
    if facts.path and not data.path:
        raise ConfigError(f"data.path: the {data.name} dataset needs {facts.path}")
    if data.holdout and not facts.holdout:
        raise ConfigError(f"data.holdout: only an image folder holds images out ({data.name} has "
                          f"{'a test split, which d_gap uses' if facts.test_split else 'its one split'})")
    if not facts.decodes:
        for key, default in (("fit", "center"), ("resize", "area"), ("pad", "white"), ("labels", None)):
            if getattr(data, key) != default:
                raise ConfigError(f"data.{key}: applies to image folders and archives (data.name: folder), whose "
                                  f"pictures are decoded; {data.name}'s images are read as they are")
    if not re.fullmatch(r"white|black|edge|#[0-9a-fA-F]{6}", data.pad):
        raise ConfigError(f"data.pad: {data.pad!r} is not white, black, edge or a #rrggbb colour")
    if facts.channels is not None and data.channels != facts.channels:
        raise ConfigError(f"data.channels: {data.name} is {'grayscale' if facts.channels == 1 else 'RGB'}; "
                          f"set data.channels={facts.channels}")


def check_feature_network(network: str, dataset: str, what: str = "train.feature_network") -> None:
    """One line when the feature network asked for does not exist for the dataset."""
    if network == "classifier" and dataset not in classifier_datasets():
        raise ConfigError(f"{what}: classifier: only {' and '.join(classifier_datasets())} have a feature classifier (a small "
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


# ---------------------------------------------------------------- overrides and files


def parse_override(text: str) -> tuple[list[str], Any]:
    """'train.steps=200' -> (['train', 'steps'], 200); the value is a YAML scalar or list."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or not key.isprintable():
        raise ConfigError(f"--set {show(text)}: expected dotted.key=value")
    # a value can't be a YAML comment: --set data.pad=#ffffff means the colour, not null
    value = raw.strip() if raw.strip().startswith("#") else read_value(raw, f"--set {clip(key)}")
    # "transpose,upsample" (or "/gpu:0,/gpu:1") is a convenient way to give a list on the command line
    if isinstance(value, str) and "," in value and key.endswith(("upsampling", "devices")):
        value = [v.strip() for v in value.split(",")]
    if isinstance(value, str) and "," in value and key.endswith("antialias"):  # true,false: one per block
        value = [read_value(v, f"--set {clip(key)}") for v in value.split(",")]
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
