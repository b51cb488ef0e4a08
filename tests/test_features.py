import json
import zipfile

import keras
import numpy as np
import pytest

from dcgan.evaluation import featurenet
from dcgan.evaluation import features
from dcgan.cli import main
from dcgan.core.config import load_config
from dcgan.core.errors import DcganError
from helpers import blob_images, cifar_batch, write_mnist


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DCGAN_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def labelled_dir(tmp_path):
    """IDX files of two easy classes: bright discs (0) and their negatives (1)."""
    return write_mnist(tmp_path / "labelled", n_train=384, n_test=128, invert_class_1=True)


def test_classifier_trains_records_accuracy_and_is_reused(labelled_dir, cache, monkeypatch, capsys):
    path, info = features.train_classifier("mnist", str(labelled_dir), epochs=4, quiet=True)
    assert path.is_file() and path.parent.parent == cache / "features"
    assert path.parent.name == f"mnist-{info['hash']}"
    saved = json.loads((path.parent / "info.json").read_text())
    assert saved["epochs"] == 4 and saved["train_images"] == 384 and saved["test_images"] == 128
    assert saved["test_accuracy"] > 0.9  # the two classes are easy: it really learned them
    assert info["cached"] is False
    mtime = path.stat().st_mtime_ns

    def no_training(*a, **k):
        raise AssertionError("the classifier was retrained")

    monkeypatch.setattr(features, "build_classifier", no_training)
    again, info2 = features.train_classifier("mnist", str(labelled_dir), quiet=True)
    assert again == path and path.stat().st_mtime_ns == mtime and info2["cached"] is True
    assert main(["features", "train", "--data", "mnist", "--path", str(labelled_dir), "--epochs", "4"]) == 0
    out = capsys.readouterr().out
    assert str(path) in out and f"cached, not retrained): test accuracy {saved['test_accuracy']:.4f} after 4 epoch(s)" in out
    # its penultimate layer is the feature space
    net = features.classifier_net("mnist", str(labelled_dir), quiet=True)
    assert net.key == f"classifier-mnist-{info['hash']}" and net.size == 28
    feats = net(blob_images(10, seed=3))
    assert feats.shape == (10, 128) and feats.dtype == np.float32


def test_classifier_cache_is_keyed_by_content(labelled_dir, tmp_path):
    a = features.classifier_dir("mnist", *_read(labelled_dir))
    images, labels = _read(labelled_dir)
    images = images.copy()
    images[0, 0, 0, 0] ^= 1
    assert features.classifier_dir("mnist", images, labels) != a
    with pytest.raises(DcganError, match=r"no classifier for 'folder' \(choose mnist, fashion_mnist, cifar10: the datasets "
                                         r"with a labelled train and test split\)"):
        features.train_classifier("folder", None)


def _read(folder):
    from dcgan.data.pipeline import load_labelled

    return load_labelled("mnist", str(folder), "train")


def test_offline_inception_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setattr(features, "INCEPTION_URL", "http://127.0.0.1:9/inception_notop.h5")  # nothing listens there
    cfg = load_config(None, ["data.name=cifar10", "data.channels=3", "data.image_size=32"])
    with pytest.raises(DcganError) as e:
        features.feature_net_for(cfg.data, network="inception")
    message = str(e.value)
    assert "InceptionV3 ImageNet weights" in message and "\n" not in message
    assert f"into {tmp_path / 'keras' / 'models'}/" in message and "--feature-model" in message


def test_auto_is_inception_only_where_its_weights_are_on_disk(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    assert [features.resolve_network("auto", d) for d in ("mnist", "fashion_mnist", "cifar10", "folder")] == [
        "classifier", "classifier", "selfsup", "selfsup"]
    (tmp_path / "keras" / "models").mkdir(parents=True)
    (tmp_path / "keras" / "models" / features.INCEPTION_FILE).write_bytes(b"weights")  # get_file checks them later
    assert [features.resolve_network("auto", d) for d in ("mnist", "cifar10", "folder")] == [
        "classifier", "inception", "inception"]
    assert features.resolve_network("inception", "folder") == "inception"  # asked for: downloaded if it must


def _user_model(path):
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(6, 3, name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(2, name="head")(x)
    keras.Model(inputs, outputs).save(path)
    return path


def test_user_feature_model(tmp_path):
    path = _user_model(tmp_path / "mine.keras")
    images = blob_images(5, seed=4)  # 28x28 grayscale: resized to 32 and repeated to 3 channels
    net = featurenet.user_net(path, "pool")
    assert net.key.startswith("user-mine-pool-") and (net.size, net.channels) == (32, 3)
    assert net(images).shape == (5, 6)
    assert featurenet.user_net(path, "conv")(images).shape == (5, 6)  # a feature map is averaged over space
    assert featurenet.user_net(path)(images).shape == (5, 2)  # default: the model's output
    with pytest.raises(DcganError, match="has no layer 'nope'; its layers: .*conv, pool, head"):
        featurenet.user_net(path, "nope")
    with pytest.raises(DcganError, match="does not exist"):
        featurenet.user_net(tmp_path / "missing.keras")
    (tmp_path / "bad.keras").write_bytes(b"not a zip")
    with pytest.raises(DcganError, match="bad.keras is not a .keras \\(zip\\) file"):
        featurenet.user_net(tmp_path / "bad.keras")


def _zip(path, size: int, compression=zipfile.ZIP_DEFLATED):
    with zipfile.ZipFile(path, "w", compression) as archive:
        archive.writestr("model.weights.h5", bytes(size))
    return path


def test_keras_files_are_checked_before_keras_unzips_them(tmp_path, monkeypatch):
    (tmp_path / "dir.keras").mkdir()
    with pytest.raises(DcganError, match="--feature-model: .*dir.keras is a directory, not a .keras file"):
        featurenet.user_net(tmp_path / "dir.keras")
    with pytest.raises(DcganError, match=r"bomb.keras is compressed [\d,]+:1; at most 100:1 is loaded"):
        featurenet.user_net(_zip(tmp_path / "bomb.keras", 17 << 20))  # 17 MiB of zeros in ~17 KB
    featurenet.check_keras_file(_zip(tmp_path / "small.keras", 1 << 20))  # a few MiB may compress any way
    monkeypatch.setattr(featurenet, "MAX_KERAS_BYTES", 1 << 20)
    with pytest.raises(DcganError, match="classifier: .*big.keras unzips to 2 MiB; at most 1 MiB is loaded"):
        featurenet.check_keras_file(_zip(tmp_path / "big.keras", 2 << 20, zipfile.ZIP_STORED), "classifier")
    assert featurenet.check_keras_file(_user_model(tmp_path / "ok.keras")) == tmp_path / "ok.keras"


def test_feature_layers_wider_than_the_covariance_can_hold_are_refused(tmp_path, monkeypatch):
    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Conv2D(64, 3, padding="same", name="conv")(inputs)
    x = keras.layers.Flatten(name="flat")(x)
    keras.Model(inputs, keras.layers.Dense(2, name="head")(x)).save(tmp_path / "wide.keras")
    assert featurenet.user_net(tmp_path / "wide.keras", "conv").model.output_shape == (None, 28, 28, 64)  # 64, averaged
    with pytest.raises(DcganError, match="--feature-layer 'flat' of wide.keras gives 50176 features per image; at most 4096"):
        featurenet.user_net(tmp_path / "wide.keras", "flat")
    # a width only images can tell (any input size): checked on the real features, before their covariance
    inputs = keras.Input((None, None, 1))
    keras.Model(inputs, keras.layers.Flatten()(inputs)).save(tmp_path / "any.keras")
    net = featurenet.user_net(tmp_path / "any.keras")
    monkeypatch.setattr(featurenet, "MAX_FEATURES", 100)
    monkeypatch.setattr(features, "feature_stats", lambda f: pytest.fail("the covariance was computed"))
    with pytest.raises(DcganError, match="feature network user-any-output-.* gives 784 features per image; at most 100"):
        features.real_statistics(net, blob_images(3, seed=6), "mnist", "test")


def test_real_statistics_are_cached(tmp_path, cache):
    net = featurenet.user_net(_user_model(tmp_path / "mine.keras"), "pool")
    images = blob_images(40, seed=5)
    stats = features.real_statistics(net, images, "mnist", "test")
    files = list((cache / "stats" / net.key).glob("mnist-test-*.npz"))
    assert len(files) == 1
    assert stats["features"].shape == (40, 6) and stats["mu"].shape == (6,) and stats["sigma"].shape == (6, 6)
    mtime = files[0].stat().st_mtime_ns
    net.model = None  # a cache hit must not touch the network
    again = features.real_statistics(net, images, "mnist", "test")
    assert files[0].stat().st_mtime_ns == mtime
    for k in stats:
        np.testing.assert_array_equal(stats[k], again[k])


def test_the_whole_classifier_judges_classes(labelled_dir):
    """class_accuracy's judge: the same cached classifier with its logits, and its own test accuracy."""
    path, info = features.train_classifier("mnist", str(labelled_dir), epochs=4, quiet=True)
    judge, accuracy = features.label_classifier("mnist", str(labelled_dir), quiet=True)
    assert judge.key == f"classifier-mnist-{info['hash']}-logits" and accuracy == info["test_accuracy"]
    assert judge.model.get_layer("logits").output is judge.model.outputs[0]
    logits = judge(blob_images(6, seed=3))
    assert logits.shape == (6, 2)  # one logit per class of the data


def test_cifar10_gets_a_classifier_for_class_accuracy(tmp_path):
    """CIFAR-10's FID features stay InceptionV3's; its labelled splits train the same small classifier (RGB, 32x32)."""
    import pickle

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for i in range(1, 6):
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps(cifar_batch(8, i), protocol=2))
    (folder / "test_batch").write_bytes(pickle.dumps(cifar_batch(8, 9), protocol=2))
    path, info = features.train_classifier("cifar10", str(folder), epochs=1, quiet=True)
    assert path.parent.name.startswith("cifar10-") and info["train_images"] == 40 and info["test_images"] == 8
    judge, _ = features.label_classifier("cifar10", str(folder), quiet=True)
    assert (judge.size, judge.channels) == (32, 3)
    assert judge(blob_images(3, size=32, channels=3)).shape == (3, 10)


def test_a_feature_network_shrinks_images_anti_aliased_as_its_training_images_were_made():
    """Real and generated images larger than the network's input are shrunk with the area filter, as data.conform
    made the images a selfsup encoder or classifier learned from; a one-pixel checkerboard comes out grey."""
    import keras

    from dcgan.data.conform import conform
    from dcgan.evaluation.featurenet import FeatureNet

    inputs = keras.Input((8, 8, 3))
    net = FeatureNet("pixels", keras.Model(inputs, keras.layers.Flatten()(inputs)), 8, 3)
    images = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    np.testing.assert_allclose(net(images), net(conform(images, 8, 3)), atol=0.5)  # conform rounds to uint8
    # shrunk 3x, a one-pixel checkerboard averages to 4/9 or 5/9 grey; point sampling would keep 0s and 255s
    board = ((np.indices((24, 24)).sum(0) % 2) * 255).astype(np.uint8)[None, ..., None].repeat(3, -1)
    assert np.abs(net(board) - 127.5).max() < 15
    small = np.full((2, 4, 4, 3), 200, np.uint8)  # enlarged bilinearly: a flat picture stays flat
    np.testing.assert_allclose(net(small), 200, atol=1e-3)
