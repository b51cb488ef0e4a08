"""Image archives (dcgan.data.archive): zip and tar listings, reading members back, and hostile archives refused."""

import io
import os
import struct
import tarfile
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dcgan.data import archive
from dcgan.data.archive import LINK_OR_DEVICE, UNSUPPORTED_METHOD, ImageArchive, is_archive
from dcgan.data.datafiles import DataError
from dcgan.data.folder_walk import list_images

TAR_MODES = {".tar": "w", ".tar.gz": "w:gz", ".tgz": "w:gz", ".tar.bz2": "w:bz2", ".tar.xz": "w:xz"}
COMPRESSED = [".tar.gz", ".tgz", ".tar.bz2", ".tar.xz"]
LIMIT = 1 << 20  # max_member_bytes


def png(seed: int, size: int = 4) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def write_zip(path: Path, members, compression=zipfile.ZIP_DEFLATED) -> Path:
    """members: (name or ZipInfo, bytes); duplicate names are written as given."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Duplicate name"
        with zipfile.ZipFile(path, "w", compression) as z:
            for name, data in members:
                z.writestr(name, data)
    return path


def write_tar(path: Path, members) -> Path:
    """members: (name, bytes) for regular files, or a TarInfo (links, devices, directories)."""
    mode = next(mode for suffix, mode in TAR_MODES.items() if path.name.endswith(suffix))
    with tarfile.open(path, mode) as tar:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                tar.addfile(member)
            else:
                info = tarfile.TarInfo(member[0])
                info.size = len(member[1])
                tar.addfile(info, io.BytesIO(member[1]))
    return path


def write_archive(path: Path, members) -> Path:
    return write_zip(path, members) if path.suffix == ".zip" else write_tar(path, members)


def special(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info


def chunked(file, size: int) -> bytes:
    return b"".join(iter(lambda: file.read(size), b""))


def read_all(path: Path, names=None) -> list[tuple[str, bytes]]:
    with ImageArchive(path, LIMIT) as a:
        return [(name, file.read()) for name, file in a.read(a.names if names is None else names)]


def refused(path: Path, *parts: str) -> str:
    """The DataError opening (and reading all of) path raises: one line, naming the path and each of parts."""
    with pytest.raises(DataError) as caught:
        read_all(path)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message
    for part in parts:
        assert part in message
    return message


def patch_central(path: Path, offset: int, fmt: str, value: int) -> None:
    """Overwrite a field of the (first) central directory entry of a zip."""
    data = bytearray(path.read_bytes())
    entry = data.index(b"PK\x01\x02")
    struct.pack_into(fmt, data, entry + offset, value)
    path.write_bytes(bytes(data))


IMAGES = {"cats/b.png": png(1), "cats/a.PNG": png(2), "dogs/deep/c.jpg": png(3), "top.jpeg": png(4)}


# ---------------------------------------------------------------- is_archive


def test_is_archive(tmp_path):
    for name in ("a.zip", "b.TAR", "c.tar.gz", "d.TGZ", "e.tar.bz2", "f.tar.xz"):
        (tmp_path / name).write_bytes(b"x")
        assert is_archive(tmp_path / name), name
    (tmp_path / "g.gz").write_bytes(b"x")
    (tmp_path / "folder.zip").mkdir()
    os.mkfifo(tmp_path / "pipe.tar")
    for name in ("g.gz", "folder.zip", "pipe.tar", "missing.zip"):
        assert not is_archive(tmp_path / name), name


# ---------------------------------------------------------------- listing


def test_zip_listing(tmp_path):
    members = [("cats/", b""), *IMAGES.items(), ("notes.txt", b"n"), ("cats/b.png", b"second"), ("x.png.txt", b"t")]
    with ImageArchive(write_zip(tmp_path / "a.zip", members), LIMIT) as a:
        assert a.names == ["cats/a.PNG", "cats/b.png", "dogs/deep/c.jpg", "top.jpeg"]
        assert a.others == 2 and not a.skipped and a.random_access
        assert a.path == tmp_path / "a.zip"


@pytest.mark.parametrize("suffix", list(TAR_MODES))
def test_tar_listing(tmp_path, suffix):
    members = [special(".", tarfile.DIRTYPE), special("./cats", tarfile.DIRTYPE),
               *((f"./{name}", data) for name, data in IMAGES.items()), ("readme.md", b"r"),
               ("cats/b.png", b"second"), ("./cats//b.png", b"third")]
    with ImageArchive(write_tar(tmp_path / f"a{suffix}", members), LIMIT) as a:
        assert a.names == ["cats/a.PNG", "cats/b.png", "dogs/deep/c.jpg", "top.jpeg"]  # "./" dropped, sorted
        assert a.others == 1 and not a.skipped
        assert a.random_access == (suffix == ".tar")


@pytest.mark.parametrize("suffix", [".zip", ".tar.gz"])
def test_names_sort_as_a_folder_does(tmp_path, suffix):
    names = ["a-b.png", "a/b.png", "a/c/d.png", "a.png", "B.png", "a/b-c.png"]
    for name in names:
        (tmp_path / "folder" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "folder" / name).write_bytes(png(0))
    files, _ = list_images(tmp_path / "folder")
    with ImageArchive(write_archive(tmp_path / f"a{suffix}", [(n, png(0)) for n in names]), LIMIT) as a:
        assert a.names == [f.relative_to(tmp_path / "folder").as_posix() for f in files]


def test_member_over_max_bytes_is_skipped(tmp_path):
    big, small = png(5, size=32), png(6)
    path = write_zip(tmp_path / "a.zip", [("big.png", big), ("small.png", small)])
    limit = len(small) + 1
    with ImageArchive(path, limit) as a:
        assert a.names == ["small.png"] and a.skipped == {f"over {limit} bytes": 1}


def test_tar_links_and_devices_are_skipped_not_followed(tmp_path):
    secret = tmp_path / "secret.png"
    secret.write_bytes(png(7))
    members = [("cats/a.png", png(1)), special("cats/sym.png", tarfile.SYMTYPE, str(secret)),
               special("cats/hard.png", tarfile.LNKTYPE, "cats/a.png"), special("cats/fifo.png", tarfile.FIFOTYPE),
               special("cats/dev.png", tarfile.CHRTYPE), special("lib.so", tarfile.SYMTYPE, "/etc/passwd")]
    for suffix in (".tar", ".tar.gz"):
        path = write_tar(tmp_path / f"a{suffix}", members)
        with ImageArchive(path, LIMIT) as a:
            assert a.names == ["cats/a.png"] and a.others == 0
            assert a.skipped == {LINK_OR_DEVICE: 4}
        assert read_all(path) == [("cats/a.png", png(1))]


def test_zip_symlink_member_is_skipped(tmp_path):
    link = zipfile.ZipInfo("cats/link.png")
    link.external_attr = 0o120777 << 16
    regular = zipfile.ZipInfo("cats/a.png")
    regular.external_attr = 0o100644 << 16
    path = write_zip(tmp_path / "a.zip", [(link, "/etc/passwd"), (regular, png(1))])
    with ImageArchive(path, LIMIT) as a:
        assert a.names == ["cats/a.png"] and a.skipped == {LINK_OR_DEVICE: 1}


def test_zip_member_in_an_unsupported_method_is_skipped(tmp_path):
    path = write_zip(tmp_path / "a.zip", [("a.png", png(1))])
    patch_central(path, 10, "<H", 9)  # Deflate64
    with ImageArchive(path, LIMIT) as a:
        assert a.names == [] and a.skipped == {UNSUPPORTED_METHOD: 1}


# ---------------------------------------------------------------- reading


@pytest.mark.parametrize("suffix", [".zip", ".tar"])
def test_random_access_reads_in_the_order_given(tmp_path, suffix):
    path = write_archive(tmp_path / f"a{suffix}", list(IMAGES.items()))
    order = ["top.jpeg", "cats/b.png", "dogs/deep/c.jpg", "cats/b.png"]
    assert read_all(path, order) == [(name, IMAGES[name]) for name in order]


@pytest.mark.parametrize("suffix", COMPRESSED)
def test_compressed_tar_reads_in_archive_order(tmp_path, suffix):
    path = write_tar(tmp_path / f"a{suffix}", list(IMAGES.items()))  # archive order: b, a, c, top
    got = read_all(path, ["top.jpeg", "cats/b.png", "cats/a.PNG", "top.jpeg"])
    assert got == [("cats/b.png", IMAGES["cats/b.png"]), ("cats/a.PNG", IMAGES["cats/a.PNG"]),
                   ("top.jpeg", IMAGES["top.jpeg"])]


@pytest.mark.parametrize("suffix", [".zip", ".tar", ".tar.gz"])
def test_a_duplicate_name_reads_the_first_member(tmp_path, suffix):
    path = write_archive(tmp_path / f"a{suffix}", [("a.png", png(1)), ("b.png", png(2)), ("a.png", png(3))])
    assert read_all(path) == [("a.png", png(1)), ("b.png", png(2))]


def test_member_files_read_in_chunks_and_close(tmp_path):
    data = png(8, size=64)
    with ImageArchive(write_zip(tmp_path / "a.zip", [("a.png", data)]), LIMIT) as a:
        ((name, file),) = list(a.read(["a.png"]))
        assert file.closed  # valid only until the next item is taken
    with ImageArchive(write_tar(tmp_path / "a.tgz", [("a.png", data)]), LIMIT) as a:
        for name, file in a.read(["a.png"]):
            assert chunked(file, 100) == data and file.read() == b""


def test_read_of_an_unknown_name_is_a_key_error(tmp_path):
    with ImageArchive(write_zip(tmp_path / "a.zip", [("a.png", png(1))]), LIMIT) as a, pytest.raises(KeyError):
        a.read(["b.png"])  # at once, not when the first item is taken


def test_fingerprint_changes_when_the_archive_is_rewritten(tmp_path):
    path = write_zip(tmp_path / "a.zip", [("a.png", png(1))])
    with ImageArchive(path, LIMIT) as a:
        first = a.fingerprint()
    with ImageArchive(path, LIMIT) as a:
        assert a.fingerprint() == first and isinstance(first, str) and len(first) < 80
    write_zip(tmp_path / "b.zip", [("a.png", png(1)), ("b.png", png(2))]).replace(path)
    with ImageArchive(path, LIMIT) as a:
        assert a.fingerprint() != first


@pytest.mark.parametrize("compression", [zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED])
def test_zip_reads_stop_at_the_declared_size(tmp_path, compression):
    data = png(9, size=64)
    path = write_zip(tmp_path / "a.zip", [("a.png", data)], compression)
    # a member that holds more than the central directory declares, with the CRC of what it declares
    patch_central(path, 24, "<I", 100)
    patch_central(path, 16, "<I", zlib.crc32(data[:100]))
    with ImageArchive(path, LIMIT) as a:
        ((_, first),) = [(name, file.read()) for name, file in a.read(["a.png"])]
        ((_, in_chunks),) = [(name, chunked(file, 30)) for name, file in a.read(["a.png"])]
    assert first == in_chunks == data[:100]
    patch_central(path, 16, "<I", zlib.crc32(data))  # the CRC of all of it: the member no longer checks
    refused(path, "'a.png'", "corrupt")


def test_corrupt_zip_member_is_a_data_error_naming_it(tmp_path):
    path = write_zip(tmp_path / "a.zip", [("cats/a.png", png(10, size=64))])
    data = bytearray(path.read_bytes())
    data[60:90] = bytes(30)  # inside the deflated data, after the local header
    path.write_bytes(bytes(data))
    refused(path, "'cats/a.png'")


# ---------------------------------------------------------------- hostile archives


OUTSIDE = ["../x.png", "/abs.png", "cats/../../x.png", "a/../b.png", "C:\\x.png", "c:x.png", "\\abs.png",
           "ok\\..\\..\\x.png", "../notes.txt"]


@pytest.mark.parametrize("suffix", [".zip", ".tar", ".tar.gz"])
@pytest.mark.parametrize("name", OUTSIDE)
def test_member_outside_the_archive_is_refused(tmp_path, suffix, name):
    path = write_archive(tmp_path / f"a{suffix}", [("good.png", png(1)), (name, png(2))])
    refused(path, repr(name), "lies outside the archive")


@pytest.mark.parametrize("suffix", [".zip", ".tar"])
def test_link_member_outside_the_archive_is_refused(tmp_path, suffix):
    if suffix == ".zip":
        link = zipfile.ZipInfo("../link.png")
        link.external_attr = 0o120777 << 16
        path = write_zip(tmp_path / "a.zip", [(link, "/etc/passwd")])
    else:
        path = write_tar(tmp_path / "a.tar", [special("../link.png", tarfile.SYMTYPE, "/etc/passwd")])
    refused(path, "'../link.png'")


def test_zip_name_with_a_nul_is_refused(tmp_path):
    path = write_zip(tmp_path / "a.zip", [("evil.pngX.txt", b"x")])
    path.write_bytes(path.read_bytes().replace(b"evil.pngX.txt", b"evil.png\0.txt"))
    refused(path, "'evil.png\\x00.txt'", "outside")


@pytest.mark.parametrize("suffix", [".zip", ".tar"])
def test_empty_member_name_is_refused(tmp_path, suffix):
    empty = zipfile.ZipInfo("") if suffix == ".zip" else ""  # writestr("") fails; a ZipInfo does not
    refused(write_archive(tmp_path / f"a{suffix}", [(empty, b"x")]), "''", "empty name")


def test_regular_file_named_dot_is_refused(tmp_path):
    refused(write_tar(tmp_path / "dot.tar", [(".", b"x"), ("a.png", png(1))]), "'.'", "empty name")


def test_messages_stay_on_one_line(tmp_path):
    name = "../evil\n.png"
    message = refused(write_tar(tmp_path / "a.tar", [(name, b"x")]))
    assert "evil\\n.png" in message


def test_zip_bomb_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(archive, "RATIO_FREE_BYTES", 64 << 10)
    path = write_zip(tmp_path / "a.zip", [("a.png", png(1)), ("data/zeros.bin", bytes(1 << 20))])
    assert path.stat().st_size < 10_000
    refused(path, "'data/zeros.bin'", "zip bomb")
    # under RATIO_FREE_BYTES a member may shrink as much as it likes; stored, it does not shrink at all
    read_all(write_zip(tmp_path / "b.zip", [("a.png", png(1)), ("zeros.bin", bytes(60 << 10))]))
    read_all(write_zip(tmp_path / "c.zip", [("a.png", png(1)), ("zeros.bin", bytes(1 << 20))], zipfile.ZIP_STORED))


@pytest.mark.parametrize("suffix", [".zip", ".tar", ".tar.gz"])
def test_too_many_members_are_refused(tmp_path, monkeypatch, suffix):
    monkeypatch.setattr(archive, "MAX_ARCHIVE_MEMBERS", 5)
    five = [(f"{i}.png", png(i)) for i in range(5)]
    with ImageArchive(write_archive(tmp_path / f"five{suffix}", five), LIMIT) as a:
        assert len(a.names) == 5
    refused(write_archive(tmp_path / f"six{suffix}", [*five, ("notes.txt", b"n")]), "more than 5 members")


def test_zip_declaring_too_many_members_is_refused_before_its_directory_is_read(tmp_path, monkeypatch):
    monkeypatch.setattr(archive, "MAX_ARCHIVE_MEMBERS", 5)
    path = write_zip(tmp_path / "a.zip", [("a.png", png(1))])
    data = bytearray(path.read_bytes())
    struct.pack_into("<H", data, data.rindex(b"PK\x05\x06") + 10, 1000)  # the end record's entry count
    path.write_bytes(bytes(data))
    refused(path, "more than 5 members")


def test_member_count_stops_the_scan_as_soon_as_it_is_exceeded(tmp_path, monkeypatch):
    monkeypatch.setattr(archive, "MAX_ARCHIVE_MEMBERS", 5)
    noise = [(f"{i}.bin", np.random.default_rng(i).bytes(20_000)) for i in range(10)]
    path = write_tar(tmp_path / "a.tar.gz", noise)
    path.write_bytes(path.read_bytes()[:150_000])  # cut inside the 8th member
    refused(path, "more than 5 members")  # not "truncated": the 8th header is never reached


@pytest.mark.parametrize("suffix", [".zip", ".tar", ".tar.xz"])
def test_declared_sizes_over_the_total_are_refused(tmp_path, monkeypatch, suffix):
    monkeypatch.setattr(archive, "MAX_ARCHIVE_BYTES", 1000)
    read_all(write_archive(tmp_path / f"ok{suffix}", [("a.png", bytes(600)), ("b.txt", bytes(400))]))
    refused(write_archive(tmp_path / f"big{suffix}", [("a.png", bytes(600)), ("b.txt", bytes(401))]),
            "'b.txt'", "over 1000 bytes")


def test_encrypted_zip_image_is_refused(tmp_path):
    path = write_zip(tmp_path / "a.zip", [("cats/a.png", png(1))])
    patch_central(path, 8, "<H", 0x1)  # "encrypted"
    with pytest.raises(DataError, match=r"'cats/a.png' is encrypted"):
        ImageArchive(path, LIMIT)  # refused by the listing, before anything is read
    other = write_zip(tmp_path / "b.zip", [("notes.txt", b"secret")])
    patch_central(other, 8, "<H", 0x1)
    with ImageArchive(other, LIMIT) as a:  # not an image: counted, never read
        assert a.names == [] and a.others == 1


def test_huge_tar_extended_header_is_refused(tmp_path, monkeypatch):
    info = tarfile.TarInfo("a.png")
    data = png(1)
    info.size, info.pax_headers = len(data), {"comment": "x" * 10_000}
    path = tmp_path / "a.tar.gz"
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(info, io.BytesIO(data))
    assert read_all(path) == [("a.png", data)]
    monkeypatch.setattr(archive, "MAX_TAR_HEADER_BYTES", 4096)
    refused(path, "extended header")


@pytest.mark.parametrize("suffix", [".tar.gz", ".tar.bz2", ".tar.xz", ".tar"])
def test_truncated_tar_is_a_data_error(tmp_path, suffix):
    members = [(f"{i}.png", png(i, size=48)) for i in range(6)]  # noise: it does not compress
    path = write_tar(tmp_path / f"a{suffix}", members)
    path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])
    refused(path)


@pytest.mark.parametrize("name, data", [("garbage.zip", b"PK\x03\x04" + bytes(3000)), ("text.tar", b"not a tar\n" * 300),
                                        ("gzip-magic.tar", b"\x1f\x8b" + bytes(3000)), ("bz2-magic.tar.bz2", b"BZh9" + bytes(99)),
                                        ("empty.tgz", b""), ("empty.zip", b""), ("a-zip.tar.gz", None)])
def test_not_an_archive_is_a_data_error(tmp_path, name, data):
    path = tmp_path / name
    if data is None:  # a zip named like a tar
        data = write_zip(tmp_path / "real.zip", [("a.png", png(1))]).read_bytes()
    path.write_bytes(data)
    refused(path, "corrupt, truncated or not a")


def test_zip_truncated_is_a_data_error(tmp_path):
    path = write_zip(tmp_path / "a.zip", [(f"{i}.png", png(i, size=48)) for i in range(4)])
    path.write_bytes(path.read_bytes()[:-30])
    refused(path)


def test_fifo_and_missing_file_are_refused(tmp_path):
    os.mkfifo(tmp_path / "pipe.zip")
    refused(tmp_path / "pipe.zip", "FIFO")
    refused(tmp_path / "pipe.tar.gz", "does not exist")
    (tmp_path / "dir.tar").mkdir()
    refused(tmp_path / "dir.tar", "directory")
