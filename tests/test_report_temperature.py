"""Temperature in the report: the median (a fit at its bound dominates the mean), capped fits flagged."""

from __future__ import annotations

import math

import numpy as np

from deepfake_detect.experiment.report import temperature_stats
from deepfake_detect.experiment.report_text import render_markdown
from deepfake_detect.models.calibration import at_bound, fit_temperature


def test_at_bound_is_true_only_for_the_fits_bounds() -> None:
    labels = np.array([0, 0, 1, 1], dtype=float)
    backwards = fit_temperature(np.array([0.9, 0.8, 0.2, 0.1]), labels)
    assert at_bound(backwards) and backwards == math.exp(7)
    assert at_bound(math.exp(-7))
    assert not at_bound(fit_temperature(np.array([0.3, 0.6, 0.4, 0.7]), labels))
    assert not at_bound(1.0) and not at_bound(1000.0)


def test_temperature_stats_median_and_capped() -> None:
    s = temperature_stats(np.array([1.2, 0.9, math.exp(7), 1.5, float("nan")]))
    assert s["median"] == np.median([1.2, 0.9, math.exp(7), 1.5]) and s["capped"] == 1
    assert s["mean"] > 200  # what the median avoids


def test_tables_show_the_median_and_count_capped_fits() -> None:
    from test_report_text import _minimal_report, _payload

    payload = _minimal_report(_payload([0.9] * 2, [0.6] * 2, [0.5] * 2, [0.5] * 2))
    t = temperature_stats(np.array([1.0, 2.0, math.exp(7)]))
    payload["table1"]["clip"] = {**payload["table1"]["clip"], "temperature": t}
    payload["table3"]["rows"][0]["clip"] = {**payload["table3"]["rows"][0]["clip"], "temperature": t}
    md = render_markdown(payload)
    assert "| Temperature (Mean column: median); 1 of 3 fits at the bound e^±7 | 2.000 |" in md
    assert " 2.000 (1 at the bound) |" in md  # Table 3's cell: the median, flagged
    assert "| Temperature (median) |" in md  # the column of Tables 2 and 3 says so


def test_final_model_card_flags_a_capped_temperature() -> None:
    from test_report_text import _minimal_report, _payload

    payload = _minimal_report(_payload([0.9] * 2, [0.6] * 2, [0.5] * 2, [0.5] * 2))
    card = {"expected_auc": {"clip_roc_auc": 0.8, "ci95": [0.7, 0.9], "repetitions": 2}}
    model = {"dir": "m", "trained_on": "all", "card": card, "temperature": math.exp(7)}
    capped = render_markdown({**payload, "model": {**model, "temperature_capped": True}})
    assert "at the bound of the fit (e^7)" in capped and "pushed to about 0.5" in capped
    plain = render_markdown({**payload, "model": {**model, "temperature": 1.3, "temperature_capped": False}})
    assert "Temperature 1.300." in plain and "bound of the fit" not in plain


def test_final_model_card_warns_when_its_temperature_is_at_the_bound() -> None:
    from deepfake_detect.experiment.final import temperature_warning

    assert temperature_warning(1.7) is None
    high, low = temperature_warning(math.exp(7)), temperature_warning(math.exp(-7))
    assert high is not None and "near 0.5" in high and "1097" in high
    assert low is not None and "0 or 1" in low
