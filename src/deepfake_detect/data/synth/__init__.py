"""Built-in synthetic deepfake benchmark (SPEC §6): real face photos in moving scenes, face-swap composites
that are constant over time in REAL videos and jitter per frame in FAKE ones, H.264, DFDC-style metadata."""

from deepfake_detect.data.synth.dataset import (
    DEFAULT_CRFS,
    TRACKS,
    SynthError,
    Track,
    generate_dataset,
    video_names,
)
from deepfake_detect.data.synth.swap import JITTER_STD

__all__ = ["DEFAULT_CRFS", "JITTER_STD", "TRACKS", "SynthError", "Track", "generate_dataset", "video_names"]
