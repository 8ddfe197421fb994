"""Typed, validated configuration (SPEC §2): YAML in, dotted overrides from the CLI.

Every ambiguous reading of the paper is a field here whose default is our reading. Sections:
``faces``, ``clips``, ``preprocess``, ``extractor``, ``head``, ``evaluation``, ``experiment``.

Old names still load, with a logging warning naming the new one: the section ``detector:`` (and
``--set detector.key=value``) is read as ``head:``, and its ``head`` key as ``head.name``.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from deepfake_detect.infra.media import DEFAULT_MAX_PIXELS

# The demuxers (FFmpeg's names) untrusted files are read with: real video containers only. Playlist,
# concat, text, raw-image and image-pipe demuxers are left out on purpose (they read other files, or
# turn any bytes into a "video"). Configurable wherever videos are read (DetectOptions.container_formats,
# preprocess.container_formats, the service's container_formats).
DEFAULT_CONTAINER_FORMATS: tuple[str, ...] = (
    "mov",
    "mp4",
    "m4a",
    "3gp",
    "3g2",
    "mj2",  # ISO base media / QuickTime
    "matroska",
    "webm",
    "avi",
    "mpegts",
    "flv",
    "ogg",
    "mpeg",  # MPEG program stream (.mpg, .vob)
    "asf",  # .wmv, .asf
    "mxf",
    "nut",
    "ivf",
)


logger = logging.getLogger(__name__)


class ConfigError(ValueError):
    """A configuration file or override that cannot be used; the message says which key and why."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class FaceConfig(_Section):
    """Face detection, tracking and cropping (paper §3, SPEC §2 'Frames and faces').

    ``detect_max_side``, ``min_face_size``, ``score_threshold`` and ``device`` are the detection settings
    every backend may take (each gets those its constructor names); ``detector_options`` are the backend's
    own (defaults: in its constructor).
    """

    detector: str = "mtcnn"
    detect_max_side: int = Field(
        640, ge=64, description="frames are downscaled to this longest side for detection"
    )
    min_face_size: int = Field(40, ge=8, description="smallest face, in pixels of the full-resolution frame")
    score_threshold: float = Field(0.9, ge=0.0, le=1.0)
    margin: float = Field(0.2, ge=0.0, le=2.0, description="extra context around the square face box")
    crop_size: int = Field(256, ge=16, le=1024)
    mse_threshold: float = Field(
        0.5, gt=0.0, description="tracking: pair a face with a track only below this MSE"
    )
    compare_size: int = Field(64, ge=8, le=256, description="crops are compared at this size for tracking")
    detect_every: int = Field(
        1,
        ge=1,
        le=30,
        description="run the detector on every k-th kept frame; faces in between get boxes interpolated "
        "along their track between two detections (1: every frame, as the paper)",
    )
    detect_batch: int = Field(
        1,
        ge=1,
        le=64,
        description="with detect_every > 1, detect in this many of those frames in one batched call (for a "
        "GPU; the frames between them, detect_batch x detect_every, are held in memory meanwhile)",
    )
    tracked: bool = Field(
        False,
        description="at keyframes, detect only in a small region around each face of the last keyframe, "
        "at that face's scale; the whole frame is scanned every full_scan_every keyframes, when no face is "
        "known and when a face is not found again (off by default, in detect and in preprocessing)",
    )
    full_scan_every: int = Field(
        8, ge=1, le=1000, description="with tracked, scan the whole frame at every k-th keyframe (1: always)"
    )
    device: str = "cpu"
    detector_options: dict[str, Any] = Field(
        default_factory=dict,
        description="keyword arguments of the face detector's constructor beyond the settings above, e.g. "
        "haar: {min_neighbors: 3}; the rest keep the detector's own defaults",
    )

    @model_serializer(mode="wrap")
    def _omit_empty_options(self, handler: SerializerFunctionWrapHandler) -> Any:
        # no options: the same document as before the field existed (model directories, store settings)
        data = handler(self)
        if isinstance(data, dict) and not self.detector_options:
            data.pop("detector_options", None)
        return data


class ClipConfig(_Section):
    """Two-pointer constant-interval selection (paper §3)."""

    frame_stride: int = Field(1, ge=1, description="keep every k-th decoded frame")
    clip_len: int = Field(100, ge=2, description="frames per training clip (paper: 100)")
    min_clip_len: int = Field(16, ge=2, description="inference scores a track with at least this many frames")

    @model_validator(mode="after")
    def _min_not_above_len(self) -> ClipConfig:
        if self.min_clip_len > self.clip_len:
            raise ValueError(f"min_clip_len ({self.min_clip_len}) must not exceed clip_len ({self.clip_len})")
        return self


class PreprocessConfig(_Section):
    workers: int = Field(1, ge=1)
    jpeg_quality: int = Field(95, ge=50, le=100)
    timeout_s: float = Field(600.0, gt=0, description="per-video wall-clock limit in the worker process")
    memory_mb: int = Field(
        8192, ge=256, description="per-worker memory limit (MB) above what the worker held once started"
    )
    max_pixels: int = Field(DEFAULT_MAX_PIXELS, ge=1, description="larger frames are rejected as too_large")
    container_formats: list[str] = Field(
        default_factory=lambda: list(DEFAULT_CONTAINER_FORMATS),
        min_length=1,
        description="FFmpeg demuxers videos may be read with; others are unsupported_format",
    )

    max_frames: int | None = Field(
        None, ge=1, description="stop decoding a video after this many kept frames"
    )
    threads_per_worker: int = Field(
        1, ge=1, description="torch/OpenCV threads in each worker: more workers beat more threads"
    )

    @field_validator("container_formats")
    @classmethod
    def _demuxer_names(cls, names: list[str]) -> list[str]:
        if not all(re.fullmatch(r"[a-z0-9_]+", name) for name in names):
            raise ValueError(f"container formats must be FFmpeg demuxer names like 'mp4', got {names}")
        return names


class ExtractorConfig(_Section):
    """Per-frame feature extractor trained with the cosine-similarity hinge loss."""

    backbone: str = "resnet50"
    weights: Path | None = None
    embed_dim: int = Field(512, ge=2)
    input_size: int | None = Field(None, ge=16, description="None: the backbone's own size")
    hinge: bool = Field(True, description="False: no extractor training (the paper's pretrained baseline)")
    epochs: int = Field(100, ge=0)
    lr: float = Field(1e-3, gt=0)
    batch_size: int = Field(8, ge=1, description="clips per batch")
    extractor_clip_len: int = Field(16, ge=2, description="frames per training window")
    margin: float = Field(1.0, gt=0)
    similarity_window: int | None = Field(None, ge=1)
    precision: Literal["32", "bf16-mixed", "16-mixed"] = "32"

    @field_validator("precision", mode="before")
    @classmethod
    def _precision_as_text(cls, value: object) -> object:
        # ``--set extractor.precision=32`` arrives as the YAML integer 32
        return str(value) if isinstance(value, int) else value

    channels_last: bool = True
    num_workers: int = Field(0, ge=0, description="DataLoader workers (persistent; 0: the main process)")
    frame_cache_mb: float = Field(
        512.0,
        ge=0.0,
        description="decoded crops kept in memory (per process and loader worker) so that later epochs "
        "skip JPEG decoding; 0 turns it off",
    )


class HeadConfig(_Section):
    """Sequence head over per-frame embeddings; ``name`` picks it and ``options`` go to its constructor.

    The head's defaults live in its constructor's signature (``models.heads``; the LSTM's: the paper's
    4 x 512, dropout 0.3). The old keys ``hidden``, ``layers`` and ``dropout`` still load, as options,
    with a logging warning.
    """

    name: str = "lstm"
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="keyword arguments of the head's constructor, e.g. {hidden: 32, layers: 2}; the rest "
        "keep the head's own defaults",
    )
    epochs: int = Field(20, ge=0)
    lr: float = Field(1e-3, gt=0)
    batch_size: int = Field(32, ge=1)
    threshold: float = Field(0.5, gt=0.0, lt=1.0)
    keep: Literal["best", "last"] = Field(
        "best",
        description="weights kept after training: the epoch with the lowest validation loss, or the last one "
        "(the paper's fixed epoch count; steadier when the validation set is small)",
    )

    @model_validator(mode="before")
    @classmethod
    def _old_option_keys(cls, data: Any) -> Any:
        return move_into_options(data, "head", _OLD_HEAD_OPTIONS) if isinstance(data, dict) else data


class EvaluationConfig(_Section):
    eps: float = Field(1e-15, gt=0.0, lt=0.5)
    threshold: float = Field(0.5, gt=0.0, lt=1.0)
    aggregation: str = "mean"


class ExperimentConfig(_Section):
    """The paper's protocol: repeated random test splits and tables 1-3."""

    repeats: int = Field(6, ge=1)
    test_clips: int = Field(100, ge=1)
    val_clips: int = Field(308, ge=0)
    split_by: Literal["source", "clip"] = "source"
    table2_backbones: list[str] = Field(default_factory=lambda: ["inception_resnet_v2", "cnn4", "resnet50"])
    table3_heads: list[str] = Field(default_factory=lambda: ["lstm", "mlp", "frame-mlp"])
    table2_overrides: dict[str, dict[str, Any]] = Field(
        default_factory=lambda: {"inception_resnet_v2": {"hinge": False}},
        description="per-backbone changes to the extractor section for Table 2 (hinge: false = the paper's "
        "pretrained baseline, not hinge-trained; weights: a local file; input_size)",
    )
    table2_repeats: int | None = Field(
        None, ge=0, description="compute Table 2 on the first N repetitions only (None: on every repetition)"
    )
    replicate_by: Literal["split", "dataset"] = Field(
        "split",
        description="split: every repetition re-splits all clips (the paper); dataset: repetition r splits "
        "only the r-th dataset (e.g. data.synth.replications), so repetitions are independent",
    )
    robustness: bool = Field(
        False,
        description="re-encode repetition 0's test videos (H.264 CRF 23/32/40, half resolution) and score "
        "them again with that repetition's model (needs videos: data.synth or data.root)",
    )
    cross_track: bool = Field(
        False,
        description="score repetition 0's model on a fresh synthetic set of the other track (temporal <-> "
        "spatial; needs data.synth with track temporal or spatial)",
    )
    cross_track_reverse: bool = Field(
        True,
        description="with cross_track: also train repetition 0's recipe once on the other track and score it "
        "on this track's test clips (one extra small training)",
    )
    final_model: Literal["all", "rep0"] = Field(
        "all",
        description="the model written to OUT/model: trained on all labelled clips after the repetitions "
        "(val_clips held out to fit its temperature), or repetition 0's",
    )
    cpu_kernels: Literal["native", "avx2"] = Field(
        "native",
        description="float32 kernels of the experiment and demo commands: native (fastest for this CPU) or "
        "avx2 (the same numbers on every x86 CPU with AVX2; see runtime.pin_cpu_kernels)",
    )
    frame_model: Path | None = Field(
        None,
        description="an imported frame-model directory (import-model): adds 'frame model alone' (its own "
        "classifier, mean P(fake) over a clip's crops) and 'frame model + head' rows (its pooled features as "
        "a frozen extractor) on every repetition's splits",
    )
    frame_model_member: int = Field(0, ge=0, description="which member of frame_model both rows use")
    frame_model_heads: list[str] | None = Field(
        None, description="heads trained on the frame model's features (None: head.name and table3_heads)"
    )


class SynthConfig(_Section):
    """The built-in synthetic benchmark (SPEC §6), generated into the experiment's output folder."""

    videos: int = Field(48, ge=2)
    frames: int = Field(64, ge=2, description="frames per video")
    width: int = Field(320, ge=32)
    height: int = Field(240, ge=32)
    fps: float = Field(25.0, gt=0)
    track: Literal["temporal", "spatial", "both"] = "temporal"
    jitter: float = Field(1.0, ge=0.0, description="scales the fakes' per-frame jitter (smaller is harder)")
    seed: int | None = Field(None, description="None: the top-level seed")
    replications: int = Field(
        1,
        ge=1,
        description="independent datasets, generator seeds seed, seed + 1, ...: with experiment.replicate_by "
        "dataset, repetition r splits only dataset r, so repetitions share no video",
    )


class DataConfig(_Section):
    root: Path | None = None
    synth: SynthConfig | None = Field(
        None, description="generate the built-in synthetic dataset instead of reading root"
    )
    layout: str = "dfdc"
    layout_options: dict[str, Any] = Field(
        default_factory=dict,
        description="layout options, e.g. ffpp: {compression: c40, methods: [Deepfakes]}; csv: {csv: x.csv}",
    )
    clips_dir: Path | None = None


class Config(BaseModel):
    """The whole configuration. Paths inside a YAML file are relative to that file."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    seed: int = 0
    data: DataConfig = Field(default_factory=DataConfig)
    faces: FaceConfig = Field(default_factory=FaceConfig)
    clips: ClipConfig = Field(default_factory=ClipConfig)
    preprocess: PreprocessConfig = Field(default_factory=PreprocessConfig)
    extractor: ExtractorConfig = Field(default_factory=ExtractorConfig)
    head: HeadConfig = Field(default_factory=HeadConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    experiment: ExperimentConfig = Field(default_factory=ExperimentConfig)

    @model_validator(mode="before")
    @classmethod
    def _old_section_names(cls, data: Any) -> Any:
        return migrate_sections(data) if isinstance(data, dict) else data


def move_into_options(
    section: dict[str, Any], where: str, old_keys: tuple[str, ...], options_key: str = "options"
) -> dict[str, Any]:
    """``section`` with its deprecated top-level keys ``old_keys`` moved into ``section[options_key]``
    (a logging warning naming the new key each); a key given both ways is refused."""
    moved = [key for key in old_keys if key in section]
    if not moved:
        return section
    result = dict(section)
    options = dict(result.get(options_key) or {})
    for key in moved:
        if key in options:
            raise ValueError(f"{where}.{key} and {where}.{options_key}.{key} are both given; keep the second")
        logger.warning("config key %s.%s is deprecated; use %s.%s.%s", where, key, where, options_key, key)
        options[key] = result.pop(key)
    result[options_key] = options
    return result


# Head hyperparameters that were HeadConfig fields before they became the head's own options.
_OLD_HEAD_OPTIONS = ("hidden", "layers", "dropout")

# Deprecated names -> their new names: the sections and, within each, the keys that were renamed.
_OLD_SECTIONS: dict[str, tuple[str, dict[str, str]]] = {"detector": ("head", {"head": "name"})}


def _deprecated(old: str, new: str, keys: dict[str, str]) -> None:
    renamed = "".join(f"; its key {k!r} is now {new}.{v}" for k, v in keys.items())
    logger.warning("config section %r is deprecated; use %r%s", old, new, renamed)


def migrate_sections(raw: dict[str, Any]) -> dict[str, Any]:
    """``raw`` with old section names renamed (a logging warning each); both names at once are refused."""
    result = dict(raw)
    for old, (new, keys) in _OLD_SECTIONS.items():
        if old not in result:
            continue
        if new in result:
            raise ConfigError(
                f"config sections {old!r} and {new!r} are both given: {old!r} is the deprecated name "
                f"of {new!r}; keep only {new!r}"
            )
        _deprecated(old, new, keys)
        section = result.pop(old)
        if isinstance(section, dict):
            section = {keys.get(k, k): v for k, v in section.items()}
        result[new] = section
    return result


def _migrate_key(keys: list[str]) -> list[str]:
    """Dotted override keys with an old section name (and renamed key) rewritten to the new ones."""
    if keys[0] not in _OLD_SECTIONS:
        return keys
    new, renamed = _OLD_SECTIONS[keys[0]]
    _deprecated(keys[0], new, renamed)
    rest = [renamed.get(keys[1], keys[1]), *keys[2:]] if len(keys) > 1 else []
    return [new, *rest]


def _parse_scalar(text: str) -> Any:
    """Read an override's value with YAML rules: ``3`` -> int, ``null`` -> None, ``[a, b]`` -> list."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``section.key=value`` overrides to a raw config dict (a new dict is returned).

    Old section names, in ``raw`` and in the overrides, are renamed first (see :func:`migrate_sections`),
    so ``--set detector.epochs=3`` also applies to a file with a ``head:`` section.
    """
    result: dict[str, Any] = migrate_sections(yaml.safe_load(yaml.safe_dump(raw)) or {})
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form section.key=value")
        dotted, value = item.split("=", 1)
        keys = [k for k in dotted.strip().split(".") if k]
        if not keys:
            raise ConfigError(f"override {item!r} has an empty key")
        keys = _migrate_key(keys)
        node = result
        for key in keys[:-1]:
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: {key!r} is not a section")
            node = child
        node[keys[-1]] = _parse_scalar(value)
    return result


def _resolve_paths(raw: dict[str, Any], base: Path) -> None:
    """Make relative paths in known path fields relative to the YAML file's folder."""
    known = (("data", "root"), ("data", "clips_dir"), ("extractor", "weights"), ("experiment", "frame_model"))
    for section, key in known:
        node = raw.get(section)
        if isinstance(node, dict) and isinstance(node.get(key), str):
            path = Path(node[key]).expanduser()
            node[key] = str(path if path.is_absolute() else (base / path).resolve())
    overrides = (raw.get("experiment") or {}).get("table2_overrides")
    if isinstance(overrides, dict):
        for entry in overrides.values():
            if isinstance(entry, dict) and isinstance(entry.get("weights"), str):
                path = Path(entry["weights"]).expanduser()
                entry["weights"] = str(path if path.is_absolute() else (base / path).resolve())


def config_from_dict(raw: dict[str, Any], overrides: list[str] | None = None) -> Config:
    """Validate a raw mapping (plus overrides) into a :class:`Config` with readable errors."""
    merged = apply_overrides(raw, overrides or [])
    try:
        return Config.model_validate(merged)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "(top level)"
            lines.append(f"  {where}: {err['msg']}")
        raise ConfigError("invalid configuration:\n" + "\n".join(lines)) from None


def load_config(path: Path | str | None = None, overrides: list[str] | None = None) -> Config:
    """Load a YAML config (or the defaults when ``path`` is None) and apply dotted overrides."""
    raw: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML: {exc}") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path} must hold a mapping at the top level")
        raw = loaded
        _resolve_paths(raw, path.parent.resolve())
    return config_from_dict(raw, overrides)


def dump_config(config: Config) -> str:
    """The config as YAML (paths as strings), for reports and model directories."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


def __getattr__(name: str) -> Any:
    if name == "DetectorConfig":  # the pre-rename name of HeadConfig
        logger.warning("%s.DetectorConfig is deprecated; use HeadConfig", __name__)
        return HeadConfig
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
