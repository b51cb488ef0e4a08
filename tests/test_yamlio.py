"""YAML in, plain data out: strict about numbers and duplicate keys, bounded against bombs, one-line errors."""

import re
import time

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from helpers import one_line_config_error
from helpers import cli_error
from dcgan.core.config import load_config, parse_override
from dcgan.core.errors import ConfigError
from dcgan.core.yamlio import load_yaml, read_value

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


# Billion laughs: 9 levels of 9 aliases, ~300 bytes that expand to 9**9 strings. PyYAML builds it fast (the
# aliases share one list), but anything that walks it (repr in an error message) takes a minute and gigabytes.
BOMB = ("&i [&h [&g [&f [&e [&d [&c [&b [&a [lol,lol,lol,lol,lol,lol,lol,lol,lol],*a,*a,*a,*a,*a,*a,*a,*a],"
        "*b,*b,*b,*b,*b,*b,*b,*b],*c,*c,*c,*c,*c,*c,*c,*c],*d,*d,*d,*d,*d,*d,*d,*d],*e,*e,*e,*e,*e,*e,*e,*e],"
        "*f,*f,*f,*f,*f,*f,*f,*f],*g,*g,*g,*g,*g,*g,*g,*g],*h,*h,*h,*h,*h,*h,*h,*h]")


def test_alias_bomb_is_refused_at_once_in_a_file_in_set_and_on_the_command_line(tmp_path, capsys):
    path = tmp_path / "bomb.yaml"
    path.write_text(f"train:\n  steps: {BOMB}\n")
    start = time.perf_counter()
    assert "values (aliases expanded)" in one_line_config_error(load_config, path)
    assert "--set train.steps: cannot parse value" in one_line_config_error(parse_override, f"train.steps={BOMB}")
    assert "values (aliases expanded)" in one_line_config_error(load_config, None, [f"train.steps={BOMB}"])
    assert "values (aliases expanded)" in cli_error(capsys, "train", "--config", path)
    assert time.perf_counter() - start < 1.0


def test_small_anchors_and_merge_keys_still_work_but_an_alias_inside_its_anchor_does_not(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  generator: &g {base_channels: 8, kernel_size: 3}\n"
                    "  discriminator: {<<: *g, kernel_size: 4}\n")  # overriding a merged key is not a duplicate
    disc = load_config(path).model.discriminator
    assert (disc.base_channels, disc.kernel_size) == (8, 4)
    path.write_text("train: {steps: &a [*a]}\n")
    assert "alias *a is inside its own anchor" in one_line_config_error(load_config, path)


@pytest.mark.parametrize("text, key, line, first", [
    ("train:\n  steps: 1\n  lr_g: 0.1\n  steps: 2\n", "steps", 4, 2),
    ("train: {steps: 1}\ndata: {}\ntrain: {steps: 2}\n", "train", 3, 1),  # a whole section twice
    ("model:\n  generator:\n    latent_dim: 8\n    'latent_dim': 9\n", "latent_dim", 4, 3),  # quoting: same key
    ("train: {steps: 1, steps: 1}\n", "steps", 1, 1),  # even with the same value
])
def test_duplicate_keys_are_refused_naming_key_and_lines(tmp_path, text, key, line, first):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    message = one_line_config_error(load_config, path)
    assert f"(line {line}, column" in message and f"duplicate key '{key}' (first on line {first})" in message
    assert "duplicate key 'a'" in one_line_config_error(parse_override, "distribute.devices={a: 1, a: 2}")


@pytest.mark.parametrize("key, text", [
    ("train.steps", "190:20:30"),  # YAML 1.1: base 60, 685230
    ("train.steps", "017"), ("train.steps", "0o17"), ("train.steps", "0x10"), ("train.steps", "0b11"),  # 15, '0o17', 16, 3
    ("train.steps", "1__0_"),  # 10: `_` only between digit groups
    ("train.lr_g", "1:30.5"),  # base 60, 90.5
])
def test_numbers_are_decimal_only_in_files_and_in_set(tmp_path, key, text):
    kind = "int (write decimal digits, e.g. 1000 or 1_000)" if key == "train.steps" else "float"
    expected = f"{key}: {text!r} is not a valid {kind}"
    assert expected in one_line_config_error(load_config, None, [f"{key}={text}"])
    path = tmp_path / "c.yaml"
    section, name = key.split(".")
    path.write_text(f"{section}:\n  {name}: {text}\n")
    assert expected in one_line_config_error(load_config, path)
    path.write_text(f"{section}:\n  {name}: !!{kind.split()[0]} '{text}'\n")  # an explicit tag does not bring them back
    assert "is not a" in one_line_config_error(load_config, path)


@pytest.mark.parametrize("text", ["1e-4", "2e-4", "2.0e-4", "1.0e+300", "0.5", ".5", "-.5", "-3", "+5", "0", "1_000",
                                  "1_000.5", ".inf", "-.inf", "12", "1.", "yes", "null", "2020-01-02", "a:b"])
def test_decimal_numbers_and_other_scalars_read_as_yaml_1_1_reads_them(text):
    assert load_yaml(f"v: {text}") == yaml.safe_load(f"v: {text}")
    assert parse_override(f"train.x={text}")[1] == yaml.safe_load(f"v: {text}")["v"]


@pytest.mark.parametrize("text, problem", [
    ("train: {lr_g: !!float abc}", "'abc' is not a valid float"),  # PyYAML: bare ValueError
    ("train: {deterministic: !!bool maybe}", "'maybe' is not a valid bool"),  # KeyError
    ("train: {steps: !!int ''}", "'' is not a decimal integer"),  # IndexError
    ("run: {name: 2020-13-45}", "'2020-13-45' is not a valid timestamp"),  # ValueError, no tag needed
    ("train: {steps: " + "9" * 5000 + "}", "is not a decimal integer of at most 100 digits"),  # int() refuses 4300+
    ("train: {steps: " + "[" * 40 + "]" * 40 + "}", "nested more than 32 levels deep"),
])
def test_scalars_pyyaml_chokes_on_are_yaml_errors_with_a_position(tmp_path, text, problem):
    path = tmp_path / "c.yaml"
    path.write_text(text + "\n")
    message = one_line_config_error(load_config, path)
    assert message.startswith(f"invalid YAML in {path} (line 1, column ") and problem in message


def test_config_file_size_and_name_are_checked(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text("#" * (1 << 21) + "\n")  # only a comment, but nobody writes a 2 MiB config
    assert "is larger than 1 MiB" in one_line_config_error(load_config, big)
    assert "config file not found: " in one_line_config_error(load_config, tmp_path / "a\nb.yaml")
    assert "cannot read config file" in one_line_config_error(load_config, tmp_path)  # a directory


def test_read_value_reads_blank_as_null_and_names_where_a_problem_is():
    assert read_value(" ", "--set x") is None
    assert read_value("[1, 2]", "--set x") == [1, 2]
    with pytest.raises(ConfigError, match=re.escape("--set x: cannot parse value '[1, 2' (line 1, column 6): expected ',' or ']'")):
        read_value("[1, 2", "--set x")


# ---------------------------------------------------------------- property-based


@SETTINGS
@given(value=st.text() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats() | st.booleans() | st.none())
@example(value="190:20:30")
@example(value="1e-4")  # a string to YAML 1.1 (no dot), so safe_dump writes it unquoted
@example(value="0x10")
def test_what_yaml_safe_dump_writes_the_config_loader_reads_back(value):
    """run config.yaml files are written by yaml.safe_dump: the stricter loader reads them as safe_load does."""
    for data in (value, {"key": value}, [value]):
        text = yaml.safe_dump(data, allow_unicode=True)
        back, reference = load_yaml(text), yaml.safe_load(text)  # (safe_load itself turns '\x85' into ' ')
        assert repr(back) == repr(reference) and type(_leaf(back)) is type(_leaf(reference)) is type(value)


def _leaf(data):
    return data["key"] if isinstance(data, dict) else data[0] if isinstance(data, list) else data


@SETTINGS
@given(text=st.text(alphabet="0123456789+-_:.xobeE", min_size=1, max_size=10))
@example(text="190:20:30")
@example(text="017")
@example(text="0x10")
@example(text="1:30.5")
def test_only_decimal_text_reads_as_a_number(text):
    """A number is read only from decimal text, and then it is the number YAML 1.1 reads too."""
    try:
        value = load_yaml(f"v: {text}")["v"]
    except Exception as e:  # noqa: BLE001 - only a YAML error is allowed, checked below
        assert isinstance(e, yaml.YAMLError), repr(e)
        return
    if isinstance(value, (int, float)):
        assert re.fullmatch(r"[-+]?[0-9._]*(?:[eE][-+][0-9]+)?", text), "no base 60, hex, octal, binary"
        assert not re.match(r"[-+]?0[0-9_]", text) or "." in text, "no octal"
        assert value == yaml.safe_load(f"v: {text}")["v"] == (float(text) if isinstance(value, float) else int(text))
