"""Ingest: extract moving objects from traffic videos, index them under the aggregated top-k labels
of several exits, and cluster them per label (docs/ARCHITECTURE.md section 4).

A stage: it imports the network core, :mod:`mxn.storage` and :mod:`mxn.media`, and no other stage.
Its public names are re-exported here, each loaded on first use (the settings in
:mod:`~mxn.ingest.config` load nothing heavy; the pipeline loads TensorFlow).
"""

from __future__ import annotations

from mxn.exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        ".config": ("MODES", "ConfigError", "ExtractorConfig", "IngestConfig"),
        ".pipeline": (
            "IngestConflictError",
            "IngestResult",
            "VideoIngest",
            "detect_objects",
            "ingest_videos",
        ),
        ".distributed": ("DistributedIngest", "dask_client", "ingest_videos_distributed"),
        ".training_set": ("TrainingSetError", "export_training_set"),
    },
    globals(),
)
