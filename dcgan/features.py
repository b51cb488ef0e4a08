"""Feature networks for FID/KID/precision/recall, and cached real-set statistics.

    classifier  28x28 grayscale datasets (MNIST, Fashion-MNIST): a small CNN the
                project trains on the dataset's own labelled training split,
                cached by content hash; features = its penultimate layer
    inception   everything else: InceptionV3 ImageNet pool features at 299x299
    selfsup     any dataset, offline: a SimCLR encoder trained on its own training
                images (dcgan.selfsup), cached by content hash
    user        --feature-model model.keras [--feature-layer NAME]

train.feature_network (or `dcgan evaluate --features`) picks one; auto: classifier where there is one, else inception.

A conditional run's class_accuracy asks the same small classifier, whole (its logits), which class a
generated image shows; it exists for every dataset with a labelled train and test split
(`LABELLED_DATASETS`: CIFAR-10 too, whose FID features stay InceptionV3's), so its own test accuracy is
the yardstick the generated images are held to.

Every network takes uint8 images: `FeatureNet` converts channels and resizes
them to the network's input, so generated and real images are treated alike.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from dcgan import data as datalib
from dcgan.config import CLASSIFIER_DATASETS, FEATURE_NETWORKS, check_feature_network
from dcgan.errors import DcganError
from dcgan.metrics import class_statistics, feature_stats
from dcgan.rundir import atomic_path, atomic_write

ARCH_VERSION = 1  # bump when build_classifier changes: it is part of the cache key
LABELLED_DATASETS = datalib.TWO_SPLITS  # a classifier can be trained and tested: class_accuracy
FEATURE_LAYER = "features"
DEFAULT_EPOCHS = 3
BATCH = 250

INCEPTION_FILE = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
INCEPTION_URL = "https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/" + INCEPTION_FILE
INCEPTION_MD5 = "bcbd6486424b2319ff4ef7d526e38f63"  # the hash keras.applications checks
INCEPTION_SIZE = 299
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

    key: str  # names the network in eval.json and in the statistics cache
    model: object
    size: int | None  # input side; None = any
    channels: int
    preprocess: Callable = lambda x: x  # on float32 pixels in [0, 255]

    def __call__(self, images: np.ndarray, batch_size: int = BATCH) -> np.ndarray:
        """uint8 (N, H, W, C) -> float32 (N, D)."""
        import tensorflow as tf

        predict = self._predict()
        out = []
        for i in range(0, len(images), batch_size):
            batch = datalib.conform(images[i : i + batch_size], images.shape[1], self.channels)
            x = tf.cast(batch, tf.float32)
            if self.size and batch.shape[1:3] != (self.size, self.size):
                # bilinear, as TF-GAN and the FID reference code resize for Inception
                x = tf.image.resize(x, (self.size, self.size), method="bilinear")
            feats = predict(self.preprocess(x))
            if feats.shape.rank == 4:  # a convolutional layer: average its feature map
                feats = tf.reduce_mean(feats, axis=[1, 2])
            out.append(tf.reshape(feats, [tf.shape(feats)[0], -1]).numpy())
        return np.concatenate(out).astype(np.float32)

    def _predict(self):
        import tensorflow as tf

        if not hasattr(self, "_fn"):
            self._fn = tf.function(lambda x: self.model(x, training=False), reduce_retracing=True)
        return self._fn


# ---------------------------------------------------------------- the dataset's own classifier


def build_classifier(size: int, channels: int, classes: int):
    """Two conv/pool stages and a 128-unit feature layer: ~90% on Fashion-MNIST in 3 epochs."""
    import keras
    from keras import layers

    inputs = keras.Input((size, size, channels))
    x = layers.Rescaling(1 / 127.5, offset=-1.0)(inputs)
    x = layers.Conv2D(32, 3, activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(64, 3, activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Flatten()(x)
    x = layers.Dense(128, activation="relu", name=FEATURE_LAYER)(x)
    outputs = layers.Dense(classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="feature_classifier")


def content_hash(*arrays: np.ndarray, salt: str = "") -> str:
    h = hashlib.sha256(salt.encode())
    for a in arrays:
        h.update(str(a.shape).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def classifier_dir(name: str, images: np.ndarray, labels: np.ndarray) -> Path:
    return datalib.cache_dir() / "features" / f"{name}-{content_hash(images, labels, salt=f'arch{ARCH_VERSION}')}"


def train_classifier(name: str, path: str | None = None, epochs: int | None = None, quiet: bool = False) -> tuple[Path, dict]:
    """The dataset's classifier (.keras file) and its info, trained on first use and cached.

    A cached classifier is reused unless `epochs` asks for a different number of epochs.
    """
    if name not in LABELLED_DATASETS:
        raise DcganError(f"--data: no classifier for {name!r} (choose {', '.join(LABELLED_DATASETS)}: the datasets with "
                         "a labelled train and test split)")
    if epochs is not None and epochs < 1:
        raise DcganError(f"--epochs: {epochs} is below the minimum 1")
    images, labels = datalib.load_labelled(name, path, "train")
    folder = classifier_dir(name, images, labels)
    model_file, info_file = folder / "classifier.keras", folder / "info.json"
    if model_file.is_file() and info_file.is_file():
        info = json.loads(info_file.read_text())
        if epochs is None or info.get("epochs") == epochs:
            return model_file, {**info, "cached": True}
    import keras

    epochs = epochs or DEFAULT_EPOCHS
    test_images, test_labels = datalib.load_labelled(name, path, "test")
    classes = int(max(labels.max(), test_labels.max())) + 1
    if not quiet:
        print(f"features: training the {name} classifier ({len(images)} images, {epochs} epochs) -> {folder}", file=sys.stderr)
    start = time.perf_counter()
    model = build_classifier(images.shape[1], images.shape[3], classes)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    with contextlib.redirect_stdout(sys.stderr):  # Keras prints progress to stdout, which carries only results
        model.fit(images.astype(np.float32), labels, batch_size=128, epochs=epochs, verbose=0 if quiet else 2)
    seconds = time.perf_counter() - start
    _, accuracy = model.evaluate(test_images.astype(np.float32), test_labels, batch_size=500, verbose=0)
    with atomic_path(model_file) as tmp:
        model.save(tmp)
    info = {
        "dataset": name, "hash": folder.name.rsplit("-", 1)[1], "arch_version": ARCH_VERSION, "epochs": epochs,
        "train_images": len(images), "test_images": len(test_images), "test_accuracy": round(float(accuracy), 4),
        "train_seconds": round(seconds, 1), "feature_layer": FEATURE_LAYER,
    }
    atomic_write(info_file, json.dumps(info, indent=2) + "\n")  # written last: its presence marks a complete entry
    return model_file, {**info, "cached": False}


def classifier_net(name: str, path: str | None = None, quiet: bool = False) -> FeatureNet:
    model_file, info = train_classifier(name, path, quiet=quiet)
    model = _load_keras(model_file, "classifier")
    return _sub_model(model, FEATURE_LAYER, model_file, key=f"classifier-{name}-{info['hash']}")


def label_classifier(name: str, path: str | None = None, quiet: bool = False) -> tuple[FeatureNet, float]:
    """The dataset's classifier whole (its logits) and its accuracy on the real test split.

    class_accuracy's judge and its yardstick: generated images can only be held to what the judge
    achieves on real ones.
    """
    model_file, info = train_classifier(name, path, quiet=quiet)
    model = _load_keras(model_file, "classifier")
    return _sub_model(model, None, model_file, key=f"classifier-{name}-{info['hash']}-logits"), info["test_accuracy"]


# ---------------------------------------------------------------- InceptionV3


def keras_models_dir() -> Path:
    """Where keras.applications looks for (and downloads) weights."""
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")).expanduser() / "models"


def inception_weights() -> Path:
    import keras

    folder = keras_models_dir()
    try:
        return Path(keras.utils.get_file(INCEPTION_FILE, INCEPTION_URL, cache_subdir="models",
                                         cache_dir=str(folder.parent), file_hash=INCEPTION_MD5))
    except Exception as e:
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise DcganError(
            f"cannot get the InceptionV3 ImageNet weights ({reason}); download {INCEPTION_URL} "
            f"into {folder}/ on a machine with internet access, or pass --feature-model model.keras --feature-layer NAME"
        ) from None


def inception_net() -> FeatureNet:
    import keras

    weights = inception_weights()
    model = keras.applications.InceptionV3(include_top=False, pooling="avg", weights=None,
                                           input_shape=(INCEPTION_SIZE, INCEPTION_SIZE, 3))
    model.load_weights(str(weights))
    return FeatureNet("inception_v3-imagenet-pool", model, INCEPTION_SIZE, 3, keras.applications.inception_v3.preprocess_input)


# ---------------------------------------------------------------- user models


def check_keras_file(path: str | Path, what: str = "--feature-model") -> Path:
    """A .keras file Keras can open without unzipping more than MAX_KERAS_BYTES; one line naming it otherwise."""
    path = Path(path)
    if path.is_dir():
        raise DcganError(f"{what}: {path} is a directory, not a .keras file")
    if not path.is_file():
        raise DcganError(f"{what}: {path} does not exist")
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
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


def _load_keras(path: Path, what: str):
    import keras

    check_keras_file(path, what)
    try:
        return keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as e:
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise DcganError(f"cannot load {what} {path}: {reason}") from None


def _sub_model(model, layer: str | None, source: Path, key: str) -> FeatureNet:
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
    return FeatureNet(key, model, h, c)


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
    model = _load_keras(path, "--feature-model")
    with open(path, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()[:12]
    return _sub_model(model, layer, path, key=f"user-{path.stem}-{layer or 'output'}-{digest}")


def feature_net_for(data_cfg, feature_model: str | None = None, feature_layer: str | None = None, quiet: bool = False,
                    network: str = "auto") -> FeatureNet:
    """The network a run's metrics use: the user's (--feature-model wins), else `network` (train.feature_network):
    the dataset classifier, InceptionV3, the self-supervised encoder (dcgan.selfsup), or auto: the classifier
    where the dataset has one, else InceptionV3."""
    if feature_model:
        return user_net(feature_model, feature_layer)
    if feature_layer:
        raise DcganError("--feature-layer needs --feature-model")
    network = resolve_network(network, data_cfg.name)
    if network == "classifier":
        return classifier_net(data_cfg.name, data_cfg.path, quiet=quiet)
    if network == "selfsup":
        from dcgan.selfsup import selfsup_net  # it builds on this module

        return selfsup_net(data_cfg, quiet=quiet)
    return inception_net()


def resolve_network(network: str, dataset: str, what: str = "--features") -> str:
    """train.feature_network / --features -> classifier, inception or selfsup for this dataset (one line if none)."""
    if network not in FEATURE_NETWORKS:
        raise DcganError(f"{what}: unknown feature network {network!r}; choose {', '.join(FEATURE_NETWORKS)}")
    check_feature_network(network, dataset, what)
    if network == "auto":
        return "classifier" if dataset in CLASSIFIER_DATASETS else "inception"
    return network


# ---------------------------------------------------------------- real-set statistics


def real_statistics(net: FeatureNet, images: np.ndarray, dataset: str, split: str) -> dict[str, np.ndarray]:
    """mu, sigma and features of a real image set, cached per dataset split, content and network."""
    path = datalib.cache_dir() / "stats" / net.key / f"{dataset}-{split}-{content_hash(images)}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in ("mu", "sigma", "features")}
    features = net(images)
    check_features(features.shape[1], f"feature network {net.key}")  # a shape only images can tell
    mu, sigma = feature_stats(features)
    stats = {"mu": mu, "sigma": sigma, "features": features}
    with atomic_path(path) as tmp:
        np.savez(tmp, **stats)
    return stats


def real_class_statistics(stats: dict[str, np.ndarray], labels: np.ndarray) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """mu and sigma of each class of a real set, from its cached features (`real_statistics`) and labels.

    The network pass over the images, the expensive part, is the cached one; splitting its features by
    label takes a second and is not stored: ten 2048 x 2048 covariances (InceptionV3) would be 335 MB a set.
    """
    if len(labels) != len(stats["features"]):
        raise DcganError(f"{len(stats['features'])} real images but {len(labels)} labels")
    return class_statistics(stats["features"], labels)
