"""The query verdict cache: what a CNN decided about a cluster for a label, so a repeated query runs none.

Verdicts hang off clusters, so they live and die with their run (see
:func:`mxn.storage.runs.delete_runs`); ``model`` names who decided and with
what thresholds (see :class:`mxn.storage.schema.QueryVerdict`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import delete, insert, select

from .database import Database
from .records import Verdict, from_row
from .sql import VERDICTS, batches, now


class VerdictCache(Database):
    """Cached query verdicts, read and replaced in batches of clusters."""

    def verdicts(self, cluster_ids: Iterable[int], label: str, model: str) -> dict[int, Verdict]:
        """The cached verdicts of ``model`` on these clusters for ``label`` (cluster id -> verdict)."""
        out: dict[int, Verdict] = {}
        with self._begin("reading cached verdicts") as conn:
            for batch in batches(sorted({int(i) for i in cluster_ids})):
                stmt = select(VERDICTS).where(
                    VERDICTS.c.cluster_id.in_(batch), VERDICTS.c.label == label, VERDICTS.c.model == model
                )
                for r in conn.execute(stmt):
                    out[r.cluster_id] = from_row(Verdict, r)
        return out

    def save_verdicts(self, label: str, model: str, verdicts: Sequence[Verdict]) -> None:
        """Cache verdicts (replacing any of the same cluster, label and model) in one transaction."""
        if not verdicts:
            return
        created = now()
        rows = [
            {"cluster_id": v.cluster_id, "label": label, "model": model, "outcome": v.outcome,
             "exit": v.exit, "score": float(v.score), "created_at": created}
            for v in verdicts
        ]  # fmt: skip
        with self._begin("caching verdicts") as conn:
            for batch in batches([v.cluster_id for v in verdicts]):
                conn.execute(
                    delete(VERDICTS).where(
                        VERDICTS.c.cluster_id.in_(batch), VERDICTS.c.label == label, VERDICTS.c.model == model
                    )
                )
            conn.execute(insert(VERDICTS), rows)
