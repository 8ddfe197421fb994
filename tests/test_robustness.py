"""Robustness tables: re-encoding changes the pictures as asked; the table scores re-encoded clips."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from conftest import write_face_clip
from deepfake_detect.config import config_from_dict
from deepfake_detect.experiment.robustness import reencode
from deepfake_detect.video.decode import iter_frames, probe


def _frames(path: Path) -> np.ndarray:
    return np.stack([f.image.astype(np.float32) for f in iter_frames(path)])


def test_reencode_quality_and_size(tmp_path: Path, astronaut_rgb: np.ndarray) -> None:
    src = write_face_clip(tmp_path / "src.mp4", [astronaut_rgb], frames=10, side=160)
    original = _frames(src)
    errors = {}
    for crf in (23, 40):
        out = reencode(src, tmp_path / f"crf{crf}.mp4", crf)
        again = _frames(out)
        assert again.shape == original.shape
        errors[crf] = float(np.abs(again - original).mean())
    assert errors[40] > errors[23] > 0  # a higher CRF loses more
    half = reencode(src, tmp_path / "half.mp4", 23, scale=0.5)
    info, full = probe(half), probe(src)
    assert (info.width, info.height) == (full.width // 2, full.height // 2) and len(_frames(half)) == 10


@pytest.mark.slow
def test_robustness_table_scores_every_condition(tmp_path: Path) -> None:
    from deepfake_detect.data.layouts import load_dataset
    from deepfake_detect.data.synth import generate_dataset
    from deepfake_detect.experiment.robustness import robustness_table
    from deepfake_detect.models import FeatureExtractor, create_head

    generate_dataset(tmp_path / "synth", videos=4, seed=0, size=(256, 192), frames=20)
    records = load_dataset("dfdc", tmp_path / "synth", name="synth").records
    config = config_from_dict(
        {
            "faces": {"crop_size": 64},
            "clips": {"clip_len": 8, "min_clip_len": 8},
            "preprocess": {"workers": 1},
        }
    )
    extractor = FeatureExtractor("cnn4", 16, input_size=32).eval()
    head = SimpleNamespace(head=create_head("lstm", input_dim=16, hidden=8, layers=1).eval())
    rows = robustness_table(
        config,
        records,
        [r.video_id for r in records],
        extractor,
        head,
        tmp_path / "rob",  # type: ignore[arg-type]
        conditions={"CRF 40": (40, 1.0)},
    )
    assert [r["condition"] for r in rows] == ["as generated", "CRF 40"]
    assert all(r["clips"] >= 4 and r["videos"] >= 2 for r in rows)
    assert all(np.isnan(r["roc_auc"]) or 0 <= r["roc_auc"] <= 1 for r in rows)
    assert len(list((tmp_path / "rob" / "CRF_40" / "videos").glob("*.mp4"))) == 4
    assert rows[0]["clips"] == pytest.approx(rows[1]["clips"], abs=4)
