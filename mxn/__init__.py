"""mxn: multi-exit networks, and the video query and face labelling systems built on them.

The library's main pieces, importable from here:

* :class:`NetworkSpec` and :func:`build_network`: describe and build a
  multi-exit ResNet-18 or MobileNetV1;
* :class:`TrainConfig` and :func:`train_network`: train every exit together;
* :class:`StagedEngine`: run the exits (all at once, or early exit with
  compaction);
* :func:`calibrate_thresholds`: per-exit thresholds for a target precision;
* :func:`save_model` / :func:`load_model`: the ``.mxn`` model file;
* the jobs of the ``mxn`` command, one function each, with the command's
  options (:mod:`mxn.api`, docs/API.md): :func:`train`, :func:`ingest`,
  :func:`query`, :func:`tune_query`, :func:`label_faces`, :func:`tune_faces`,
  :func:`train_faces`, :func:`make_movie`, :func:`render_traffic_video`, ...

Names are imported lazily so that ``import mxn`` and ``mxn --help`` do not
wait for TensorFlow.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ start-up chatter

__version__ = "0.1.0"

_EXPORTS = {
    "NetworkSpec": "mxn.spec",
    "build_network": "mxn.network",
    "MultiExitNetwork": "mxn.network",
    "TrainConfig": "mxn.training",
    "train_network": "mxn.training",
    "StagedEngine": "mxn.engine",
    "calibrate_thresholds": "mxn.calibration",
    "MXNModel": "mxn.modelfile",
    "save_model": "mxn.modelfile",
    "load_model": "mxn.modelfile",
    "ModelFileError": "mxn.modelfile",
    "fit_model": "mxn.fit",
    # the jobs (mxn.api): one function per command
    **dict.fromkeys(
        (
            "train",
            "calibrate",
            "evaluate",
            "render_traffic_video",
            "render_crops",
            "ingest",
            "query",
            "tune_query",
            "make_movie",
            "label_faces",
            "tune_faces",
            "train_faces",
            "OptionError",
        ),
        "mxn.api",
    ),
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'mxn' has no attribute {name!r}")
