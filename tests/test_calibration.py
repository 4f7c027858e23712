import numpy as np
import pytest

from mxn.calibration import calibrate_thresholds, exit_precision_recall, fit_threshold, wilson_lower_bound


def _calibrated_outputs(n, seed, classes=5, skill=0.0):
    """Softmax-like outputs whose top score is the chance of being right."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    conf = np.clip(rng.uniform(1 / classes, 1.0, n) + skill, 0, 1)
    right = rng.random(n) < conf
    wrong = (labels + rng.integers(1, classes, n)) % classes
    top = np.where(right, labels, wrong)
    out = np.tile(((1 - conf) / (classes - 1))[:, None], (1, classes))
    out[np.arange(n), top] = conf
    return out, labels


@pytest.mark.parametrize("target", [0.9, 0.95, 0.99])
def test_thresholds_meet_the_target_on_held_out_data(target):
    calib, calib_labels = _calibrated_outputs(20000, seed=1, skill=0.1)
    held, held_labels = _calibrated_outputs(20000, seed=2, skill=0.1)
    cal = calibrate_thresholds([calib], calib_labels, target_precision=target)
    threshold = cal.thresholds[0]
    assert threshold is not None
    precision, coverage = exit_precision_recall(held, held_labels, threshold)
    assert precision >= target
    assert coverage == pytest.approx(cal.exits[0].coverage, abs=0.02)
    # The margin is not wasteful: a slightly lower threshold would still be close to target.
    assert coverage > 0.02


def test_unreachable_target_means_the_exit_never_decides():
    out, labels = _calibrated_outputs(500, seed=3)
    out[:, :] = 1 / 5  # no confidence at all
    cal = calibrate_thresholds([out], labels, target_precision=0.99)
    assert cal.thresholds == [None]
    assert cal.exits[0].coverage == 0.0 and cal.exits[0].precision is None


def test_cascade_calibrates_each_exit_on_what_earlier_exits_left():
    first, labels = _calibrated_outputs(5000, seed=4)
    second, _ = _calibrated_outputs(5000, seed=5, skill=0.2)
    cal = calibrate_thresholds([first, second], labels, target_precision=0.95)
    taken_first = round(cal.exits[0].coverage * 5000)
    assert cal.exits[1].reached == 5000 - taken_first
    assert cal.coverage == pytest.approx(cal.exits[0].coverage + cal.exits[1].coverage)
    flat = calibrate_thresholds([first, second], labels, target_precision=0.95, cascade=False)
    assert flat.exits[1].reached == 5000 and flat.precision is None


def test_fit_threshold_respects_ties():
    scores = np.array([0.9, 0.8, 0.8, 0.8, 0.5])
    correct = np.array([True, True, False, True, True])
    # With no margin, a cut inside the run of 0.8s would be invalid; 0.9 alone is perfect.
    assert fit_threshold(scores, correct, target_precision=1.0, confidence=0.5) == 0.9
    assert fit_threshold(scores, correct, target_precision=0.8, confidence=0.5) == 0.5
    assert fit_threshold(np.array([]), np.array([], bool), 0.9) is None


def test_wilson_bound_properties():
    assert wilson_lower_bound(8, 10, 0.5) == pytest.approx(0.8)
    lows = wilson_lower_bound(np.array([8, 80, 800]), np.array([10, 100, 1000]), 0.95)
    assert (np.diff(lows) > 0).all() and (lows < 0.8).all()


def test_bad_arguments():
    out, labels = _calibrated_outputs(10, seed=6)
    with pytest.raises(ValueError, match="target_precision"):
        calibrate_thresholds([out], labels, target_precision=1.5)
    with pytest.raises(ValueError, match="one row of outputs per label"):
        calibrate_thresholds([out[:5]], labels)


def test_fit_threshold_counts_what_earlier_exits_accepted():
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    correct = np.array([True, True, True, False])
    assert fit_threshold(scores, correct, target_precision=0.9, confidence=0.5) == 0.7
    # with 96 right of 100 accepted before, one wrong item more still leaves the whole above 90%
    pooled = fit_threshold(scores, correct, 0.9, 0.5, already_right=96, already_accepted=100)
    assert pooled == 0.6
    # and with a poor record before, even this exit's best items cannot lift the whole to the target
    assert fit_threshold(scores, correct, 0.9, 0.5, already_right=50, already_accepted=100) is None
