"""The ground rules of dataset files: regular files only, sizes bounded, real pixels, one-line errors."""

import numpy as np
import pytest

from helpers import deadline, fifo
from helpers import blob_images
from dcgan.data import datafiles
from dcgan.data import mnist
from dcgan.data.datafiles import DataError, FileTooLarge, NotRegularFile, open_regular


def test_open_regular_refuses_a_fifo_without_blocking_and_a_file_over_its_limit(tmp_path):
    with deadline(), pytest.raises(NotRegularFile, match=r"pipe is not a regular file \(a FIFO\)"):
        open_regular(fifo(tmp_path / "pipe"))
    (tmp_path / "ten").write_bytes(bytes(10))
    with pytest.raises(FileTooLarge, match=r"ten is 10 bytes, over the 9-byte limit for a test file"):
        open_regular(tmp_path / "ten", 9, "a test file")
    with open_regular(tmp_path / "ten", 10) as file:
        assert file.read() == bytes(10)


def test_data_error_is_one_line_whatever_the_file_name():
    assert str(DataError("bad\nname\r.npz: corrupt")) == "bad\\nname\\r.npz: corrupt"


def test_pixels_in_range_are_accepted_whatever_their_numeric_dtype(tmp_path):
    pixels = blob_images(3, size=8)[..., 0]
    for dtype in (np.int16, np.uint32, np.float32, np.float64):
        path = tmp_path / f"{np.dtype(dtype).name}.npz"
        np.savez(path, x_train=pixels.astype(dtype), y_train=np.zeros(len(pixels), np.int64))
        np.testing.assert_array_equal(mnist.load_mnist_npz(path, "train")[..., 0], pixels)
    np.testing.assert_array_equal(datafiles.as_pixels(np.array([0.4, 99.6, 255.0]), "x"), [0, 100, 255])  # rounded, not truncated
