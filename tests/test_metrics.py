"""Metrics and aggregation rules against scikit-learn / scipy references and hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.interpolate import interp1d
from scipy.optimize import brentq
from sklearn import metrics as skm

from deepfake_detect.evaluation import metrics as M
from deepfake_detect.evaluation.aggregation import AGGREGATIONS, aggregate
from deepfake_detect.registry import UnknownNameError


def _random_case(seed: int, n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Labels and scores with many ties (scores rounded to one decimal) and class imbalance."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.35).astype(int)
    p = np.clip(rng.normal(0.4 + 0.25 * y, 0.25), 0.0, 1.0).round(1)
    return y, p


def _reference_eer(y: np.ndarray, p: np.ndarray) -> float:
    """The common recipe: the root of 1 - x - tpr(x) on sklearn's (linearly interpolated) ROC curve."""
    fpr, tpr, _ = skm.roc_curve(y, p)
    return float(brentq(lambda x: 1.0 - x - interp1d(fpr, tpr)(x), 0.0, 1.0, xtol=1e-12))


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_against_sklearn_on_random_data_with_ties(seed: int) -> None:
    y, p = _random_case(seed)
    assert len(np.unique(p)) < len(p) / 5  # the case really has ties
    assert M.roc_auc(y, p) == pytest.approx(skm.roc_auc_score(y, p), abs=1e-6)
    assert M.average_precision(y, p) == pytest.approx(skm.average_precision_score(y, p), abs=1e-6)
    assert M.log_loss(y, p.clip(0.05, 0.95)) == pytest.approx(skm.log_loss(y, p.clip(0.05, 0.95)), abs=1e-6)
    assert M.accuracy(y, p) == pytest.approx(skm.accuracy_score(y, p >= 0.5), abs=1e-12)
    assert M.accuracy(y, p, threshold=0.3) == pytest.approx(skm.accuracy_score(y, p >= 0.3), abs=1e-12)
    assert M.equal_error_rate(y, p) == pytest.approx(_reference_eer(y, p), abs=1e-6)


@pytest.mark.parametrize("seed", [0, 5])
def test_roc_points_match_sklearn_curve(seed: int) -> None:
    y, p = _random_case(seed, n=60)
    fpr, tpr, thr = M.roc_points(y, p)
    ref_fpr, ref_tpr, ref_thr = skm.roc_curve(y, p, drop_intermediate=False)
    np.testing.assert_allclose(fpr, ref_fpr, atol=1e-12)
    np.testing.assert_allclose(tpr, ref_tpr, atol=1e-12)
    assert np.isinf(thr[0]) and np.isinf(ref_thr[0])
    np.testing.assert_allclose(thr[1:], ref_thr[1:])


def test_continuous_scores_without_ties() -> None:
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, 500)
    p = rng.random(500) * 0.6 + 0.3 * y
    assert M.roc_auc(y, p) == pytest.approx(skm.roc_auc_score(y, p), abs=1e-9)
    assert M.average_precision(y, p) == pytest.approx(skm.average_precision_score(y, p), abs=1e-9)
    assert M.equal_error_rate(y, p) == pytest.approx(_reference_eer(y, p), abs=1e-6)


def test_hand_computed_small_case() -> None:
    y = [0, 0, 1, 1]
    p = [0.1, 0.4, 0.35, 0.8]
    # Pairs (fake, real): (0.35 vs 0.1) win, (0.35 vs 0.4) loss, (0.8 vs both) win -> 3 / 4.
    assert M.roc_auc(y, p) == pytest.approx(0.75)
    # Ranked: 0.8 (fake) P=1 R=.5; 0.4 (real); 0.35 (fake) P=2/3 R=1 -> AP = .5 * 1 + .5 * 2/3.
    assert M.average_precision(y, p) == pytest.approx(0.5 + 1 / 3)
    # ROC points (0,0) (0,.5) (.5,.5) (.5,1) (1,1): FPR = FNR = 0.5 on the segment (0,.5)->(.5,.5).
    assert M.equal_error_rate(y, p) == pytest.approx(0.5)
    assert M.accuracy(y, p) == pytest.approx(0.75)  # 0.35 is called real
    expected = -(np.log(0.9) + np.log(0.6) + np.log(0.35) + np.log(0.8)) / 4
    assert M.log_loss(y, p) == pytest.approx(expected)


def test_all_tied_scores_give_chance() -> None:
    y = [0, 1, 0, 1, 1]
    p = [0.5] * 5
    assert M.roc_auc(y, p) == pytest.approx(0.5)
    assert M.equal_error_rate(y, p) == pytest.approx(0.5)
    assert M.average_precision(y, p) == pytest.approx(skm.average_precision_score(y, p))


def test_perfect_and_inverted_rankings() -> None:
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.2, 0.7, 0.9])
    assert M.roc_auc(y, p) == 1.0
    assert M.equal_error_rate(y, p) == 0.0
    assert M.average_precision(y, p) == 1.0
    assert M.roc_auc(y, 1 - p) == 0.0
    assert M.equal_error_rate(y, 1 - p) == 1.0


def test_log_loss_clips_with_eps() -> None:
    assert M.log_loss([1], [0.0]) == pytest.approx(-math.log(1e-15))
    assert M.log_loss([0], [1.0], eps=1e-3) == pytest.approx(-math.log(1e-3))
    assert M.log_loss([1, 0], [1.0, 0.0]) == pytest.approx(-math.log(1 - 1e-15), abs=1e-12)
    with pytest.raises(ValueError, match="eps"):
        M.log_loss([1], [0.5], eps=0.0)


@pytest.mark.parametrize("fn", [M.roc_auc, M.average_precision, M.equal_error_rate, M.roc_points])
@pytest.mark.parametrize("labels", [[1, 1, 1], [0, 0]])
def test_one_class_raises(fn, labels) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="both classes"):
        fn(labels, [0.3] * len(labels))


@pytest.mark.parametrize(
    ("y", "p", "match"),
    [
        ([0, 1], [0.5], "2 values"),
        ([], [], "no samples"),
        ([0, 2], [0.1, 0.2], "only 0"),
        ([0, 1], [0.1, 1.2], r"\[0, 1\]"),
        ([0, 1], [0.1, float("nan")], "finite"),
        ([[0, 1]], [[0.1, 0.2]], "one-dimensional"),
    ],
)
def test_bad_input_is_rejected(y, p, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=match):
        M.accuracy(y, p)


def test_summarize_both_classes_and_one_class() -> None:
    y, p = _random_case(11, n=80)
    s = M.summarize(y, p, eps=1e-6, threshold=0.5)
    assert s["n"] == 80 and s["n_fake"] + s["n_real"] == 80 and s["n_fake"] == y.sum()
    assert s["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p), abs=1e-6)
    assert s["log_loss"] == pytest.approx(M.log_loss(y, p, eps=1e-6))
    assert s["eps"] == 1e-6
    only_fake = M.summarize([1, 1, 1], [0.9, 0.2, 0.7])
    assert only_fake["accuracy"] == pytest.approx(2 / 3)
    assert math.isfinite(only_fake["log_loss"])
    assert all(math.isnan(only_fake[k]) for k in ("roc_auc", "average_precision", "eer"))


# --- aggregation ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", AGGREGATIONS.names())
def test_every_aggregation_stays_within_its_inputs(name: str) -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        probs = rng.random(int(rng.integers(1, 12)))
        tracks = rng.integers(0, 3, probs.size)
        value = aggregate(name, probs, tracks)
        assert isinstance(value, float)
        assert probs.min() - 1e-12 <= value <= probs.max() + 1e-12
    assert aggregate(name, [0.3, 0.3, 0.3]) == pytest.approx(0.3)
    with pytest.raises(ValueError):
        aggregate(name, [])
    with pytest.raises(ValueError):
        aggregate(name, [0.2, 1.5])


def test_mean_rule() -> None:
    assert aggregate("mean", [0.1, 0.5, 0.9, 0.3]) == pytest.approx(0.45)


def test_confident_rule_branches() -> None:
    # 2 of 4 clips (> 40 %) are confidently fake: the mean of those two.
    assert aggregate("confident", [0.9, 0.95, 0.3, 0.1]) == pytest.approx(0.925)
    # 1 of 4 confidently fake is not enough; 3 of 4 confidently real is not > 90 %: plain mean.
    assert aggregate("confident", [0.9, 0.1, 0.1, 0.1]) == pytest.approx(0.3)
    # All 10 clips confidently real: their mean.
    reals = [0.1] * 5 + [0.05] * 5
    assert aggregate("confident", reals) == pytest.approx(0.075)
    # 10 of 11 confident reals is 90.9 % > 90 %: the mean of the reals only (the 0.6 is dropped).
    assert aggregate("confident", [0.1] * 10 + [0.6]) == pytest.approx(0.1)
    # Nothing confident: plain mean.
    assert aggregate("confident", [0.4, 0.6]) == pytest.approx(0.5)


def test_max_rule_takes_worst_track() -> None:
    probs = [0.1, 0.3, 0.8, 0.6, 0.2]
    tracks = [0, 0, 1, 1, 2]
    assert aggregate("max", probs, tracks) == pytest.approx(0.7)  # track 1's mean
    assert aggregate("max", probs) == pytest.approx(np.mean(probs))  # one track without ids
    assert aggregate("max", probs, ["a", "a", "b", "b", "c"]) == pytest.approx(0.7)
    with pytest.raises(ValueError, match="tracks"):
        aggregate("max", probs, [0, 1])


def test_unknown_aggregation_names_close_match() -> None:
    with pytest.raises(UnknownNameError, match="confident"):
        aggregate("confidnet", [0.5])
