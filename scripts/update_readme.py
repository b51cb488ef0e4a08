#!/usr/bin/env python
"""Regenerate the README's config reference table from the config schema (dcgan/config.py)."""

import re
from pathlib import Path

from dcgan.config import reference_markdown

README = Path(__file__).resolve().parent.parent / "README.md"
BEGIN, END = "<!-- CONFIG-REFERENCE -->", "<!-- /CONFIG-REFERENCE -->"


def main() -> None:
    text = README.read_text()
    block = f"{BEGIN}\n{reference_markdown()}{END}"
    pattern = re.compile(re.escape(BEGIN) + r"(.*?" + re.escape(END) + r")?", re.S)
    README.write_text(pattern.sub(lambda _: block, text, count=1))


if __name__ == "__main__":
    main()
