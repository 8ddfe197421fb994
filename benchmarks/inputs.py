"""Benchmark inputs besides videos: model directories (random init, or the demo's trained model) and a
synthetic dataset with its clip store (made with the package's own generator and preprocessing)."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deepfake_detect.config import Config
    from deepfake_detect.data.store import ClipStore
    from deepfake_detect.types import VideoRecord


@dataclass(frozen=True)
class ModelSpec:
    """A random-init model dir: the paper's architecture by default (ResNet-50 -> 512-d, LSTM 4 x 512)."""

    backbone: str = "resnet50"
    input_size: int = 224
    embed_dim: int = 512
    hidden: int = 512
    layers: int = 4
    clip_len: int = 100
    seed: int = 0

    @property
    def name(self) -> str:
        head = f"lstm{self.layers}x{self.hidden}-c{self.clip_len}"
        return f"{self.backbone}-{self.input_size}-e{self.embed_dim}-{head}"


QUICK_MODEL = ModelSpec(backbone="cnn4", input_size=64, embed_dim=128, hidden=64, layers=2, clip_len=16)


def model_dir(cache: Path, spec: ModelSpec = ModelSpec()) -> Path:
    """Write (once) a model dir with ``spec``'s extractor and LSTM head, random init from ``spec.seed``."""
    import torch

    from deepfake_detect.config import ClipConfig, FaceConfig
    from deepfake_detect.models import FeatureExtractor, create_head
    from deepfake_detect.models.io import save_model_dir

    path = cache / "models" / f"{spec.name}-s{spec.seed}"
    if (path / "config.json").exists():
        return path
    torch.manual_seed(spec.seed)
    extractor = FeatureExtractor(spec.backbone, embed_dim=spec.embed_dim, input_size=spec.input_size).eval()
    kwargs: dict[str, Any] = {
        "input_dim": spec.embed_dim,
        "hidden": spec.hidden,
        "layers": spec.layers,
        "dropout": 0.3,
    }
    head = create_head("lstm", **kwargs).eval()
    clips = ClipConfig(frame_stride=1, clip_len=spec.clip_len, min_clip_len=min(16, spec.clip_len))
    extra = {"note": "random init (benchmark)"}
    path.mkdir(parents=True, exist_ok=True)
    save_model_dir(
        path,
        extractor,
        head,
        head_name="lstm",
        head_kwargs=kwargs,
        threshold=0.5,
        faces=FaceConfig.model_validate({}),
        clips=clips,
        extra=extra,
    )
    return path


def demo_model_dir(cache: Path | None = None) -> Path | None:
    """A demo-trained model: $DFD_DEMO_MODEL, else the one ``deepfake-detect demo`` recorded last, else a
    copy kept in ``cache/models/demo-trained`` (put one there to pin it for later runs)."""
    named = os.environ.get("DFD_DEMO_MODEL")
    if named:
        return Path(named) if (Path(named) / "config.json").is_file() else None
    from deepfake_detect.inference import last_model_path

    found = last_model_path()
    if found is None and cache is not None and (cache / "models" / "demo-trained" / "config.json").is_file():
        found = cache / "models" / "demo-trained"
    return found


# -- a synthetic dataset and its clip store ---------------------------------------------------------
def demo_config(overrides: list[str] | None = None) -> Config:
    """The packaged demo configuration (cnn4 at 64 px, 96-px crops, clips of 24 frames), with ``--set``
    style ``overrides`` (``faces.tracked=true``) applied."""
    from importlib import resources

    from deepfake_detect.config import load_config

    path = Path(str(resources.files("deepfake_detect").joinpath("configs", "demo.yaml")))
    return load_config(path, overrides=overrides)


def synth_records(cache: Path, videos: int, frames: int) -> list[VideoRecord]:
    """The built-in synthetic temporal benchmark (320x240, demo-sized), generated once into ``cache``."""
    from deepfake_detect.data.layouts import load_dataset
    from deepfake_detect.data.synth import generate_dataset

    root = cache / "synth" / f"v{videos}-f{frames}"
    if not (root / "metadata.json").exists():
        print(f"generating {videos} synthetic videos into {root} ...", file=sys.stderr, flush=True)
        generate_dataset(root, videos=videos, seed=0, size=(320, 240), frames=frames)
    listing = load_dataset("dfdc", root)
    return sorted(listing.records, key=lambda r: r.video_id)


def clip_store(cache: Path, videos: int, frames: int) -> ClipStore:
    """A clip store made once from :func:`synth_records` by ``preprocess_dataset`` with the demo settings
    (a new one whenever those settings change)."""
    import hashlib
    import json

    from deepfake_detect.data.store import ClipStore
    from deepfake_detect.preprocess import preprocess_dataset, store_settings

    config = demo_config()
    digest = hashlib.sha1(json.dumps(store_settings(config), sort_keys=True).encode()).hexdigest()[:8]
    root = cache / "stores" / f"v{videos}-f{frames}-{digest}"
    if not (root / "manifest.csv").exists():
        records = synth_records(cache, videos, frames)
        preprocess_dataset(records, root, config, workers=2)
    return ClipStore(root)
