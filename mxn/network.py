"""A multi-exit network built as stages and heads.

The network is cut where the exits are. Stage ``i`` runs the backbone from
exit ``i-1`` to exit ``i`` (stage 0 also runs the input scaling and the stem)
and, with aggregation on, the aggregation block that prepares exit ``i``'s
input. Head ``i`` turns that input into ``(pooled_features, output)``.

Training uses :attr:`MultiExitNetwork.model` (outputs ``{"exit_i": probabilities}``),
which is nothing but those same
stages and heads called in a row; the exit runner calls the very same
sub-models one at a time. Because both paths share the layer objects, the
staged outputs are the whole model's outputs by construction, and one set of
weights serves both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import keras
from keras import layers

from .backbones import stem, unit
from .blocks import aggregation_block, classification_head, embedding_head
from .spec import NetworkSpec


@dataclass
class MultiExitNetwork:
    """A built network: its spec, the per-exit stages and heads, and the training model."""

    spec: NetworkSpec
    stages: list[keras.Model]
    heads: list[keras.Model]
    model: keras.Model
    #: Compiled inference graphs, shared by every exit runner over this network so
    #: each graph is traced once (filled by :class:`~mxn.runner.ExitRunner`).
    compiled: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def num_exits(self) -> int:
        return len(self.stages)

    @property
    def exit_names(self) -> list[str]:
        """The training model's output names, in exit order."""
        return [f"exit_{i}" for i in range(self.num_exits)]


def build_network(spec: NetworkSpec, seed: int | None = None) -> MultiExitNetwork:
    """Build the Keras stages, heads and training model that ``spec`` describes.

    ``seed`` seeds every random generator first, so the initial weights are
    reproducible.
    """
    if seed is not None:
        keras.utils.set_random_seed(seed)
    size = spec.input_size
    exits = list(spec.exits or ())
    stages: list[keras.Model] = []
    heads: list[keras.Model] = []

    image = keras.Input((size, size, 3), name="image")
    prev_state: list = []
    first_unit = 1
    for i, position in enumerate(exits):
        if i == 0:
            inputs = [keras.Input((size, size, 3), name="stage_0_image")]
            x = layers.Rescaling(1.0 / 255.0, name="scale")(inputs[0])
            x = stem(x, spec)
        else:
            inputs = [keras.Input(t.shape[1:], name=f"stage_{i}_in_{j}") for j, t in enumerate(prev_state)]
            x = inputs[0]
        for p in range(first_unit, position + 1):
            x = unit(x, spec, p)
        head_in = x
        if spec.aggregation and i > 0:
            head_in = aggregation_block(inputs[1], x, name=f"agg{i}")
        # A stage's outputs are what the next stage needs; the last of them
        # is always this exit's head input.
        outputs = [x, head_in] if spec.aggregation else [x]
        stage = keras.Model(inputs, outputs, name=f"stage_{i}")
        stages.append(stage)
        heads.append(_build_head(spec, head_in.shape[1:], i))
        first_unit = position + 1
        prev_state = outputs

    # The training model: the same sub-models called in a row.
    # Outputs are a dict keyed "exit_i": with a plain list, Keras hands a
    # one-exit model's output back as a bare tensor, and losses keyed by exit
    # name would no longer match.
    exit_outputs = {}
    state = [image]
    for i, (stage, head) in enumerate(zip(stages, heads, strict=True)):
        out = stage(state)
        out = out if isinstance(out, list | tuple) else [out]
        head_in = out[-1]
        _, y = head(head_in)
        exit_outputs[f"exit_{i}"] = layers.Identity(name=f"exit_{i}")(y)
        state = list(out)
    model = keras.Model(image, exit_outputs, name=f"mxn_{spec.backbone}")
    return MultiExitNetwork(spec=spec, stages=stages, heads=heads, model=model)


def _build_head(spec: NetworkSpec, shape, index: int) -> keras.Model:
    x_in = keras.Input(shape, name=f"head_{index}_in")
    if spec.head == "classification":
        features, y = classification_head(x_in, spec.num_classes, spec.dropout, f"exit{index}")
    else:
        features, y = embedding_head(x_in, spec.embedding_dim, spec.dropout, f"exit{index}")
        features = layers.Identity(name=f"exit{index}_features")(features)
    return keras.Model(x_in, [features, y], name=f"head_{index}")
