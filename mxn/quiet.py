"""Import TensorFlow without its start-up noise on the terminal.

TensorFlow's C++ runtime writes a few lines to stderr while it loads (absl's
"log messages before InitializeLog", "could not find cuda drivers", ...),
before any Python setting can stop them. Command-line users should not have to
read those, so the CLI imports TensorFlow once with file descriptor 2 pointed
at /dev/null. Python exceptions are unaffected: they are raised after stderr
is restored.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def silenced_stderr_fd() -> Iterator[None]:
    """Send everything written to file descriptor 2 to /dev/null for the block's duration."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def import_tensorflow_quietly() -> None:
    """Import TensorFlow (and Keras) now, without the C++ start-up lines."""
    if "tensorflow" in sys.modules:
        return
    with silenced_stderr_fd():
        import tensorflow as tf

        tf.config.list_physical_devices()  # the CUDA probe logs here, once
