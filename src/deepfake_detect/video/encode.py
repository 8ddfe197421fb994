"""Writing videos with PyAV (used by the synthetic generator, tests and benchmarks)."""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from deepfake_detect.infra.files import atomic_path


def write_video(
    path: Path | str,
    frames: Iterable[np.ndarray],
    fps: float = 25.0,
    codec: str = "libx264",
    crf: int = 23,
    pix_fmt: str = "yuv420p",
    options: dict[str, str] | None = None,
) -> int:
    """Encode uint8 RGB frames (H, W, 3) to ``path`` atomically; returns the number of frames written.

    ``codec`` is any encoder PyAV has (``libx264``, ``mpeg4``, ``libvpx-vp9``, ``ffv1`` for lossless).
    The container follows the file suffix. H.264 with yuv420p needs even width and height.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with atomic_path(path, suffix=f".tmp{path.suffix}") as tmp:  # the muxer follows the suffix
        with av.open(str(tmp), mode="w") as container:
            stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
            if not isinstance(stream, av.VideoStream):
                raise ValueError(f"codec {codec!r} is not a video encoder")
            stream.pix_fmt = pix_fmt
            opts: dict[str, str] = dict(options or {})
            if codec in {"libx264", "libx265"}:
                opts.setdefault("crf", str(crf))
                opts.setdefault("preset", "veryfast")
            stream.options = dict(opts)
            for image in frames:
                if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
                    raise ValueError(f"frames must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
                if count == 0:
                    stream.height, stream.width = image.shape[:2]
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
                for packet in stream.encode(frame):
                    container.mux(packet)
                count += 1
            for packet in stream.encode():
                container.mux(packet)
        if count == 0:
            raise ValueError("no frames to write")
    return count
