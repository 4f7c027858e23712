"""Tuning the query thresholds: how often may the exits decide, and at what cost in accuracy?

The samples are the index's own candidates: every cluster's representative
crop, with the query MXN's probability of the cluster's label at every exit
and the ground-truth CNN's verdict ("is it the label?"). The GT-CNN's verdict
is the reference because it is what Focus mode would have answered; a
threshold is good when the exits agree with it.

Thresholds are fitted as a cascade (each exit on the candidates the earlier
ones left), as the dissertation searched for a 99% true-positive rate, and by
default once per label on that label's candidates (a query asks about one
label, so each label keeps its own precision and recall; the thresholds fitted
on all candidates serve labels the samples do not hold):

* accept at exit ``i``: the lowest ``p`` whose accepted candidates reach the
  target precision with a margin (the one-sided Wilson bound of
  :func:`mxn.calibration.fit_threshold`). By default the precision is that of
  everything the exits accepted so far (``pooled_precision``): it is the
  answer that must reach 99%, and a late exit, which sees a few hundred
  candidates, could rarely show 99% on its own. ``pooled_precision=False``
  makes every exit show it alone, as the dissertation's per-exit search did;
* reject at exit ``i``: the highest ``p`` such that every positive rejected
  so far still leaves recall at the target, again with the Wilson margin.
  Without enough positives to show that, the exit rejects nothing.

Before the exits, the index stage (``index_stage``) may reject on the score
the ingest model stored with each candidate (:mod:`mxn.query.thresholds`): it
costs nothing at query time, not even a crop read. It gets a share
(``index_recall_share``) of the recall the target allows to lose, so the
exits keep the rest; it never accepts (the ingest exits are too cheap to be
trusted with the answer, and their accepts cost precision on look-alike
labels such as van and car).

One part of the samples fits, the other (``holdout``) measures precision,
recall and the GT-call rate the thresholds reach.

Those figures are the query stage's, against the GT-CNN's verdicts on the
candidates. A user's answer is judged against the GT-CNN on every object
(a gt-all index), and it also carries what the index lost before any
threshold runs: an object not filed under its label, a cluster member unlike
its representative. :func:`index_ceiling` measures that loss where a gt-all
index of the same videos exists: it is Focus's answer, the best any
thresholds can reach; the stage's own losses come on top of it.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from mxn.calibration import fit_threshold, wilson_lower_bound
from mxn.images import resize_batch
from mxn.modelfile import MXNModel, model_sha
from mxn.storage.crop_codec import decode_crop
from mxn.storage.store import Store
from mxn.targets import CONFIDENCE, TARGET_PRECISION, TARGET_RECALL

from .accuracy import frame_figures, truth_frames
from .settings import (
    DEFAULT_ALLOW_REJECT,
    DEFAULT_HOLDOUT,
    DEFAULT_INDEX_RECALL_SHARE,
    DEFAULT_INDEX_STAGE,
    DEFAULT_PER_LABEL,
    DEFAULT_POOLED_PRECISION,
    DEFAULT_SEED,
)
from .thresholds import QueryThresholds, index_scorer_of

#: Target precisions drawn on the trade-off curve.
CURVE_TARGETS = (0.8, 0.9, 0.95, 0.97, 0.98, 0.99, 0.995, 0.999)


class TuningError(ValueError):
    """Nothing to tune on (an empty index, or no label the models share)."""


@dataclass(frozen=True)
class TuningSamples:
    """Candidates: the label probability at every exit, and the GT-CNN's verdict."""

    cluster_ids: np.ndarray  # (N,)
    labels: np.ndarray  # (N,) the label each cluster is indexed under
    scores: np.ndarray  # (exits, N) the query MXN's probability of that label
    positive: np.ndarray  # (N,) bool: the GT-CNN's top-1 is that label
    index_scores: np.ndarray | None = None  # (N,) the index's stored score (NaN: none), or no index stage
    index_scorer: str | None = None  # who wrote index_scores (mxn.query.thresholds.index_scorer_of)

    def __post_init__(self) -> None:
        if self.index_scores is not None and self.index_scores.shape != self.positive.shape:
            raise ValueError(
                f"index_scores has shape {self.index_scores.shape}, expected {self.positive.shape}"
            )

    def __len__(self) -> int:
        return len(self.cluster_ids)

    @classmethod
    def concat(cls, parts: Sequence[TuningSamples]) -> TuningSamples:
        """The samples of several indexes as one (calibration clips of several cameras, say).

        Cluster ids keep their own index's numbering, so they may repeat.

        Index scores stay only for the parts whose scorer is the one most
        candidates share; the others' read as NaN, as :func:`collect_samples`
        treats the runs of one index.
        """
        if not parts:
            raise TuningError("no samples to join")
        if len({p.scores.shape[0] for p in parts}) > 1:
            raise TuningError("the samples come from query models with different numbers of exits")
        count: Counter[str] = Counter()
        for p in parts:
            if p.index_scorer is not None and p.index_scores is not None:
                count[p.index_scorer] += int(np.isfinite(p.index_scores).sum())
        scorer = count.most_common(1)[0][0] if count else None

        def index_scores(p: TuningSamples) -> np.ndarray:
            if p.index_scorer != scorer or p.index_scores is None:
                return np.full(len(p), np.nan)
            return p.index_scores

        return cls(
            np.concatenate([p.cluster_ids for p in parts]),
            np.concatenate([p.labels for p in parts]),
            np.concatenate([p.scores for p in parts], axis=1),
            np.concatenate([p.positive for p in parts]),
            np.concatenate([index_scores(p) for p in parts]) if scorer is not None else None,
            scorer,
        )

    def subset(self, index: np.ndarray) -> TuningSamples:
        return TuningSamples(
            self.cluster_ids[index],
            self.labels[index],
            self.scores[:, index],
            self.positive[index],
            self.index_scores[index] if self.index_scores is not None else None,
            self.index_scorer,
        )


def _names(labels: Sequence[str], most: int = 8) -> str:
    shown = ", ".join(labels[:most]) + (f", ... ({len(labels)} in all)" if len(labels) > most else "")
    return shown or "none"


def _no_labels_reason(
    indexed: Sequence[str], index_mode: str, query_labels: Sequence[str], gt_labels: Sequence[str]
) -> str:
    """Why no label can be tuned, in the user's terms: an empty index, or models that know other labels."""
    if not indexed:
        return (
            f"no clusters to tune on: the {index_mode} index is empty; ingest videos first "
            f"(mxn ingest VIDEO{' --mode focus' if index_mode == 'focus' else ''})"
        )
    missing = [name for name, known in (("query MXN", query_labels), ("ground-truth CNN", gt_labels))
               if not set(indexed) & set(known)]  # fmt: skip
    models = " and the ".join(missing) or "query MXN and the ground-truth CNN together"
    return (
        f"none of the index's labels is known to the {models}: the {index_mode} index holds "
        f"{_names(list(indexed))}; the query MXN knows {_names(list(query_labels))}; the ground-truth CNN "
        f"knows {_names(list(gt_labels))}. Give models trained on the index's labels (--qmodel, --gt), "
        "or ingest with a model of theirs"
    )


def collect_samples(
    store: Store,
    gt_model: MXNModel,
    query_model: MXNModel,
    index_mode: str = "mxn",
    batch_size: int = 64,
    progress: bool = False,
) -> TuningSamples:
    """Every candidate cluster of every label both models know, run through both models.

    The index scores are kept for the candidates of the scorer most of them
    share (an index of one ingest model and settings: all of them); the
    others' scores mean something else and read as NaN.
    """
    indexed = store.labels(mode=index_mode)
    labels = [lab for lab in indexed if lab in query_model.classes and lab in gt_model.classes]
    if not labels:
        raise TuningError(_no_labels_reason(indexed, index_mode, query_model.classes, gt_model.classes))
    q_runner, gt_runner = query_model.runner(batch_size), gt_model.runner(batch_size)
    last = gt_model.spec.num_exits - 1
    scorer_of_run = {r.id: index_scorer_of(r) for r in store.runs()}
    ids, names, scores, positive, index_scores, scorers = [], [], [], [], [], []
    for label in tqdm(labels, desc="tuning samples", unit="label", disable=not progress):
        clusters = store.clusters(label, mode=index_mode)
        crops = [decode_crop(c.representative_crop) for c in clusters]
        q = query_model.classes.index(label)
        outputs = q_runner.all_exits(resize_batch(crops, query_model.spec.input_size)).outputs
        truth = gt_runner.all_exits(resize_batch(crops, gt_model.spec.input_size), exits=[last]).output(last)
        ids += [c.id for c in clusters]
        names += [label] * len(clusters)
        scores.append(np.stack([o[:, q] for o in outputs]))
        positive.append(truth.argmax(axis=1) == gt_model.classes.index(label))
        index_scores += [
            np.nan if c.representative_score is None else c.representative_score for c in clusters
        ]
        scorers += [scorer_of_run.get(c.run_id) for c in clusters]
    found = Counter(s for s, score in zip(scorers, index_scores, strict=True) if s and np.isfinite(score))
    scorer = found.most_common(1)[0][0] if found else None
    index = np.array([v if s == scorer else np.nan for s, v in zip(scorers, index_scores, strict=True)])
    return TuningSamples(
        np.array(ids, np.int64),
        np.array(names),
        np.concatenate(scores, axis=1),
        np.concatenate(positive),
        index.astype(np.float64),
        scorer,
    )


def index_ceiling(store: Store, samples: TuningSamples, index_mode: str = "mxn") -> dict[str, dict[str, Any]]:
    """Per label, Focus's answer over the index against its gt-all reference: what no thresholds beat.

    Focus accepts a candidate when the GT-CNN calls its representative the
    label (``samples.positive``, collected from ``store``) and answers with
    the frames of the cluster's members. Judged like a query
    (:mod:`mxn.query.accuracy`: frames, against the gt-all index) on the videos
    that have both an ``index_mode`` index and a gt-all one; empty when none has.
    A label the gt-all index knows but nothing was indexed under is there too,
    with the recall of an empty answer.
    """
    runs = store.runs(status="done")
    indexed = {r.video_id for r in runs if r.mode == index_mode}
    judged = indexed & {r.video_id for r in runs if r.mode == "gt-all"}
    if not judged:
        return {}
    members = store.members(samples.cluster_ids[samples.positive])
    out = {}
    for label in sorted({*np.unique(samples.labels).tolist(), *store.labels(mode="gt-all")}):
        accepted = samples.cluster_ids[(samples.labels == label) & samples.positive]
        answer = {
            (o.video_id, o.frame) for c in accepted for o in members.get(int(c), []) if o.video_id in judged
        }
        out[label] = frame_figures(answer, truth_frames(store, label, judged, None, None))
    return out


def split(positive: np.ndarray, holdout: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices to fit on and to measure on, stratified so both parts hold positives and negatives."""
    if not 0 < holdout < 1:
        raise ValueError(f"holdout must lie in (0, 1), got {holdout}")
    rng = np.random.default_rng(seed)
    fit_part, held = [], []
    for value in (True, False):
        index = rng.permutation(np.flatnonzero(positive == value))
        cut = round(len(index) * (1 - holdout))
        fit_part.append(index[:cut])
        held.append(index[cut:])
    return np.sort(np.concatenate(fit_part)), np.sort(np.concatenate(held))


def fit_reject(
    scores: np.ndarray,
    positive: np.ndarray,
    lost: int,
    positives: int,
    target_recall: float,
    confidence: float,
) -> float | None:
    """The highest ``p`` whose rejections (``score <= p``) keep recall at target with the Wilson margin.

    ``lost`` positives were rejected by earlier exits; ``positives`` is the
    total. ``None`` when not even one rejection can be afforded.
    """
    if positives == 0 or scores.size == 0:
        return None
    order = np.argsort(scores, kind="stable")
    s, pos = scores[order], positive[order]
    lost_at = lost + np.cumsum(pos)
    valid = np.append(s[:-1] < s[1:], True)  # cut only after the last of equal scores
    bound = wilson_lower_bound(positives - lost_at, np.full(s.shape, positives), confidence)
    ok = np.flatnonzero(valid & (bound >= target_recall))  # a prefix: the bound falls as p rises
    return float(s[ok[-1]]) if ok.size else None


def fit_thresholds(
    samples: TuningSamples,
    target_precision: float = TARGET_PRECISION,
    target_recall: float = TARGET_RECALL,
    confidence: float = CONFIDENCE,
    allow_reject: bool = DEFAULT_ALLOW_REJECT,
    pooled_precision: bool = DEFAULT_POOLED_PRECISION,
    index_stage: bool = DEFAULT_INDEX_STAGE,
    index_recall_share: float = DEFAULT_INDEX_RECALL_SHARE,
) -> QueryThresholds:
    """Accept and reject thresholds per exit, fitted as a cascade (see the module docstring).

    With ``index_stage`` (and ``allow_reject``) and index scores in
    ``samples``, the index stage first rejects what it can while losing at
    most ``index_recall_share`` of the recall the target allows to lose.
    """
    if not 0 < target_precision <= 1 or not 0 < target_recall <= 1:
        raise ValueError("target precision and recall must lie in (0, 1]")
    if not 0 <= index_recall_share <= 1:
        raise ValueError(f"index_recall_share must lie in [0, 1], got {index_recall_share}")
    scores, positive = samples.scores, samples.positive
    remaining = np.ones(len(samples), bool)
    lost, positives = 0, int(positive.sum())
    index_reject = None
    if index_stage and allow_reject and samples.index_scores is not None and index_recall_share > 0:
        index_reject, rejected = _fit_index_stage(samples.index_scores, positive, target_recall,
                                                  index_recall_share, confidence)  # fmt: skip
        lost += int((rejected & positive).sum())
        remaining &= ~rejected
    right_so_far = accepted_so_far = 0
    accept: list[float | None] = []
    reject: list[float | None] = []
    for s in scores:
        a = fit_threshold(s[remaining], positive[remaining], target_precision, confidence,
                          already_right=right_so_far, already_accepted=accepted_so_far)  # fmt: skip
        if a is not None and a >= 1.0:
            a = None  # only exactly-1.0 softmaxes would pass: no evidence
        accepted = remaining & (s >= a) if a is not None else np.zeros_like(remaining)
        if pooled_precision:
            right_so_far += int((accepted & positive).sum())
            accepted_so_far += int(accepted.sum())
        pool = remaining & ~accepted
        r = None
        if allow_reject:
            r = fit_reject(s[pool], positive[pool], lost, positives, target_recall, confidence)
            if r is not None and (r <= 0.0 or (a is not None and r >= a)):
                r = None
        rejected = pool & (s <= r) if r is not None else np.zeros_like(remaining)
        lost += int((rejected & positive).sum())
        remaining &= ~(accepted | rejected)
        accept.append(a)
        reject.append(r)
    return QueryThresholds(tuple(accept), tuple(reject), target_precision=target_precision,
                           target_recall=target_recall, index_reject=index_reject)  # fmt: skip


def _fit_index_stage(
    index_scores: np.ndarray, positive: np.ndarray, target_recall: float, share: float, confidence: float
) -> tuple[float | None, np.ndarray]:
    """The index stage's reject threshold and what it rejects, within its share of the recall loss."""
    scored = np.isfinite(index_scores)
    stage_recall = 1 - (1 - target_recall) * share
    r = fit_reject(index_scores[scored], positive[scored], 0, int(positive.sum()), stage_recall, confidence)
    if r is None or r <= 0.0:
        return None, np.zeros_like(positive)
    return r, index_scores <= r  # NaN (no score) compares False: never rejected


def fit_per_label(
    samples: TuningSamples,
    target_precision: float = TARGET_PRECISION,
    target_recall: float = TARGET_RECALL,
    confidence: float = CONFIDENCE,
    allow_reject: bool = DEFAULT_ALLOW_REJECT,
    pooled_precision: bool = DEFAULT_POOLED_PRECISION,
    index_stage: bool = DEFAULT_INDEX_STAGE,
    index_recall_share: float = DEFAULT_INDEX_RECALL_SHARE,
) -> QueryThresholds:
    """Shared thresholds fitted on every candidate, and each label's own fitted on its candidates."""

    fit = partial(fit_thresholds, target_precision=target_precision, target_recall=target_recall,
                  confidence=confidence, allow_reject=allow_reject, pooled_precision=pooled_precision,
                  index_stage=index_stage, index_recall_share=index_recall_share)  # fmt: skip
    shared = fit(samples)
    own = {}
    for label in np.unique(samples.labels):
        fitted = fit(samples.subset(np.flatnonzero(samples.labels == label)))
        own[str(label)] = QueryThresholds(fitted.accept, fitted.reject, index_reject=fitted.index_reject)
    return QueryThresholds(shared.accept, shared.reject, target_precision=target_precision,
                           target_recall=target_recall, per_label=own,
                           index_reject=shared.index_reject)  # fmt: skip


def evaluate(thresholds: QueryThresholds, samples: TuningSamples) -> dict[str, Any]:
    """What the thresholds reach on ``samples``: the exits decide what they can, the GT-CNN the rest.

    Each candidate meets the thresholds of the label it is a candidate for
    (:meth:`QueryThresholds.for_label`). Precision and recall are of the final
    verdicts against the GT-CNN's, so Focus mode (no exit decides) scores 1.0
    and 1.0 at a GT-call rate of 1. ``per_label`` holds the same figures per label.
    The index stage rejects first where the samples hold index scores of
    the scorer the thresholds name (``decided_by_index``).
    """
    n, exits = len(samples), samples.scores.shape[0]
    remaining = np.ones(n, bool)
    accepted = np.zeros(n, bool)
    decided = np.zeros(exits, np.int64)
    by_index = 0
    index_scores = samples.index_scores
    if index_scores is None or thresholds.index_scorer not in (None, samples.index_scorer):
        index_scores = np.full(n, np.nan)
    for label in np.unique(samples.labels):
        t, group = thresholds.for_label(str(label)), samples.labels == label
        no = remaining & group & t.index_rejects(index_scores)
        by_index += int(no.sum())
        remaining &= ~no
        for i, s in enumerate(samples.scores):
            yes, no = t.outcomes(i, s)
            yes, no = remaining & group & yes, remaining & group & no & ~yes
            accepted |= yes
            decided[i] += int(yes.sum() + no.sum())
            remaining &= ~(yes | no)
    accepted |= remaining & samples.positive  # the GT-CNN's verdict on the undecided
    figures = _figures(accepted, remaining, samples.positive) | {
        "decided_per_exit": decided.tolist(),
        "decided_by_index": by_index,
    }
    figures["per_label"] = {
        str(label): _figures(accepted[g], remaining[g], samples.positive[g])
        for label in np.unique(samples.labels)
        for g in [samples.labels == label]
    }
    return figures


def _figures(accepted: np.ndarray, undecided: np.ndarray, positive: np.ndarray) -> dict[str, Any]:
    """Precision, recall and GT-call rate of final verdicts against the GT-CNN's."""
    positives = int(positive.sum())
    correct = int((accepted & positive).sum())
    return {
        "candidates": len(positive),
        "positives": positives,
        "precision": correct / int(accepted.sum()) if accepted.any() else 1.0,
        "recall": correct / positives if positives else 1.0,
        "gt_call_rate": float(undecided.mean()) if len(positive) else 0.0,
        "false_accepts": int((accepted & ~positive).sum()),
        "false_rejects": positives - correct,
    }


@dataclass(frozen=True)
class TuningResult:
    thresholds: QueryThresholds  # fitted on the fit part, with the held-out evaluation inside
    fit: dict[str, Any]  # what they reach on the data they were fitted on
    held_out: dict[str, Any]
    curve: list[dict[str, Any]]  # per target precision: thresholds and held-out figures
    index_ceiling: dict[str, dict[str, Any]] = field(default_factory=dict)  # per label (index_ceiling)

    def ceiling_misses(self) -> dict[str, dict[str, Any]]:
        """The labels whose index keeps even Focus's answer below the targets."""
        t = self.thresholds
        return {
            label: c
            for label, c in self.index_ceiling.items()
            if c["precision"] < t.target_precision or c["recall"] < t.target_recall
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "thresholds": self.thresholds.to_dict(),
            "fit": self.fit,
            "held_out": self.held_out,
            "curve": self.curve,
            "index_ceiling": self.index_ceiling,
        }


def tune(
    samples: TuningSamples,
    query_model: MXNModel | None = None,
    target_precision: float = TARGET_PRECISION,
    target_recall: float = TARGET_RECALL,
    confidence: float = CONFIDENCE,
    holdout: float = DEFAULT_HOLDOUT,
    seed: int = DEFAULT_SEED,
    allow_reject: bool = DEFAULT_ALLOW_REJECT,
    curve_targets: tuple[float, ...] = CURVE_TARGETS,
    per_label: bool = DEFAULT_PER_LABEL,
    pooled_precision: bool = DEFAULT_POOLED_PRECISION,
    index_stage: bool = DEFAULT_INDEX_STAGE,
    index_recall_share: float = DEFAULT_INDEX_RECALL_SHARE,
) -> TuningResult:
    """Fit on one part of ``samples``, measure on the other, and trace the trade-off curve.

    ``per_label`` fits every label's thresholds on its own candidates
    (:func:`fit_per_label`); otherwise one set serves every label.
    ``pooled_precision``, ``index_stage``, ``index_recall_share``: see the
    module docstring and :func:`fit_thresholds`.
    """
    if len(samples) < 4:
        raise TuningError(f"{len(samples)} candidate clusters are too few to tune on; ingest more video")
    fit_index, held_index = split(samples.positive, holdout, seed)
    fit_part, held = samples.subset(fit_index), samples.subset(held_index)

    def fitted(precision: float) -> QueryThresholds:
        fit = fit_per_label if per_label else fit_thresholds
        return fit(fit_part, precision, target_recall, confidence, allow_reject, pooled_precision,
                   index_stage, index_recall_share)  # fmt: skip

    chosen = _scored(fitted(target_precision), samples)
    held_out = evaluate(chosen, held)
    curve = []
    for target in sorted({*curve_targets, target_precision}):
        t = fitted(target)
        curve.append({"target_precision": target, **t.decisions()} | evaluate(_scored(t, held), held))
    thresholds = QueryThresholds(
        chosen.accept,
        chosen.reject,
        per_label=chosen.per_label,
        index_reject=chosen.index_reject,
        index_scorer=chosen.index_scorer,
        model_sha=model_sha(query_model) if query_model is not None else None,
        target_precision=target_precision,
        target_recall=target_recall,
        evaluation={
            "held_out": held_out,
            "holdout": holdout,
            "seed": seed,
            "confidence": confidence,
            "pooled_precision": pooled_precision,
            "index_recall_share": index_recall_share if chosen.index_scorer is not None else None,
            "samples": len(samples),
        },
    )
    return TuningResult(thresholds, evaluate(chosen, fit_part), held_out, curve)


def _scored(thresholds: QueryThresholds, samples: TuningSamples) -> QueryThresholds:
    """``thresholds`` bound to the scorer of ``samples``' index scores, where any of them rejects."""
    rejects = thresholds.index_reject is not None or any(
        t.index_reject is not None for t in thresholds.per_label.values()
    )
    return replace(thresholds, index_scorer=samples.index_scorer) if rejects else thresholds


def plot_tradeoff(result: TuningResult, path: str | os.PathLike) -> Path:
    """The trade-off curve as a PNG: GT-call rate against held-out precision and recall."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    curve = result.curve
    targets = [c["target_precision"] for c in curve]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    ax.plot(targets, [c["gt_call_rate"] for c in curve], "o-", label="GT-CNN call rate")
    ax.plot(targets, [c["precision"] for c in curve], "s-", label="precision (held out)")
    ax.plot(targets, [c["recall"] for c in curve], "^-", label="recall (held out)")
    chosen = result.thresholds.target_precision
    ax.axvline(chosen, color="grey", linestyle=":", label=f"chosen target {chosen}")
    ax.set_xlabel("target precision of the exits' decisions")
    ax.set_ylabel("rate")
    ax.set_ylim(0, 1.02)
    ax.set_title(
        f"Query thresholds: {len(curve)} targets, {result.held_out['candidates']} held-out candidates"
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
