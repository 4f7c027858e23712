import keras
import numpy as np
import pytest

from mxn.losses import SparseFocalLoss, exit_loss, exit_weights

EPS = 1e-7  # as mxn.losses clips


def focal_loss_reference(probs, labels, gamma: float):
    """The formula in NumPy, for tests and for reading: ``-(1 - p_t)^gamma log(p_t)``."""
    p_t = np.clip(probs[np.arange(len(labels)), labels], EPS, 1.0 - EPS)
    return -((1.0 - p_t) ** gamma) * np.log(p_t)


def _probs(n=50, c=6, seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, c)) * 2
    p = np.exp(logits)
    return (p / p.sum(axis=1, keepdims=True)).astype("float32"), rng.integers(0, c, n)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0, 5.0])
def test_focal_loss_equals_its_formula(gamma):
    probs, labels = _probs()
    per_item = SparseFocalLoss(gamma=gamma, reduction=None)(labels, probs)
    np.testing.assert_allclose(np.asarray(per_item), focal_loss_reference(probs, labels, gamma), rtol=1e-5)
    mean = float(SparseFocalLoss(gamma=gamma)(labels, probs))
    assert mean == pytest.approx(focal_loss_reference(probs, labels, gamma).mean(), rel=1e-5)


def test_focal_loss_with_gamma_zero_is_cross_entropy():
    probs, labels = _probs(seed=1)
    ce = float(keras.losses.SparseCategoricalCrossentropy()(labels, probs))
    assert float(SparseFocalLoss(gamma=0.0)(labels, probs)) == pytest.approx(ce, rel=1e-5)


@pytest.mark.parametrize("gamma", [0.0, 2.0])
def test_focal_loss_on_target_distributions_is_its_expectation(gamma):
    probs, labels = _probs(seed=2)
    one_hot = np.eye(probs.shape[1], dtype="float32")[labels]
    loss = SparseFocalLoss(gamma=gamma, reduction=None)
    np.testing.assert_allclose(np.asarray(loss(one_hot, probs)), np.asarray(loss(labels, probs)), rtol=1e-5)
    targets, _ = _probs(seed=3)  # a teacher's softmax
    classes = range(probs.shape[1])
    n = len(probs)
    expected = sum(targets[:, c] * focal_loss_reference(probs, np.full(n, c), gamma) for c in classes)
    np.testing.assert_allclose(np.asarray(loss(targets, probs)), expected, rtol=1e-5)
    soft_ce = float(exit_loss("ce", soft=True)(targets, probs))
    assert soft_ce == pytest.approx(float(keras.losses.CategoricalCrossentropy()(targets, probs)), rel=1e-5)


def test_focal_loss_down_weights_easy_items():
    easy = np.array([[0.95, 0.05]], "float32")
    hard = np.array([[0.3, 0.7]], "float32")
    fl, ce = SparseFocalLoss(gamma=2.0), keras.losses.SparseCategoricalCrossentropy()
    label = np.array([0])
    ratio_easy = float(fl(label, easy)) / float(ce(label, easy))
    ratio_hard = float(fl(label, hard)) / float(ce(label, hard))
    assert ratio_easy < 0.01 < ratio_hard


def test_bad_loss_parameters():
    with pytest.raises(ValueError, match="gamma"):
        SparseFocalLoss(gamma=-1)
    with pytest.raises(ValueError, match="unknown loss"):
        exit_loss("hinge")
    with pytest.raises(ValueError, match="3 exit weights for 5"):
        exit_weights([1, 1, 1], 5)
    with pytest.raises(ValueError, match=">= 0"):
        exit_weights([1, -1], 2)
    assert exit_weights(None, 3) == [1.0, 1.0, 1.0]
