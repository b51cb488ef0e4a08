"""`dcgan prepare` and data.name=prepared: sharded TFRecords written once, streamed in a (seed, epoch) order, resumable."""

import dataclasses
import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from helpers import TINY, blob_images, cifar_batch, cli_error, run_cli, write_idx, write_mnist
from dcgan.data import pipeline as data
from dcgan.data import image_folder
from dcgan.tools import prepare, prepare_output
from dcgan.data import prepared
from dcgan.data import prepared_format
from dcgan.core.config import load_config
from dcgan.data.datafiles import DataError


def _png_folder(root: Path, classes=("cat", "dog"), n=5, size=20) -> Path:
    """Class subfolders of small RGB PNGs (each its own picture), plus a loose image and junk."""
    from PIL import Image

    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i, image in enumerate(blob_images(n, size, 3, seed=10 * c + 1)):
            Image.fromarray(image).save(root / name / f"{i}.png")
    Image.fromarray(blob_images(1, size, 3, seed=99)[0]).save(root / "loose.png")
    (root / "dog" / "broken.png").write_bytes(b"not a png")
    (root / "notes.txt").write_text("hello")
    return root


def _prepare(capsys, *args) -> str:
    status, out, err = run_cli(capsys, "prepare", *args, "--quiet")
    assert status == 0, err
    return out.strip()


def _indexed_idx(folder: Path, n: int) -> Path:
    """An IDX folder whose image i holds i in its first two pixels: streamed batches say which images they hold."""
    images = np.zeros((n, 8, 8), np.uint8)
    images[:, 0, 0], images[:, 0, 1] = np.arange(n) // 256, np.arange(n) % 256
    folder.mkdir(parents=True)
    write_idx(folder / "train-images-idx3-ubyte", images)
    write_idx(folder / "train-labels-idx1-ubyte", np.arange(n) % 10)
    return folder


def _ids(batch: np.ndarray) -> list[int]:
    """The image numbers (see _indexed_idx) in a (batch, group, 8, 8, 1) batch, in order."""
    b = batch.transpose(1, 0, 2, 3, 4).reshape(-1, 8, 8)
    return (b[:, 0, 0].astype(int) * 256 + b[:, 0, 1]).tolist()


def _take(ds, n):
    return [b.numpy() for b, _ in zip(ds, range(n))]


# ---------------------------------------------------------------- round trips


def test_folder_with_class_subfolders_round_trips(tmp_path, capsys):
    src, out = _png_folder(tmp_path / "imgs"), tmp_path / "prepared"
    assert _prepare(capsys, src, out, "--size", 16, "--channels", 3, "--labels", "--shard-mb", 0.002) == str(out)
    manifest = json.loads((out / "manifest.json").read_text())
    images, labels, names = prepared_format.read_all(out)
    # the pixels training from the folder would use, the labels of the sorted class folders
    expected = image_folder.load_folder(src / "cat", 16, 3), image_folder.load_folder(src / "dog", 16, 3)
    np.testing.assert_array_equal(images, np.concatenate(expected))
    assert labels.tolist() == [0] * 5 + [1] * 5 and names[:2] == ["cat/0.png", "cat/1.png"]
    assert manifest["classes"] == ["cat", "dog"] and manifest["count"] == 10 and manifest["shape"] == [16, 16, 3]
    assert manifest["source"]["skipped"] == {"directly in SOURCE, not in a class subfolder (--labels)": 1, "unreadable": 1}
    shards = manifest["shards"]
    assert len(shards) > 1 and sum(s["count"] for s in shards) == 10
    assert [s["file"] for s in shards] == [f"shard-{i:05d}-of-{len(shards):05d}.tfrecord" for i in range(len(shards))]
    assert sorted(p.name for p in out.iterdir()) == sorted([s["file"] for s in shards] + ["manifest.json"])
    assert all(prepared_format.file_sha256(out / s["file"]) == s["sha256"] for s in shards)
    assert manifest["format"] == prepared_format.FORMAT and manifest["version"] == prepared_format.VERSION and manifest["dcgan_version"]
    status, said, _ = run_cli(capsys, "prepare", "--verify", out)  # every checksum and the content hash
    assert status == 0 and "content hash match" in said


def test_idx_and_cifar_round_trip_with_their_labels(tmp_path, capsys):
    from dcgan.data.cifar import CLASS_NAMES, load_cifar10_path
    from dcgan.data.mnist import load_idx_folder

    mnist = write_mnist(tmp_path / "mnist", 40, 8, two_classes=True)
    _prepare(capsys, mnist, tmp_path / "m", "--size", 28, "--channels", 1, "--shard-mb", 0.01)
    images, labels, names = prepared_format.read_all(tmp_path / "m")
    want_images, want_labels = load_idx_folder(mnist, "train", with_labels=True)
    np.testing.assert_array_equal(images, want_images)
    np.testing.assert_array_equal(labels, want_labels)
    assert names[3] == "idx:train:3"

    cifar = tmp_path / "cifar-10-batches-py"
    cifar.mkdir()
    for i in range(1, 6):
        (cifar / f"data_batch_{i}").write_bytes(pickle.dumps(cifar_batch(3, i), protocol=2))
    want_images, want_labels = load_cifar10_path(cifar, "train", with_labels=True)
    _prepare(capsys, cifar, tmp_path / "c", "--size", 16, "--channels", 1)  # resized and grayed as training would
    images, labels, _ = prepared_format.read_all(tmp_path / "c")
    np.testing.assert_array_equal(images, data.conform(want_images, 16, 1))
    np.testing.assert_array_equal(labels, want_labels)
    assert json.loads((tmp_path / "c" / "manifest.json").read_text())["classes"] == CLASS_NAMES  # batches.meta's


def test_a_plain_idx_source_bigger_than_the_in_memory_limit_is_mapped_not_read(tmp_path, capsys, monkeypatch):
    from dcgan.data import datafiles
    from dcgan.data.mnist import read_idx

    folder = _indexed_idx(tmp_path / "idx", 100)  # 6,400 bytes of pixels
    monkeypatch.setattr(datafiles, "MAX_ARRAY_BYTES", 4000)
    with pytest.raises(DataError, match="declares 6400 bytes of data, over the 4000-byte limit"):
        read_idx(folder / "train-images-idx3-ubyte")  # training's loader still refuses it
    _prepare(capsys, folder, tmp_path / "out", "--size", 8, "--channels", 1)
    monkeypatch.undo()
    images, labels, _ = prepared_format.read_all(tmp_path / "out")
    np.testing.assert_array_equal(images[..., 0], read_idx(folder / "train-images-idx3-ubyte"))
    np.testing.assert_array_equal(labels, np.arange(100) % 10)
    # a mapped file is held to its header as a read one is
    raw = (folder / "train-images-idx3-ubyte").read_bytes()
    (folder / "train-images-idx3-ubyte").write_bytes(raw[:-1])
    with pytest.raises(DataError, match="truncated or corrupt: header says 6400 data bytes, file has 6399"):
        read_idx(folder / "train-images-idx3-ubyte", mmap=True)
    (folder / "train-images-idx3-ubyte").write_bytes(raw + b"x")
    with pytest.raises(DataError, match="header says 6400 data bytes, file has more than 6400"):
        read_idx(folder / "train-images-idx3-ubyte", mmap=True)


# ---------------------------------------------------------------- the stream


@pytest.fixture
def indexed(tmp_path, capsys):
    """A prepared dataset of 100 numbered 8x8 images in about 5 shards of 20."""
    out = tmp_path / "indexed"
    _prepare(capsys, _indexed_idx(tmp_path / "idx", 100), out, "--size", 8, "--channels", 1, "--shard-mb", 2600 / 2**20)
    assert len(_shard_counts(out)) in (4, 5, 6)
    return out


def _shard_counts(out) -> list[int]:
    return [s["count"] for s in json.loads((out / "manifest.json").read_text())["shards"]]


def _shard_of(out, image: int) -> int:
    return int(np.searchsorted(np.cumsum(_shard_counts(out)), image, side="right"))


def test_stream_order_is_a_function_of_seed_and_epoch_and_resumes_exactly(indexed):
    full = _take(prepared.make_stream(indexed, 8, seed=3), 30)  # 12 batches an epoch
    assert full[0].shape == (8, 1, 8, 8, 1) and full[0].dtype == np.uint8
    assert [_ids(b) for b in full] == [_ids(b) for b in _take(prepared.make_stream(indexed, 8, seed=3), 30)]
    assert [_ids(b) for b in full] != [_ids(b) for b in _take(prepared.make_stream(indexed, 8, seed=4), 30)]
    epoch0, epoch1 = sum(map(_ids, full[:12]), []), sum(map(_ids, full[12:24]), [])
    assert len(set(epoch0)) == 96 and epoch0 != epoch1  # each image at most once an epoch; epochs differ
    for start in (5, 12, 17):  # mid-epoch, at an epoch's start, mid-second-epoch
        resumed = _take(prepared.make_stream(indexed, 8, seed=3, start_batch=start), 30 - start)
        assert [_ids(b) for b in resumed] == [_ids(b) for b in full[start:]], start
    grouped = _take(prepared.make_stream(indexed, 8, seed=3, start_batch=4, group=2), 3)  # d_steps: 2 batches a step
    assert grouped[0].shape == (8, 2, 8, 8, 1) and sum(map(_ids, grouped), []) == sum(map(_ids, full[4:10]), [])


def test_input_pipelines_read_disjoint_shards_and_resume_exactly(indexed):
    import tensorflow as tf

    def pipeline(i, start=0, replicas=2, n=2):
        context = tf.distribute.InputContext(num_input_pipelines=n, input_pipeline_id=i, num_replicas_in_sync=replicas)
        return prepared.make_stream(indexed, 8, seed=3, start_batch=start, input_context=context)

    streams = [_take(pipeline(i, replicas=2), 6) for i in range(2)]  # 2 workers of 1 replica: 4 images each a step
    assert streams[0][0].shape == (4, 1, 8, 8, 1)
    shard_of = [set(_shard_of(indexed, n) for b in s[:4] for n in _ids(b)) for s in streams]  # within the first epoch
    assert shard_of[0] and shard_of[1] and not shard_of[0] & shard_of[1]
    for i in range(2):
        assert [_ids(b) for b in _take(pipeline(i, start=3), 3)] == [_ids(b) for b in streams[i][3:6]]
    # one worker of two replicas: the replicas' consecutive elements are the single pipeline's batch, split in order
    single = _take(prepared.make_stream(indexed, 8, seed=3), 2)
    split = _take(pipeline(0, replicas=2, n=1), 4)
    assert [_ids(split[0]) + _ids(split[1]), _ids(split[2]) + _ids(split[3])] == [_ids(b) for b in single]


def test_limit_subset_and_the_loader(indexed):
    cfg = load_config(None, ["data.name=prepared", f"data.path={indexed}", "data.image_size=8", "data.limit=30"]).data
    streamed = data.load_images(cfg, stream=True)
    assert len(streamed) == 30 and streamed.shape == (30, 8, 8, 1)
    assert _ids(data.load_images(cfg)[:, None]) == list(range(30))  # the first 30 in stored order
    ids = set(sum(map(_ids, _take(prepared.make_stream(indexed, 8, seed=0, limit=30), 6)), []))
    assert ids <= set(range(30))
    whole = data.load_images(dataclasses.replace(cfg, limit=None), stream=True)
    subset = sorted(_ids(data.image_subset(whole, 10, seed=0)[:, None]))
    counts = _shard_counts(indexed)
    quotas = prepared._proportional(counts, 10)  # in proportion to each shard's size, read from its start
    assert sum(quotas) == 10 and sum(q > 0 for q in quotas) >= len(counts) - 1 and max(quotas) <= 2
    assert subset == [int(start) + j for start, q in zip(np.cumsum([0, *counts]), quotas) for j in range(q)]
    with pytest.raises(DataError, match=r"was prepared at 8x8x1, the config asks for 16x16x1; set data.image_size=8"):
        data.load_images(load_config(None, ["data.name=prepared", f"data.path={indexed}", "data.image_size=16"]).data)


# ---------------------------------------------------------------- labels for a conditional run


def _take_labelled(ds, n) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(images.numpy(), labels.numpy()) for (images, labels), _ in zip(ds, range(n))]


def _pairs(element) -> list[tuple[int, int]]:
    """(image number, label) of each image of a labelled element, in _ids' order; _indexed_idx labels image i with i % 10."""
    images, labels = element
    assert labels.shape == images.shape[:2] and labels.dtype == np.int32
    return list(zip(_ids(images), labels.T.reshape(-1).tolist()))


def _labelled_right(elements) -> bool:
    return all(label == i % 10 for element in elements for i, label in _pairs(element))


def test_labelled_stream_is_the_unlabelled_stream_with_each_images_label_and_resumes_exactly(indexed):
    import tensorflow as tf

    plain = _take(prepared.make_stream(indexed, 8, seed=3), 30)
    full = _take_labelled(prepared.make_stream(indexed, 8, seed=3, labelled=True), 30)
    assert full[0][0].shape == (8, 1, 8, 8, 1) and _labelled_right(full)
    assert [_ids(images) for images, _ in full] == [_ids(b) for b in plain]  # the same images in the same order
    for start in (5, 17):
        resumed = _take_labelled(prepared.make_stream(indexed, 8, seed=3, start_batch=start, labelled=True), 30 - start)
        assert [_pairs(e) for e in resumed] == [_pairs(e) for e in full[start:]], start
    grouped = _take_labelled(prepared.make_stream(indexed, 8, seed=3, start_batch=4, group=2, labelled=True), 3)
    assert grouped[0][1].shape == (8, 2) and sum(map(_pairs, grouped), []) == sum(map(_pairs, full[4:10]), [])
    # one worker of two replicas: each replica's images keep their labels
    context = tf.distribute.InputContext(num_input_pipelines=1, input_pipeline_id=0, num_replicas_in_sync=2)
    split = _take_labelled(prepared.make_stream(indexed, 8, seed=3, input_context=context, labelled=True), 4)
    assert [_pairs(split[0]) + _pairs(split[1]), _pairs(split[2]) + _pairs(split[3])] == [_pairs(e) for e in full[:2]]


def test_conditional_run_reads_a_prepared_datasets_labels_and_classes(indexed):
    import tensorflow as tf

    cfg = load_config(None, ["data.name=prepared", f"data.path={indexed}", "data.image_size=8", "data.limit=40"]).data
    in_memory = data.load_labelled_images(cfg)
    assert in_memory.classes == [str(i) for i in range(10)] and in_memory.labels.dtype == np.int64
    assert in_memory.labels.tolist() == [i % 10 for i in _ids(in_memory.images[:, None])] and len(in_memory) == 40
    streamed = data.load_labelled_images(cfg, stream=True)
    assert streamed.labels is None and streamed.classes == in_memory.classes and len(streamed) == 40
    batches = streamed.images.batches(tf.distribute.get_strategy(), 8, seed=0)
    elements = [tuple(t.numpy() for t in next(batches)) for _ in range(6)]  # past the first epoch of 5 batches
    assert _labelled_right(elements) and {i for e in elements for i, _ in _pairs(e)} <= set(range(40))


def test_conditional_run_refuses_a_dataset_prepared_without_labels(tmp_path, capsys):
    import tensorflow as tf

    out = tmp_path / "prepared"
    _prepare(capsys, _png_folder(tmp_path / "imgs"), out, "--size", 16, "--channels", 3)  # no --labels
    cfg = load_config(None, ["data.name=prepared", f"data.path={out}", "data.image_size=16", "data.channels=3"]).data
    assert "was prepared without labels (its manifest lists no classes)" in _one_line(data.load_labelled_images, cfg)
    assert "prepared without labels" in _one_line(lambda: prepared.make_stream(out, 4, seed=0, labelled=True))
    conditional = [f"--set={s}" for s in ["data.name=prepared", f"data.path={out}", "data.image_size=16", "data.channels=3",
                                          "model.generator.condition=concat", "model.discriminator.condition=projection",
                                          f"run.dir={tmp_path / 'runs'}"]]
    assert "dcgan prepare --labels" in cli_error(capsys, "train", *conditional) and not (tmp_path / "runs").exists()

    manifest = json.loads((out / "manifest.json").read_text())  # classes claimed, but every record says -1
    (out / "manifest.json").write_text(json.dumps({**manifest, "classes": ["cat", "dog"]}))
    assert "a record has no label" in _one_line(data.load_labelled_images, cfg)
    batches = data.load_labelled_images(cfg, stream=True).images.batches(tf.distribute.get_strategy(), 4, seed=0)
    assert "a record has no label" in _one_line(lambda: next(batches))


# ---------------------------------------------------------------- damage, one line each


def _one_line(call, *args) -> str:
    with pytest.raises(DataError) as e:
        call(*args)
    assert "\n" not in str(e.value)
    return str(e.value)


def test_torn_truncated_missing_and_disagreeing_shards_are_one_error_line(indexed, capsys):
    manifest_path = indexed / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    shard = indexed / manifest["shards"][2]["file"]
    raw = bytearray(shard.read_bytes())

    raw[len(raw) // 2] ^= 0xFF  # torn inside its size: the records' CRCs catch it when read
    shard.write_bytes(bytes(raw))
    batches = prepared.Batches(prepared.make_stream(indexed, 8, seed=0), indexed)
    assert "a shard is torn or corrupt" in _one_line(lambda: [next(batches) for _ in range(12)])
    line = cli_error(capsys, "prepare", "--verify", indexed)
    assert f"shard {shard.name} does not match its sha256" in line

    shard.write_bytes(bytes(raw[:-10]))  # truncated: found at the start, before anything is read
    assert f"shard {shard.name} is {len(raw) - 10} bytes but the manifest says {len(raw)}" in _one_line(prepared_format.read_manifest, indexed)
    shard.unlink()
    assert f"shard {shard.name} is missing" in _one_line(prepared_format.read_manifest, indexed)

    manifest_path.write_text(json.dumps({**manifest, "count": 99}))
    assert "count 99, but the shards hold 100 images" in _one_line(prepared_format.read_manifest, indexed)
    manifest_path.write_text(json.dumps({**manifest, "version": prepared_format.VERSION + 1}))
    assert "by a newer dcgan" in _one_line(prepared_format.read_manifest, indexed)
    manifest_path.write_text(json.dumps({**manifest, "shards": [{**manifest["shards"][0], "file": "../../etc/passwd"}]}))
    assert "is not a shard file name" in _one_line(prepared_format.read_manifest, indexed)


# ---------------------------------------------------------------- writing safely


def test_interrupted_prepare_leaves_nothing_that_looks_finished(tmp_path, capsys, monkeypatch):
    src, out = _indexed_idx(tmp_path / "idx", 100), tmp_path / "out"
    finish, shards = prepare.ShardWriter._finish_shard, []

    def dies_after_the_first_shard(self):
        finish(self)
        shards.append(1)
        raise KeyboardInterrupt  # Ctrl-C; with _discard disabled below, as a kill leaves it

    monkeypatch.setattr(prepare.ShardWriter, "_finish_shard", dies_after_the_first_shard)
    with pytest.raises(KeyboardInterrupt):
        prepare.prepare(src, out, 8, 1, shard_mb=0.002, quiet=True)
    assert shards == [1] and not out.exists() and not (tmp_path / "out.partial").exists()  # cleaned up

    monkeypatch.setattr(prepare_output, "discard", lambda partial: None)  # a kill: no cleanup runs
    with pytest.raises(KeyboardInterrupt):
        prepare.prepare(src, out, 8, 1, shard_mb=0.002, quiet=True)
    partial = tmp_path / "out.partial"
    assert not out.exists() and partial.is_dir() and not (partial / "manifest.json").exists()
    assert "not a prepared dataset" in _one_line(prepared_format.read_manifest, partial)
    monkeypatch.undo()
    assert _prepare(capsys, src, out, "--size", 8, "--channels", 1) == str(out)  # the stale OUT.partial is removed
    assert not partial.exists() and prepared_format.read_manifest(out).count == 100


def test_out_is_replaced_only_when_it_is_a_prepared_dataset(tmp_path, capsys):
    src = _indexed_idx(tmp_path / "idx", 30)
    other = tmp_path / "precious"
    other.mkdir()
    (other / "thesis.tex").write_text("years of work")
    assert "exists; pass --force" in cli_error(capsys, "prepare", src, other, "--size", 8, "--channels", 1)
    assert "is not a prepared dataset" in cli_error(capsys, "prepare", src, other, "--size", 8, "--channels", 1, "--force")
    assert (other / "thesis.tex").read_text() == "years of work"
    assert "is SOURCE or holds it" in cli_error(capsys, "prepare", src, tmp_path, "--size", 8, "--channels", 1, "--force")
    assert "--size: 30 is not supported" in cli_error(capsys, "prepare", src, tmp_path / "x", "--size", 30, "--channels", 1)
    out = tmp_path / "out"
    _prepare(capsys, src, out, "--size", 8, "--channels", 1)
    _prepare(capsys, src, out, "--size", 16, "--channels", 1, "--force")
    assert prepared_format.read_manifest(out).shape == (16, 16, 1) and sorted(p.name for p in tmp_path.iterdir()) == ["idx", "out", "precious"]


def _victim(tmp_path) -> Path:
    victim = tmp_path / "victim.txt"
    victim.write_text("years of work")
    return victim


def _tree(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None for p in sorted(folder.rglob("*"))}


def test_a_partial_folder_prepare_did_not_mark_as_its_own_is_left_alone(tmp_path, capsys):
    src, out = _indexed_idx(tmp_path / "idx", 30), tmp_path / "P"
    partial = tmp_path / "P.partial"
    partial.mkdir()  # a copied run directory: it holds a .lock, as every run does
    (partial / ".lock").write_text("process 1 (dcgan train)")
    (partial / "config.yaml").write_text("run: {}")
    (partial / "checkpoints").mkdir()
    (partial / "checkpoints" / "ckpt-6.index").write_bytes(b"weights")
    before = _tree(partial)
    args = (src, out, "--size", 8, "--channels", 1)
    assert "is not marked as an unfinished `dcgan prepare`" in cli_error(capsys, "prepare", *args)
    (partial / prepare_output.PARTIAL_MARKER).write_text(json.dumps({"format": prepare_output.PARTIAL_FORMAT}))
    before = _tree(partial)  # marked (a copy of a real partial, say), but holding what a prepare never writes
    assert "holds 'checkpoints', which `dcgan prepare` does not write" in cli_error(capsys, "prepare", *args)
    assert _tree(partial) == before and not out.exists()

    for name in ("checkpoints/ckpt-6.index", "checkpoints", "config.yaml", ".lock"):
        path = partial / name
        path.rmdir() if path.is_dir() else path.unlink()
    victim = _victim(tmp_path)
    (partial / ".lock").symlink_to(victim)  # the lock would be opened, truncated and written through the link
    assert "holds '.lock', which is not a plain file" in cli_error(capsys, "prepare", *args)
    assert victim.read_text() == "years of work"
    (partial / ".lock").unlink()
    _prepare(capsys, *args)  # marked and holding only its own files: an interrupted prepare's, removed
    assert not partial.exists() and prepared_format.read_manifest(out).count == 30


def test_force_replaces_only_a_folder_holding_nothing_but_a_prepared_dataset(tmp_path, capsys, monkeypatch):
    src, out = _indexed_idx(tmp_path / "idx", 30), tmp_path / "out"
    args = (src, out, "--size", 8, "--channels", 1, "--force")
    _prepare(capsys, *args)
    (out / "notes.txt").write_text("mine")
    assert "holds 'notes.txt', which `dcgan prepare` does not write" in cli_error(capsys, "prepare", *args)
    (out / "notes.txt").unlink()
    (out / "sub").mkdir()
    (out / "sub" / "kept.txt").write_text("mine")
    assert "holds 'sub'" in cli_error(capsys, "prepare", *args)
    assert (out / "sub" / "kept.txt").read_text() == "mine"

    crafted = tmp_path / "crafted"  # a manifest that only claims the format
    crafted.mkdir()
    (crafted / "manifest.json").write_text(json.dumps({"format": prepared_format.FORMAT}))
    (crafted / "notes.txt").write_text("mine")
    line = cli_error(capsys, "prepare", src, crafted, "--size", 8, "--channels", 1, "--force")
    assert "has no valid prepared dataset manifest" in line and (crafted / "notes.txt").read_text() == "mine"

    (out / "sub" / "kept.txt").unlink()
    (out / "sub").rmdir()
    deep = tmp_path / "nest" / "deep"
    _prepare(capsys, src, deep, "--size", 8, "--channels", 1)
    monkeypatch.chdir(deep)  # a prepared dataset, but the current directory: never replaced, in one line
    for where in (".", deep, ".."):  # "." was a ValueError traceback
        line = cli_error(capsys, "prepare", src, where, "--size", 8, "--channels", 1, "--force")
        assert f"OUT: {where} is the current directory or a folder above it" in line
    monkeypatch.chdir(tmp_path)
    _prepare(capsys, *args[:3], 16, *args[4:])  # nothing but a prepared dataset: replaced
    assert prepared_format.read_manifest(out).shape == (16, 16, 1) and sorted(p.name for p in tmp_path.iterdir()) == [
        "crafted", "idx", "nest", "out"]


def test_bad_shuffle_seed_is_one_line_before_any_work(tmp_path, capsys):
    src = _indexed_idx(tmp_path / "idx", 30)
    line = cli_error(capsys, "prepare", src, tmp_path / "out", "--size", 8, "--channels", 1, "--shuffle", -1)
    assert "--shuffle: -1 is not a seed" in line and not (tmp_path / "out.partial").exists()


def _crafted(root: Path, images, labels, shape, classes) -> Path:
    """A one-shard prepared dataset of exactly these records, its manifest agreeing with them in every checksum."""
    root.mkdir()
    writer = prepare.ShardWriter(root, 64)
    for i, (image, label) in enumerate(zip(images, labels)):
        writer.add(image, label, str(i))
    shards = writer.close()
    manifest = {"format": prepared_format.FORMAT, "version": prepared_format.VERSION, "count": len(labels),
                "shape": list(shape), "classes": classes, "shards": shards, "content_sha256": writer.content.hexdigest()}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def test_verify_checks_each_records_label_and_size_against_the_manifest(tmp_path, capsys):
    images = blob_images(6, 8, 1)
    labelled = _crafted(tmp_path / "labelled", images, [0, 1, 0, 7, 1, 0], (8, 8, 1), ["cat", "dog"])
    line = cli_error(capsys, "prepare", "--verify", labelled)
    assert "record 3 has label 7, not a class of the manifest (0..1" in line
    unlabelled = _crafted(tmp_path / "unlabelled", images, [-1, -1, 1, -1, -1, -1], (8, 8, 1), None)
    assert "record 2 has label 1, but the manifest lists no classes" in cli_error(capsys, "prepare", "--verify", unlabelled)
    good = _crafted(tmp_path / "good", images, [-1] * 6, (8, 8, 1), None)
    assert run_cli(capsys, "prepare", "--verify", good).status == 0

    # records of 16x16x3 under a manifest of 8x8x1: each is 12 of its images, and was counted so ("holds 72 records")
    shape = _crafted(tmp_path / "shape", blob_images(6, 16, 3), [-1] * 6, (8, 8, 1), None)
    line = cli_error(capsys, "prepare", "--verify", shape)
    assert "record 0 holds 768 bytes of pixels, but the manifest's shape 8x8x1 is 64 bytes" in line


def test_a_crafted_count_is_an_error_naming_the_field_not_a_count(tmp_path, capsys):
    out = _crafted(tmp_path / "huge", blob_images(10, 8, 1), [-1] * 10, (8, 8, 1), None)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["shards"][0]["count"] = manifest["count"] = 10**12
    (out / "manifest.json").write_text(json.dumps(manifest))
    line = cli_error(capsys, "prepare", "--verify", out)
    assert "shards[0].count 1000000000000:" in line and "records of 8x8x1" in line and "images" not in line
    assert "shards[0].count 1000000000000:" in _one_line(prepared_format.read_manifest, out)  # what training reads
    manifest["shards"][0]["bytes"] = 2**60
    (out / "manifest.json").write_text(json.dumps(manifest))
    assert "bytes at most" in _one_line(prepared_format.read_manifest, out, False)


# ---------------------------------------------------------------- training from it, and the folder cache


def test_tiny_training_run_from_a_prepared_dataset(tmp_path, capsys):
    out = tmp_path / "prepared"
    _prepare(capsys, write_mnist(tmp_path / "mnist", 64, 0), out, "--size", 28, "--channels", 1, "--shard-mb", 0.02)
    sets = [f"--set={s}" for s in [*TINY, "data.name=prepared", f"data.path={out}", f"run.dir={tmp_path / 'runs'}", "run.name=p"]]
    status, said, err = run_cli(capsys, "train", "--quiet", *sets)
    assert status == 0, err
    run = Path(said.strip())
    assert (run / "generator.keras").is_file() and "64 images, 4 batches/epoch" in err
    assert [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [2, 4, 6]
    line = cli_error(capsys, "train", *sets[:-1], "--set=run.name=q", "--set=data.image_size=32")
    assert "was prepared at 28x28x1" in line and not (tmp_path / "runs" / "q").exists()


def test_folder_is_decoded_once_and_decoded_again_when_a_file_changes(tmp_path, monkeypatch, capsys):
    from PIL import Image

    monkeypatch.setenv("DCGAN_CACHE", str(tmp_path / "cache"))
    src = _png_folder(tmp_path / "imgs")
    cfg = load_config(None, ["data.name=folder", f"data.path={src}", "data.image_size=16", "data.channels=3"]).data
    first = data.load_images(cfg)
    note = capsys.readouterr().err
    assert "skipped 1 unreadable image(s)" in note and len(list((tmp_path / "cache" / "folders").rglob("*.npy"))) == 1

    decode = image_folder.decode_image
    monkeypatch.setattr(image_folder, "decode_image", lambda *a: pytest.fail("decoded although cached"))
    np.testing.assert_array_equal(data.load_images(cfg), first)
    assert "skipped 1 unreadable image(s)" in capsys.readouterr().err  # the note comes with the cached pixels

    monkeypatch.setattr(image_folder, "decode_image", decode)
    Image.new("RGB", (20, 20), (0, 0, 255)).save(src / "cat" / "0.png")  # a changed file: decoded again
    again = data.load_images(cfg)
    assert again[0, 8, 8].tolist() == [0, 0, 255] and (again[1:] == first[1:]).all()
    assert len(list((tmp_path / "cache" / "folders").rglob("*.npy"))) == 1  # the stale entry is replaced


MIRRORED = """
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from dcgan.data import pipeline as data
from dcgan.core.config import load_config
from dcgan.training.distribute import make_strategy
from dcgan.training.gan import GAN
out = {}
for name, sets in (("default", []), ("mirrored", ["distribute.strategy=mirrored", "distribute.devices=[/cpu:0, /cpu:1]"])):
    cfg = load_config(None, [*sys.argv[1:], *sets])
    strategy = make_strategy(cfg.distribute)
    gan = GAN(cfg, strategy)
    batches = data.load_images(cfg.data, stream=True).batches(strategy, cfg.data.batch_size, 0, start_batch=6, group=2)
    out[name] = [[float(v) for v in gan.train_step(next(batches)).values()] for _ in range(2)]
print(json.dumps(out))
"""


def test_two_replicas_stream_the_batches_one_device_sees(tmp_path, capsys):
    """Each replica's share of a step, streamed from a prepared dataset, is its half of the one-device batch."""
    import os
    import subprocess
    import sys

    out = tmp_path / "prepared"
    _prepare(capsys, write_mnist(tmp_path / "mnist", 64, 0), out, "--size", 28, "--channels", 1, "--shard-mb", 0.02)
    sets = [*TINY, "data.name=prepared", f"data.path={out}", "train.d_steps=2"]
    proc = subprocess.run([sys.executable, "-c", MIRRORED, *sets], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""})
    assert proc.returncode == 0, proc.stderr[-3000:]
    losses = json.loads(proc.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(losses["mirrored"], losses["default"], rtol=0, atol=1e-4)
