"""Plain records that cross the storage boundary.

Ingest hands these to :class:`mxn.storage.store.Store` and queries get them back,
so no caller touches SQLAlchemy rows. Vectors are float32 NumPy arrays here
and float32 bytes in SQL.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from functools import cache
from typing import Any, TypeVar

import numpy as np

from mxn.media.video import VideoInfo

#: What a run can be. ``running`` runs are invisible to queries; ``done`` runs
#: are the index; ``failed`` runs keep their error for the user to read.
RUN_STATUSES = ("running", "done", "failed")


@dataclass(frozen=True)
class VideoRecord(VideoInfo):
    id: int = 0


@dataclass(frozen=True)
class RunRecord:
    id: int
    video_id: int
    mode: str  # "mxn" | "focus" | "gt-all"
    config: dict[str, Any]  # everything that changes the index (exits, top-k, thresholds...)
    model_sha: str  # sha256 of the model's weights
    status: str  # one of RUN_STATUSES
    next_frame: int  # frames below this are committed; a resumed run starts here
    stats: dict[str, Any]
    error: str | None = None


#: What a range of a run can be (``pending`` until some process claims it).
RANGE_STATUSES = ("pending", "running", "done")

#: A range's objects and clusters are numbered from ``index << RANGE_SEQ_BITS``.
RANGE_SEQ_BITS = 32


def range_seq_base(index: int) -> int:
    """The first object (and cluster) seq of range ``index``."""
    return int(index) << RANGE_SEQ_BITS


def seq_range_index(seq: int) -> int:
    """The range an object or cluster seq belongs to."""
    return int(seq) >> RANGE_SEQ_BITS


@dataclass(frozen=True)
class RangeRecord:
    """One range of frames of a run: ``[start_frame, end_frame)`` (``end_frame`` None: to the end)."""

    run_id: int
    index: int
    start_frame: int
    end_frame: int | None
    status: str  # one of RANGE_STATUSES
    next_frame: int  # frames of the range below this are committed
    stats: dict[str, Any]
    owner: str | None = None
    attempts: int = 0
    error: str | None = None


@dataclass
class ObjectRecord:
    """One detected object. ``seq`` numbers the run's objects from 0 (client-side key)."""

    seq: int
    frame: int
    time: float
    box: tuple[int, int, int, int]  # x1, y1, x2, y2 in frame pixels
    labels: dict[str, float]  # the labels it is indexed under -> score
    feature: np.ndarray | None = None  # the clustering exit's feature vector


@dataclass
class ClusterState:
    """A cluster as ingest holds it; ``seq`` numbers the run's clusters from 0.

    ``new_members`` are object seqs that joined since the last commit; the
    store appends them and clears the list.
    """

    seq: int
    label: str
    centroid: np.ndarray
    size: int
    representative_seq: int
    representative_crop: bytes  # mxn.storage.crop_codec.encode_crop (LZ4; PNG in older indexes)
    representative_distance: float
    active: bool = True
    first_time: float = 0.0
    last_time: float = 0.0
    new_members: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class ClusterMerge:
    """Clusters of later ranges folded into one of an earlier range when a run finishes.

    ``into`` is the surviving cluster with its merged centroid, size and times;
    the clusters ``absorbed`` (seqs) hand it their members and are deleted.
    """

    into: ClusterState
    absorbed: tuple[int, ...]


@dataclass(frozen=True)
class ClusterRecord:
    """A cluster of a finished run, as queries see it."""

    id: int
    video_id: int
    run_id: int
    label: str
    centroid: np.ndarray
    size: int
    representative_object_id: int
    representative_crop: bytes
    first_time: float
    last_time: float
    #: the score the ingest model gave the representative for ``label`` when it indexed it
    #: (``object_labels.score``); ``None`` where the index holds none
    representative_score: float | None = None


@dataclass(frozen=True)
class StoredObject:
    """A detected object of a finished run, as queries see it."""

    id: int
    video_id: int
    run_id: int
    frame: int
    time: float
    box: tuple[int, int, int, int]
    labels: dict[str, float]


#: The ``exit`` of a verdict the index's own score decided, before any exit of the query MXN ran.
INDEX_STAGE = -1


@dataclass(frozen=True)
class Verdict:
    """A query's decision on one cluster (see :class:`mxn.storage.schema.QueryVerdict`)."""

    cluster_id: int
    outcome: str  # "accept" | "reject" | "undecided"
    exit: int | None  # the MXN exit that decided (INDEX_STAGE: the index's score); None: GT-CNN, undecided
    score: float  # the decider's probability of the label


# -- face labelling --------------------------------------------------------------------------------------

#: The ``exit`` under which a movie's features hold the oracle's unknown-people embeddings.
ORACLE_EXIT = -1

#: A face database as the store moves it: exit -> (labels in first-seen order,
#: vectors (n, d) float32, counts (n,) int64). See ``mxn.facerec.database.ExitDatabase.to_arrays``.
FaceFeatures = dict[int, tuple[list[str], np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class FaceMovieRecord:
    """A face-labelling project (see :class:`mxn.storage.schema.FaceMovie`)."""

    id: int
    name: str
    model_sha: str  # sha256 of the face model's weights
    config: dict[str, Any]
    stats: dict[str, Any]


@dataclass(frozen=True)
class FaceRunRecord:
    """One labelling pass of one video for one movie."""

    id: int
    movie_id: int
    video_id: int
    status: str  # one of RUN_STATUSES
    next_frame: int  # frames below this are committed; a resumed run starts here
    stats: dict[str, Any]
    error: str | None = None


@dataclass(frozen=True)
class FaceRow:
    """A labelled face as labelling hands it to the store (which numbers it within its run)."""

    frame: int
    time: float
    box: tuple[int, int, int, int]  # x1, y1, x2, y2 in frame pixels
    name: str
    exit: int | None = None  # the MXN exit that named it; None when the oracle decided
    distance: float | None = None  # that exit's distance to the name's average
    oracle_name: str | None = None  # what the oracle said, when it was asked


@dataclass(frozen=True)
class FaceRowRecord:
    """A stored labelled face."""

    id: int
    run_id: int
    video_id: int
    seq: int
    frame: int
    time: float
    box: tuple[int, int, int, int]
    name: str
    exit: int | None
    distance: float | None
    oracle_name: str | None


# -- rows -> records -------------------------------------------------------------------------------------

R = TypeVar("R")


def from_row(cls: type[R], row: Any, **overrides: Any) -> R:
    """The record ``cls`` from a database row: each dataclass field from the column of its name.

    ``overrides`` give the fields that are not a column as it is (a box from
    four columns, a vector from its bytes). A field the row has no column
    for keeps its default; a field with no default is then a TypeError.
    """
    columns = row._mapping
    names = _init_fields(cls)
    return cls(**{n: columns[n] for n in names if n not in overrides and n in columns}, **overrides)


@cache
def _init_fields(cls: type) -> tuple[str, ...]:
    """The fields ``cls`` takes in its constructor: read once per record class, not once per row."""
    return tuple(f.name for f in fields(cls) if f.init)
