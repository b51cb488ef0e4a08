#!/usr/bin/env python
"""Regenerate the config reference table in docs/config.md from the config schema (dcgan/core/schema.py)."""

import re
from pathlib import Path

from dcgan.core.config import reference_markdown

CONFIG_DOC = Path(__file__).resolve().parent.parent / "docs" / "config.md"
BEGIN, END = "<!-- CONFIG-REFERENCE -->", "<!-- /CONFIG-REFERENCE -->"


def main() -> None:
    text = CONFIG_DOC.read_text()
    block = f"{BEGIN}\n{reference_markdown()}{END}"
    pattern = re.compile(re.escape(BEGIN) + r"(.*?" + re.escape(END) + r")?", re.S)
    CONFIG_DOC.write_text(pattern.sub(lambda _: block, text, count=1))


if __name__ == "__main__":
    main()
