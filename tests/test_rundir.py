import os
import stat

from dcgan.rundir import atomic_write


def test_atomic_write_replaces_whole_file_with_umask_permissions(tmp_path):
    path = atomic_write(tmp_path / "a" / "x.txt", "one")
    atomic_write(path, b"two")
    assert path.read_bytes() == b"two"
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask
    assert [p.name for p in path.parent.iterdir()] == ["x.txt"]
