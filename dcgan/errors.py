"""The one exception type that means "the user asked for something we can't do".

The CLI prints these as a single line and exits non-zero; anything else is a bug
and keeps its traceback.
"""


class DcganError(Exception):
    """A user error: bad config, missing file, incompatible checkpoint, ..."""


class ConfigError(DcganError):
    """A config key, value or file that is not valid."""


def first_line(e: BaseException) -> str:
    """An exception's message cut to its first line (TensorFlow's and zipfile's run to many), or its type."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
