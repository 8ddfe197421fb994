"""Face-swap composites: a donor's inner face, warped onto the target face, soft-blended, colour matched.

Every video, real or fake, gets a composite. Its parameters are a per-pair *style* (mask feathering, colour
offset, scale) plus a *jitter* drawn from one distribution:

- REAL: one jitter draw, held constant over the video (the same seams and colour offset in every frame);
- FAKE: a fresh, independent jitter draw for every frame (alignment, feathering and colour flicker, as
  frame-by-frame face-swap tools produce).

So the distribution of any single frame is the same for both labels and only the change from frame to
frame tells them apart (the "temporal" track). ``jitter`` scales every jitter standard deviation
(:data:`JITTER_STD`); 1.0 is the default difficulty, smaller is harder, 0 makes the labels
indistinguishable. On the "spatial" track a fake also gets per-frame-visible artefacts: a hard seam
(no feathering, slightly larger mask) with a brightness and colour step across it, and with probability
1/2 a blur mismatch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from deepfake_detect.data.synth.scene import SceneFrame
from deepfake_detect.data.synth.sources import FacePhoto, ellipse_matrix, inner_face_mask, masked_stats

# Standard deviations of the jitter at jitter=1.0. Lengths are in face heights (0.015 ~ 1.5 px for a
# 100-px face), angles in degrees, feather is log-normal (multiplies the style's feathering).
JITTER_STD: dict[str, float] = {
    "shift": 0.015,
    "scale": 0.015,
    "angle": 1.0,
    "feather": 0.3,
    "gain": 0.018,
    "bias": 2.0,
}
HARD_SEAM_FEATHER = 0.003  # face heights: under a pixel
SEAM_MASK_SCALE = 1.08  # the hard seam's ellipse is this much larger
PATCH_STEP = (8.0, 16.0)  # grey levels of brightness mismatch across a hard seam
PATCH_TINT = 5.0  # grey levels (per channel standard deviation) of colour mismatch
_STATS_SCALE = 0.7
_LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], np.float32)
_CONTRAST_RATIO = (0.6, 1.6)


@dataclass(frozen=True)
class SwapParams:
    """Composite parameters for every frame of one video (arrays have T rows)."""

    shift: np.ndarray  # (T, 2) face heights
    scale: np.ndarray  # (T,)
    angle: np.ndarray  # (T,) degrees
    feather: np.ndarray  # (T,) mask blur sigma, face heights
    gain: np.ndarray  # (T, 3)
    bias: np.ndarray  # (T, 3) grey levels
    blur: float = 0.0  # spatial artefact: donor blur sigma, face heights
    patch: tuple[float, float, float] = (0.0, 0.0, 0.0)  # spatial artefact: colour offset, grey levels
    mask_scale: float = 1.0


@dataclass(frozen=True)
class SwapStyle:
    """The part of the composite shared by the two videos of a pair."""

    feather: float
    scale: float
    gain: np.ndarray  # (3,)
    bias: np.ndarray  # (3,)


def draw_style(rng: np.random.Generator) -> SwapStyle:
    """The per-pair part: feathering, scale and colour offset of the composite."""
    return SwapStyle(
        feather=float(rng.uniform(0.035, 0.07)),
        scale=float(rng.uniform(0.97, 1.05)),
        gain=1.0 + rng.normal(0.0, 0.03, size=3),
        bias=rng.normal(0.0, 3.0, size=3),
    )


def draw_params(
    rng: np.random.Generator,
    style: SwapStyle,
    frames: int,
    *,
    per_frame: bool,
    jitter: float = 1.0,
    artefacts: bool = False,
) -> SwapParams:
    """Jitter drawn once and held (``per_frame=False``, real) or drawn for each frame (fake)."""
    n = frames if per_frame else 1
    std = {key: value * jitter for key, value in JITTER_STD.items()}
    common_gain = rng.normal(0.0, std["gain"], size=(n, 1))
    params = SwapParams(
        shift=rng.normal(0.0, std["shift"], size=(n, 2)),
        scale=style.scale * np.exp(rng.normal(0.0, std["scale"], size=n)),
        angle=rng.normal(0.0, std["angle"], size=n),
        feather=style.feather * np.exp(rng.normal(0.0, std["feather"], size=n)),
        gain=style.gain * (1.0 + common_gain + rng.normal(0.0, std["gain"], size=(n, 3))),
        bias=style.bias + rng.normal(0.0, std["bias"], size=(n, 3)),
    )
    if n == 1:
        params = _hold(params, frames)
    return _with_artefacts(rng, params) if artefacts else params


def _hold(params: SwapParams, frames: int) -> SwapParams:
    def rep(a: np.ndarray) -> np.ndarray:
        return np.repeat(a, frames, axis=0)

    return SwapParams(
        rep(params.shift),
        rep(params.scale),
        rep(params.angle),
        rep(params.feather),
        rep(params.gain),
        rep(params.bias),
    )


def _with_artefacts(rng: np.random.Generator, params: SwapParams) -> SwapParams:
    """Hard seam with a brightness/colour step across it always; blur mismatch with probability 1/2."""
    blur = float(rng.uniform(0.012, 0.025)) if rng.random() < 0.5 else 0.0
    step = rng.choice([-1.0, 1.0]) * rng.uniform(*PATCH_STEP) + rng.normal(0.0, PATCH_TINT, size=3)
    patch = (float(step[0]), float(step[1]), float(step[2]))
    return SwapParams(
        shift=params.shift,
        scale=params.scale,
        angle=params.angle,
        feather=np.full_like(params.feather, HARD_SEAM_FEATHER),
        gain=params.gain,
        bias=params.bias,
        blur=blur,
        patch=patch,
        mask_scale=SEAM_MASK_SCALE,
    )


@dataclass(frozen=True)
class Donor:
    """A donor face matched to one target: float32 luminance, inner-face mask, eyes and mouth."""

    name: str
    luma: np.ndarray  # (h, w)
    mask: np.ndarray  # (h, w)
    points: np.ndarray  # (3, 2)


def _luma(image: np.ndarray) -> np.ndarray:
    return (image @ _LUMA_WEIGHTS).astype(np.float32)  # (H, W, 3) -> (H, W)


def prepare_donor(donor: FacePhoto, target: FacePhoto, tint: np.ndarray) -> Donor:
    """Crop the donor around its inner face; match its luminance mean and contrast to the target's.

    The swap replaces luminance only (the identity: eyes, nose, mouth, shading) and keeps the target's
    chroma, so grey LFW donors take the target's skin tone the way a colour-matching step would.
    """
    mask = inner_face_mask(donor.image.shape[:2], donor.points)
    ys, xs = np.nonzero(mask)
    pad = 0.3 * donor.face_height
    h, w = mask.shape
    x0, x1 = max(0, int(xs.min() - pad)), min(w, int(xs.max() + pad) + 1)
    y0, y1 = max(0, int(ys.min() - pad)), min(h, int(ys.max() + pad) + 1)
    luma, mask = _luma(donor.image[y0:y1, x0:x1]), mask[y0:y1, x0:x1]
    points = (donor.points - np.array([x0, y0], np.float32)).astype(np.float32)
    target_luma = _luma(target.image * tint.astype(np.float32))
    # Statistics of the central face only (eyes to mouth), so hair, glasses rims or a camera at the edge
    # of the ellipse do not skew them; the contrast ratio is bounded.
    mu_d, sd_d = masked_stats(luma[:, :, None], inner_face_mask(luma.shape, points, _STATS_SCALE))
    mu_t, sd_t = masked_stats(
        target_luma[:, :, None], inner_face_mask(target_luma.shape, target.points, _STATS_SCALE)
    )
    ratio = float(np.clip(sd_t[0] / sd_d[0], *_CONTRAST_RATIO))
    matched = ((luma - mu_d[0]) * ratio + mu_t[0]).astype(np.float32)
    return Donor(donor.name, matched, np.ascontiguousarray(mask), points)


def _donor_to_frame(donor: Donor, frame: SceneFrame, params: SwapParams, t: int) -> np.ndarray:
    """2x3 affine taking donor pixels onto the frame's eyes and mouth, with frame ``t``'s jitter."""
    dst = frame.points
    center = dst.mean(axis=0)
    a = math.radians(params.angle[t])
    rot = params.scale[t] * np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]])
    moved = (dst - center) @ rot.T + center + params.shift[t] * frame.face_height
    return cv2.getAffineTransform(donor.points, moved.astype(np.float32))


def composite(frame: SceneFrame, donor: Donor, params: SwapParams, t: int) -> np.ndarray:
    """Blend the donor into ``frame.image`` in place with frame ``t``'s parameters.

    Returns the 2x3 affine taking the unit disk onto the blended ellipse in frame pixels (where the
    blend mask is 1/2: the seam).
    """
    m = _donor_to_frame(donor, frame, params, t)
    grow = ellipse_matrix(donor.points, params.mask_scale) @ np.linalg.inv(ellipse_matrix(donor.points))
    region = (m @ ellipse_matrix(donor.points, params.mask_scale))[:2]
    h, w = donor.mask.shape
    corners = np.array([[0, 0], [w, 0], [0, h], [w, h]], np.float64) @ m[:, :2].T + m[:, 2]
    sigma = float(params.feather[t]) * frame.face_height
    pad = 3.0 * sigma + 2.0
    height, width = frame.image.shape[:2]
    x0, y0 = (max(0, math.floor(v - pad)) for v in corners.min(axis=0))
    x1, y1 = (
        min(width, math.ceil(corners[:, 0].max() + pad)),
        min(height, math.ceil(corners[:, 1].max() + pad)),
    )
    if x1 - x0 < 2 or y1 - y0 < 2:
        return region
    m[:, 2] -= (x0, y0)
    size = (x1 - x0, y1 - y0)
    luma = cv2.warpAffine(donor.luma, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    mask = cv2.warpAffine(donor.mask, m @ grow, size, flags=cv2.INTER_LINEAR, borderValue=0)
    if sigma >= 0.3:
        mask = cv2.GaussianBlur(mask, (0, 0), sigma)
    if params.blur > 0:
        luma = cv2.GaussianBlur(luma, (0, 0), params.blur * frame.face_height)
    roi = frame.image[y0:y1, x0:x1]  # (h, w, 3) view
    swapped = roi + (luma - _luma(roi))[:, :, None]  # donor luminance, target chroma
    swapped = swapped * params.gain[t].astype(np.float32) + (params.bias[t] + params.patch).astype(np.float32)
    roi += (swapped - roi) * mask[:, :, None]
    return region
