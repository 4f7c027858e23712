import numpy as np
import pytest

from mxn.network import build_network
from mxn.runner import NO_EXIT, ExitRunner
from mxn.spec import NetworkSpec


def _whole_model(net, images):
    outputs = net.model(images.astype("float32"), training=False)
    return [np.asarray(outputs[name]) for name in net.exit_names]


@pytest.mark.parametrize(
    "spec",
    [
        NetworkSpec(input_size=32, width=0.25, num_classes=4),
        NetworkSpec(input_size=32, width=0.25, num_classes=4, aggregation=False),
        NetworkSpec(backbone="mobilenet_v1", input_size=32, width=0.25, num_classes=4),
        NetworkSpec(input_size=32, width=0.25, num_classes=4, exits=(3, 8), stem="cifar"),
    ],
    ids=["resnet-agg", "resnet-plain", "mobilenet-agg", "resnet-2exits"],
)
def test_staged_outputs_equal_the_whole_model(spec, random_images):
    net = build_network(spec)
    runner = ExitRunner(net, batch_size=16)  # 37 images: batches of 16, 16, 5
    staged = runner.all_exits(random_images)
    assert staged.exits == tuple(range(spec.num_exits))
    for got, want in zip(staged.outputs, _whole_model(net, random_images), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_requested_exits_and_features(tiny_spec, random_images):
    net = build_network(tiny_spec)
    runner = ExitRunner(net)
    whole = _whole_model(net, random_images)
    result = runner.all_exits(random_images, exits=[3, 1], features_exit=2)
    assert result.exits == (1, 3)
    np.testing.assert_allclose(result.output(3), whole[3], atol=1e-5)
    # Features are the pooled map that exit 2's head reads.
    feats, _ = net.heads[2](_head_input(net, random_images, 2), training=False)
    np.testing.assert_allclose(result.features, np.asarray(feats), atol=1e-5)
    assert result.features.shape == (len(random_images), 32)  # 16 channels x2 after stage 2


def _head_input(net, images, exit_index):
    state = [images.astype("float32")]
    for i in range(exit_index + 1):
        out = net.stages[i](state, training=False)
        state = list(out) if isinstance(out, list | tuple) else [out]
    return state[-1]


def _item_by_item(net, images, thresholds):
    """The dissertation's way: one image at a time, stage by stage, straight from the sub-models."""
    taken, outputs = [], []
    for image in images.astype("float32"):
        state = [image[None]]
        for i in range(net.num_exits):
            out = net.stages[i](state, training=False)
            state = list(out) if isinstance(out, list | tuple) else [out]
            _, y = net.heads[i](state[-1], training=False)
            y = np.asarray(y)[0]
            if thresholds[i] is not None and y.max() >= thresholds[i]:
                taken.append(i)
                break
        else:
            taken.append(NO_EXIT)
        outputs.append(y)
    return np.array(taken), np.array(outputs)


def test_compacted_early_exit_makes_the_item_by_item_decisions(trained, digit_data):
    model, _ = trained
    images = digit_data.images[:150]
    runner = model.runner(batch_size=64)
    # Thresholds at per-exit confidence quantiles, so every exit takes a share.
    conf = [o.max(axis=1) for o in runner.all_exits(images).outputs]
    thresholds = [float(np.quantile(c, 0.7)) for c in conf[:-1]] + [None]
    result = runner.early_exit(images, thresholds)
    taken, outputs = _item_by_item(model.network, images, thresholds)
    np.testing.assert_array_equal(result.exit_taken, taken)
    np.testing.assert_allclose(result.outputs, outputs, atol=1e-5)
    counts = result.exit_counts(runner.num_exits)
    assert counts[0] > 0 and counts[NO_EXIT] > 0 and sum(counts.values()) == len(images)
    assert sum(counts[i] for i in range(1, 5)) > 0


def test_threshold_extremes(tiny_spec, random_images):
    net = build_network(tiny_spec)
    runner = ExitRunner(net, batch_size=8)
    everyone_early = runner.early_exit(random_images, [0.0] * 5)
    assert (everyone_early.exit_taken == 0).all()
    np.testing.assert_allclose(
        everyone_early.outputs, runner.all_exits(random_images, exits=[0]).outputs[0], atol=1e-5
    )
    nobody = runner.early_exit(random_images, [None] * 5)
    assert (nobody.exit_taken == NO_EXIT).all()
    np.testing.assert_allclose(nobody.outputs, _whole_model(net, random_images)[-1], atol=1e-5)


def test_cascade_rule_sees_only_undecided_items(tiny_spec, random_images):
    net = build_network(tiny_spec)
    seen: dict[int, list[int]] = {}

    def decide(exit_index, outputs, features, items):
        seen[exit_index] = items.tolist()
        assert len(outputs) == len(features) == len(items)
        return items % (exit_index + 2) == 0  # a rule that depends on identity only

    result = ExitRunner(net, batch_size=64).cascade(random_images, decide)
    assert seen[0] == list(range(len(random_images)))
    assert seen[1] == [k for k in range(len(random_images)) if k % 2 != 0]
    expected = []
    for k in range(len(random_images)):
        expected.append(next((i for i in range(5) if k % (i + 2) == 0), NO_EXIT))
    np.testing.assert_array_equal(result.exit_taken, expected)


def test_cascade_can_stop_at_an_earlier_exit(tiny_spec, random_images):
    net = build_network(tiny_spec)
    runner = ExitRunner(net, batch_size=64)
    seen: set[int] = set()

    def decide(exit_index, outputs, features, items):
        seen.add(exit_index)
        return items % (exit_index + 2) == 0

    full = runner.cascade(random_images, decide)
    short = runner.cascade(random_images, decide, last_exit=1)
    assert seen == {0, 1, 2, 3, 4}
    decided = full.exit_taken <= 1
    np.testing.assert_array_equal(
        short.exit_taken, np.where(decided & (full.exit_taken >= 0), full.exit_taken, NO_EXIT)
    )
    # the undecided keep the outputs of the exit the cascade stopped at
    exit1 = runner.all_exits(random_images, exits=[1]).outputs[0]
    undecided = short.exit_taken == NO_EXIT
    np.testing.assert_allclose(short.outputs[undecided], exit1[undecided], atol=1e-5)
    with pytest.raises(ValueError, match="exit 7 does not exist"):
        runner.cascade(random_images, decide, last_exit=7)


def test_iter_exits_is_lazy_and_matches_all_exits(tiny_spec, random_images):
    net = build_network(tiny_spec)
    runner = ExitRunner(net)
    expected = runner.all_exits(random_images).outputs
    stages = runner.iter_exits(random_images)
    np.testing.assert_allclose(next(stages), expected[0], atol=1e-5)
    rest = list(stages)
    assert len(rest) == 4
    for got, want in zip(rest, expected[1:], strict=True):
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_bad_input_gets_a_clear_error(tiny_spec, random_images):
    runner = ExitRunner(build_network(tiny_spec))
    with pytest.raises(ValueError, match=r"expected images of shape \(N, 32, 32, 3\)"):
        runner.all_exits(np.zeros((2, 64, 64, 3)))
    with pytest.raises(ValueError, match="3 thresholds for 5 exits"):
        runner.early_exit(random_images, [0.5] * 3)
    with pytest.raises(ValueError, match="exit 7 does not exist"):
        runner.all_exits(random_images, exits=[7])
    with pytest.raises(ValueError, match="batch_size"):
        ExitRunner(runner.network, batch_size=0)


def test_empty_input(tiny_spec):
    runner = ExitRunner(build_network(tiny_spec))
    empty = np.zeros((0, 32, 32, 3), np.uint8)
    assert [o.shape for o in runner.all_exits(empty).outputs] == [(0, 4)] * 5
    assert runner.early_exit(empty, [0.5] * 5).exit_taken.shape == (0,)
