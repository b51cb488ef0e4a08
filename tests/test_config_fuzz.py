"""Property-based: whatever YAML a user writes, the config loader returns a valid Config or raises ConfigError."""

import dataclasses
import math
import typing

import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from dcgan.core.config import Config, ConfigError, from_dict, load_config, to_dict

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
FEWER = settings(SETTINGS, max_examples=100)  # the same values again, through a file or the command line

def _names(cls) -> set[str]:
    hints = typing.get_type_hints(cls)
    return {f.name for f in dataclasses.fields(cls)} | {
        n for f in dataclasses.fields(cls) if dataclasses.is_dataclass(hints[f.name]) for n in _names(hints[f.name])}


# Real key names (so the fuzzer gets past "unknown key" and reaches the value checks) and arbitrary ones.
KEYS = sorted(_names(Config))
SECTIONS = [f.name for f in dataclasses.fields(Config)]

scalars = (
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.sampled_from([10**400, -(10**400), 2**63])  # beyond float range: float() overflows
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from(["", "transpose", "subpixel", "upsample", "bce", "folder", "mnist", "1e-4", "nan", "-inf", "1e999", "null", "a/b", ".", "\x00"])
    | st.text(max_size=12)
)
keys = st.sampled_from(KEYS) | st.text(max_size=8)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=5), max_leaves=12)


def sections():
    """Dicts shaped like a config (section -> key -> value), with random values and stray keys."""
    section = st.dictionaries(st.sampled_from(KEYS), values, max_size=6)
    model = st.fixed_dictionaries({}, optional={"generator": section, "discriminator": section})
    optional = {name: section for name in SECTIONS} | {"model": model | values}
    return st.fixed_dictionaries({}, optional=optional) | values


def _assert_valid(cfg):
    assert isinstance(cfg, Config)
    assert from_dict(to_dict(cfg)) == cfg  # a returned config round-trips, so it was fully validated
    for value in _leaves(to_dict(cfg)):
        assert not (isinstance(value, float) and not math.isfinite(value))
        assert not (isinstance(value, str) and "\x00" in value), "a NUL in a path breaks every file call later"


def _leaves(node):
    if isinstance(node, (dict, list)):
        for v in node.values() if isinstance(node, dict) else node:
            yield from _leaves(v)
    else:
        yield node


@SETTINGS
@given(data=sections())
@example(data={"train": {"lr_g": 10**400}})  # found by this test: float() raised OverflowError
@example(data={"data": {"path": "a\x00b"}})  # found by this test: accepted, then every file call failed
@example(data={"train": {"stpes\nx": 1}})  # found by this test: a two-line error
def test_from_dict_returns_config_or_raises_config_error(data):
    try:
        cfg = from_dict(data)
    except ConfigError as e:
        assert "\n" not in str(e), "errors are one line"
        return
    _assert_valid(cfg)


def _load_file_and_check(tmp_path_factory, text: str) -> None:
    """load_config on a file holding text: a valid config or one ConfigError line, nothing else."""
    path = tmp_path_factory.mktemp("fuzz") / "config.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        cfg = load_config(path)
    except ConfigError as e:
        assert "\n" not in str(e)
        return
    _assert_valid(cfg)


@FEWER
@given(data=sections())
def test_load_config_on_a_yaml_file_returns_config_or_raises_config_error(tmp_path_factory, data):
    _load_file_and_check(tmp_path_factory, yaml.safe_dump(data, allow_unicode=True))


def _alias_bomb(levels: int = 9) -> str:
    """Billion laughs: each level is a list of 9 aliases to the level below."""
    text = "&l0 [" + ",".join(["lol"] * 9) + "]"
    for i in range(1, levels):
        text = f"&l{i} [{text}," + ",".join([f"*l{i - 1}"] * 8) + "]"
    return text


@FEWER
@given(text=st.text(max_size=200))
@example(text="[" * 100_000)  # found while writing this test: RecursionError from PyYAML
@example(text=f"train: {{steps: {_alias_bomb()}}}")  # a hostile-user sweep: 62 s and 5.8 GB to say 'not an int'
@example(text="train: {lr_g: !!float x}")  # found by the same sweep: a bare ValueError from PyYAML
def test_load_config_on_arbitrary_text_returns_config_or_raises_config_error(tmp_path_factory, text):
    _load_file_and_check(tmp_path_factory, text)


@FEWER
@given(overrides=st.lists(st.builds(lambda k, v: f"{k}={v}", st.sampled_from([*KEYS, "data.name", "train.steps", "train.lr_g", "model.generator.upsampling", "a..b", ""]) | st.text(max_size=10), st.text(max_size=20)), max_size=4))
@example(overrides=["0\n0=[="])  # found by this test: a two-line error
@example(overrides=["train.steps=" + "[" * 100_000])
@example(overrides=[f"train.steps={_alias_bomb()}"])
def test_overrides_return_config_or_raise_config_error(overrides):
    try:
        cfg = load_config(None, overrides)
    except ConfigError as e:
        assert "\n" not in str(e)
        return
    _assert_valid(cfg)
