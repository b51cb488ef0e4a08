"""The README stays true: its test command is what CI runs, its config table is the schema."""

import re
from pathlib import Path

from dcgan.config import reference_markdown

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def code_lines():
    return [line.strip() for block in re.findall(r"```\n(.*?)```", README, re.S) for line in block.splitlines()]


def test_ci_runs_the_readme_test_command():
    test_command = "bash scripts/setup.sh --test && .venv/bin/python -m pytest"
    assert test_command in code_lines()
    assert test_command in (ROOT / ".ci" / "run").read_text().splitlines()


def test_main_job_command_is_in_the_readme():
    assert "bash scripts/setup.sh && .venv/bin/dcgan train" in code_lines()


def test_config_reference_matches_the_schema():
    # regenerate with: python scripts/update_readme.py
    assert reference_markdown() in README


def test_code_map_names_every_module_of_the_package():
    section = README.split("## Code map", 1)[1].split("\n## ", 1)[0]
    mapped = set(re.findall(r"`(\w+)\.py`", section))
    modules = {p.stem for p in (ROOT / "dcgan").glob("*.py") if not p.stem.startswith("__")}
    assert mapped == modules
