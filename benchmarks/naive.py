"""The naive reference of benchmark 1, written the way a typical deepfake-detection repository does it.

Decode every frame with OpenCV (``cv2.VideoCapture``), run facenet-pytorch's MTCNN on the full-resolution
frame, cut a square crop around each face, embed it with the extractor in fp32 one image at a time,
link faces to the track whose last box overlaps most, then run the LSTM over each track's embeddings.
It reads the same model directory as ``Detector`` (same weights, crop margin and size, clip length)
so that its faces and probabilities can be compared with ``detect``'s.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from deepfake_detect.models.io import load_model_dir


@dataclass
class NaiveTrack:
    frame_indices: list[int] = field(default_factory=list)
    boxes: list[np.ndarray] = field(default_factory=list)
    embeddings: list[np.ndarray] = field(default_factory=list)
    probability: float = float("nan")


@dataclass
class NaiveResult:
    tracks: list[NaiveTrack]
    frames: int
    seconds: float
    stages: dict[str, float]


def iou(a: np.ndarray, b: np.ndarray) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


class NaivePipeline:
    """Per-frame, full-resolution, one-image-at-a-time fp32 inference of a model directory."""

    def __init__(self, model_dir: Path, device: str = "cpu") -> None:
        from facenet_pytorch import MTCNN

        loaded = load_model_dir(model_dir)
        self.device = torch.device(device)
        self.extractor = loaded.extractor.float().eval().to(self.device)
        self.head = loaded.head.float().eval().to(self.device)
        config = loaded.config
        faces, clips = config.face_config(), config.clip_config()
        self.margin, self.score_threshold = faces.margin, faces.score_threshold
        self.crop_size = faces.crop_size  # the size the model's training crops were stored at
        self.clip_len, self.min_clip_len = clips.clip_len, clips.min_clip_len
        self.mtcnn = MTCNN(keep_all=True, device=self.device)  # full frame, min face 20 px
        self.stages: dict[str, float] = {}

    def _timed(self, stage: str, start: float) -> None:
        self.stages[stage] = self.stages.get(stage, 0.0) + time.perf_counter() - start

    def crop(self, rgb: np.ndarray, box: np.ndarray) -> np.ndarray:
        """Square of side max(w, h) * (1 + margin) around the box, zero-padded, resized to the crop size the
        model was trained on (its ``faces.crop_size``; ``embed`` then resizes to the input size as the
        model's own ``prepare`` does). A model is only comparable on the crops it was trained on: cutting
        straight to a 32-px input instead moved the demo cnn4's probability from 0.01 to 0.82."""
        x1, y1, x2, y2 = box
        side = max(1, round(max(x2 - x1, y2 - y1) * (1 + self.margin)))
        left, top = round((x1 + x2) / 2 - side / 2), round((y1 + y2) / 2 - side / 2)
        canvas = np.zeros((side, side, 3), np.uint8)
        h, w = rgb.shape[:2]
        sx1, sy1, sx2, sy2 = max(left, 0), max(top, 0), min(left + side, w), min(top + side, h)
        if sx2 > sx1 and sy2 > sy1:
            canvas[sy1 - top : sy2 - top, sx1 - left : sx2 - left] = rgb[sy1:sy2, sx1:sx2]
        interpolation = cv2.INTER_AREA if side > self.crop_size else cv2.INTER_LINEAR
        return cv2.resize(canvas, (self.crop_size, self.crop_size), interpolation=interpolation)

    @torch.no_grad()
    def embed(self, crop: np.ndarray) -> np.ndarray:
        """One (S, S, 3) crop -> (D,) with the model's own resize and normalisation, fp32."""
        x = self.extractor.prepare(torch.from_numpy(crop[None]).to(self.device))
        return self.extractor(x)[0].cpu().numpy()  # (D,)

    def detect(self, rgb: np.ndarray) -> list[np.ndarray]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            boxes, probs = self.mtcnn.detect(rgb)
        if boxes is None:
            return []
        boxes, probs = np.asarray(boxes).astype(float), np.asarray(probs).astype(float)
        return [box for box, p in zip(boxes, probs, strict=True) if p >= self.score_threshold]

    @staticmethod
    def assign(tracks: list[NaiveTrack], index: int, box: np.ndarray) -> NaiveTrack:
        """The live track whose last box overlaps ``box`` most (IoU > 0.3), else a new one."""
        live = [t for t in tracks if t.frame_indices[-1] < index]
        best = max(live, key=lambda t: iou(t.boxes[-1], box), default=None)
        if best is None or iou(best.boxes[-1], box) <= 0.3:
            best = NaiveTrack()
            tracks.append(best)
        return best

    @torch.no_grad()
    def score(self, track: NaiveTrack) -> float:
        """Mean LSTM probability over consecutive windows of clip_len (and a leftover >= min_clip_len)."""
        seq = np.stack(track.embeddings)  # (N, D)
        windows = [seq[i : i + self.clip_len] for i in range(0, len(seq), self.clip_len)]
        windows = [w for w in windows if len(w) == self.clip_len or len(w) >= self.min_clip_len]
        probs = []
        for window in windows:
            x = torch.from_numpy(window).float().unsqueeze(0).to(self.device)  # (1, T, D)
            logit = self.head(x, torch.tensor([len(window)]))  # lengths stay on the CPU
            probs.append(float(torch.sigmoid(logit)[0]))
        return float(np.mean(probs)) if probs else float("nan")

    def run(self, path: Path, max_frames: int) -> NaiveResult:
        self.stages = {}
        start = time.perf_counter()
        capture = cv2.VideoCapture(str(path))
        tracks: list[NaiveTrack] = []
        index = 0
        while index < max_frames:
            t0 = time.perf_counter()
            ok, bgr = capture.read()
            if not ok:
                break
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            self._timed("decode", t0)
            t0 = time.perf_counter()
            boxes = self.detect(rgb)
            self._timed("detect", t0)
            for box in boxes:
                t0 = time.perf_counter()
                crop = self.crop(rgb, box)
                track = self.assign(tracks, index, box)
                self._timed("crop", t0)
                t0 = time.perf_counter()
                track.embeddings.append(self.embed(crop))
                self._timed("embed", t0)
                track.frame_indices.append(index)
                track.boxes.append(box)
            index += 1
        capture.release()
        t0 = time.perf_counter()
        for track in tracks:
            track.probability = self.score(track)
        self._timed("head", t0)
        return NaiveResult(tracks, index, time.perf_counter() - start, dict(self.stages))

    def warm_up(self) -> None:
        """One small MTCNN pass and one embedding, so that first-call costs are not timed."""
        self.detect(np.zeros((160, 160, 3), np.uint8))
        self.embed(np.zeros((self.crop_size, self.crop_size, 3), np.uint8))
