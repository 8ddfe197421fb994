"""A fit prints none of Lightning's INFO chatter (GPU/TPU lines, the litlogger tip); warnings still pass."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deepfake_detect.config import config_from_dict
from deepfake_detect.training import train_head
from deepfake_detect.training.trainer import quiet_lightning

RANK_ZERO = "lightning.pytorch.utilities.rank_zero"


@pytest.fixture(autouse=True)
def lightning_at_info() -> Iterator[None]:
    """Lightning's loggers as its import leaves them (INFO), whatever earlier tests set (the CLI's logging
    set-up lowers them to WARNING before Lightning is imported, and Lightning's import raises them again)."""
    loggers = [logging.getLogger(n) for n in ("lightning.pytorch", "lightning.fabric", RANK_ZERO)]
    saved = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.INFO)
    yield
    for lg, level in zip(loggers, saved, strict=True):
        lg.setLevel(level)


def _fit(tmp_path: Path) -> None:
    rows = pd.DataFrame(
        {"video_id": [f"v{i}" for i in range(8)], "track": 0, "clip_index": 0, "label": [0, 1] * 4}
    )
    rng = np.random.default_rng(0)
    embeddings = {f"v{i}/t0/c0": rng.normal(size=(4, 8)).astype(np.float16) for i in range(8)}
    config = config_from_dict(
        {"head": {"name": "mlp", "options": {"hidden": 4}, "epochs": 1, "batch_size": 4}}
    )
    train_head(config, embeddings, rows, None, tmp_path, progress=False)


def test_fit_logs_no_litlogger_tip_nor_device_lines(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.INFO)
    level = logging.getLogger(RANK_ZERO).level
    _fit(tmp_path)
    out, err = capfd.readouterr()
    for text in (caplog.text, out, err):
        assert "litlogger" not in text and "GPU available" not in text and "TPU available" not in text
    assert logging.getLogger(RANK_ZERO).level == level  # restored after the fit


def test_quiet_lightning_keeps_warnings(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    logging.getLogger(RANK_ZERO).info("before")
    with quiet_lightning():
        logging.getLogger(RANK_ZERO).info("chatter")
        logging.getLogger(RANK_ZERO).warning("a real warning")
    logging.getLogger(RANK_ZERO).info("after")
    assert "a real warning" in caplog.text and "chatter" not in caplog.text
    assert "before" in caplog.text and "after" in caplog.text  # only inside the block
