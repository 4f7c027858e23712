"""The face databases of Algorithm 3: one running-average feature per person, per exit.

``D[M_i][l]`` is exit ``i``'s picture of person ``l``: the first feature seen
for them, then a running average ``(1 - alpha) * D + alpha * f`` of every
feature that exit computed for a face labelled ``l``. A small ``alpha``
(1/15 by default) remembers long and forgets slowly, so one odd frame does
not move the picture much; a large one follows changes in lighting and pose
faster (the dissertation's Fig. 5.6 trades hit rate for accuracy with it).

Each exit's database answers one question: which person's average is
nearest to this feature, and how far is it (Euclidean distance)? A FAISS
flat index per exit answers it; the arrays are the truth and the index is
rebuilt from them (a cast holds tens or hundreds of people, not millions).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import faiss
import numpy as np

from mxn.storage.vectors import single_thread_faiss


class ExitDatabase:
    """Running-average features per label for one exit, with nearest-label search."""

    def __init__(self, dim: int) -> None:
        if dim < 1:
            raise ValueError(f"feature size must be >= 1, got {dim}")
        self.dim = dim
        self.labels: list[str] = []
        self._rows: dict[str, int] = {}
        self._vectors = np.zeros((0, dim), np.float32)
        self._counts: list[int] = []
        self._index = faiss.IndexIDMap2(faiss.IndexFlatL2(dim))

    def __len__(self) -> int:
        return len(self.labels)

    def __contains__(self, label: str) -> bool:
        return label in self._rows

    def _check(self, feature: np.ndarray) -> np.ndarray:
        feature = np.asarray(feature, np.float32).reshape(-1)
        if feature.shape != (self.dim,):
            raise ValueError(f"expected a feature of size {self.dim}, got shape {np.shape(feature)}")
        return feature

    def vector(self, label: str) -> np.ndarray:
        """The current average of ``label`` (a copy)."""
        return self._vectors[self._rows[label]].copy()

    def count(self, label: str) -> int:
        """How many features went into ``label``'s average."""
        return self._counts[self._rows[label]]

    def nearest(self, feature: np.ndarray) -> tuple[str | None, float]:
        """The nearest label and its Euclidean distance (``None, inf`` while the database is empty)."""
        feature = self._check(feature)
        if not self.labels:
            return None, float("inf")
        with single_thread_faiss():
            dist, ids = self._index.search(feature[None, :], 1)
        return self.labels[int(ids[0, 0])], float(np.sqrt(max(dist[0, 0], 0.0)))

    def update(self, label: str, feature: np.ndarray, alpha: float) -> None:
        """Fold ``feature`` into ``label``'s average; a new label starts at the feature itself."""
        if not 0 < alpha <= 1:
            raise ValueError(f"alpha must lie in (0, 1], got {alpha}")
        feature = self._check(feature)
        row = self._rows.get(label)
        if row is None:
            row = len(self.labels)
            self._rows[label] = row
            self.labels.append(label)
            self._counts.append(1)
            self._vectors = np.vstack([self._vectors, feature[None, :]])
        else:
            self._vectors[row] = (1 - alpha) * self._vectors[row] + alpha * feature
            self._counts[row] += 1
            self._index.remove_ids(np.array([row], np.int64))
        self._index.add_with_ids(self._vectors[row][None, :], np.array([row], np.int64))

    def to_arrays(self) -> tuple[list[str], np.ndarray, np.ndarray]:
        """(labels, vectors, counts): everything needed to rebuild the database exactly."""
        return list(self.labels), self._vectors.copy(), np.array(self._counts, np.int64)

    @classmethod
    def from_arrays(cls, labels: Sequence[str], vectors: np.ndarray, counts: Sequence[int]) -> ExitDatabase:
        vectors = np.asarray(vectors, np.float32)
        if vectors.ndim != 2 or len(vectors) != len(labels) or len(counts) != len(labels):
            raise ValueError("labels, vectors and counts must describe the same rows")
        if len(set(labels)) != len(labels):
            raise ValueError("labels must be unique")
        db = cls(vectors.shape[1])
        db.labels = list(labels)
        db._rows = {label: k for k, label in enumerate(labels)}
        db._vectors = vectors.copy()
        db._counts = [int(c) for c in counts]
        if len(labels):
            db._index.add_with_ids(db._vectors, np.arange(len(labels), dtype=np.int64))
        return db


@dataclass
class FaceDatabase:
    """``D[M_1] .. D[M_n]``: one :class:`ExitDatabase` per exit."""

    exits: list[ExitDatabase]

    @classmethod
    def empty(cls, dims: Sequence[int]) -> FaceDatabase:
        """One empty database per exit, with that exit's feature size."""
        if not dims:
            raise ValueError("a face database needs at least one exit")
        return cls([ExitDatabase(d) for d in dims])

    @property
    def num_exits(self) -> int:
        return len(self.exits)

    @property
    def labels(self) -> list[str]:
        """Every label any exit knows, in the order they were first seen."""
        seen: dict[str, None] = {}
        for db in self.exits:
            seen.update(dict.fromkeys(db.labels))
        return list(seen)
