"""User errors: the one exception type that means "the user asked for something we can't do", and how its
messages stay on one line.

The CLI prints a DcganError as a single line and exits non-zero; anything else is a bug and keeps its
traceback. Untrusted values quoted in a message go through `show`/`clip`: a config key or value can be a
1 MB string, a 5000-digit integer, a list nested 100,000 deep or a billion-laughs alias tree, and `show`
builds only the first SHOW_LIMIT characters of its repr.
"""

from __future__ import annotations

from typing import Any


class DcganError(Exception):
    """A user error: bad config, missing file, incompatible checkpoint, ..."""


class ConfigError(DcganError):
    """A config key, value or file that is not valid."""


def first_line(e: BaseException) -> str:
    """An exception's message cut to its first line (TensorFlow's and zipfile's run to many), or its type."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


SHOW_LIMIT = 60  # characters of a value an error message shows


def printable(text: str) -> str:
    """text on one line: escaped (as ascii() does) if it holds a newline or other non-printable character."""
    return text if text.isprintable() else ascii(text)[1:-1]


def clip(text: str, limit: int = SHOW_LIMIT) -> str:
    """text printable and cut to at most limit characters (for keys and messages; values go through show)."""
    text = printable(text[: limit + 1])
    return text if len(text) <= limit else text[: limit - 3] + "..."


def show(value: Any, limit: int = SHOW_LIMIT) -> str:
    """A repr of value cut to limit characters, built lazily: never a full repr of a huge or deep value."""
    text, size = [], 0
    for piece in _pieces(value, limit, 0):
        text.append(piece)
        size += len(piece)
        if size > limit:
            break
    shown = "".join(text)
    return shown if size <= limit else shown[: limit - 3] + "..."


def _pieces(value: Any, limit: int, depth: int):
    """repr(value) in pieces; each piece is non-empty, so the caller's budget ends any walk, even of a cycle."""
    if depth >= limit:  # every level adds a bracket: deeper than limit cannot show anyway
        yield "..."
    elif isinstance(value, dict):
        yield "{"
        for i, (k, v) in enumerate(value.items()):
            if i:
                yield ", "
            yield from _pieces(k, limit, depth + 1)
            yield ": "
            yield from _pieces(v, limit, depth + 1)
        yield "}"
    elif isinstance(value, (list, tuple, set, frozenset)):
        yield "[" if isinstance(value, list) else "("
        for i, v in enumerate(value):
            if i:
                yield ", "
            yield from _pieces(v, limit, depth + 1)
        yield "]" if isinstance(value, list) else ")"
    elif isinstance(value, (str, bytes)):
        yield repr(value[: limit + 1])  # longer than limit: it is cut anyway
    elif isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
        yield f"<a {int(value.bit_length() * 0.30103) + 1}-digit integer>"  # str() of 4300+ digits raises
    else:
        yield repr(value)
