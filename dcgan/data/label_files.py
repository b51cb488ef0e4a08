"""Class labels from a file beside the pictures (data.labels, `dcgan prepare --labels FILE`).

Two formats: StyleGAN2-ADA's `dataset.json`, `{"labels": [["relative/path.png", 3], ...]}` (a label is a class
index, or a class name), and a CSV whose header names two columns, the path and the class name. Paths are relative
to the folder (or archive) with `/` between parts. The file must cover the pictures exactly: a picture without a
label, a label naming no picture, a path that leaves the folder, a path listed twice, or a label that is not a
whole number or a name is an error naming the first such entry. Class names are sorted (numbers numerically).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from dcgan.data.datafiles import DataError
from dcgan.data.pictures import read_label_file

MAX_LABEL_FILE_BYTES = 256 << 20  # ~5 million entries


@dataclass(frozen=True)
class FileLabels:
    names: list[str]  # the labelled pictures, in the listing's order
    labels: list[int]  # each one's class: an index into classes
    classes: list[str]


def labels_from_file(pictures, spec: str) -> FileLabels:
    """The labels data.labels names: a file inside the folder or archive (relative), or anywhere (absolute)."""
    where = Path(spec)
    if where.is_absolute():
        raw, shown = read_label_file(where, MAX_LABEL_FILE_BYTES), str(where)
    else:
        raw, shown = pictures.member(PurePosixPath(spec).as_posix(), MAX_LABEL_FILE_BYTES), f"{pictures.root}/{spec}"
    entries = _parse(raw, shown)
    return _match(entries, pictures.names, shown, skip={PurePosixPath(spec).as_posix()})


def _parse(raw: bytes, shown: str) -> list[tuple[str, str | int]]:
    """(path, label) entries of a dataset.json or a CSV, in the file's order."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DataError(f"data.labels: {shown} is not UTF-8 text") from None
    if shown.lower().endswith(".json"):
        return _parse_json(text, shown)
    return _parse_csv(text, shown)


def _parse_json(text: str, shown: str) -> list[tuple[str, str | int]]:
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise DataError(f"data.labels: {shown} is not valid JSON ({e})") from None
    labels = doc.get("labels") if isinstance(doc, dict) else None
    if not isinstance(labels, list):
        raise DataError(f'data.labels: {shown} has no "labels" list (dataset.json: {{"labels": [["path", class], ...]}})')
    entries = []
    for i, entry in enumerate(labels):
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str)):
            raise DataError(f"data.labels: {shown}: entry {i} ({_short(entry)}) is not a [path, class] pair")
        label = entry[1]
        if isinstance(label, bool) or not (isinstance(label, str) and label or isinstance(label, int) and label >= 0):
            raise DataError(f"data.labels: {shown}: entry {i} ({_short(entry)}): the class must be a whole number "
                            "0 or more or a name")
        entries.append((entry[0], label))
    return entries


def _parse_csv(text: str, shown: str) -> list[tuple[str, str | int]]:
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or len(rows[0]) != 2:
        raise DataError(f"data.labels: {shown}: a label CSV starts with a header of two columns (path, class name)")
    entries = []
    for line, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != 2 or not row[0] or not row[1].strip():
            raise DataError(f"data.labels: {shown}: line {line} ({_short(row)}) is not a path and a class name")
        entries.append((row[0], row[1].strip()))
    return entries


def _match(entries: list[tuple[str, str | int]], names: list[str], shown: str, skip: set[str]) -> FileLabels:
    listed = set(names)
    by_name: dict[str, str | int] = {}
    for path, label in entries:
        name = _relative(path, shown)
        if name in by_name:
            raise DataError(f"data.labels: {shown}: {path!r} is listed twice")
        if name not in listed:
            raise DataError(f"data.labels: {shown}: {path!r} names no picture in the folder")
        by_name[name] = label
    missing = next((n for n in names if n not in by_name and n not in skip), None)
    if missing is not None:
        raise DataError(f"data.labels: {shown} has no label for {missing!r} (every picture needs one)")
    values = set(by_name.values())
    if len({type(v) for v in values}) > 1:
        raise DataError(f"data.labels: {shown} mixes class numbers and class names; use one or the other")
    classes = [str(c) for c in sorted(values)]
    index = {c: i for i, c in enumerate(classes)}
    kept = [n for n in names if n in by_name]
    return FileLabels(kept, [index[str(by_name[n])] for n in kept], classes)


def _relative(path: str, shown: str) -> str:
    """path as the listing names it, or DataError when it leaves the folder."""
    parts = path.replace("\\", "/").split("/")
    if path.startswith(("/", "\\")) or ".." in parts or (len(path) > 1 and path[1] == ":"):
        raise DataError(f"data.labels: {shown}: {path!r} leaves the folder; paths are relative to it")
    return "/".join(p for p in parts if p not in ("", "."))


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
