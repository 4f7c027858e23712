"""The evaluation movies' size presets, in a module that imports nothing heavy.

:func:`mxn.datasets.movies.make_movie` composes with them (OpenCV, dlib);
the command line offers their names (``mxn movie --preset``) without
loading either.
"""

from __future__ import annotations

from typing import Any

#: Size presets for :func:`make_movie`: ``tiny`` for tests, ``short`` for CI, ``feature`` for benchmarks.
movie_presets: dict[str, dict[str, Any]] = {
    "tiny": {"seconds": 6.0, "fps": 4.0, "size": (320, 240), "shot_seconds": (0.5, 1.0)},
    "short": {"seconds": 20.0, "fps": 10.0, "size": (320, 240), "shot_seconds": (0.8, 2.5)},
    "feature": {"seconds": 90.0, "fps": 15.0, "size": (640, 360), "shot_seconds": (1.0, 5.0)},
}

#: The preset names, in size order: what ``mxn movie --preset`` offers.
MOVIE_PRESETS = tuple(movie_presets)
