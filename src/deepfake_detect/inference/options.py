"""How the detector reads a video: :class:`DetectOptions` (user choices, None = the model's own setting)
and :class:`Settings`, the options resolved against a model's ``config.json``."""

from __future__ import annotations

from dataclasses import dataclass

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
    frame_stride: int | None = None
    max_frames: int | None = 300
    detect_max_side: int | None = None
    min_face_size: int | None = None
    batch_size: int = 32
    precision: str = "auto"
    channels_last: bool = True
    keep_similarity: bool = True
    keep_thumbnails: bool = True
    aggregation: str | None = None
    timeline_window: int | None = None
    timeline_hop: int | None = None
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    max_duration_s: float | None = None
    container_formats: tuple[str, ...] = DEFAULT_CONTAINER_FORMATS
    face_detector: str | None = None
    detect_every: int = 4
    detect_batch: int | None = None
    detect_threads: int | None = 1
    tracked: bool = False
    keep_embeddings: bool = False
    similarity_frames: int = 64
    thumbnails_per_face: int = 6
    thumbnail_size: int = 96

    def validate(self) -> None:
        """Raise ValueError naming the first option that cannot be used."""
        if self.threshold is not None and not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must lie strictly between 0 and 1, got {self.threshold}")
        for name in (
            "frame_stride",
            "max_frames",
            "timeline_window",
            "timeline_hop",
            "max_pixels",
            "detect_threads",
            "detect_batch",
        ):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 (or None), got {value}")
        if not 1 <= self.detect_every <= 30:
            raise ValueError(f"detect_every must be between 1 and 30, got {self.detect_every}")
        for name in ("batch_size", "similarity_frames", "thumbnails_per_face", "thumbnail_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_duration_s is not None and not self.max_duration_s > 0:
            raise ValueError(f"max_duration_s must be > 0 (or None), got {self.max_duration_s}")
        format_allowlist(self.container_formats)
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.aggregation is not None:
            AGGREGATIONS.get(self.aggregation)  # UnknownNameError lists the known rules
        if self.face_detector is not None:
            FACE_DETECTORS.get(self.face_detector)


GPU_DETECT_BATCH = 8  # frames per batched face-detector call on a GPU (DetectOptions.detect_batch)


@dataclass(frozen=True)
class Settings:
    """Options resolved against one model: every value concrete."""

    threshold: float
    frame_stride: int
    clip_len: int
    min_clip_len: int
    aggregation: str
    timeline_window: int
    timeline_hop: int
    faces: FaceConfig
    options: DetectOptions


def resolve(options: DetectOptions, config: ModelDirConfig, device: str = "cpu") -> Settings:
    """Fill every ``None`` of ``options`` from the model's config and the ``device`` (validating both)."""
    options.validate()
    clips = config.clip_config()
    faces = config.face_config()
    updates = {
        "detector": options.face_detector,
        "detect_max_side": options.detect_max_side,
        "min_face_size": options.min_face_size,
    }
    faces = FaceConfig.model_validate(
        {
            **faces.model_dump(),
            **{k: v for k, v in updates.items() if v is not None},
            "detect_every": options.detect_every,
            "tracked": options.tracked,
            "detect_batch": options.detect_batch or (GPU_DETECT_BATCH if device.startswith("cuda") else 1),
        }
    )
    aggregation = options.aggregation or str(config.extra.get("aggregation", "mean"))
    AGGREGATIONS.get(aggregation)
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
        options=options,
    )
