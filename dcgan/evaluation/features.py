"""Feature networks for FID/KID/precision/recall, and cached real-set statistics.

    classifier  28x28 grayscale datasets (MNIST, Fashion-MNIST): a small CNN the
                project trains on the dataset's own labelled training split,
                cached by content hash; features = its penultimate layer
    inception   everything else: InceptionV3 ImageNet pool features at 299x299
    selfsup     any dataset, offline: a SimCLR encoder trained on its own training
                images (dcgan.evaluation.selfsup), cached by content hash
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
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from dcgan.data import pipeline as datalib
from dcgan.core.config import FEATURE_NETWORKS, check_feature_network, classifier_datasets
from dcgan.core.errors import DcganError
from dcgan.evaluation.metrics import class_statistics, feature_stats
from dcgan.evaluation.selfsup import selfsup_net
from dcgan.core.files import atomic_path, atomic_write, cache_dir
from dcgan.evaluation.cachefiles import DamagedCache, check_shapes, entry_hash, load_npz, note, read_info, stats_file
from dcgan.evaluation.featurenet import (FEATURE_LAYER, FeatureNet, check_features, check_keras_file, content_hash,
                                         load_keras, sub_model, user_net)

ARCH_VERSION = 1  # bump when build_classifier changes: it is part of the cache key
LABELLED_DATASETS = datalib.TWO_SPLITS  # a classifier can be trained and tested: class_accuracy
DEFAULT_EPOCHS = 3

INCEPTION_FILE = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
INCEPTION_URL = "https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/" + INCEPTION_FILE
INCEPTION_MD5 = "bcbd6486424b2319ff4ef7d526e38f63"  # the hash keras.applications checks
INCEPTION_SIZE = 299


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


def classifier_dir(name: str, images: np.ndarray, labels: np.ndarray) -> Path:
    return cache_dir() / "features" / f"{name}-{content_hash(images, labels, salt=f'arch{ARCH_VERSION}')}"


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
    info = _cached_info(folder, model_file, info_file, "classifier", quiet)
    if info is not None and (epochs is None or info.get("epochs") == epochs):
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
        "dataset": name, "hash": entry_hash(folder), "arch_version": ARCH_VERSION, "epochs": epochs,
        "train_images": len(images), "test_images": len(test_images), "test_accuracy": round(float(accuracy), 4),
        "train_seconds": round(seconds, 1), "feature_layer": FEATURE_LAYER,
    }
    atomic_write(info_file, json.dumps(info, indent=2) + "\n")  # written last: its presence marks a complete entry
    return model_file, {**info, "cached": False}


def _cached_info(folder: Path, model_file: Path, info_file: Path, what: str, quiet: bool) -> dict | None:
    """A complete cache entry's info (None when there is none); a damaged one is said so, and made again."""
    if not info_file.exists():
        return None
    try:
        check_keras_file(model_file, what)
        return read_info(info_file, entry_hash(folder), ("epochs", "test_accuracy"))
    except (DamagedCache, DcganError) as e:
        note(quiet, f"features: the cached {what} in {folder} is damaged ({e}); training it again")
        return None


def classifier_net(name: str, path: str | None = None, quiet: bool = False) -> FeatureNet:
    model_file, _ = train_classifier(name, path, quiet=quiet)
    model = load_keras(model_file, "classifier")
    return sub_model(model, FEATURE_LAYER, model_file, key=f"classifier-{name}-{entry_hash(model_file.parent)}")


def label_classifier(name: str, path: str | None = None, quiet: bool = False) -> tuple[FeatureNet, float]:
    """The dataset's classifier whole (its logits) and its accuracy on the real test split.

    class_accuracy's judge and its yardstick: generated images can only be held to what the judge
    achieves on real ones.
    """
    model_file, info = train_classifier(name, path, quiet=quiet)
    model = load_keras(model_file, "classifier")
    key = f"classifier-{name}-{entry_hash(model_file.parent)}-logits"
    return sub_model(model, None, model_file, key=key), info["test_accuracy"]


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
    return FeatureNet("inception_v3-imagenet-pool", model, INCEPTION_SIZE, 3, keras.applications.inception_v3.preprocess_input,
                      digest=f"inception-md5-{INCEPTION_MD5}")  # get_file checks the weights against it


# ---------------------------------------------------------------- user models


def feature_net_for(data_cfg, feature_model: str | None = None, feature_layer: str | None = None, quiet: bool = False,
                    network: str = "auto") -> FeatureNet:
    """The network a run's metrics use: the user's (--feature-model wins), else `network` (train.feature_network):
    the dataset classifier, InceptionV3, the self-supervised encoder (dcgan.evaluation.selfsup), or auto: the classifier
    where the dataset has one, else InceptionV3 where its weights are on disk, else the self-supervised encoder."""
    if feature_model:
        return user_net(feature_model, feature_layer)
    if feature_layer:
        raise DcganError("--feature-layer needs --feature-model")
    resolved = resolve_network(network, data_cfg.name)
    if resolved == "classifier":
        return classifier_net(data_cfg.name, data_cfg.path, quiet=quiet)
    if resolved == "selfsup":
        if network == "auto":
            note(quiet, f"feature network: InceptionV3's weights are not in {keras_models_dir()}, so {data_cfg.name}'s "
                        f"own self-supervised encoder scores this run (set train.feature_network=inception to download them)")
        return selfsup_net(data_cfg, quiet=quiet)
    return inception_net()


def resolve_network(network: str, dataset: str, what: str = "--features") -> str:
    """train.feature_network / --features -> classifier, inception or selfsup for this dataset (one line if none)."""
    if network not in FEATURE_NETWORKS:
        raise DcganError(f"{what}: unknown feature network {network!r}; choose {', '.join(FEATURE_NETWORKS)}")
    check_feature_network(network, dataset, what)
    if network == "auto":
        # offline, a download would only fail: the dataset's own encoder needs nothing from the network
        if dataset in classifier_datasets():
            return "classifier"
        return "inception" if (keras_models_dir() / INCEPTION_FILE).is_file() else "selfsup"
    return network


# ---------------------------------------------------------------- real-set statistics


def real_statistics(net: FeatureNet, images: np.ndarray, dataset: str, split: str,
                    quiet: bool = False) -> dict[str, np.ndarray]:
    """mu, sigma and features of a real image set, cached per dataset split, content and network (its weights)."""
    path = stats_file(net, f"{dataset}-{split}-{content_hash(images)}")
    cached = _cached_statistics(path, len(images), quiet)
    if cached is not None:
        return cached
    features = net(images)
    check_features(features.shape[1], f"feature network {net.key}")  # a shape only images can tell
    mu, sigma = feature_stats(features)
    stats = {"mu": mu, "sigma": sigma, "features": features}
    with atomic_path(path) as tmp:
        np.savez(tmp, **stats)
    return stats


def _cached_statistics(path: Path, count: int, quiet: bool) -> dict[str, np.ndarray] | None:
    if not path.exists():
        return None
    try:
        stats = load_npz(path, ("mu", "sigma", "features"))
        d = len(stats["mu"])
        check_shapes(stats, {"mu": (d,), "sigma": (d, d), "features": (count, d)})
        return stats
    except DamagedCache as e:
        note(quiet, f"real statistics: {path} is damaged ({e}); computing them again")
        return None


def real_class_statistics(stats: dict[str, np.ndarray], labels: np.ndarray) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """mu and sigma of each class of a real set, from its cached features (`real_statistics`) and labels.

    The network pass over the images, the expensive part, is the cached one; splitting its features by
    label takes a second and is not stored: ten 2048 x 2048 covariances (InceptionV3) would be 335 MB a set.
    """
    if len(labels) != len(stats["features"]):
        raise DcganError(f"{len(stats['features'])} real images but {len(labels)} labels")
    return class_statistics(stats["features"], labels)
