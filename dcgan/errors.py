"""The one exception type that means "the user asked for something we can't do".

The CLI prints these as a single line and exits non-zero; anything else is a bug
and keeps its traceback.
"""


class DcganError(Exception):
    """A user error: bad config, missing file, incompatible checkpoint, ..."""


class ConfigError(DcganError):
    """A config key, value or file that is not valid."""
