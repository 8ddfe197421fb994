"""The benchmark videos: real face photographs from scikit-image moving over a background, H.264."""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

# Face centres (x, y) in the 512x512 scikit-image photos (MTCNN boxes measured once on the photos).
_FACE_CENTRES = {"astronaut": (224.0, 117.0), "camera": (227.0, 155.0)}
_TILE_SOURCE = 280  # side of the square cut around each face, in photo pixels


def face_tiles(count: int, side: int) -> list[np.ndarray]:
    """``count`` square photo tiles (side x side) each holding one real face: astronaut, camera, and
    the astronaut mirrored (cycled)."""
    import cv2
    from skimage import data

    photos = {"astronaut": data.astronaut(), "camera": np.repeat(data.camera()[:, :, None], 3, axis=2)}
    tiles = []
    for name, flip in (("astronaut", False), ("camera", False), ("astronaut", True)):
        cx, cy = _FACE_CENTRES[name]
        half = _TILE_SOURCE // 2
        x0 = int(np.clip(cx - half, 0, 512 - _TILE_SOURCE))
        y0 = int(np.clip(cy - half, 0, 512 - _TILE_SOURCE))
        cut = photos[name][y0 : y0 + _TILE_SOURCE, x0 : x0 + _TILE_SOURCE]
        cut = cut[:, ::-1] if flip else cut
        tiles.append(np.ascontiguousarray(cv2.resize(cut, (side, side), interpolation=cv2.INTER_AREA)))
    return [tiles[i % len(tiles)] for i in range(count)]


def _background(width: int, height: int) -> np.ndarray:
    """A smooth colour gradient with soft blobs (cheap to encode, not flat)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    r = 90 + 60 * xx / width
    g = 110 + 40 * np.sin(yy / height * 3.0)
    b = 130 + 50 * np.cos((xx + yy) / (width + height) * 6.0)
    return np.clip(np.stack([r, g, b], axis=2), 0, 255).astype(np.uint8)  # (H, W, 3)


def render_frames(width: int, height: int, frames: int, faces: int, fps: float) -> Iterator[np.ndarray]:
    """Frames with ``faces`` photo tiles, each in its own vertical band, gliding smoothly (sinusoids)."""
    side = round(0.52 * min(height, 1.1 * width / faces)) // 2 * 2
    tiles = face_tiles(faces, side)
    background = _background(width, height)
    band = width / faces
    amp_x = 0.4 * max(0.0, band - side)
    amp_y = 0.4 * max(0.0, height - side)
    for t in range(frames):
        frame = background.copy()
        seconds = t / fps
        for i, tile in enumerate(tiles):
            cx = band * (i + 0.5) + amp_x * math.sin(2 * math.pi * 0.13 * seconds + 1.7 * i)
            cy = height / 2 + amp_y * math.sin(2 * math.pi * 0.09 * seconds + 2.3 * i)
            x = int(np.clip(round(cx - side / 2), 0, width - side))
            y = int(np.clip(round(cy - side / 2), 0, height - side))
            frame[y : y + side, x : x + side] = tile
        yield frame


def face_video(
    cache: Path, width: int, height: int, seconds: float, faces: int = 1, fps: float = 30.0
) -> Path:
    """An H.264 mp4 (crf 23) of ``seconds`` with ``faces`` moving real faces, made once into ``cache``."""
    from deepfake_detect.video import write_video

    frames = round(seconds * fps)
    path = cache / "videos" / f"faces{faces}_{width}x{height}_{fps:g}fps_{frames}f.mp4"
    if not path.exists():
        print(f"making {path.name} ...", file=sys.stderr, flush=True)
        write_video(path, render_frames(width, height, frames, faces, fps), fps=fps, crf=23)
    return path
