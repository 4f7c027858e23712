"""Faces: label who appears when in a movie with multi-exit face embeddings, a running-average face
database and an oracle (docs/ARCHITECTURE.md section 6, Algorithm 3).

A stage: it imports the network core, :mod:`mxn.storage` and :mod:`mxn.media`, and no other stage.
Its public names are re-exported here, each loaded on first use (the settings in
:mod:`~mxn.facerec.settings` load nothing heavy).
"""

from __future__ import annotations

from mxn.exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        ".settings": ("DEFAULT_ALPHA", "DETECTORS", "FaceConfig"),
        ".detection": ("FaceDetector", "detect_faces", "make_detector"),
        ".model": ("FaceMXN",),
        ".database": ("ExitDatabase", "FaceDatabase"),
        ".labeller": ("FaceLabeller",),
        ".oracle": ("Gallery", "GalleryError", "GalleryOracle"),
        ".pipeline": ("LabelledMovie", "MovieResult", "label_movie"),
        ".outputs": ("LabelledFace", "person_timeline", "screen_time", "write_faces", "write_srt"),
        ".tuning": ("FaceThresholds", "tune_thresholds"),
        ".truth": ("Truth", "TruthFileError", "read_truth"),
    },
    globals(),
)
