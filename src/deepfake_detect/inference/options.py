"""How the detector reads a video: :class:`DetectOptions` (user choices, None = the model's own setting)
and :class:`Settings`, the options resolved against a model's ``config.json``."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from deepfake_detect.config import DEFAULT_CONTAINER_FORMATS, FaceConfig
from deepfake_detect.evaluation.aggregation import AGGREGATIONS
from deepfake_detect.faces import FACE_DETECTORS
from deepfake_detect.infra.media import DEFAULT_MAX_PIXELS
from deepfake_detect.models.dir_config import ModelDirConfig
from deepfake_detect.video import format_allowlist

PRECISIONS = ("auto", "bf16", "32")


@dataclass
class DetectOptions:
    """Options of :class:`~deepfake_detect.inference.Detector`; ``None`` means "what the model says".

    - ``threshold``: P(fake) at or above which a video is labelled fake (model's, usually 0.5).
    - ``frame_stride``: keep every k-th decoded frame (model's ``clips.frame_stride``); lowered for a
      short video so that it still yields ``min_clip_len`` frames (:func:`video.choose_stride`).
    - ``max_frames``: stop after this many kept frames (None: the whole video).
    - ``detect_max_side``, ``min_face_size``, ``face_detector``: face detection (model's ``faces``).
    - ``detect_every``: the detector runs on every k-th kept frame and faces in between get boxes
      interpolated along their tracks (``faces.track_faces``); 4 by default (far less detection, nearly
      the same P(fake): benchmarks/RESULTS.md, "Figures behind the code"); 1 detects in every frame, as
      preprocessing does unless ``faces.detect_every`` says otherwise. ``detect_batch``: that many of
      those frames go through the detector in one batched call; None: 8 on a GPU (about half MTCNN's time
      there, same place), 1 on the CPU, where batching gains nothing and holds more frames in memory.
      ``detect_threads``: torch threads while detecting faces (1; None: unchanged), see pipeline.
      ``tracked``: at keyframes, look for each face only around its last box (``faces.guided``; the whole
      frame every ``faces.full_scan_every`` keyframes and when a face is lost). False by default: on a
      3-face 1080p video its boxes agreed with per-frame MTCNN (IoU >= 0.9) on fewer frames than full
      keyframe scans did (benchmarks/RESULTS.md, tracked_detect), so it is opt-in until it matches them.
    - ``batch_size``: crops per embedding forward pass. ``precision``: "auto" (bf16 autocast where the
      CPU/GPU supports it, else fp32), "bf16" or "32"; the sequence head always runs in fp32.
      ``channels_last``: NHWC weights and inputs for the extractor.
    - ``keep_similarity`` / ``keep_thumbnails`` / ``keep_embeddings``: what each face result carries.
    - ``aggregation``: rule of ``evaluation.aggregation`` from window to video probability (model's
      ``extra["aggregation"]``, else "mean").
    - ``timeline_window`` / ``timeline_hop``: frames per timeline point (model's ``min_clip_len``) and
      the step between points (window // 2).
    - ``max_pixels`` / ``max_duration_s``: larger frames or longer videos are ``too_large``.
    - ``container_formats``: the FFmpeg demuxers a file may be read with (config.DEFAULT_CONTAINER_FORMATS);
      any other (a playlist, a concat list, an image, text) is ``unsupported_format`` and is not followed.
    """

    threshold: float | None = None
    frame_stride: int | None = field(default=None, metadata={"min": 1})
    max_frames: int | None = field(default=300, metadata={"min": 1})
    detect_max_side: int | None = None
    min_face_size: int | None = None
    batch_size: int = field(default=32, metadata={"min": 1})
    precision: str = "auto"
    channels_last: bool = True
    keep_similarity: bool = True
    keep_thumbnails: bool = True
    aggregation: str | None = None
    timeline_window: int | None = field(default=None, metadata={"min": 1})
    timeline_hop: int | None = field(default=None, metadata={"min": 1})
    max_pixels: int | None = field(default=DEFAULT_MAX_PIXELS, metadata={"min": 1})
    max_duration_s: float | None = None
    container_formats: tuple[str, ...] = DEFAULT_CONTAINER_FORMATS
    face_detector: str | None = None
    detect_every: int = field(default=4, metadata={"min": 1, "max": 30})
    detect_batch: int | None = field(default=None, metadata={"min": 1})
    detect_threads: int | None = field(default=1, metadata={"min": 1})
    tracked: bool = False
    keep_embeddings: bool = False
    similarity_frames: int = field(default=64, metadata={"min": 1})
    thumbnails_per_face: int = field(default=6, metadata={"min": 1})
    thumbnail_size: int = field(default=96, metadata={"min": 1})

    def validate(self) -> None:
        """Raise ValueError naming the first option that cannot be used (the bounds of each field's
        ``metadata``, read by the CLI too; None is "the model's" wherever a field allows it)."""
        if self.threshold is not None and not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must lie strictly between 0 and 1, got {self.threshold}")
        for item in fields(self):
            value, low, high = getattr(self, item.name), item.metadata.get("min"), item.metadata.get("max")
            if value is None or (low is None and high is None):
                continue
            if high is not None and not low <= value <= high:
                raise ValueError(f"{item.name} must be between {low} and {high}, got {value}")
            if value < low:
                none = " (or None)" if "None" in str(item.type) else ""  # the field's annotation
                raise ValueError(f"{item.name} must be >= {low}{none}, got {value}")
        if self.max_duration_s is not None and not self.max_duration_s > 0:
            raise ValueError(f"max_duration_s must be > 0 (or None), got {self.max_duration_s}")
        format_allowlist(self.container_formats)
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.aggregation is not None:
            AGGREGATIONS.get(self.aggregation)  # UnknownNameError lists the known rules
        if self.face_detector is not None:
            FACE_DETECTORS.get(self.face_detector)


def option_default(name: str) -> Any:
    """The default of the :class:`DetectOptions` field ``name`` (the CLI's defaults are these)."""
    return _FIELDS[name].default


def option_bounds(name: str) -> tuple[int | None, int | None]:
    """(min, max) allowed for the :class:`DetectOptions` field ``name`` (None: unbounded)."""
    metadata = _FIELDS[name].metadata
    return metadata.get("min"), metadata.get("max")


_FIELDS = {item.name: item for item in fields(DetectOptions)}


GPU_DETECT_BATCH = 8  # frames per batched face-detector call on a GPU (DetectOptions.detect_batch)


@dataclass(frozen=True)
class Settings:
    """:class:`DetectOptions` resolved against one model and device: every value concrete, validated once
    (by :func:`resolve`). The pipeline, the verdict and the model card read these, never the options."""

    threshold: float
    frame_stride: int
    clip_len: int
    min_clip_len: int
    aggregation: str
    timeline_window: int
    timeline_hop: int
    faces: FaceConfig
    max_frames: int | None
    batch_size: int
    precision: str
    channels_last: bool
    keep_similarity: bool
    keep_thumbnails: bool
    keep_embeddings: bool
    similarity_frames: int
    thumbnails_per_face: int
    thumbnail_size: int
    max_pixels: int | None
    max_duration_s: float | None
    container_formats: tuple[str, ...]
    detect_threads: int | None


def resolve(options: DetectOptions, config: ModelDirConfig, device: str = "cpu") -> Settings:
    """Validate ``options`` and fill every ``None`` from the model's config and the ``device``.

    The model's ``faces`` section and the face options are validated together, once, as one FaceConfig.
    """
    options.validate()
    clips = config.clip_config()
    overrides = {
        "detector": options.face_detector,
        "detect_max_side": options.detect_max_side,
        "min_face_size": options.min_face_size,
    }
    model_faces = dict(config.faces)
    if options.face_detector not in (None, model_faces.get("detector")):
        model_faces.pop("detector_options", None)  # the model's detector's own options, not the other's
    faces = FaceConfig.model_validate(
        {
            **model_faces,
            **{k: v for k, v in overrides.items() if v is not None},
            "detect_every": options.detect_every,
            "tracked": options.tracked,
            "detect_batch": options.detect_batch or (GPU_DETECT_BATCH if device.startswith("cuda") else 1),
        }
    )
    aggregation = options.aggregation or str(config.extra.get("aggregation", "mean"))
    AGGREGATIONS.get(aggregation)  # the model's own rule, checked like the option
    window = options.timeline_window or clips.min_clip_len
    return Settings(
        threshold=options.threshold if options.threshold is not None else config.threshold,
        frame_stride=options.frame_stride or clips.frame_stride,
        clip_len=clips.clip_len,
        min_clip_len=clips.min_clip_len,
        aggregation=aggregation,
        timeline_window=window,
        timeline_hop=options.timeline_hop or max(1, window // 2),
        faces=faces,
        max_frames=options.max_frames,
        batch_size=options.batch_size,
        precision=options.precision,
        channels_last=options.channels_last,
        keep_similarity=options.keep_similarity,
        keep_thumbnails=options.keep_thumbnails,
        keep_embeddings=options.keep_embeddings,
        similarity_frames=options.similarity_frames,
        thumbnails_per_face=options.thumbnails_per_face,
        thumbnail_size=options.thumbnail_size,
        max_pixels=options.max_pixels,
        max_duration_s=options.max_duration_s,
        container_formats=options.container_formats,
        detect_threads=options.detect_threads,
    )
