"""The exit runner: one code path for every caller that runs a multi-exit network.

Two ways to run a multi-exit network on a batch of images:

* **all exits** (the dissertation's *prefix batching*, Table 5.9): the shared
  prefix runs once per batch and every requested head reads it, in one
  compiled graph. Ingest uses this to collect top-k' labels from several exits
  and the pooled features of one exit for clustering.
* **cascade / early exit**: after each stage a decision rule looks at the
  exit's output; decided items leave, the carried feature maps are compacted
  with a gather so only undecided items go deeper, and results come back in
  input order with the exit each item took. With confidence thresholds this
  is the classic early exit; the face pipeline plugs in its own rule (a
  distance test against a face database). The dissertation ran one image at a
  time because TensorFlow's ``partial_run`` made batching awkward (section
  5.4); compaction keeps batching.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from .network import MultiExitNetwork

#: A decision rule for the cascade: ``decide(exit_index, outputs, features,
#: item_indices) -> bool mask`` of the items that leave at this exit.
DecisionRule = Callable[[int, np.ndarray, np.ndarray, np.ndarray], np.ndarray]

NO_EXIT = -1


class _SameCodeTracingFilter(logging.Filter):
    """Drop TensorFlow's "triggered tf.function retracing" warning.

    The runner compiles one graph per exit from the same Python function on
    purpose (each stage has its own input shapes, each is traced once and
    cached on the network); TensorFlow's heuristic mistakes that for a
    retracing loop.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


tf.get_logger().addFilter(_SameCodeTracingFilter())


@dataclass
class AllExitsResult:
    """Outputs of several exits for the same images."""

    exits: tuple[int, ...]
    outputs: list[np.ndarray]
    features: np.ndarray | None = None
    features_exit: int | None = None

    def output(self, exit_index: int) -> np.ndarray:
        return self.outputs[self.exits.index(exit_index)]


@dataclass
class CascadeResult:
    """Where each item left the cascade, and what that exit said.

    ``exit_taken[k]`` is the exit index item ``k`` left at, or ``NO_EXIT`` (-1)
    when no exit decided it; its ``outputs`` then come from the last exit, so
    a caller can still read the deepest opinion. (Exits' pooled features
    differ in size; a decision rule that needs them receives them per exit.)
    """

    exit_taken: np.ndarray
    outputs: np.ndarray

    @property
    def predictions(self) -> np.ndarray:
        return np.argmax(self.outputs, axis=1)

    @property
    def confidence(self) -> np.ndarray:
        return np.max(self.outputs, axis=1) if len(self.outputs) else np.zeros(0)

    def exit_counts(self, num_exits: int) -> dict[int, int]:
        """Items per exit, with ``NO_EXIT`` for the undecided."""
        counts = {i: int(np.sum(self.exit_taken == i)) for i in range(num_exits)}
        counts[NO_EXIT] = int(np.sum(self.exit_taken == NO_EXIT))
        return counts


def threshold_rule(thresholds: Sequence[float | None]) -> DecisionRule:
    """The confidence rule: leave at exit ``i`` when the top probability >= ``thresholds[i]``.

    ``None`` (or infinity) means the exit never decides.
    """
    limits = np.array([np.inf if t is None else float(t) for t in thresholds], dtype=np.float64)

    def decide(exit_index: int, outputs: np.ndarray, features, items) -> np.ndarray:
        return outputs.max(axis=1) >= limits[exit_index]

    return decide


class ExitRunner:
    """Runs a :class:`~mxn.network.MultiExitNetwork` stage by stage.

    Args:
        network: the built network.
        batch_size: images per batch handed to the first stage.
    """

    def __init__(self, network: MultiExitNetwork, batch_size: int = 64) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.network = network
        self.batch_size = int(batch_size)
        self._steps = [self._compiled(("step", i), self._compile_step, i) for i in range(network.num_exits)]

    @property
    def num_exits(self) -> int:
        return self.network.num_exits

    @property
    def input_shape(self) -> tuple[int, int, int]:
        size = self.network.spec.input_size
        return (size, size, 3)

    # -- compiled pieces ------------------------------------------------------

    def _compiled(self, key, make: Callable, *args) -> Callable:
        """A graph from the network's cache, compiled on first use."""
        cache = self.network.compiled
        if key not in cache:
            cache[key] = make(*args)
        return cache[key]

    def _state_signature(self, index: int) -> list[tf.TensorSpec]:
        stage = self.network.stages[index]
        return [tf.TensorSpec((None, *t.shape[1:]), tf.float32) for t in stage.inputs]

    def _compile_step(self, index: int) -> Callable:
        """Stage ``index`` plus its head, as one graph: state -> (state, features, output)."""
        stage, head = self.network.stages[index], self.network.heads[index]

        def step(state):
            out = _as_list(stage(state, training=False))
            features, y = head(out[-1], training=False)
            return out, features, y

        return tf.function(step, input_signature=[self._state_signature(index)], autograph=False)

    def _prefix_fn(self, exits: tuple[int, ...], features_exit: int | None) -> Callable:
        """One graph computing the prefix once and the requested heads on it."""
        return self._compiled(("prefix", exits, features_exit), self._compile_prefix, exits, features_exit)

    def _compile_prefix(self, exits: tuple[int, ...], features_exit: int | None) -> Callable:
        stages, heads = self.network.stages, self.network.heads
        deepest = max((*exits, -1 if features_exit is None else features_exit))

        def run(images):
            state, outputs, features = [images], [], None
            for i in range(deepest + 1):
                out = _as_list(stages[i](state, training=False))
                if i in exits or i == features_exit:
                    f, y = heads[i](out[-1], training=False)
                    if i in exits:
                        outputs.append(y)
                    if i == features_exit:
                        features = f
                state = out
            return outputs, features

        signature = [tf.TensorSpec((None, *self.input_shape), tf.float32)]
        return tf.function(run, input_signature=signature, autograph=False)

    # -- public API -----------------------------------------------------------

    def all_exits(
        self,
        images: np.ndarray,
        exits: Sequence[int] | None = None,
        features_exit: int | None = None,
    ) -> AllExitsResult:
        """Outputs of every requested exit (default: all), with one shared prefix per batch.

        ``features_exit`` also returns that exit's pooled features (the
        vectors ingest clusters on).
        """
        images = self._check_images(images)
        chosen = tuple(range(self.num_exits)) if exits is None else tuple(sorted(set(exits)))
        for e in (*chosen, *(() if features_exit is None else (features_exit,))):
            self._check_exit(e)
        fn = self._prefix_fn(chosen, features_exit)
        outs: list[list[np.ndarray]] = [[] for _ in chosen]
        feats: list[np.ndarray] = []
        for start in range(0, len(images), self.batch_size):
            ys, f = fn(_batch_tensor(images[start : start + self.batch_size]))
            for k, y in enumerate(ys):
                outs[k].append(y.numpy())
            if f is not None:
                feats.append(f.numpy())
        dim = self.network.spec.output_dim
        outputs = [np.concatenate(o) if o else np.zeros((0, dim), np.float32) for o in outs]
        features = None
        if features_exit is not None:
            features = np.concatenate(feats) if feats else self._empty_features(features_exit)
        return AllExitsResult(chosen, outputs, features, features_exit)

    def iter_exits(self, images: np.ndarray) -> Iterator[np.ndarray]:
        """Each exit's outputs for ``images`` (one batch), computed only when the caller asks for the next.

        For decisions that must be taken one exit at a time with state that
        changes between items (the face databases of Algorithm 3), so a
        caller that stops after exit ``i`` never pays for the stages after it.
        """
        state = [_batch_tensor(self._check_images(images))]
        for step in self._steps:
            state, _, y = step(state)
            yield y.numpy()

    def early_exit(self, images: np.ndarray, thresholds: Sequence[float | None]) -> CascadeResult:
        """Confidence-threshold early exit; see :meth:`cascade`."""
        if len(thresholds) != self.num_exits:
            raise ValueError(f"got {len(thresholds)} thresholds for {self.num_exits} exits")
        return self.cascade(images, threshold_rule(thresholds))

    def cascade(
        self, images: np.ndarray, decide: DecisionRule, last_exit: int | None = None
    ) -> CascadeResult:
        """Run the exits in order; after each, the items ``decide`` accepts leave.

        Items are processed in batches of :attr:`batch_size`; inside a batch
        the carried feature maps are compacted after every exit so only the
        undecided go deeper. ``last_exit`` stops the cascade early (no deeper
        stage runs; the undecided keep that exit's outputs): a caller whose
        rule cannot decide past some exit need not pay for the rest.
        """
        images = self._check_images(images)
        last_exit = self.num_exits - 1 if last_exit is None else last_exit
        self._check_exit(last_exit)
        n = len(images)
        exit_taken = np.full(n, NO_EXIT, dtype=np.int64)
        outputs = np.zeros((n, self.network.spec.output_dim), np.float32)
        for start in range(0, n, self.batch_size):
            items = np.arange(start, min(n, start + self.batch_size))
            state = [_batch_tensor(images[items])]
            for i, step in enumerate(self._steps[: last_exit + 1]):
                state, f, y = step(state)
                y = y.numpy()
                leave = np.asarray(decide(i, y, f.numpy(), items), dtype=bool)
                last = i == last_exit
                outputs[items if last else items[leave]] = y if last else y[leave]
                exit_taken[items[leave]] = i
                if last or not (~leave).any():
                    break
                if leave.any():
                    keep = tf.constant(np.flatnonzero(~leave))
                    state = [tf.gather(t, keep) for t in state]
                    items = items[~leave]
        return CascadeResult(exit_taken, outputs)

    # -- checks ---------------------------------------------------------------

    def _check_exit(self, exit_index: int) -> None:
        if not 0 <= exit_index < self.num_exits:
            raise ValueError(
                f"exit {exit_index} does not exist; this network has exits 0..{self.num_exits - 1}"
            )

    def _check_images(self, images: np.ndarray) -> np.ndarray:
        """``images`` as uint8 (kept as they are) or float32, after checking their shape.

        uint8 images (decoded crops, :func:`mxn.images.resize_batch`) stay uint8 until
        each batch enters the graph: converting a whole set to float32 up front wrote
        four times its bytes to fresh memory, which cost a query a fifth of the
        ground-truth CNN's time per candidate.
        """
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[1:] != self.input_shape:
            raise ValueError(
                f"expected images of shape (N, {', '.join(map(str, self.input_shape))}), "
                f"got {images.shape}; resize with mxn.images.resize_batch"
            )
        if images.dtype == np.uint8:
            return images
        return images.astype(np.float32, copy=False)

    def _empty_features(self, exit_index: int) -> np.ndarray:
        dim = int(self.network.heads[exit_index].outputs[0].shape[-1])
        return np.zeros((0, dim), np.float32)


def _batch_tensor(batch: np.ndarray) -> tf.Tensor:
    """One batch as the float32 tensor the graphs take (pixel values unchanged)."""
    tensor = tf.convert_to_tensor(batch)
    return tensor if tensor.dtype == tf.float32 else tf.cast(tensor, tf.float32)


def _as_list(value) -> list:
    return list(value) if isinstance(value, list | tuple) else [value]
