"""Deterministic verdicts: a stub engine whose window probabilities are fixed by the test.

``build_verdict(...).result()`` is what ``Detector.detect`` ends with; here the options go through
``resolve`` as in the detector, so a rule or threshold that were silently replaced by the defaults would be
caught.
Expected values are computed by hand from the window probabilities.
"""

from __future__ import annotations

import numpy as np
import pytest

from deepfake_detect.config import ClipConfig, FaceConfig
from deepfake_detect.inference import DetectOptions
from deepfake_detect.inference.options import resolve
from deepfake_detect.inference.verdict import build_verdict
from deepfake_detect.models.io import ModelDirConfig
from deepfake_detect.types import FaceTrack, VideoStatus

CLIP_LEN = 8  # scoring windows are 8 frames long: a 16-frame track has two, an 8-frame track one


class StubEngine:
    """P(fake) of a window = the first feature of its first frame (set per window by :func:`track`)."""

    name = "stub"

    def __init__(self, threshold: float = 0.5) -> None:
        clips = ClipConfig(frame_stride=1, clip_len=CLIP_LEN, min_clip_len=4)
        self.config = ModelDirConfig(
            backbone="cnn4",
            embed_dim=2,
            input_size=64,
            mean=(0.0, 0.0, 0.0),
            std=(1.0, 1.0, 1.0),
            head="lstm",
            threshold=threshold,
            faces=FaceConfig().model_dump(mode="json"),
            clips=clips.model_dump(mode="json"),
        )

    def embed(self, frames: np.ndarray) -> np.ndarray:
        raise AssertionError("the verdict tests never embed crops")

    def score(self, embeddings: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        return embeddings[:, 0, 0].astype(np.float64)  # (B,)


class _NoTimer:
    def add(self, stage: str, seconds: float) -> None:
        return None


def track(track_id: int, window_probs: list[float]) -> FaceTrack:
    """A track of ``8 * len(window_probs)`` consecutive frames whose k-th scoring window scores
    ``window_probs[k]``."""
    n = CLIP_LEN * len(window_probs)
    embeddings = np.ones((n, 2), dtype=np.float32)
    for k, p in enumerate(window_probs):
        embeddings[k * CLIP_LEN : (k + 1) * CLIP_LEN, 0] = p
    frames = tuple(range(n))
    return FaceTrack(track_id, frames, tuple(f / 12.0 for f in frames), embeddings)


def verdict(tracks: list[FaceTrack], engine: StubEngine | None = None, **options: object):  # type: ignore[no-untyped-def]
    engine = engine or StubEngine()
    settings = resolve(DetectOptions(keep_similarity=False, **options), engine.config)  # type: ignore[arg-type]
    built = build_verdict("clip.mp4", tracks, engine, settings, 1, _NoTimer(), {})  # type: ignore[arg-type]
    return built.result()


@pytest.mark.parametrize("p", [0.25, 0.5, 0.75])  # exact in float32: p == threshold exactly
def test_a_probability_equal_to_the_threshold_is_fake(p: float) -> None:
    result = verdict([track(0, [p, p])], threshold=p)
    assert result.status is VideoStatus.OK and result.fake_probability == p
    assert result.label == "fake" and result.threshold == p
    below = verdict([track(0, [p, p])], threshold=p + 0.01)
    assert below.label == "real" and below.threshold == pytest.approx(p + 0.01)


def test_a_custom_threshold_replaces_the_models() -> None:
    engine = StubEngine(threshold=0.5)
    assert verdict([track(0, [0.375])], engine).label == "real"  # the model's 0.5
    lowered = verdict([track(0, [0.375])], engine, threshold=0.25)
    assert lowered.label == "fake" and lowered.threshold == 0.25
    raised = verdict([track(0, [0.625])], StubEngine(threshold=0.25), threshold=0.75)
    assert raised.label == "real" and raised.threshold == 0.75


# track 0: windows 0.85 and 0.1 (mean 0.475); track 1: one window 0.95
TWO_TRACKS = [(0, [0.85, 0.1]), (1, [0.95])]
EXPECTED = {
    "mean": (0.85 + 0.1 + 0.95) / 3,  # 0.6333: every window of every track
    "max": 0.95,  # per-track means 0.475 and 0.95: the most fake face
    "confident": (0.85 + 0.95) / 2,  # 2 of 3 windows > 0.8 (more than 40 %): their mean, 0.9
}


@pytest.mark.parametrize("rule", sorted(EXPECTED))
def test_each_aggregation_rule_over_two_tracks(rule: str) -> None:
    result = verdict([track(i, probs) for i, probs in TWO_TRACKS], aggregation=rule, threshold=0.7)
    assert result.status is VideoStatus.OK and len(result.faces) == 2
    assert result.fake_probability == pytest.approx(EXPECTED[rule], abs=1e-6)
    assert result.label == ("fake" if EXPECTED[rule] >= 0.7 else "real")  # mean: real; max, confident: fake
    faces = {face.track_id: face for face in result.faces}
    assert faces[0].fake_probability == pytest.approx(0.475, abs=1e-6) and faces[0].n_windows == 2
    assert faces[1].fake_probability == pytest.approx(0.95, abs=1e-6) and faces[1].n_windows == 1


def test_the_models_own_rule_is_used_when_none_is_given() -> None:
    engine = StubEngine()
    engine.config = engine.config.model_copy(update={"extra": {"aggregation": "max"}})
    result = verdict([track(i, probs) for i, probs in TWO_TRACKS], engine)
    assert result.fake_probability == pytest.approx(0.95, abs=1e-6)


def test_no_track_is_no_face_and_too_short_tracks_are_too_short() -> None:
    assert verdict([]).status is VideoStatus.NO_FACE
    frames = (0, 1, 2)
    short = FaceTrack(0, frames, tuple(f / 12.0 for f in frames), np.full((3, 2), 0.9, np.float32))
    result = verdict([short])
    assert result.status is VideoStatus.TOO_SHORT and result.fake_probability is None and result.label is None
