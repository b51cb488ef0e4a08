"""What the sweep scripts (augment_small_data.py, folder_augment.py) share: argument types and a results file
that several processes (one seed per core) add their rows to."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def ints(text: str) -> list[int]:
    """'0,1' -> [0, 1]: comma-separated non-negative integers (an argparse type)."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 0:
        raise argparse.ArgumentTypeError(f"expected comma-separated non-negative integers, got {text!r}")
    return values


def choices(known) -> callable:
    """An argparse type: comma-separated names, each one of `known`."""
    def parse(text: str) -> list[str]:
        chosen = [v.strip() for v in text.split(",") if v.strip()]
        unknown = [v for v in chosen if v not in known]
        if not chosen or unknown:
            raise argparse.ArgumentTypeError(f"{', '.join(map(repr, unknown)) or 'nothing'}: variants are some of {', '.join(known)}")
        return chosen
    return parse


def add_common_arguments(parser: argparse.ArgumentParser, out: str, what: str) -> None:
    """--seeds, --n, --out, --set and --report, the same in every sweep; what: what --report rebuilds."""
    parser.add_argument("--seeds", type=ints, default=[0], help="comma-separated seeds (default 0)")
    parser.add_argument("--n", type=int, default=10000, help="generated images per score (default 10000)")
    parser.add_argument("--out", type=Path, default=Path(out), help="parent of the runs")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="a config override for every run (repeatable), e.g. train.r1_gamma=1")
    parser.add_argument("--report", action="store_true", help=f"train nothing: {what} of --out/results.json")


def merge_results(path: Path, rows: list[dict], fields: tuple[str, ...], variants) -> list[dict]:
    """path's rows with these replacing any with the same `fields`, sorted by them (variants in their
    given order); written back atomically and returned."""
    from dcgan.core.files import atomic_write

    order = list(variants)

    def key(r):
        return tuple(order.index(r[f]) if f == "variant" else r[f] for f in fields)

    new = {key(r) for r in rows}
    old = json.loads(path.read_text()) if path.is_file() else []
    merged = sorted([r for r in old if key(r) not in new] + rows, key=key)
    atomic_write(path, json.dumps(merged, indent=2) + "\n")
    return merged
