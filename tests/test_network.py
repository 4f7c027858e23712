import keras
import numpy as np
import pytest
import tensorflow as tf

from mxn.flops import exit_macs, network_macs, prefix_batching_bound
from mxn.losses import exit_loss
from mxn.network import build_network
from mxn.spec import NetworkSpec


@pytest.mark.parametrize("backbone", ["resnet18", "mobilenet_v1"])
@pytest.mark.parametrize("aggregation", [True, False])
def test_every_exit_gives_class_probabilities(backbone, aggregation, random_images):
    spec = NetworkSpec(backbone=backbone, input_size=32, width=0.25, num_classes=4, aggregation=aggregation)
    net = build_network(spec)
    outputs = net.model(random_images.astype("float32"), training=False)
    assert sorted(outputs) == net.exit_names
    outputs = [outputs[name] for name in net.exit_names]
    for y in outputs:
        y = np.asarray(y)
        assert y.shape == (len(random_images), 4)
        np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-5)


def test_aggregation_blocks_sit_before_every_exit_after_the_first(tiny_spec):
    with_agg = build_network(tiny_spec)
    without = build_network(tiny_spec.replace(aggregation=False))
    agg_layers = [layer.name for s in with_agg.stages for layer in s.layers if layer.name.startswith("agg")]
    assert {name.split("_")[0] for name in agg_layers} == {"agg1", "agg2", "agg3", "agg4"}
    assert not [layer for s in without.stages for layer in s.layers if layer.name.startswith("agg")]
    # The low-level map is pooled to the high-level map's size before concatenation.
    assert any(name.endswith("_pool") for name in agg_layers)


def test_embedding_heads_are_unit_vectors(random_images):
    spec = NetworkSpec(backbone="mobilenet_v1", input_size=32, width=0.25, head="embedding", embedding_dim=12)
    outputs = build_network(spec).model(random_images.astype("float32"))
    for y in outputs.values():
        assert y.shape == (len(random_images), 12)
        np.testing.assert_allclose(np.linalg.norm(np.asarray(y), axis=1), 1.0, rtol=1e-5)


def _grads(net, images, labels, exits):
    loss_fn = exit_loss("focal")
    with tf.GradientTape() as tape:
        outputs = net.model(images, training=True)
        loss = tf.add_n([loss_fn(labels, outputs[f"exit_{i}"]) for i in exits])
    variables = net.model.trainable_variables
    grads = tape.gradient(loss, variables)
    return {v.path: g for v, g in zip(variables, grads, strict=True)}


def test_every_exit_gets_gradient(tiny_spec, random_images):
    net = build_network(tiny_spec)
    images = tf.constant(random_images[:8], tf.float32)
    labels = tf.constant(np.arange(8) % 4)
    grads = _grads(net, images, labels, exits=range(5))
    for i in range(5):
        head = [g for path, g in grads.items() if f"exit{i}_softmax/kernel" in path]
        assert head and float(tf.reduce_sum(tf.abs(head[0]))) > 0, f"exit {i} got no gradient"
    stem = next(g for path, g in grads.items() if "stem_conv/kernel" in path)
    assert float(tf.reduce_sum(tf.abs(stem))) > 0
    # The first exit's loss alone reaches the stem but not later blocks.
    grads0 = _grads(net, images, labels, exits=[0])
    assert float(tf.reduce_sum(tf.abs(next(g for p, g in grads0.items() if "stem_conv/kernel" in p)))) > 0
    late = next(g for p, g in grads0.items() if "block8_a_conv/kernel" in p)
    assert late is None or float(tf.reduce_sum(tf.abs(late))) == 0


def test_mac_count_matches_resnet18():
    # ResNet-18 at 224 px with 1000 classes is 1.8 GMACs.
    full = build_network(NetworkSpec(exits=(8,), num_classes=1000, aggregation=False))
    assert network_macs(full) == pytest.approx(1.814e9, rel=0.01)


def test_prefix_batching_bound_is_the_ratio_of_macs(tiny_spec):
    mxn = build_network(tiny_spec.replace(aggregation=False))
    singles = [build_network(tiny_spec.replace(exits=(e,), aggregation=False)) for e in tiny_spec.exits]
    costs = exit_macs(mxn)
    assert costs == sorted(costs)
    assert [network_macs(s) for s in singles] == costs
    bound = prefix_batching_bound(mxn, singles)
    assert bound == pytest.approx(sum(costs) / network_macs(mxn))
    assert 1.0 < bound < 5.0


def test_single_exit_network_shares_layer_names_with_the_mxn(tiny_spec):
    mxn = build_network(tiny_spec.replace(aggregation=False))
    single = build_network(tiny_spec.replace(exits=(4,), aggregation=False))
    names = {
        layer.name for s in single.stages for layer in s.layers if isinstance(layer, keras.layers.Conv2D)
    }
    mxn_names = {
        layer.name for s in mxn.stages for layer in s.layers if isinstance(layer, keras.layers.Conv2D)
    }
    assert names < mxn_names
