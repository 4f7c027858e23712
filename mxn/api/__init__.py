"""The Python API: one function per job of the ``mxn`` command, with the command's options.

Every ``mxn`` job command is a thin layer over one function here: it parses
its options, calls the function and prints what came back. So a script and
the command line run the same code and cannot drift apart; docs/API.md is
the reference in plain words.

=====================  ===========================  ==========================================
function               command                      returns
=====================  ===========================  ==========================================
:func:`train`          ``mxn train DATA``           :class:`TrainedModel`
:func:`calibrate`      ``mxn calibrate``            :class:`mxn.calibration.Calibration`
:func:`evaluate`       ``mxn evaluate``             :class:`mxn.evaluation.Evaluation`
:func:`render_traffic_video`  ``mxn world video``   :class:`mxn.datasets.world.video.RenderedClip`
:func:`render_crops`   ``mxn world crops``          the data set's manifest (a dict)
:func:`ingest`         ``mxn ingest``               :class:`IngestResults` (a list of ``IngestResult``)
:func:`index_crops`    ``mxn crops``                the training set's manifest (a dict)
:func:`query`          ``mxn query``                :class:`mxn.query.result.QueryResult`
:func:`tune_query`     ``mxn tune query``           :class:`mxn.query.tuning.TuningResult`
:func:`make_movie`     ``mxn movie``                :class:`MovieFiles`
:func:`label_faces`    ``mxn faces``                :class:`mxn.facerec.pipeline.LabelledMovie`
:func:`tune_faces`     ``mxn tune faces``           :class:`FaceTuning`
:func:`train_faces`    ``mxn train faces``          :class:`TrainedFaceModel`
=====================  ===========================  ==========================================

Conventions, the same in every function:

* parameters are the command's options with ``_`` for ``-``
  (``--cluster-threshold`` is ``cluster_threshold``) and the same defaults;
  options that switch something off on the command line are positive here
  (``--no-cache`` is ``cache=False``, ``--quiet`` is ``progress=False``);
* paths are ``str`` or :class:`~pathlib.Path`; ``db`` is a database URL
  (``None``: ``$MXN_DB``, else ``sqlite:///mxn.db``; a ``Path`` is an SQLite
  file) or an open :class:`mxn.storage.store.Store`, used as it is and left open;
  ``model``, ``gt``, ``qmodel`` are model files (``None``: the bundled
  default) or, for :func:`ingest`, :func:`query`, :func:`tune_query`,
  :func:`label_faces` and :func:`tune_faces`, a model already loaded (an
  :class:`~mxn.modelfile.MXNModel`; for the face jobs also a
  :class:`mxn.facerec.model.FaceMXN`), used as it is, so a script that runs
  several jobs loads each model once;
* lists are sequences or the command line's comma-separated text (``"0,1,2"``);
* each result object has ``to_dict()``: what ``--json`` writes;
* a bad argument raises :class:`OptionError` (a ``ValueError``) naming it,
  before any slow work starts; the library's own errors (``QueryError``,
  ``ConfigError``, ``ModelFileError``, ``VideoError``, ``StoreError``, ...)
  pass through unchanged, each saying what to do.

Like the command line, this package is a top layer: it reaches into the
stages (:mod:`mxn.ingest`, :mod:`mxn.query`, :mod:`mxn.facerec`) and
:mod:`mxn.storage`, one module per family of jobs:

* :mod:`~mxn.api.options`: the argument checks (:class:`OptionError`,
  :func:`parse_time`), the database (:func:`database_url`) and models;
* :mod:`~mxn.api.models`: :func:`train`, :func:`calibrate`, :func:`evaluate`;
* :mod:`~mxn.api.world`: :func:`render_traffic_video`, :func:`render_crops`;
* :mod:`~mxn.api.traffic`: :func:`ingest`, :func:`index_crops`,
  :func:`query`, :func:`tune_query`;
* :mod:`~mxn.api.faces`: :func:`make_movie`, :func:`label_faces`,
  :func:`tune_faces`, :func:`train_faces`.

Each default is stated once: in the library's settings (an ingest's are
:class:`mxn.ingest.config.IngestConfig`'s fields, a query's
:mod:`mxn.query.settings`, the faces' :mod:`mxn.facerec.settings`, training's
:class:`mxn.train_config.TrainConfig`, the traffic world's
:mod:`mxn.datasets.world.settings`, the targets :mod:`mxn.targets`), which
the library's working modules and these functions read, and the command line
reads the functions' (tests/test_options.py holds that no default is written
out twice). Those settings modules import nothing heavy; the working modules
load inside each job, so importing this package stays cheap (no TensorFlow,
no OpenCV, no NumPy until a job runs).
"""

from .faces import FaceTuning, MovieFiles, TrainedFaceModel, label_faces, make_movie, train_faces, tune_faces
from .models import TrainedModel, calibrate, evaluate, train
from .options import Log, OptionError, PathLike, database_url, parse_time
from .traffic import IngestResults, index_crops, ingest, query, tune_query
from .world import render_crops, render_traffic_video

__all__ = [
    "FaceTuning",
    "IngestResults",
    "Log",
    "MovieFiles",
    "OptionError",
    "PathLike",
    "TrainedFaceModel",
    "TrainedModel",
    "calibrate",
    "database_url",
    "evaluate",
    "index_crops",
    "ingest",
    "label_faces",
    "make_movie",
    "parse_time",
    "query",
    "render_crops",
    "render_traffic_video",
    "train",
    "train_faces",
    "tune_faces",
    "tune_query",
]
