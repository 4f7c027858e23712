"""Storage: the SQL system of record (SQLite or PostgreSQL) and the FAISS
indexes derived from it (docs/ARCHITECTURE.md section 4.6). Imports no other mxn stage."""

from .records import (
    ClusterMerge,
    ClusterRecord,
    ClusterState,
    ObjectRecord,
    RangeRecord,
    RunRecord,
    StoredObject,
    VideoInfo,
    VideoRecord,
)
from .store import DEFAULT_URL, Store, StoreError, database_url, default_url
from .vectors import ClusterVectors

__all__ = [
    "DEFAULT_URL",
    "ClusterMerge",
    "ClusterRecord",
    "ClusterState",
    "ClusterVectors",
    "ObjectRecord",
    "RangeRecord",
    "RunRecord",
    "Store",
    "StoreError",
    "StoredObject",
    "VideoInfo",
    "VideoRecord",
    "database_url",
    "default_url",
]
