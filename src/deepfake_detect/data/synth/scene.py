"""Moving scenes around a real face photograph (SPEC §6).

A scene is a face-centred, soft-edged cut-out of a base photo over a random smooth background, moved by a
smooth similarity transform (translation, scale, slight rotation; a few sinusoids), under drifting light,
with fresh sensor noise per frame. All randomness is drawn up front into a :class:`ScenePlan`, in
resolution-free units, so the same plan renders at any frame size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from deepfake_detect.data.synth.sources import FacePhoto

# Face height (the MTCNN-style box) as a fraction of the frame height: >= 80 px at 240 px.
FACE_FRACTION = (0.37, 0.48)
_BG_MARGIN = 0.1  # background drawn this much (fraction of height) larger on each side, then panned
# Background noise octaves (grid rows, channels) and amplitudes in grey levels: a colour wash plus
# luminance structure at three scales.
_BG_OCTAVES = ((2, 3), (3, 1), (6, 1), (12, 1))
_BG_AMPLITUDES = (50.0, 70.0, 35.0, 18.0)


@dataclass(frozen=True)
class ScenePlan:
    """Everything random about one scene. Positions are fractions of the frame width/height."""

    photo: FacePhoto
    tint: np.ndarray  # (3,) white balance of the photo
    face_fraction: float
    center: np.ndarray  # (T, 2) face centre, fractions of (W, H)
    scale: np.ndarray  # (T,) multiplies face_fraction
    angle: np.ndarray  # (T,) degrees, counter-clockwise
    light: np.ndarray  # (T,) global gain
    gradient: np.ndarray  # (T, 2) horizontal / vertical light ramp
    colour_drift: np.ndarray  # (T, 3) white-balance drift
    bg_shift: np.ndarray  # (T, 2) background pan, fractions of the height
    cutout: tuple[float, float, float]  # ellipse radii (x, y) and edge softness, in face heights
    background: tuple[np.ndarray, ...]  # low-resolution noise grids (h, w, 3 or 1), coarse to fine
    background_colour: np.ndarray  # (3,)
    noise_sigma: float
    noise_seed: int
    fps: float

    @property
    def frames(self) -> int:
        return int(self.center.shape[0])


def _wave(rng: np.random.Generator, t: np.ndarray, amplitude: float, freq: tuple[float, float]) -> np.ndarray:
    """Two sinusoids with random frequencies (Hz) and phases; amplitudes sum to <= ``amplitude``."""
    split = rng.uniform(0.3, 0.7)
    out = np.zeros_like(t)
    for share in (split, 1.0 - split):
        f = rng.uniform(*freq)
        out += (
            share
            * amplitude
            * rng.uniform(0.5, 1.0)
            * np.sin(2 * math.pi * f * t + rng.uniform(0, 2 * math.pi))
        )
    return out


def plan_scene(rng: np.random.Generator, photo: FacePhoto, frames: int, fps: float) -> ScenePlan:
    """Draw one scene's motion, lighting, background and noise for ``frames`` frames at ``fps``."""
    t = np.arange(frames, dtype=np.float64) / fps
    center = np.stack(
        [
            rng.uniform(0.38, 0.62) + _wave(rng, t, 0.08, (0.1, 0.5)),
            rng.uniform(0.46, 0.54) + _wave(rng, t, 0.04, (0.1, 0.6)),
        ],
        axis=1,
    )
    light_ramp = rng.uniform(-0.2, 0.2, size=2)
    background = tuple(
        rng.uniform(0.0, 1.0, size=(n, n + n // 3 + 1, c)).astype(np.float32) for n, c in _BG_OCTAVES
    )
    lum = rng.uniform(40.0, 200.0)
    return ScenePlan(
        photo=photo,
        tint=rng.uniform(0.88, 1.12, size=3),
        face_fraction=float(rng.uniform(*FACE_FRACTION)),
        center=center,
        scale=1.0 + _wave(rng, t, 0.06, (0.1, 0.4)),
        angle=rng.uniform(-4.0, 4.0) + _wave(rng, t, 3.0, (0.1, 0.5)),
        light=1.0 + _wave(rng, t, rng.uniform(0.03, 0.12), (0.05, 0.4)),
        gradient=light_ramp[None, :] + np.stack([_wave(rng, t, 0.1, (0.05, 0.3)) for _ in range(2)], axis=1),
        colour_drift=np.stack([_wave(rng, t, 0.03, (0.05, 0.3)) for _ in range(3)], axis=1),
        bg_shift=np.stack([_wave(rng, t, 0.6 * _BG_MARGIN, (0.05, 0.3)) for _ in range(2)], axis=1),
        cutout=(float(rng.uniform(1.1, 1.8)), float(rng.uniform(1.5, 2.4)), float(rng.uniform(0.08, 0.25))),
        background=background,
        background_colour=lum * (1.0 + rng.normal(0.0, 0.12, size=3)),
        noise_sigma=float(rng.uniform(1.5, 4.0)),
        noise_seed=int(rng.integers(0, 2**31)),
        fps=fps,
    )


def _background(plan: ScenePlan, width: int, height: int) -> np.ndarray:
    """Smooth random background (float32, H+2m, W+2m, 3): octaves of upsampled noise around a base colour."""
    pad = round(_BG_MARGIN * height)
    size = (width + 2 * pad, height + 2 * pad)
    out = np.zeros((size[1], size[0], 3), np.float32) + plan.background_colour.astype(np.float32)
    for grid, amplitude in zip(plan.background, _BG_AMPLITUDES, strict=True):
        up = cv2.resize(grid, size, interpolation=cv2.INTER_CUBIC).reshape(size[1], size[0], -1)
        out += (up - 0.5) * amplitude
    return out


@dataclass(frozen=True)
class SceneFrame:
    """A rendered frame before lighting and noise, plus where its face is."""

    image: np.ndarray  # (H, W, 3) float32, writable
    points: np.ndarray  # (3, 2) eyes and mouth in frame pixels
    face_box: tuple[float, float, float, float]  # axis-aligned box around the rotated MTCNN-style box
    face_height: float  # height of the unrotated face box in frame pixels


class SceneRenderer:
    """Renders a :class:`ScenePlan` at one frame size; frames are independent of each other."""

    def __init__(self, plan: ScenePlan, width: int, height: int) -> None:
        self.plan, self.width, self.height = plan, width, height
        self._bg = _background(plan, width, height)
        self._pad = (self._bg.shape[0] - height) // 2
        self._cutout, self._offset = self._make_cutout()
        self._xs = (np.arange(width, dtype=np.float32) / width - 0.5)[None, :, None]  # (1, W, 1)
        self._ys = (np.arange(height, dtype=np.float32) / height - 0.5)[:, None, None]  # (H, 1, 1)

    def _make_cutout(self) -> tuple[np.ndarray, np.ndarray]:
        """RGBA float32 crop of the tinted photo around the face with a soft elliptical alpha."""
        photo, (rx, ry, soft) = self.plan.photo, self.plan.cutout
        fh, (cx, cy) = photo.face_height, photo.face_center
        cy += 0.35 * fh  # head and shoulders: the ellipse sits a little below the face centre
        h, w = photo.image.shape[:2]
        x0, x1 = max(0, int(cx - rx * fh)), min(w, int(cx + rx * fh) + 1)
        y0, y1 = max(0, int(cy - ry * fh)), min(h, int(cy + ry * fh) + 1)
        ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        inside = ((xs - cx) / (rx * fh)) ** 2 + ((ys - cy) / (ry * fh)) ** 2 <= 1.0
        edge = 2.5 * soft * fh  # fade out before the photo's own border, never a straight cut
        inside &= (xs >= edge) & (xs < w - edge) & (ys >= edge) & (ys < h - edge)
        alpha = cv2.GaussianBlur(inside.astype(np.float32), (0, 0), soft * fh)
        rgba = np.concatenate(
            [photo.image[y0:y1, x0:x1] * self.plan.tint.astype(np.float32), alpha[..., None]], 2
        )
        return np.ascontiguousarray(rgba, dtype=np.float32), np.array([x0, y0], np.float64)

    def transform(self, t: int) -> np.ndarray:
        """2x3 affine from photo pixels to frame pixels at frame ``t``."""
        plan = self.plan
        k = plan.face_fraction * plan.scale[t] * self.height / plan.photo.face_height
        a = math.radians(plan.angle[t])
        rot = k * np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]])
        target = plan.center[t] * np.array([self.width, self.height])
        shift = target - rot @ plan.photo.face_center
        return np.concatenate([rot, shift[:, None]], axis=1)

    def render(self, t: int) -> SceneFrame:
        """Background and moving photo at frame ``t`` (no lighting, no noise)."""
        m = self.transform(t)
        size = (self.width, self.height)
        m_cut = m.copy()
        m_cut[:, 2] += m[:, :2] @ self._offset  # the cut-out starts at self._offset in photo pixels
        layer = cv2.warpAffine(self._cutout, m_cut, size, flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0, 0))
        pan = np.array(
            [
                [1, 0, self.plan.bg_shift[t, 0] * self.height - self._pad],
                [0, 1, self.plan.bg_shift[t, 1] * self.height - self._pad],
            ]
        )
        frame = cv2.warpAffine(self._bg, pan, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        alpha = layer[:, :, 3:]
        frame = frame * (1.0 - alpha) + layer[:, :, :3] * alpha
        points = self.plan.photo.points.astype(np.float64) @ m[:, :2].T + m[:, 2]
        x1, y1, x2, y2 = self.plan.photo.box
        corners = np.array([[x1, y1], [x2, y1], [x1, y2], [x2, y2]]) @ m[:, :2].T + m[:, 2]
        lo, hi = corners.min(axis=0), corners.max(axis=0)
        box = (float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1]))
        return SceneFrame(frame, points, box, float(np.hypot(*m[:, 0]) * self.plan.photo.face_height))

    def finish(self, frame: np.ndarray, t: int) -> np.ndarray:
        """Apply the drifting light and fresh sensor noise; returns uint8 RGB (H, W, 3)."""
        plan = self.plan
        gx, gy = plan.gradient[t]
        ramp = plan.light[t] * (1.0 + gx * self._xs + gy * self._ys)  # (H, W, 1)
        frame *= ramp.astype(np.float32)
        frame *= (1.0 + plan.colour_drift[t]).astype(np.float32)  # (3,)
        noise = np.random.default_rng([plan.noise_seed, t]).standard_normal(frame.shape, dtype=np.float32)
        noise *= np.float32(plan.noise_sigma)
        frame += noise
        frame += np.float32(0.5)
        np.clip(frame, 0.0, 255.0, out=frame)
        return frame.astype(np.uint8)
