"""Label queries over an ingested index: MXN early exits gating the ground-truth CNN
(docs/ARCHITECTURE.md section 5).

A stage: it imports the network core, :mod:`mxn.storage` and :mod:`mxn.media`, and no other stage.
Its public names are re-exported here, each loaded on first use.
"""

from __future__ import annotations

from mxn.exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        ".settings": ("MODES", "INDEX_MODES"),
        ".executor": ("QueryError", "QueryExecutor", "find_videos"),
        ".result": ("QueryResult", "QueryStats"),
        ".thresholds": ("QueryThresholds", "ThresholdsError", "load_thresholds"),
        ".tuning": ("TuningError", "TuningResult", "tune"),
        ".sheet": ("contact_sheet",),
    },
    globals(),
)
