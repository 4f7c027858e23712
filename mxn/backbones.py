"""Backbones as a stem plus a numbered list of units.

A *unit* is what an exit position counts: a basic residual block of
ResNet-18 (8 units in 4 stages) or a depthwise-separable block of MobileNetV1
(13 units). The builder cuts the unit list at the exit positions, so the same
code makes a 5-exit network and the single-exit networks "cut at the same
layers" that the dissertation compares it against.
"""

from __future__ import annotations

from keras import layers

from .blocks import basic_block, conv_bn_relu, depthwise_separable
from .spec import NetworkSpec

# (filters, stride) of each unit, at width 1.0.
RESNET18_UNITS: tuple[tuple[int, int], ...] = (
    (64, 1), (64, 1),
    (128, 2), (128, 1),
    (256, 2), (256, 1),
    (512, 2), (512, 1),
)  # fmt: skip
MOBILENET_V1_UNITS: tuple[tuple[int, int], ...] = (
    (64, 1),
    (128, 2), (128, 1),
    (256, 2), (256, 1),
    (512, 2), (512, 1), (512, 1), (512, 1), (512, 1), (512, 1),
    (1024, 2), (1024, 1),
)  # fmt: skip


def scaled(channels: int, width: float) -> int:
    """Channels after the width multiplier (never fewer than 4)."""
    return max(4, round(channels * width))


def stem(x, spec: NetworkSpec):
    """The layers before the first unit."""
    if spec.backbone == "resnet18":
        if spec.stem == "imagenet":
            x = conv_bn_relu(x, scaled(64, spec.width), 7, 2, "stem")
            return layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
        return conv_bn_relu(x, scaled(64, spec.width), 3, 1, "stem")
    stride = 2 if spec.stem == "imagenet" else 1
    return conv_bn_relu(x, scaled(32, spec.width), 3, stride, "stem")


def unit(x, spec: NetworkSpec, position: int):
    """Unit number ``position`` (1-based) of the spec's backbone."""
    if spec.backbone == "resnet18":
        filters, stride = RESNET18_UNITS[position - 1]
        return basic_block(x, scaled(filters, spec.width), stride, f"block{position}")
    filters, stride = MOBILENET_V1_UNITS[position - 1]
    return depthwise_separable(x, scaled(filters, spec.width), stride, f"conv{position}")
