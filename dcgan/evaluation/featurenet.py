"""A feature network: a Keras model from images to feature vectors, loaded safely and keyed by its content.

Every feature network (the dataset's classifier, InceptionV3, the self-supervised encoder, a user's
`.keras` file) is one `FeatureNet`. Its key names it in eval.json and keys the statistics cache.
"""

from __future__ import annotations

import hashlib
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from dcgan.core.errors import DcganError
from dcgan.data import pipeline as datalib
from dcgan.data.datafiles import NotRegularFile, open_regular

FEATURE_LAYER = "features"  # the layer a network built here exposes its features at
BATCH = 250

# FID's covariance is D x D (and its square root O(D^3)): 50,176 features would need 20 GB; InceptionV3's pool has 2048.
MAX_FEATURES = 4096

# What a .keras file may unzip to before Keras opens it: 1 GiB is ~250M float32 weights, far above any
# feature network here; a zip bomb stops at its table of contents. Keras stores members uncompressed
# (ratio 1), so a ratio past 100 on more than a few MiB is filler, not weights.
MAX_KERAS_BYTES = 1 << 30
MAX_KERAS_RATIO = 100
RATIO_FREE_BYTES = 16 << 20


@dataclass
class FeatureNet:
    """A Keras model from images to feature vectors, with the input it expects."""

    key: str  # names the network in eval.json and the statistics cache's folder
    model: object
    size: int | None  # input side; None = any
    channels: int
    preprocess: Callable = lambda x: x  # on float32 pixels in [0, 255]
    digest: str | None = None  # sha256 of what the network is (its file and layer); None: of its weights, on first use

    def content_digest(self) -> str:
        """What the statistics cache keys this network by: its content, never its name alone (a classifier
        retrained in its cache folder keeps its name and changes its weights)."""
        if self.digest is None:
            self.digest = weights_digest(self.model)
        return self.digest

    def __call__(self, images: np.ndarray, batch_size: int = BATCH) -> np.ndarray:
        """uint8 (N, H, W, C) -> float32 (N, D)."""
        import tensorflow as tf

        predict = self._predict()
        out = []
        for i in range(0, len(images), batch_size):
            batch = datalib.conform(images[i : i + batch_size], images.shape[1], self.channels)
            x = tf.cast(batch, tf.float32)
            if self.size and batch.shape[1:3] != (self.size, self.size):
                x = resize_for_features(x, self.size)
            feats = predict(self.preprocess(x))
            if feats.shape.rank == 4:  # a convolutional layer: average its feature map
                feats = tf.reduce_mean(feats, axis=[1, 2])
            out.append(tf.reshape(feats, [tf.shape(feats)[0], -1]).numpy())
        features = np.concatenate(out).astype(np.float32)
        if not np.isfinite(features).all():  # NaN statistics would be cached, and every score made from them NaN
            raise DcganError(f"feature network {self.key} gives NaN or infinite features (broken weights?)")
        return features

    def embed(self, pixels):
        """float32 (B, H, W, C) pixels in [0, 255] -> (B, D) features, differentiable (latent projection's loss).

        The same path as __call__ but on floats: channels converted by luma or repetition, no rounding to uint8.
        """
        import tensorflow as tf

        have = pixels.shape[-1]
        if have != self.channels:
            pixels = (tf.repeat(pixels, 3, axis=-1) if self.channels == 3
                      else tf.reduce_sum(pixels * tf.constant(datalib.LUMA, tf.float32), -1, keepdims=True))
        if self.size and tuple(pixels.shape[1:3]) != (self.size, self.size):
            pixels = resize_for_features(pixels, self.size)
        feats = self.model(self.preprocess(pixels), training=False)
        if feats.shape.rank == 4:
            feats = tf.reduce_mean(feats, axis=[1, 2])
        return tf.reshape(feats, [tf.shape(feats)[0], -1])

    def _predict(self):
        import tensorflow as tf

        if not hasattr(self, "_fn"):
            self._fn = tf.function(lambda x: self.model(x, training=False), reduce_retracing=True)
        return self._fn



def weights_digest(model) -> str:
    h = hashlib.sha256()
    for w in model.weights:
        value = np.asarray(w.numpy() if hasattr(w, "numpy") else w)
        h.update(f"{value.dtype}{value.shape}".encode())
        h.update(np.ascontiguousarray(value))
    return h.hexdigest()


def file_digest(path: Path, salt: str = "") -> str:
    """sha256 of salt and a model file's bytes (read as a regular file, as check_keras_file allowed it)."""
    h = hashlib.sha256(salt.encode() + b"\0")
    with open_regular(path, None, "a .keras file") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def content_hash(*arrays: np.ndarray, salt: str = "") -> str:
    h = hashlib.sha256(salt.encode())
    for a in arrays:
        h.update(str(a.shape).encode())
        h.update(np.ascontiguousarray(a))  # the buffer itself: tobytes() would copy a whole image split
    return h.hexdigest()[:16]



# Part of every real-statistics cache name (evaluation.cachefiles.stats_file): statistics made before the resize
# below became anti-aliased must not be reused.
RESIZE_VERSION = 2


def resize_for_features(x, size: int):
    """float32 (B, H, W, C) images at a network's input size, the same for real and generated images.

    Enlarging: bilinear, as TF-GAN and the FID reference code resize for Inception. Shrinking: the area filter
    (anti-aliased, as data.conform resized the images a selfsup encoder or a classifier was trained on); a plain
    bilinear shrink samples the pixels and folds their high frequencies into the features (clean-fid's point).
    """
    import tensorflow as tf

    if x.shape[1] > size:
        return tf.image.resize(x, (size, size), method="area", antialias=True)
    return tf.image.resize(x, (size, size), method="bilinear")


def check_keras_file(path: str | Path, what: str = "--feature-model") -> Path:
    """A .keras file Keras can open without unzipping more than MAX_KERAS_BYTES; one line naming it otherwise."""
    path = Path(path)
    if path.is_dir():
        raise DcganError(f"{what}: {path} is a directory, not a .keras file")
    try:
        with open_regular(path, None, "a .keras file") as f, zipfile.ZipFile(f) as archive:
            members = archive.infolist()
    except FileNotFoundError:
        raise DcganError(f"{what}: {path} does not exist") from None
    except NotRegularFile as e:  # /dev/zero, a FIFO: it exists, and would never end or never open
        raise DcganError(f"{what}: {e}") from None
    except (zipfile.BadZipFile, ValueError, EOFError):
        raise DcganError(f"{what}: {path} is not a .keras (zip) file") from None
    except OSError as e:
        raise DcganError(f"{what}: cannot read {path}: {e.strerror or e}") from None
    unzipped, packed = sum(m.file_size for m in members), sum(m.compress_size for m in members)
    if unzipped > MAX_KERAS_BYTES:
        raise DcganError(f"{what}: {path} unzips to {unzipped >> 20:,} MiB; at most {MAX_KERAS_BYTES >> 20:,} MiB is loaded")
    if unzipped > RATIO_FREE_BYTES and unzipped > MAX_KERAS_RATIO * packed:
        raise DcganError(f"{what}: {path} is compressed {unzipped / max(packed, 1):,.0f}:1; at most {MAX_KERAS_RATIO}:1 "
                         "is loaded (Keras stores its files uncompressed: is it a zip bomb?)")
    return path



def load_keras(path: Path, what: str):
    import keras

    check_keras_file(path, what)
    try:
        return keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as e:
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise DcganError(f"cannot load {what} {path}: {reason}") from None



def sub_model(model, layer: str | None, source: Path, key: str) -> FeatureNet:
    import keras

    if layer is not None:
        try:
            output = model.get_layer(layer).output
        except ValueError:
            names = ", ".join(l.name for l in model.layers)
            raise DcganError(f"--feature-layer: {source.name} has no layer {layer!r}; its layers: {names}") from None
        model = keras.Model(model.inputs, output)
    check_features(feature_dim(model.output_shape), f"--feature-layer {layer!r} of {source.name}" if layer
                   else f"--feature-model {source.name} (its output)")
    shape = model.input_shape
    if isinstance(shape, list) or len(shape) != 4:
        raise DcganError(f"--feature-model: {source.name} must take one image input (N, H, W, C), got {shape}")
    _, h, w, c = shape
    if h != w:
        raise DcganError(f"--feature-model: {source.name} takes {h}x{w} images; only square inputs are supported")
    return FeatureNet(key, model, h, c, digest=file_digest(source, f"layer {layer}"))



def feature_dim(shape) -> int | None:
    """Features per image of a layer's output shape (None: not known until images go through)."""
    if isinstance(shape, list):
        return None
    dims = shape[-1:] if len(shape) == 4 else shape[1:]  # FeatureNet averages a feature map over space
    return None if any(d is None for d in dims) else math.prod(dims)



def check_features(dim: int | None, what: str) -> None:
    if dim is not None and dim > MAX_FEATURES:
        raise DcganError(f"{what} gives {dim} features per image; at most {MAX_FEATURES} are supported "
                         "(FID's covariance is D x D; InceptionV3's pool gives 2048): pick a smaller --feature-layer")



def user_net(path: str | Path, layer: str | None = None) -> FeatureNet:
    """Any Keras model: features = the named layer's output (or the model's output)."""
    path = Path(path)
    model = load_keras(path, "--feature-model")
    with open(path, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()[:12]
    return sub_model(model, layer, path, key=f"user-{path.stem}-{layer or 'output'}-{digest}")
