"""The package's layout is the pipeline: every import, function-level ones included, points to an
earlier layer or within its own, the modules import in no circle, and no module outgrows one job."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "dcgan"
LAYERS = ("core", "data", "models", "evaluation", "training", "tools", "studio")  # the pipeline, in order
MAX_LINES = 400


def modules() -> dict[str, Path]:
    return {".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(path: Path) -> set[str]:
    """Every dcgan module this file imports, anywhere in it; `from dcgan.x import y` names y when y is a module."""
    known = modules()
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("dcgan.")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "dcgan":
            for a in node.names:
                found.add(f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in known else node.module)
    return {m for m in found if m in known and not m.endswith("__init__")} - {"dcgan"}


def layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 2 and parts[1] in LAYERS else len(LAYERS)  # dcgan.cli, dcgan.api: on top


def test_every_module_is_in_a_layer():
    stray = [m for m in modules() if layer(m) == len(LAYERS) and m not in ("dcgan.__init__", "dcgan.__main__", "dcgan.cli",
                                                                           "dcgan.api")]
    assert stray == []


@pytest.mark.parametrize("module", sorted(modules()))
def test_imports_point_to_earlier_layers(module):
    later = sorted(m for m in imports(modules()[module]) if layer(m) > layer(module))
    assert later == [], f"{module} (layer {layer(module)}) imports a later layer"


def test_modules_import_in_no_circle():
    graph = {m: imports(p) for m, p in modules().items()}
    state: dict[str, int] = {}

    def visit(m, path):
        if state.get(m) == 1:
            raise AssertionError("circle: " + " -> ".join(path[path.index(m):] + [m]))
        if state.get(m) == 2:
            return
        state[m] = 1
        for n in sorted(graph[m]):
            visit(n, path + [m])
        state[m] = 2

    for m in sorted(graph):
        visit(m, [])


def test_no_module_outgrows_one_job():
    long = {m: n for m, p in modules().items() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}
