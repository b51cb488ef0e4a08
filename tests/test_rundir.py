import os
import stat

from dcgan.rundir import atomic_write, trim_event_files


def test_atomic_write_replaces_whole_file_with_umask_permissions(tmp_path):
    path = atomic_write(tmp_path / "a" / "x.txt", "one")
    atomic_write(path, b"two")
    assert path.read_bytes() == b"two"
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask
    assert [p.name for p in path.parent.iterdir()] == ["x.txt"]


def event_steps(folder, tags: bool = False) -> list:
    """The step (or (tag, step)) of every summary in a folder's TensorBoard event files, in file order."""
    import tensorflow as tf

    return [(v.tag, e.step) if tags else e.step for path in sorted(folder.glob("events.out.tfevents.*"))
            for e in tf.compat.v1.train.summary_iterator(str(path)) for v in e.summary.value]


def test_trim_event_files_drops_later_steps_and_a_torn_record(tmp_path):
    import tensorflow as tf

    writer = tf.summary.create_file_writer(str(tmp_path))
    with writer.as_default():
        for step in range(1, 6):
            tf.summary.scalar("loss", 1.0 / step, step=step)
    writer.close()
    assert event_steps(tmp_path) == [1, 2, 3, 4, 5]
    assert trim_event_files(tmp_path, 3) == 2
    assert event_steps(tmp_path) == [1, 2, 3]
    assert trim_event_files(tmp_path, 3) == 0  # nothing more to drop: the file is left alone
    (path,) = tmp_path.glob("events.out.tfevents.*")
    path.write_bytes(path.read_bytes()[:-5])  # a kill in the middle of the last record
    trim_event_files(tmp_path, 10)
    assert event_steps(tmp_path) == [1, 2]
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary left behind
