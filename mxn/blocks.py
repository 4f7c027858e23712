"""Small Keras building blocks, each a function from tensor to tensor.

Every block names its layers from a ``name`` prefix, so a network rebuilt from
the same spec has the same layer names, and weights files stay portable.
"""

from __future__ import annotations

import keras
from keras import layers

_BN = {"momentum": 0.9, "epsilon": 1e-5}
_L2 = 1e-4


def _regulariser() -> keras.regularizers.Regularizer:
    return keras.regularizers.L2(_L2)


def conv_bn_relu(x, filters: int, kernel: int, stride: int, name: str, relu: bool = True):
    """Conv2D (no bias) -> BatchNorm -> optional ReLU."""
    x = layers.Conv2D(
        filters,
        kernel,
        strides=stride,
        padding="same",
        use_bias=False,
        kernel_initializer="he_normal",
        kernel_regularizer=_regulariser(),
        name=f"{name}_conv",
    )(x)
    x = layers.BatchNormalization(**_BN, name=f"{name}_bn")(x)
    if relu:
        x = layers.ReLU(name=f"{name}_relu")(x)
    return x


def basic_block(x, filters: int, stride: int, name: str):
    """ResNet basic block: two 3x3 convs and a shortcut (1x1 conv when shapes change)."""
    shortcut = x
    y = conv_bn_relu(x, filters, 3, stride, f"{name}_a")
    y = conv_bn_relu(y, filters, 3, 1, f"{name}_b", relu=False)
    if stride != 1 or x.shape[-1] != filters:
        shortcut = conv_bn_relu(x, filters, 1, stride, f"{name}_proj", relu=False)
    y = layers.Add(name=f"{name}_add")([y, shortcut])
    return layers.ReLU(name=f"{name}_out")(y)


def depthwise_separable(x, filters: int, stride: int, name: str):
    """MobileNetV1 block: 3x3 depthwise conv and 1x1 pointwise conv, each with BN and ReLU."""
    x = layers.DepthwiseConv2D(
        3,
        strides=stride,
        padding="same",
        use_bias=False,
        depthwise_initializer="he_normal",
        name=f"{name}_dw",
    )(x)
    x = layers.BatchNormalization(**_BN, name=f"{name}_dw_bn")(x)
    x = layers.ReLU(name=f"{name}_dw_relu")(x)
    return conv_bn_relu(x, filters, 1, 1, f"{name}_pw")


def aggregation_block(low, high, name: str):
    """Feature aggregation between a lower and a higher exit (Fig. 5.3).

    The lower-level map is max-pooled down to the higher one's spatial size,
    the two are concatenated, and a 1x1 conv compresses the result back to the
    higher map's channel count, so the exit sees both levels of features at
    little extra cost.
    """
    low_h, high_h = int(low.shape[1]), int(high.shape[1])
    if low_h != high_h:
        factor = max(1, round(low_h / high_h))
        low = layers.MaxPooling2D(factor, strides=factor, padding="same", name=f"{name}_pool")(low)
        if int(low.shape[1]) != high_h:
            raise ValueError(
                f"cannot pool a {low_h}px map onto a {high_h}px map in {name}; "
                "choose an input size that is a multiple of 32"
            )
    x = layers.Concatenate(name=f"{name}_concat")([low, high])
    return conv_bn_relu(x, int(high.shape[-1]), 1, 1, f"{name}_compress")


def classification_head(x, num_classes: int, dropout: float, name: str):
    """Global average pool -> dense softmax. Returns ``(pooled_features, probabilities)``."""
    pooled = layers.GlobalAveragePooling2D(name=f"{name}_pool")(x)
    y = layers.Dropout(dropout, name=f"{name}_dropout")(pooled) if dropout > 0 else pooled
    probs = layers.Dense(
        num_classes,
        activation="softmax",
        kernel_regularizer=_regulariser(),
        name=f"{name}_softmax",
    )(y)
    return pooled, probs


def embedding_head(x, dim: int, dropout: float, name: str):
    """Global average pool -> dense -> L2 normalisation. Returns ``(embedding, embedding)``.

    For an embedding exit the useful features *are* the normalised vector, so
    both slots carry it.
    """
    pooled = layers.GlobalAveragePooling2D(name=f"{name}_pool")(x)
    y = layers.Dropout(dropout, name=f"{name}_dropout")(pooled) if dropout > 0 else pooled
    y = layers.Dense(dim, kernel_regularizer=_regulariser(), name=f"{name}_dense")(y)
    emb = layers.UnitNormalization(name=f"{name}_l2")(y)
    return emb, emb
