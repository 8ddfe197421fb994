"""Temperature scaling: the fit against scipy's optimiser on sklearn's log loss, and the model directory's
temperature reaching the probability that `detect` reports."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import minimize_scalar
from sklearn.metrics import log_loss

from deepfake_detect.evaluation.plots import reliability_bins
from deepfake_detect.models.calibration import apply_temperature, fit_temperature, logit


def _scipy_temperature(p: np.ndarray, y: np.ndarray) -> float:
    """Independent reference: minimise sklearn's log loss over log T with scipy's bounded optimiser."""

    def loss(log_t: float) -> float:
        return float(log_loss(y, 1 / (1 + np.exp(-logit(p) / math.exp(log_t))), labels=[0, 1]))

    return math.exp(minimize_scalar(loss, bounds=(-6, 6), method="bounded", options={"xatol": 1e-10}).x)


@pytest.mark.parametrize("seed", range(6))
def test_fit_matches_scipy_on_sklearn_log_loss(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=int(rng.integers(20, 300))).astype(float)
    z = (2 * y - 1) * rng.uniform(0.2, 2.0) + rng.normal(0, 1.5, size=y.size)  # noisy evidence
    p = 1 / (1 + np.exp(-z * rng.uniform(0.3, 4.0)))  # over- or under-confident
    t = fit_temperature(p, y)
    assert t == pytest.approx(_scipy_temperature(p, y), rel=1e-4)
    before, after = log_loss(y, p), log_loss(y, apply_temperature(p, t))
    assert after <= before + 1e-12


def test_overconfident_scores_get_their_temperature_back() -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(0, 2, size=20000)
    y = (rng.random(z.size) < 1 / (1 + np.exp(-z))).astype(float)  # z is the calibrated logit
    p = 1 / (1 + np.exp(-3.0 * z))  # three times too confident
    assert fit_temperature(p, y) == pytest.approx(3.0, rel=0.05)


def test_scaling_keeps_ranking_and_one_half() -> None:
    p = np.array([0.01, 0.2, 0.5, 0.7, 0.999])
    q = apply_temperature(p, 2.5)
    assert np.all(np.diff(q) > 0) and q[2] == pytest.approx(0.5)
    assert q[0] > p[0] and q[-1] < p[-1]  # T > 1 pulls towards 0.5
    with pytest.raises(ValueError, match="positive"):
        apply_temperature(p, 0.0)


def test_degenerate_validation_sets_leave_the_model_as_it_is() -> None:
    assert fit_temperature([0.2, 0.9], [1, 1]) == 1.0  # one class
    assert fit_temperature([], []) == 1.0
    assert fit_temperature([0.5, 0.5], [0, 1]) == 1.0  # no signal
    assert fit_temperature([0.9, 0.1, 0.8], [0, 1, 0]) == pytest.approx(math.exp(7))  # backwards: p -> 0.5
    with pytest.raises(ValueError, match="labels"):
        fit_temperature([0.2, 0.3], [1])


def test_reliability_bins_count_and_average() -> None:
    y = np.array([0, 0, 1, 1, 1])
    p = np.array([0.05, 0.12, 0.15, 0.95, 1.0])
    table = reliability_bins(y, p, bins=10)
    assert table["bin"].tolist() == [0, 1, 9] and table["n"].tolist() == [1, 2, 2]
    assert table["fake_fraction"].tolist() == [0.0, 0.5, 1.0]
    assert table["mean_probability"].tolist() == pytest.approx([0.05, 0.135, 0.975])


def test_detect_engines_report_the_calibrated_probability(detect_model_dir: Path, tmp_path: Path) -> None:
    import shutil

    from deepfake_detect.export import export_onnx
    from deepfake_detect.inference.engine import create_engine

    calibrated = tmp_path / "calibrated"
    shutil.copytree(detect_model_dir, calibrated)
    config = json.loads((calibrated / "config.json").read_text())
    assert config["temperature"] == 1.0
    config["temperature"] = 2.0
    (calibrated / "config.json").write_text(json.dumps(config))
    rng = np.random.default_rng(0)
    x, n = rng.normal(size=(4, 9, 32)).astype(np.float32), np.array([9, 5, 8, 1])
    plain = create_engine("torch", detect_model_dir, precision="32").score(x, n)
    expected = 1 / (1 + np.exp(-logit(plain) / 2.0))
    scaled = create_engine("torch", calibrated, precision="32").score(x, n)
    assert scaled == pytest.approx(expected, abs=1e-6) and not np.allclose(plain, scaled)
    onnx_dir = export_onnx(calibrated, tmp_path / "onnx")  # the exported directory keeps the temperature
    assert create_engine("onnx", onnx_dir).score(x, n) == pytest.approx(expected, abs=1e-4)
