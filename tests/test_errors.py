"""Untrusted values in error messages: one line, at most SHOW_LIMIT characters, never a full repr."""

from dcgan.core.errors import SHOW_LIMIT, clip, printable, show


def test_show_cuts_huge_deep_and_cyclic_values_without_a_full_repr():
    deep = []
    for _ in range(100_000):  # repr() of it raises RecursionError
        deep = [deep]
    cycle = []
    cycle.append(cycle)
    assert show(deep) == show(cycle) == "[" * (SHOW_LIMIT - 3) + "..."
    assert show("x" * 10**6) == "'" + "x" * (SHOW_LIMIT - 4) + "..."
    assert show(10**5000) == "<a 5001-digit integer>"  # str() of it raises
    assert show({"a": [1, (2, 3)], "b": None}) == repr({"a": [1, (2, 3)], "b": None})  # short: the plain repr


def test_clip_and_printable_keep_text_on_one_line():
    assert printable("plain text") == "plain text"
    assert printable("a\nb\u2028c") == "a\\nb\\u2028c"
    assert clip("x" * 100, 10) == "xxxxxxx..."
    assert clip("a\nb") == "a\\nb"


def test_first_line_cuts_long_messages_and_names_an_empty_one():
    from dcgan.core.errors import first_line

    assert first_line(ValueError("No space left on device\n  more TensorFlow detail\n")) == "No space left on device"
    assert first_line(KeyError()) == "KeyError"
    assert first_line(OSError("  \n")) == "OSError"
