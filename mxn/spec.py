"""What a multi-exit network is, as plain data.

A :class:`NetworkSpec` names everything needed to rebuild a network from
scratch: the backbone, its width and input size, where the exits sit, what
the heads produce and whether feature aggregation is on. It is validated as
soon as it is made (scikit-learn's habit: parameters in the constructor,
checked early), it round-trips through JSON for the model card, and the
builder turns it into Keras layers. Keeping the description separate from the
Keras objects is what lets a model file be loaded without deserialising any
code: the card gives the spec, the spec gives the architecture, the weights
file gives the numbers.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

Backbone = Literal["resnet18", "mobilenet_v1"]
HeadKind = Literal["classification", "embedding"]
Stem = Literal["imagenet", "cifar"]

BACKBONES: tuple[str, ...] = ("resnet18", "mobilenet_v1")
HEAD_KINDS: tuple[str, ...] = ("classification", "embedding")
STEMS: tuple[str, ...] = ("imagenet", "cifar")

#: How many exit positions each backbone offers. An exit position ``p`` means
#: "after the p-th residual block" (ResNet-18 has 8 basic blocks in 4 stages)
#: or "after the p-th depthwise-separable block" (MobileNetV1 has 13; the
#: dissertation's conv3..conv11 are positions 3..11).
EXIT_POSITIONS: dict[str, int] = {"resnet18": 8, "mobilenet_v1": 13}

#: The dissertation's defaults: ResNet-18 with 5 exits (one after the first
#: block, so the cheapest exit is really cheap, then one per stage), and
#: MobileNetV1 with exits after conv3, conv5, conv7, conv9 and conv11.
DEFAULT_EXITS: dict[str, tuple[int, ...]] = {
    "resnet18": (1, 2, 4, 6, 8),
    "mobilenet_v1": (3, 5, 7, 9, 11),
}

SPEC_VERSION = 1


class SpecError(ValueError):
    """A network description that cannot be built."""


@dataclass(frozen=True)
class NetworkSpec:
    """The architecture of a multi-exit network.

    Args:
        backbone: ``"resnet18"`` or ``"mobilenet_v1"``.
        num_classes: classes of a classification head (ignored by embedding
            heads, but kept so a card says what the model was trained on).
        input_size: side of the square input image, in pixels.
        width: width multiplier applied to every layer's channels.
        exits: exit positions, strictly increasing (see
            :data:`EXIT_POSITIONS`); ``None`` takes the backbone's default.
        head: ``"classification"`` (softmax) or ``"embedding"``
            (L2-normalised vector of ``embedding_dim``).
        embedding_dim: size of an embedding head's vector.
        aggregation: put a feature-aggregation block (Fig. 5.3) before every
            exit after the first.
        stem: ``"imagenet"`` (strided 7x7 conv and max-pool for ResNet, a
            strided first conv for MobileNet) or ``"cifar"`` (a 3x3 conv at
            stride 1, for inputs of 32-64 px where the ImageNet stem would
            throw most of the image away).
        dropout: dropout rate before each head's dense layer.
    """

    backbone: Backbone = "resnet18"
    num_classes: int = 10
    input_size: int = 224
    width: float = 1.0
    exits: tuple[int, ...] | None = None
    head: HeadKind = "classification"
    embedding_dim: int = 128
    aggregation: bool = True
    stem: Stem = "imagenet"
    dropout: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise SpecError(f"unknown backbone {self.backbone!r}; choose one of {BACKBONES}")
        if self.head not in HEAD_KINDS:
            raise SpecError(f"unknown head {self.head!r}; choose one of {HEAD_KINDS}")
        if self.stem not in STEMS:
            raise SpecError(f"unknown stem {self.stem!r}; choose one of {STEMS}")
        if not isinstance(self.num_classes, int) or self.num_classes < 2:
            raise SpecError(f"num_classes must be an integer >= 2, got {self.num_classes!r}")
        if not isinstance(self.input_size, int) or self.input_size < 16:
            raise SpecError(f"input_size must be an integer >= 16 pixels, got {self.input_size!r}")
        if not (0.0 < float(self.width) <= 4.0):
            raise SpecError(f"width must be in (0, 4], got {self.width!r}")
        if not isinstance(self.embedding_dim, int) or self.embedding_dim < 2:
            raise SpecError(f"embedding_dim must be an integer >= 2, got {self.embedding_dim!r}")
        if not (0.0 <= float(self.dropout) < 1.0):
            raise SpecError(f"dropout must be in [0, 1), got {self.dropout!r}")
        exits = DEFAULT_EXITS[self.backbone] if self.exits is None else tuple(self.exits)
        n_positions = EXIT_POSITIONS[self.backbone]
        if not exits:
            raise SpecError("a network needs at least one exit")
        if any(not isinstance(e, int) or isinstance(e, bool) for e in exits):
            raise SpecError(f"exit positions must be integers, got {exits!r}")
        if any(e < 1 or e > n_positions for e in exits):
            raise SpecError(f"{self.backbone} has exit positions 1..{n_positions}, got {list(exits)}")
        if list(exits) != sorted(set(exits)):
            raise SpecError(f"exit positions must be strictly increasing, got {list(exits)}")
        object.__setattr__(self, "exits", exits)
        object.__setattr__(self, "width", float(self.width))
        object.__setattr__(self, "dropout", float(self.dropout))

    @property
    def num_exits(self) -> int:
        return len(self.exits or ())

    @property
    def output_dim(self) -> int:
        """Width of each exit's output: classes, or the embedding size."""
        return self.num_classes if self.head == "classification" else self.embedding_dim

    def replace(self, **changes: Any) -> NetworkSpec:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["exits"] = list(self.exits or ())
        data["spec_version"] = SPEC_VERSION
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NetworkSpec:
        """Rebuild a spec from :meth:`to_dict` output, rejecting unknown keys."""
        if not isinstance(data, dict):
            raise SpecError(f"a network spec must be a JSON object, got {type(data).__name__}")
        data = dict(data)
        version = data.pop("spec_version", SPEC_VERSION)
        if version != SPEC_VERSION:
            raise SpecError(f"network spec version {version} is not supported (expected {SPEC_VERSION})")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SpecError(f"unknown network spec fields: {unknown}")
        if "exits" in data and data["exits"] is not None:
            data["exits"] = tuple(data["exits"])
        return cls(**data)


def parse_exits(text: str) -> tuple[int, ...]:
    """Parse a comma-separated exit list such as ``"1,2,4,6,8"``."""
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError as err:
        raise SpecError(f"exit list must be comma-separated integers, got {text!r}") from err
