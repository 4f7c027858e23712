"""HTML reports: one self-contained file per run of a job (ingest, a label query, a labelled movie).

Layering (docs/ARCHITECTURE.md section 2): reports read what the jobs return and what
the store holds; they may import ``storage``, ``ingest``, ``query``,
``facerec`` and ``mxn``, and nothing imports them but the command line, the
demo and API callers.
"""

from .faces import write_faces_report
from .ingest import write_ingest_report
from .query import write_query_report

__all__ = ["write_faces_report", "write_ingest_report", "write_query_report"]
