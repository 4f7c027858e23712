"""What an ingest run does, in one validated object.

Everything that changes the index lives here, and :meth:`IngestConfig.index_key`
is what a resumed run must match: a killed run continues only if it was
started with the same settings and model; otherwise it is discarded and
restarted, so an index never mixes two configurations.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

MODES = ("mxn", "focus", "gt-all")

#: What ``mxn crops`` cuts from an index by default (:func:`mxn.ingest.training_set.export_training_set`):
#: every object, whole blocks of this many seconds of video to one split, blocks shuffled with this seed.
EXPORT_EVERY, EXPORT_BLOCK_SECONDS, EXPORT_SEED = 1, 10.0, 0


class ConfigError(ValueError):
    """Settings that cannot work together (for example an exit the model does not have)."""


@dataclass
class ExtractorConfig:
    """Parameters of :class:`~mxn.ingest.extraction.ObjectExtractor`: each changes which objects are found.

    Kept here, with the other settings of a run, rather than beside the
    extractor: the extractor needs OpenCV, and the command line and the
    Python API read these defaults when they start.

    Args:
        history: frames MOG2 remembers.
        var_threshold: MOG2's squared Mahalanobis distance for "foreground".
        warmup: frames fed to the background model before any object is reported.
        min_area: smallest blob, in pixels of the (possibly downscaled) mask.
        open_px, close_px: sizes of the morphological opening (drops speckle)
            and closing (fills holes) kernels.
        scale: the background model runs on frames scaled by this factor
            (0.5 quarters its cost); boxes are returned in full-frame pixels.
        min_side: boxes narrower or shorter than this (full-frame pixels) are dropped.
        shadows, shadow_threshold: MOG2's shadow detection; pixels darker than
            the background by a factor in [shadow_threshold, 1] are shadows
            and dropped. 0.8 rather than OpenCV's 0.5 keeps dark vehicles.
    """

    history: int = 300
    var_threshold: float = 12.0
    warmup: int = 45
    min_area: int = 60
    open_px: int = 3
    close_px: int = 9
    scale: float = 0.5
    min_side: int = 8
    shadows: bool = True
    shadow_threshold: float = 0.8

    def __post_init__(self) -> None:
        if self.history < 1 or self.warmup < 0 or self.min_area < 1:
            raise ValueError("history and min_area must be >= 1 and warmup >= 0")
        if not 0.05 <= self.scale <= 1.0:
            raise ValueError(f"scale must lie in [0.05, 1], got {self.scale}")


@dataclass(frozen=True)
class IngestConfig:
    """Settings of an ingest run.

    Args:
        mode: ``"mxn"`` (the union of the top-``topk`` labels of every exit in
            ``exits``), ``"focus"`` (one exit, top-``topk``: Focus's
            baseline) or ``"gt-all"`` (the ground-truth CNN's top-1 label on
            every object: the reference queries are judged against).
        exits: exit indices whose labels are aggregated (``None``: the
            mode's default; mxn: every exit, focus: the first, gt-all: the last).
        topk: labels per exit (k' for mxn, K for focus; gt-all uses 1).
        cluster_exit: the exit whose pooled features are clustered (``None``:
            the deepest of ``exits``, which is computed anyway).
        cluster_threshold: squared L2 distance between unit feature vectors
            below which an object joins a cluster. Queries judge a whole
            cluster by its representative, so purity bounds their precision
            and recall: on 20 s downtown + highway clips, 0.1 gave 1,377
            clusters for 11,203 (object, label) pairs with 90% of members
            sharing their representative's ground-truth label; 0.3 gave 245
            clusters at 81%, 0.02 gave 4,144 at 98%.
        max_clusters: open clusters per label (Focus used 100).
        stride: process every ``stride``-th frame.
        chunk_frames: frames per committed chunk; a killed run resumes at
            the last chunk boundary. Each chunk warms its own background
            model on the frames before it, so resumed and uninterrupted
            runs find the same objects. Part of the index, like
            ``range_frames``: the background model starts afresh at every
            chunk boundary, so another value finds slightly other objects
            (vtest.avi: 4,001 objects in 697 clusters at 900, 3,951 in 814
            at 100); a killed run resumes only with the value it started
            with. Rounded up to a multiple of ``stride``.
        range_frames: frames per range, the unit of parallel work: a long video
            is split into ranges that run in any order, in any process (Dask
            workers), each clustering on its own; the ranges' clusters are
            merged when the run finishes (:mod:`mxn.ingest.merging`). Part of the
            index (it shapes the clusters), never of how many workers run.
            Rounded up to a multiple of ``chunk_frames``.
        skip_static: skip frames in which no block changed (DeepMon's test).
        batch_size: crops per CNN batch.
        crop_expand: context added around each box before the square crop.
        crop_size: side of the square crop ingest cuts around each object and
            keeps as a cluster's representative: what a query's ground-truth
            CNN sees (the bundled one takes 128 px). The model being run gets
            it resized to its own input; a model with a larger input gets
            crops of its own size (:meth:`crop_side`).
        extractor: background-subtraction settings.
    """

    mode: str = "mxn"
    exits: tuple[int, ...] | None = None
    topk: int = 2
    cluster_exit: int | None = None
    cluster_threshold: float = 0.1
    max_clusters: int = 100
    stride: int = 1
    chunk_frames: int = 900
    range_frames: int = 9000
    skip_static: bool = False
    batch_size: int = 64
    crop_expand: float = 0.1
    crop_size: int = 128
    extractor: ExtractorConfig = field(default_factory=ExtractorConfig)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"unknown mode {self.mode!r}; choose one of {', '.join(MODES)}")
        if self.topk < 1:
            raise ConfigError(f"topk must be >= 1, got {self.topk}")
        if self.stride < 1:
            raise ConfigError(f"stride must be >= 1, got {self.stride}")
        if self.chunk_frames < 1:
            raise ConfigError(f"chunk_frames must be >= 1, got {self.chunk_frames}")
        if self.max_clusters < 1:
            raise ConfigError(f"max_clusters must be >= 1, got {self.max_clusters}")
        if not 0 <= self.cluster_threshold <= 4:
            raise ConfigError(f"cluster_threshold must lie in [0, 4], got {self.cluster_threshold}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.crop_size < 16:
            raise ConfigError(f"crop_size must be >= 16 pixels, got {self.crop_size}")
        if self.exits is not None and not self.exits:
            raise ConfigError("exits must name at least one exit")
        if self.mode == "focus" and self.exits is not None and len(self.exits) != 1:
            raise ConfigError(f"focus mode uses exactly one exit, got {list(self.exits)}")
        if self.chunk_frames < self.extractor.warmup * self.stride:
            raise ConfigError(
                f"chunk_frames ({self.chunk_frames}) must be at least warmup x stride "
                f"({self.extractor.warmup} x {self.stride}): each chunk warms on the frames before it"
            )
        if self.chunk_frames % self.stride:
            rounded = -(-self.chunk_frames // self.stride) * self.stride
            object.__setattr__(self, "chunk_frames", rounded)
        if self.range_frames < 1:
            raise ConfigError(f"range_frames must be >= 1, got {self.range_frames}")
        if self.range_frames % self.chunk_frames:
            rounded = -(-self.range_frames // self.chunk_frames) * self.chunk_frames
            object.__setattr__(self, "range_frames", rounded)

    def resolve(self, num_exits: int) -> IngestConfig:
        """The same settings with the model-dependent defaults filled in and checked against it."""
        exits = self.exits
        if exits is None:
            exits = {"mxn": tuple(range(num_exits)), "focus": (0,), "gt-all": (num_exits - 1,)}[self.mode]
        exits = tuple(sorted(set(int(e) for e in exits)))
        bad = [e for e in exits if not 0 <= e < num_exits]
        if bad:
            raise ConfigError(f"the model has exits 0..{num_exits - 1}; no exit {bad[0]}")
        cluster_exit = max(exits) if self.cluster_exit is None else self.cluster_exit
        if not 0 <= cluster_exit < num_exits:
            raise ConfigError(f"the model has exits 0..{num_exits - 1}; no cluster exit {cluster_exit}")
        topk = 1 if self.mode == "gt-all" else self.topk
        return replace(self, exits=exits, cluster_exit=cluster_exit, topk=topk)

    def crop_side(self, input_size: int) -> int:
        """The side of the crops kept for a model of ``input_size`` px: never smaller than its input."""
        return max(self.crop_size, input_size)

    def index_key(self) -> dict[str, Any]:
        """The settings that shape the index (what a resumed run must match)."""
        data = asdict(self)
        data.pop("batch_size")
        data["exits"] = list(data["exits"] or [])
        return data


def settings_diff(stored: dict[str, Any], asked: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The index settings (:meth:`IngestConfig.index_key`) that differ: ``{name: {"stored", "asked"}}``.

    Nested settings are named by their own field (``min_area``, not
    ``extractor.min_area``), as the command line spells them.
    """

    def flat(data: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in data.items():
            out |= flat(value) if isinstance(value, dict) else {key: value}
        return out

    old, new = flat(stored), flat(asked)
    return {
        k: {"stored": old.get(k), "asked": new.get(k)} for k in sorted(old.keys() | new.keys())
        if old.get(k) != new.get(k)
    }  # fmt: skip


def describe_diff(diff: dict[str, dict[str, Any]]) -> str:
    """``--topk 2 (asked 3), --chunk-frames 900 (asked 100)``: a :func:`settings_diff` in option words."""
    return ", ".join(f"--{k.replace('_', '-')} {v['stored']} (asked {v['asked']})" for k, v in diff.items())
