"""scripts/sweep.py: the argument types and the results file the sweep scripts share."""

import argparse
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import sweep  # noqa: E402


def test_seeds_and_variants_are_checked():
    assert sweep.ints("0, 2,") == [0, 2]
    for bad in ("", "a", "-1"):
        with pytest.raises(argparse.ArgumentTypeError):
            sweep.ints(bad)
    parse = sweep.choices({"none": [], "ada": []})
    assert parse("ada,none") == ["ada", "none"]
    with pytest.raises(argparse.ArgumentTypeError, match="^'bogus': variants are some of none, ada$"):
        parse("none,bogus")
    with pytest.raises(argparse.ArgumentTypeError, match="^nothing: "):
        parse(",")


def test_results_of_separate_processes_merge_and_a_rerun_replaces_its_row(tmp_path):
    path, fields, variants = tmp_path / "results.json", ("limit", "variant", "seed"), ["none", "diffaugment", "ada"]
    sweep.merge_results(path, [{"limit": 1000, "variant": "ada", "seed": 1, "fid": 3.0}], fields, variants)
    sweep.merge_results(path, [{"limit": 1000, "variant": "none", "seed": 0, "fid": 4.0},
                               {"limit": 1000, "variant": "ada", "seed": 0, "fid": 5.0}], fields, variants)
    merged = sweep.merge_results(path, [{"limit": 1000, "variant": "ada", "seed": 1, "fid": 2.5}], fields, variants)
    assert merged == json.loads(path.read_text())
    assert [(r["variant"], r["seed"], r["fid"]) for r in merged] == [("none", 0, 4.0), ("ada", 0, 5.0), ("ada", 1, 2.5)]
