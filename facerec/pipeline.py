"""Label who appears when in a movie: detect, align, Algorithm 3, commit (docs/ARCHITECTURE.md section 6).

For every frame (``stride`` apart) of every video of a movie, in order:

1. the detector finds the faces (dlib's HOG by default) and faces smaller
   than ``min_face`` pixels are dropped (too small to recognise);
2. each face is aligned to a 112x112 crop (dlib's 5 landmarks), the input
   of both the face MXN and the oracle;
3. :class:`mxn.facerec.labeller.FaceLabeller` names it with the cheapest exit
   whose running-average database is sure, calling the oracle only when no
   exit is, and folds its features into the databases.

A *movie* is a named labelling project in SQL (``--movie``, by default the
first video's name): its face databases ``D[M_i]`` and the oracle's
strangers are rows there, so a labelled movie can be reopened and extended
with more videos, and its answers re-read without running any model. Every
``chunk_frames`` frames, the rows found, the databases as they stand and the
resume point commit in one transaction: a killed run started again resumes
at its last commit and, since Algorithm 3's state is restored bit for bit,
labels exactly what an uninterrupted run labels.

Video decoding is :mod:`mxn.media.video`'s (one decoder serves ingest and faces).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from mxn.media.video import VideoError, check_complete, iter_frames, probe
from mxn.storage.records import ORACLE_EXIT, FaceMovieRecord, FaceRow
from mxn.storage.store import Store

from .database import ExitDatabase, FaceDatabase
from .detection import CROP_SIZE, FaceDetector, aligned_crops, make_detector
from .labeller import FaceLabeller, Oracle
from .outputs import LabelledFace, person_timeline, screen_time, summarize
from .settings import FaceConfig  # its home is the light settings module; callers import it here too


@dataclass
class MovieResult:
    """What labelling a movie did: per video, its rows (all of them, old and new) and stats."""

    movie: str
    faces: list[LabelledFace] = field(default_factory=list)
    videos: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    recognition_seconds: float = 0.0  # features + databases + oracle, detection excluded
    detection_seconds: float = 0.0
    num_exits: int = 0

    def summary(self) -> dict[str, Any]:
        return {
            "movie": self.movie,
            **summarize(self.faces, self.num_exits),
            "videos": self.videos,
            "failed": self.failed,
            "seconds": self.seconds,
            "detection_seconds": self.detection_seconds,
            "recognition_seconds": self.recognition_seconds,
        }


@dataclass
class LabelledMovie(MovieResult):
    """A labelled movie's rows and stats with the database and settings that made them (``mxn faces``).

    What :func:`mxn.api.label_faces` returns: ``to_dict()`` is what ``--json`` writes.
    """

    db: str = ""
    config: FaceConfig | None = None
    gallery_people: tuple[str, ...] = ()  # who the oracle knows; anyone else is a stranger (unknown-N)

    @classmethod
    def of(cls, result: MovieResult, **extra: Any) -> LabelledMovie:
        """``result`` with the ``extra`` fields (``db``, ``config``, ``gallery_people``) set."""
        return cls(**{f.name: getattr(result, f.name) for f in fields(result)}, **extra)

    def to_dict(self) -> dict[str, Any]:
        return {
            "db": self.db,
            "config": self.config.to_dict() if self.config else None,
            **self.summary(),
            "screen_time_s": screen_time(person_timeline(self.faces)),
        }


def keep_faces(boxes: np.ndarray, min_face: int) -> np.ndarray:
    """The boxes at least ``min_face`` pixels wide and high."""
    boxes = np.asarray(boxes).reshape(-1, 4)
    big = ((boxes[:, 2] - boxes[:, 0]) >= min_face) & ((boxes[:, 3] - boxes[:, 1]) >= min_face)
    return boxes[big]


def restore_database(
    features: dict[int, tuple[list[str], np.ndarray, np.ndarray]], dims: Sequence[int]
) -> FaceDatabase:
    """The per-exit databases as SQL holds them (empty exits where it holds none)."""
    exits = []
    for i, dim in enumerate(dims):
        if i in features and len(features[i][0]):
            labels, vectors, counts = features[i]
            if vectors.shape[1] != dim:
                raise ValueError(
                    f"the movie's exit {i} holds {vectors.shape[1]}-D features; the model gives {dim}"
                )
            exits.append(ExitDatabase.from_arrays(labels, vectors, counts))
        else:
            exits.append(ExitDatabase(dim))
    return FaceDatabase(exits)


def database_arrays(database: FaceDatabase) -> dict[int, tuple[list[str], np.ndarray, np.ndarray]]:
    """Every exit's (labels, vectors, counts): what a commit stores."""
    return {i: db.to_arrays() for i, db in enumerate(database.exits)}


class MovieLabeller:
    """Labels the videos of one movie into a :class:`~mxn.storage.store.Store` (see the module docstring).

    Args:
        store: where the movie lives.
        movie: the movie's name in the store.
        face_model: the face MXN (:class:`mxn.facerec.model.FaceMXN`): ``dims``,
            ``exit_features(crop)``, ``input_size`` and ``sha``.
        oracle: names a face no exit is sure of; a
            :class:`mxn.facerec.oracle.GalleryOracle` also has its strangers
            saved and restored with the movie.
        config: the :class:`FaceConfig`.
        detector: a detector object to use instead of ``config.detector``'s default one.
    """

    def __init__(
        self,
        store: Store,
        movie: str,
        face_model: Any,
        oracle: Oracle,
        config: FaceConfig,
        detector: FaceDetector | None = None,
    ) -> None:
        if len(config.thresholds) != len(face_model.dims):
            raise ValueError(
                f"{len(config.thresholds)} thresholds for a face model with {len(face_model.dims)} exits"
            )
        self.store, self.face_model, self.oracle, self.config = store, face_model, oracle, config
        self.detector = detector or make_detector(config.detector)
        self.name, self._settings = movie, {**config.to_dict(), "oracle": type(oracle).__name__}
        # a new movie is only created with its first run: a file that fails to open leaves no empty movie
        known = any(m.name == movie for m in store.face_movies())
        self.movie: FaceMovieRecord | None = (
            store.face_movie(movie, face_model.sha, create=False) if known else None
        )
        stored = store.load_face_features(self.movie.id) if self.movie else {}
        self.database = restore_database(stored, face_model.dims)
        restore = getattr(oracle, "restore_unknowns", None)
        if restore is not None and ORACLE_EXIT in stored:
            names, vectors, _ = stored[ORACLE_EXIT]
            restore(dict(zip(names, vectors, strict=True)))
        self.labeller = FaceLabeller(
            self._features, oracle, list(config.thresholds), config.alpha, database=self.database
        )

    def _features(self, crop: np.ndarray) -> Iterator[np.ndarray]:
        return self.face_model.exit_features(crop)

    def _feature_arrays(self) -> dict[int, tuple[list[str], np.ndarray, np.ndarray]]:
        arrays = database_arrays(self.database)
        unknowns = getattr(self.oracle, "unknowns", None)
        if unknowns:
            names = list(unknowns)
            vectors = np.stack([np.asarray(unknowns[n], np.float32) for n in names])
            arrays[ORACLE_EXIT] = (names, vectors, np.ones(len(names), np.int64))
        return arrays

    def label_video(
        self,
        path: str | Path,
        force: bool = False,
        progress: bool = True,
        stop_after: int | None = None,
    ) -> dict[str, Any]:
        """Label one video of the movie and return its stats.

        A video this movie already holds is skipped unless ``force``; a run
        that was killed resumes at its last commit. A video that cannot be
        decoded raises :class:`~mxn.media.video.VideoError` and leaves no run
        and no rows, nor the movie when it holds no other run (the face
        databases keep what its frames taught them, in memory and, when the
        movie stays, in SQL). ``stop_after`` ends the run after that many
        frames as a kill would: the chunk not yet committed is lost (for
        tests of resuming).
        """
        cfg = self.config
        info = probe(path)
        video = self.store.find_video(info.content_hash) or self.store.add_video(info)
        if self.movie is None:
            self.movie = self.store.face_movie(self.name, self.face_model.sha, self._settings)
        done = [r for r in self.store.face_runs(self.movie.id, video.id) if r.status == "done"]
        if done and not force:
            return {**done[-1].stats, "video": info.name, "skipped": True}
        run = self.store.start_face_run(self.movie.id, video.id, force=force)
        # chunks hold whole strides, so a resumed run labels the same frames as an uninterrupted one
        chunk = -(-cfg.chunk_frames // cfg.stride) * cfg.stride
        start = run.next_frame
        rows: list[FaceRow] = []
        chunk_end = start + chunk
        last = start - 1
        timings = {"detect_s": 0.0, "recognise_s": 0.0}
        began = time.perf_counter()
        bar = tqdm(total=info.frame_count or None, initial=start, desc=info.name, unit="frame",
                   disable=not progress, leave=False)  # fmt: skip
        try:
            for frame in iter_frames(path, start=start, stride=cfg.stride, fps=info.fps):
                if stop_after is not None and frame.index >= start + stop_after:
                    # as if killed: the chunk not committed yet is lost
                    return {"video": info.name, "stopped_at": frame.index}
                if frame.index >= chunk_end:
                    self._commit(run.id, rows, chunk_end)
                    rows, chunk_end = [], chunk_end + chunk
                t0 = time.perf_counter()
                boxes = keep_faces(self.detector.detect(frame.image), cfg.min_face)
                crops = aligned_crops(frame.image, boxes, size=CROP_SIZE) if len(boxes) else []
                t1 = time.perf_counter()
                for box, crop in zip(boxes, crops, strict=True):
                    decision = self.labeller.label(crop)
                    box = tuple(int(v) for v in box)
                    rows.append(
                        FaceRow(
                            frame.index, frame.time, box, decision.label, decision.exit, decision.distance
                        )
                    )
                timings["detect_s"] += t1 - t0
                timings["recognise_s"] += time.perf_counter() - t1
                last = frame.index
                bar.update(last + 1 - bar.n)
            # the decoder walked every frame up to the last labelled one and the stride after it
            check_complete(info, min(last + cfg.stride, info.frame_count or last + 1))
        except VideoError:
            # a damaged file fails the same way every time: nothing of it is kept (a kill, below, is resumed)
            if self.store.discard_face_run(run.id):
                self.movie = None
            raise
        except BaseException as err:
            self.store.fail_face_run(run.id, f"interrupted: {err!r}")
            raise
        finally:
            bar.close()
        self._commit(run.id, rows, last + 1)
        stats = {"video": info.name, "frames": last + 1, "seconds": time.perf_counter() - began, **timings}
        self.store.finish_face_run(run.id, stats)
        return stats

    def _commit(self, run_id: int, rows: list[FaceRow], next_frame: int) -> None:
        self.store.commit_faces(run_id, rows, next_frame, self._feature_arrays())


def stored_faces(store: Store, movie_id: int) -> list[LabelledFace]:
    """A movie's faces as SQL holds them (done runs), ordered by video and frame."""
    names = {v.id: v.name for v in store.videos()}
    return [
        LabelledFace(
            video=names.get(r.video_id, str(r.video_id)),
            frame=r.frame,
            time=r.time,
            box=tuple(r.box),
            name=r.name,
            exit=r.exit,
            distance=r.distance,
        )
        for r in store.face_rows(movie_id)
    ]


def label_movie(
    paths: Sequence[str | Path],
    store: Store,
    face_model: Any,
    oracle: Oracle,
    config: FaceConfig,
    movie: str | None = None,
    force: bool = False,
    progress: bool = True,
    on_error: Callable[[str, Exception], None] | None = None,
) -> MovieResult:
    """Label ``paths`` in order as one movie; a bad video is reported and the others still run.

    A bad video is listed in the result's ``failed`` and passed to
    ``on_error``; it leaves nothing in ``store`` (see
    :meth:`MovieLabeller.label_video`), so a movie all of whose videos failed
    is not stored at all, and its result has no ``videos`` and no ``faces``.
    """
    if not paths:
        raise ValueError("give at least one video")
    name = movie or Path(paths[0]).stem
    began = time.perf_counter()
    labeller = MovieLabeller(store, name, face_model, oracle, config)
    result = MovieResult(movie=name, num_exits=len(face_model.dims))
    for path in paths:
        try:
            stats = labeller.label_video(path, force=force, progress=progress)
        except VideoError as err:
            result.failed.append({"video": str(path), "error": str(err)})
            if on_error is not None:
                on_error(str(path), err)
            continue
        result.videos.append(stats)
        result.detection_seconds += stats.get("detect_s", 0.0)
        result.recognition_seconds += stats.get("recognise_s", 0.0)
    result.faces = stored_faces(store, labeller.movie.id) if labeller.movie else []
    result.seconds = time.perf_counter() - began
    return result
