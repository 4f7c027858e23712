"""mxn: multi-exit networks, and the video query and face labelling systems built on them.

The library's main pieces, importable from here:

* :class:`NetworkSpec` and :func:`build_network`: describe and build a
  multi-exit ResNet-18 or MobileNetV1;
* :class:`TrainConfig` and :func:`train_network`: train every exit together;
* :class:`ExitRunner`: run the exits (all at once, or early exit with
  compaction);
* :func:`calibrate_thresholds`: per-exit thresholds for a target precision;
* :func:`save_model` / :func:`load_model`: the ``.mxn`` model file;

The rest of the house lives under this name too (docs/ARCHITECTURE.md):
:mod:`mxn.media` (video and drawing), :mod:`mxn.storage`, the stages
:mod:`mxn.ingest`, :mod:`mxn.query` and :mod:`mxn.facerec`,
:mod:`mxn.datasets`, :mod:`mxn.reports`, and the job layer on top:
:mod:`mxn.api` (one Python function per job, docs/API.md) and :mod:`mxn.cli`
(the ``mxn`` command).

Names are imported lazily so that ``import mxn`` and ``mxn --help`` do not
wait for TensorFlow.
"""

from __future__ import annotations

import os

from .exports import lazy_exports

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ start-up chatter

__version__ = "0.1.0"

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        ".spec": ("NetworkSpec",),
        ".network": ("build_network", "MultiExitNetwork"),
        ".train_config": ("TrainConfig",),
        ".training": ("train_network", "fit_model"),
        ".runner": ("ExitRunner",),
        ".calibration": ("calibrate_thresholds",),
        ".modelfile": ("MXNModel", "save_model", "load_model", "ModelFileError"),
    },
    globals(),
)
__all__ += ["__version__"]
