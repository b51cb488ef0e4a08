"""The registered datasets: the built-in sources, and how a data.name (or a `dcgan prepare` SOURCE path) finds one.

The config validates data.name against the names declared in dcgan.core.schema (it imports no data module); the
built-in sources register here under exactly those names, and a new dataset's module registers its own
(`dcgan.data.source.register`), which declares it to the config too.
"""

from __future__ import annotations

from pathlib import Path

from dcgan.core.errors import ConfigError, DcganError
from dcgan.core.schema import BUILTIN_DATASETS
from dcgan.data.cifar import Cifar10Source
from dcgan.data.folder_source import FolderSource
from dcgan.data.mnist import FashionMnistSource, MnistSource
from dcgan.data.prepared import PreparedSource
from dcgan.data.source import REGISTRY, Source, register

for _source in (MnistSource, FashionMnistSource, Cifar10Source, FolderSource, PreparedSource):
    register(_source)
if tuple(REGISTRY)[: len(BUILTIN_DATASETS)] != BUILTIN_DATASETS:  # the config's list and the sources must agree
    raise ImportError(f"dcgan.core.schema declares {BUILTIN_DATASETS}, but the built-in sources are {tuple(REGISTRY)}")


def source_class(name: str) -> type[Source]:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ConfigError(f"data.name: {name!r} is not allowed; choose one of {' | '.join(REGISTRY)}") from None


def source_for(data_cfg) -> Source:
    """The source of a DataConfig's dataset."""
    return source_class(data_cfg.name)(data_cfg)


def has_test_split(name: str) -> bool:
    return source_class(name).facts.test_split


def prepare_reader(path: Path, size: int, channels: int, labels: bool | str, split: str, shuffle: int | None,
                   threads: int | None, fit=None, dedupe: bool = False):
    """What `dcgan prepare` reads from SOURCE: the reader of the first source that claims the path by its files (an
    IDX folder or npz, CIFAR-10's batches or archive, a prepared dataset, a registered dataset's files), else of an
    image folder."""
    candidates = sorted(REGISTRY.values(), key=lambda cls: cls.claims_any_folder)  # the catch-all folder last
    for cls in candidates:
        if not cls.claims(path):
            continue
        if cls.facts.decodes:  # pictures of any shape: the crop, the filter, label files and duplicates apply
            return cls.prepare_reader(path, size, channels, labels, split, shuffle, threads, fit=fit, dedupe=dedupe)
        if (fit is not None and not fit.is_default) or isinstance(labels, str) or dedupe:
            raise DcganError(f"SOURCE: {path} is a {cls.name} dataset, whose images are read as they are; --fit, "
                             "--resize, --pad, --labels FILE and --dedupe apply to image folders and archives")
        return cls.prepare_reader(path, size, channels, labels, split, shuffle, threads)
    raise DcganError(f"SOURCE: {path} is not an image folder, an IDX folder, an .npz or a CIFAR-10 archive")
