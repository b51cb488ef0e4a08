"""dcgan: train, sample, evaluate and compare DCGANs with swappable upsampling.

Importing this package does not import TensorFlow; the modules that need it do. The Python API
(`dcgan.load`, `dcgan.train`, `dcgan.evaluate`, `dcgan.inspect`: dcgan.api, docs/api.md) is imported on first use.
"""

__version__ = "0.1.0"

API = ("load", "train", "evaluate", "inspect")


def __getattr__(name: str):
    if name in API:
        from dcgan import api

        return getattr(api, name)
    raise AttributeError(f"module 'dcgan' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *API])
