"""Counting multiply-accumulates, to know what speed-up is possible at all.

Prefix batching (Table 5.9) can at best save the work the separate models
repeat: serving ``n`` single-exit models costs the sum of their prefixes,
serving the multi-exit network costs one backbone plus every head. The ratio
of the two MAC counts is the bound a measured speed-up is judged against.
Only convolutions and dense layers are counted; normalisation, activations
and pooling are small next to them.
"""

from __future__ import annotations

import math

import keras

from .network import MultiExitNetwork


def layer_macs(layer: keras.layers.Layer) -> int:
    """Multiply-accumulates of one layer for one input image."""
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        kh, kw, cin, mult = layer.kernel.shape
        _, h, w, _ = layer.output.shape
        return int(h * w * kh * kw * cin * mult)
    if isinstance(layer, keras.layers.Conv2D):
        kh, kw, cin, cout = layer.kernel.shape
        _, h, w, _ = layer.output.shape
        return int(h * w * kh * kw * cin * cout)
    if isinstance(layer, keras.layers.Dense):
        cin, cout = layer.kernel.shape
        return int(cin * cout)
    return 0


def model_macs(model: keras.Model) -> int:
    """MACs of a (possibly nested) Keras model for one image."""
    total = 0
    for layer in model.layers:
        total += model_macs(layer) if isinstance(layer, keras.Model) else layer_macs(layer)
    return total


def exit_macs(network: MultiExitNetwork) -> list[int]:
    """For each exit, the MACs of everything needed to reach and compute it."""
    stage_costs = [model_macs(s) for s in network.stages]
    head_costs = [model_macs(h) for h in network.heads]
    return [sum(stage_costs[: i + 1]) + head_costs[i] for i in range(network.num_exits)]


def network_macs(network: MultiExitNetwork) -> int:
    """MACs of running every exit of the network once (the shared prefix counted once)."""
    return sum(model_macs(s) for s in network.stages) + sum(model_macs(h) for h in network.heads)


def prefix_batching_bound(mxn: MultiExitNetwork, singles: list[MultiExitNetwork]) -> float:
    """The best speed-up of serving ``mxn`` over serving every model in ``singles``."""
    separate = sum(network_macs(s) for s in singles)
    return separate / network_macs(mxn) if network_macs(mxn) else math.nan
