"""YAML in, plain data out: safe_load's types only, decimal numbers only, no duplicate keys, bounded.

`read_yaml` reads a config file and `read_value` one `--set` value; whatever is wrong with either,
a hostile document included, is one ConfigError line saying where. Nothing here knows the config's
keys: dcgan.core.config validates what this returns.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.events import AliasEvent
from yaml.nodes import ScalarNode

from dcgan.core.errors import ConfigError, clip, printable, show

MAX_FILE_BYTES = 1 << 20  # a config is a few hundred bytes; this refuses /dev/zero and friends
MAX_NODES = 10_000  # YAML values in a document, aliases expanded: a full config has under 100
MAX_DEPTH = 32  # nesting levels: a config has 3

INT_TAG, FLOAT_TAG = "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"
MERGE_TAG = "tag:yaml.org,2002:merge"
# YAML 1.1 also reads 0x10, 017, 0b11 and 190:20:30 (base 60) as ints, and 1:30.5 as a float; a config means
# none of them, so numbers are decimal only (optionally signed, `_` between digit groups: 1_000). The rest
# stay strings, which a number field then refuses by name. Both patterns match a subset of what YAML 1.1
# (and so yaml.safe_dump) takes for numbers, so every dumped config reads back the same.
_DIGITS = r"[0-9]+(?:_[0-9]+)*"
PLAIN_INT = re.compile(r"^[-+]?(?:0|[1-9][0-9]*(?:_[0-9]+)*)$")
PLAIN_FLOAT = re.compile(rf"""^(?:[-+]?{_DIGITS}\.(?:{_DIGITS})?(?:[eE][-+][0-9]+)?
                              |\.{_DIGITS}(?:[eE][-+][0-9]+)?
                              |[-+]?\.(?:inf|Inf|INF)
                              |\.(?:nan|NaN|NAN))$""", re.X)


class ConfigLoader(yaml.SafeLoader):
    """SafeLoader that reads what a config can mean and refuses the rest with a marked YAML error:
    decimal numbers only, no duplicate keys, bounded size (aliases expanded) and depth."""

    yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag not in (INT_TAG, FLOAT_TAG)]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def __init__(self, stream):
        super().__init__(stream)
        # PyYAML's own attributes have no leading underscore; _sizes: id(node) -> its node count, aliases expanded
        self._nodes, self._depth, self._sizes = 0, 0, {}

    def compose_node(self, parent, index):
        # A billion-laughs document is a few hundred bytes of aliases to aliases; its size is counted here, as
        # if every alias were a copy, so it is refused before anything (repr, validation) walks the copies.
        if self.check_event(AliasEvent):
            event = self.peek_event()
            target = self.anchors.get(event.anchor)
            if target is not None:
                if id(target) not in self._sizes:  # still being composed: a cycle, infinite when expanded
                    raise ComposerError(None, None, f"alias *{event.anchor} is inside its own anchor",
                                        event.start_mark)
                self._count(self._sizes[id(target)], event.start_mark)
            return super().compose_node(parent, index)
        mark, before = self.peek_event().start_mark, self._nodes
        self._depth += 1
        if self._depth > MAX_DEPTH:  # PyYAML recurses once per level: a clear error long before RecursionError
            raise ComposerError(None, None, f"nested more than {MAX_DEPTH} levels deep", mark)
        node = super().compose_node(parent, index)
        self._depth -= 1
        self._count(1, mark)
        self._sizes[id(node)] = self._nodes - before
        return node

    def _count(self, n: int, mark) -> None:
        self._nodes += n
        if self._nodes > MAX_NODES:
            raise ComposerError(None, None, f"more than {MAX_NODES} values (aliases expanded); "
                                "a config needs far fewer", mark)

    def compose_mapping_node(self, anchor):
        node = super().compose_mapping_node(anchor)
        seen = {}  # (tag, text) -> first key node; YAML says keys are unique, PyYAML keeps the last silently
        for key, _ in node.value:
            if not isinstance(key, ScalarNode) or key.tag == MERGE_TAG:  # `<<` may override merged keys
                continue
            first = seen.get((key.tag, key.value))
            if first is not None:
                raise ConstructorError(None, None, f"duplicate key {show(key.value)} (first on line "
                                       f"{first.start_mark.line + 1})", key.start_mark)
            seen[key.tag, key.value] = key
        return node

    def construct_yaml_int(self, node):
        text = self.construct_scalar(node)
        if not PLAIN_INT.match(text) or len(text) > 100:  # also for explicit !!int
            raise ConstructorError(None, None, f"{show(text)} is not a decimal integer of at most 100 digits",
                                   node.start_mark)
        return int(text.replace("_", ""))

    def construct_yaml_float(self, node):
        text = self.construct_scalar(node)
        if ":" in text:  # an explicit !!float 1:30 would be base 60
            raise ConstructorError(None, None, f"{show(text)} is not a decimal number", node.start_mark)
        return self._checked(SafeConstructor.construct_yaml_float, node)

    def construct_yaml_bool(self, node):
        return self._checked(SafeConstructor.construct_yaml_bool, node)

    def construct_yaml_timestamp(self, node):
        return self._checked(SafeConstructor.construct_yaml_timestamp, node)

    def _checked(self, construct, node):
        # PyYAML's scalar constructors raise bare ValueError/KeyError/... on what an explicit tag (`!!float abc`)
        # or an impossible date (2020-13-45) hands them; make that a marked YAML error like any other.
        try:
            return construct(self, node)
        except (ValueError, KeyError, AttributeError, IndexError, TypeError):
            raise ConstructorError(None, None, f"{show(node.value)} is not a valid {node.tag.rsplit(':', 1)[-1]}",
                                   node.start_mark) from None


for _tag, _name in [(INT_TAG, "int"), (FLOAT_TAG, "float"), ("tag:yaml.org,2002:bool", "bool"),
                    ("tag:yaml.org,2002:timestamp", "timestamp")]:
    ConfigLoader.add_constructor(_tag, getattr(ConfigLoader, f"construct_yaml_{_name}"))
ConfigLoader.add_implicit_resolver(INT_TAG, PLAIN_INT, list("-+0123456789"))
ConfigLoader.add_implicit_resolver(FLOAT_TAG, PLAIN_FLOAT, list("-+0123456789."))


def load_yaml(text: str) -> Any:
    """Parse one YAML document with ConfigLoader; raises yaml.YAMLError (or RecursionError)."""
    loader = ConfigLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def _yaml_problem(e: yaml.YAMLError) -> str:
    """'(line L, column C): problem' on one short line."""
    mark = getattr(e, "problem_mark", None)
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    return f"{where}: {clip(problem, 200)}"


def read_yaml(path: str | Path) -> Any:
    """Load a YAML config file; any problem becomes one ConfigError line naming the file."""
    path = Path(path)
    shown = printable(str(path))  # not cut: the OS bounds a path, and its end names the file
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {shown}") from None
    except OSError as e:
        raise ConfigError(f"cannot read config file {shown}: {clip(e.strerror or str(e), 200)}") from None
    return yaml_from_bytes(raw, path)


def yaml_from_bytes(raw: bytes, path: str | Path) -> Any:
    """A YAML file's bytes, as the caller read them (up to MAX_FILE_BYTES + 1), parsed; problems as in read_yaml."""
    shown = printable(str(path))
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError(f"config file {shown} is larger than {MAX_FILE_BYTES >> 20} MiB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"cannot read config file {shown}: {clip(str(e), 200)}") from None
    return _load_explained(text, f"invalid YAML in {shown}")


def read_value(raw: str, where: str) -> Any:
    """One value written as YAML text (blank is null); a problem is ConfigError '<where>: cannot parse value ...'."""
    if not raw.strip():
        return None
    return _load_explained(raw, f"{where}: cannot parse value {show(raw)}")


def _load_explained(text: str, what: str) -> Any:
    """load_yaml(text); a problem is one ConfigError line: what, then where in text and what is wrong there."""
    try:
        return load_yaml(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{what}{_yaml_problem(e)}") from None
    except RecursionError:  # MAX_DEPTH stops PyYAML's recursion first; kept in case a caller's stack is deep
        raise ConfigError(f"{what}: nested too deeply") from None
