"""The docs stay true: the README's test command is what CI runs, the config table is the schema, links resolve."""

import re
from pathlib import Path

from dcgan.core.config import reference_markdown

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
DOCS = sorted((ROOT / "docs").glob("*.md"))


def code_lines():
    return [line.strip() for block in re.findall(r"```\n(.*?)```", README, re.S) for line in block.splitlines()]


def test_ci_runs_the_readme_test_command():
    test_command = "bash scripts/setup.sh --test && .venv/bin/python -m pytest"
    assert test_command in code_lines()
    assert test_command in (ROOT / ".ci" / "run").read_text().splitlines()


def test_main_job_command_is_in_the_readme():
    assert "bash scripts/setup.sh && .venv/bin/dcgan train" in code_lines()


def test_config_reference_matches_the_schema():
    # regenerate with: python scripts/update_docs.py
    assert reference_markdown() in (ROOT / "docs" / "config.md").read_text()


def test_code_map_names_every_module_of_the_package():
    section = README.split("## Code map", 1)[1].split("\n## ", 1)[0]
    rows = {m[1]: set(re.findall(r"`(\w+)\.py`", m[2])) for m in re.finditer(r"^\| `(dcgan/(?:\w+/)?)` \|(.*?)\|", section, re.M)}
    package = ROOT / "dcgan"
    folders = {"dcgan/"} | {f"dcgan/{p.name}/" for p in package.iterdir() if (p / "__init__.py").exists()}
    assert set(rows) == folders
    for folder, mapped in rows.items():
        modules = {p.stem for p in (ROOT / folder).glob("*.py") if not p.stem.startswith("__")}
        assert mapped == modules, folder

def relative_links(text):
    """Targets of markdown links and images, and of <img src>, outside fenced code; no URLs, no bare #anchors."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    targets = re.findall(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)", text)
    targets += re.findall(r"<img\s[^>]*src=\"([^\"]+)\"", text)
    return [t for t in targets if not re.match(r"[a-z][a-z0-9+.-]*:", t, re.I) and not t.startswith("#")]


def test_every_relative_link_resolves():
    broken = []
    for page in [ROOT / "README.md", *DOCS]:
        for target in relative_links(page.read_text()):
            path = target.split("#", 1)[0]
            if not (page.parent / path).exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert DOCS and not broken, broken


def test_readme_links_every_doc():
    linked = {(ROOT / target.split("#", 1)[0]).resolve() for target in relative_links(README)}
    assert [p.name for p in DOCS if p.resolve() not in linked] == []


def test_readme_is_a_front_page():
    assert len(README.splitlines()) <= 320
