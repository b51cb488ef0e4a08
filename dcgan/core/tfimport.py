"""TensorFlow imported without its start-up noise (every command that needs it, and the studio's warm-up)."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile


def quiet_tensorflow() -> None:
    """Import TensorFlow without its start-up noise, unless the user asks for it.

    On a machine without a GPU every command would otherwise print the absl preamble, oneDNN and CUDA
    info lines at import and a `failed call to cuInit` error at the first op. Only DCGAN_TF_LOGS=1 gets
    TensorFlow's own logging untouched: TF_CPP_MIN_LOG_LEVEL, which users set to quiet TensorFlow, cannot
    quiet the lines logged before absl is initialised (cudart_stub's "Could not find cuda drivers"), so
    fd 2 is captured during the import whatever it says.
    """
    if os.environ.get("DCGAN_TF_LOGS") or "tensorflow" in sys.modules:  # imported already: its start-up is past
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    with native_stderr_captured() as captured:
        try:
            import tensorflow as tf
        except BaseException:
            sys.stderr.write(captured())  # an import that fails keeps its explanation
            raise
    tf.get_logger().setLevel("ERROR")


@contextlib.contextmanager
def native_stderr_captured():
    """Point file descriptor 2 (where TensorFlow's C++ logs go) at a temporary file; yields a reader of it."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield lambda: (sink.seek(0), sink.read().decode(errors="replace"))[1]
        finally:
            os.dup2(saved, 2)
            os.close(saved)
