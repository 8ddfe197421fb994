"""Decoding real videos encoded in the test: exact frames, timestamps, rotation, metadata and every error."""

from __future__ import annotations

import logging
import tracemalloc
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from skimage import data
from skimage.io import imsave

from deepfake_detect.types import VideoStatus
from deepfake_detect.video import (
    DecodeError,
    NotAMediaFileError,
    NoVideoStreamError,
    UnsupportedFormatError,
    VideoInfo,
    VideoNotFoundError,
    VideoTooLargeError,
    choose_stride,
    iter_frames,
    normalize_rotation,
    probe,
    rotate_image,
    write_video,
)

H, W = 48, 64
LOSSY = [("mp4", "libx264", "yuv420p"), ("avi", "mpeg4", "yuv420p"), ("webm", "libvpx-vp9", "yuv420p")]
ALL_CODECS = [*LOSSY, ("mkv", "ffv1", "bgr0")]


def _grey_level(index: int) -> int:
    return 20 + 7 * index  # up to 30 frames


def numbered_frames(n: int) -> list[np.ndarray]:
    """Frame i is flat grey level 20 + 7 i (readable through any codec) with a red block top-left."""
    frames = []
    for i in range(n):
        frame = np.full((H, W, 3), _grey_level(i), dtype=np.uint8)
        frame[:16, :16] = (255, 0, 0)
        frames.append(frame)
    return frames


def read_number(image: np.ndarray) -> int:
    """Invert numbered_frames from the bottom-right quarter (away from the red block)."""
    level = float(image[image.shape[0] // 2 :, image.shape[1] // 2 :].mean())
    return round((level - 20) / 7)


def noise_frames(n: int, seed: int = 0, h: int = H, w: int = W) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]


def write_with_pyav(
    path: Path,
    frames: list[np.ndarray],
    codec: str = "ffv1",
    pix_fmt: str = "bgr0",
    pts_ms: list[int] | None = None,
    rotation: int | None = None,
    tags: dict[str, str] | None = None,
) -> Path:
    """Encode with explicit presentation times (ms) and/or a display rotation, which write_video lacks."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=25)
        assert isinstance(stream, av.VideoStream)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = pix_fmt
        if pts_ms is not None:
            stream.time_base = stream.codec_context.time_base = Fraction(1, 1000)
        if rotation is not None:
            stream.set_display_rotation(rotation)
        stream.metadata.update(tags or {})
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            if pts_ms is not None:
                frame.pts, frame.time_base = pts_ms[i], Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _skip_missing(codec: str) -> None:
    if codec not in av.codecs_available:
        pytest.skip(f"this FFmpeg build has no {codec} encoder")


@pytest.mark.parametrize(("ext", "codec", "pix_fmt"), ALL_CODECS)
@pytest.mark.parametrize("stride", [1, 2, 3])
def test_stride_picks_exact_indices_content_and_timestamps(
    tmp_path: Path, ext: str, codec: str, pix_fmt: str, stride: int
) -> None:
    _skip_missing(codec)
    n, fps = 10, 10.0
    path = tmp_path / f"v.{ext}"
    options = {"b": "2000000"} if codec == "mpeg4" else None  # the default 200 kb/s blurs grey levels
    write_video(path, numbered_frames(n), fps=fps, codec=codec, pix_fmt=pix_fmt, options=options)
    frames = list(iter_frames(path, stride=stride))
    assert [f.index for f in frames] == list(range(0, n, stride))
    assert [read_number(f.image) for f in frames] == [f.index for f in frames]
    assert [f.timestamp for f in frames] == pytest.approx([f.index / fps for f in frames], abs=1e-9)
    for frame in frames:
        assert frame.image.dtype == np.uint8 and frame.image.shape == (H, W, 3)
        assert frame.image.flags.c_contiguous
        red = frame.image[4:12, 4:12].mean(axis=(0, 1))
        assert red[0] > 200 and red[1] < 60 and red[2] < 60  # RGB order, not BGR


@pytest.mark.parametrize("stride", [1, 3])
def test_lossless_ffv1_gives_exact_pixels(tmp_path: Path, stride: int) -> None:
    originals = noise_frames(7)
    path = tmp_path / "v.mkv"
    write_video(path, originals, codec="ffv1", pix_fmt="bgr0")
    frames = list(iter_frames(path, stride=stride))
    assert [f.index for f in frames] == list(range(0, 7, stride))
    for frame in frames:
        np.testing.assert_array_equal(frame.image, originals[frame.index])


def test_max_frames_stops_early(tmp_path: Path) -> None:
    path = tmp_path / "v.mp4"
    write_video(path, numbered_frames(10), fps=10)
    assert [f.index for f in iter_frames(path, stride=2, max_frames=3)] == [0, 2, 4]


def test_bad_arguments_raise_at_call(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="stride"):
        iter_frames(tmp_path / "does-not-matter.mp4", stride=0)
    with pytest.raises(ValueError, match="max_frames"):
        iter_frames(tmp_path / "does-not-matter.mp4", max_frames=0)


def test_probe_mp4_metadata(tmp_path: Path) -> None:
    path = tmp_path / "v.mp4"
    write_video(path, numbered_frames(12), fps=Fraction(30000, 1001))  # type: ignore[arg-type]
    info = probe(path)
    assert (info.width, info.height, info.rotation) == (W, H, 0)
    assert info.fps == pytest.approx(30000 / 1001)
    assert info.frame_count == 12 and info.estimated_frames == 12
    assert info.duration == pytest.approx(12 * 1001 / 30000, abs=1e-3)
    assert info.codec == "h264" and "mp4" in info.container.split(",")
    assert info.path == path


def test_probe_mkv_without_frame_count_estimates_it(tmp_path: Path) -> None:
    path = tmp_path / "v.mkv"
    write_video(path, numbered_frames(10), fps=10, codec="ffv1", pix_fmt="bgr0")
    info = probe(path)
    assert info.frame_count is None  # Matroska does not declare a count
    assert info.duration == pytest.approx(1.0, abs=1e-3)
    assert info.estimated_frames == 10 and info.codec == "ffv1" and info.fps == 10.0


@pytest.mark.parametrize(
    ("ext", "codec", "pix_fmt"), [("mkv", "ffv1", "bgr0"), ("mp4", "libx264", "yuv420p")]
)
def test_variable_frame_rate_timestamps_follow_pts(
    tmp_path: Path, ext: str, codec: str, pix_fmt: str
) -> None:
    pts_ms = [0, 40, 80, 200, 210, 500, 540]
    path = write_with_pyav(tmp_path / f"vfr.{ext}", numbered_frames(7), codec, pix_fmt, pts_ms=pts_ms)
    frames = list(iter_frames(path))
    assert [f.index for f in frames] == list(range(7))
    assert [read_number(f.image) for f in frames] == list(range(7))
    assert [f.timestamp for f in frames] == pytest.approx([t / 1000 for t in pts_ms], abs=1e-9)
    assert [f.timestamp for f in iter_frames(path, stride=3)] == pytest.approx([0.0, 0.2, 0.54], abs=1e-9)


# Upright references written with transposes and flips (independent of np.rot90 in rotate_image).
def _turned_ccw(image: np.ndarray, degrees: int) -> np.ndarray:
    if degrees == 90:
        return image.transpose(1, 0, 2)[::-1]
    if degrees == 180:
        return image[::-1, ::-1]
    if degrees == 270:
        return image.transpose(1, 0, 2)[:, ::-1]
    return image


@pytest.mark.parametrize(("written", "expected"), [(90, 90), (180, 180), (-90, 270), (270, 270)])
def test_display_rotation_is_applied_exactly(tmp_path: Path, written: int, expected: int) -> None:
    originals = noise_frames(3, seed=written % 360)
    path = write_with_pyav(tmp_path / "rot.mkv", originals, rotation=written)
    info = probe(path)
    assert info.rotation == expected
    assert (info.width, info.height) == ((H, W) if expected in (90, 270) else (W, H))
    frames = list(iter_frames(path))
    assert len(frames) == 3
    for frame in frames:
        assert frame.image.shape == (info.height, info.width, 3)
        np.testing.assert_array_equal(frame.image, _turned_ccw(originals[frame.index], expected))


def test_rotated_phone_style_mp4_stands_upright(tmp_path: Path) -> None:
    """A portrait phone clip: landscape pictures plus 'turn 90 degrees clockwise' in the display matrix."""
    path = write_with_pyav(tmp_path / "phone.mp4", numbered_frames(4), "libx264", "yuv420p", rotation=-90)
    frame = next(iter_frames(path))
    assert frame.image.shape == (W, H, 3) and probe(path).rotation == 270
    red = frame.image[..., 0].astype(int) - frame.image[..., 1]
    assert red[:16, -16:].mean() > 150  # the top-left block is now top-right
    assert red[:16, :16].mean() < 50


def test_legacy_rotate_tag_counts_clockwise(tmp_path: Path) -> None:
    originals = noise_frames(2, seed=5)
    path = write_with_pyav(tmp_path / "tag.mkv", originals, tags={"rotate": "90"})
    assert probe(path).rotation == 270
    np.testing.assert_array_equal(next(iter_frames(path)).image, _turned_ccw(originals[0], 270))


def test_rotation_helpers() -> None:
    expected = {0: 0, 90: 90, -90: 270, 180: 180, -180: 180, 270: 270, 360: 0, 450: 90, 44: 0, 46: 90}
    assert {d: normalize_rotation(d) for d in expected} == expected
    image = np.arange(2 * 3 * 1, dtype=np.uint8).reshape(2, 3, 1)  # [[0 1 2], [3 4 5]]
    assert rotate_image(image, 90)[..., 0].tolist() == [[2, 5], [1, 4], [0, 3]]
    assert rotate_image(image, 270)[..., 0].tolist() == [[3, 0], [4, 1], [5, 2]]
    assert rotate_image(image, 180)[..., 0].tolist() == [[5, 4, 3], [2, 1, 0]]
    assert rotate_image(image, 0) is image


def test_memory_does_not_grow_with_length(tmp_path: Path) -> None:
    n, h, w = 120, 120, 160
    path = tmp_path / "long.mkv"
    write_video(path, (np.full((h, w, 3), i % 256, np.uint8) for i in range(n)), codec="ffv1", pix_fmt="bgr0")
    tracemalloc.start()
    try:
        count = sum(1 for _ in iter_frames(path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == n
    assert peak < 10 * h * w * 3, f"peak {peak} bytes: frames are being buffered"  # all frames: 6.9 MB


# --- errors ---------------------------------------------------------------------------------------


def _assert_raises(path: Path, error: type[Exception], status: VideoStatus, match: str) -> None:
    with pytest.raises(error, match=match) as probed:
        probe(path)
    assert probed.value.status == status and str(path) in str(probed.value)  # type: ignore[attr-defined]
    with pytest.raises(error, match=match):
        next(iter_frames(path))


def test_missing_file(tmp_path: Path) -> None:
    _assert_raises(tmp_path / "nope.mp4", VideoNotFoundError, VideoStatus.NOT_FOUND, "no such file")


def test_not_media_files(tmp_path: Path) -> None:
    (tmp_path / "empty.mp4").write_bytes(b"")
    _assert_raises(tmp_path / "empty.mp4", NotAMediaFileError, VideoStatus.UNDECODABLE, "empty")
    (tmp_path / "random.mp4").write_bytes(np.random.default_rng(0).bytes(5000))
    _assert_raises(tmp_path / "random.mp4", NotAMediaFileError, VideoStatus.UNDECODABLE, "cannot read")
    (tmp_path / "notes.mp4").write_text("not a video\n" * 50)
    _assert_raises(tmp_path / "notes.mp4", NotAMediaFileError, VideoStatus.UNDECODABLE, "cannot read")
    _assert_raises(tmp_path, NotAMediaFileError, VideoStatus.UNDECODABLE, "directory")


def test_png_renamed_mp4_is_not_a_video(tmp_path: Path) -> None:
    """FFmpeg sniffs the content and would open it as a one-frame 'video' (png_pipe): we refuse it."""
    png = tmp_path / "face.png"
    imsave(png, data.astronaut()[:64, :64])
    renamed = png.rename(tmp_path / "face.mp4")
    _assert_raises(renamed, UnsupportedFormatError, VideoStatus.UNSUPPORTED_FORMAT, "still image \\(PNG\\)")


@pytest.mark.parametrize(("ext", "codec"), [("wav", "pcm_s16le"), ("m4a", "aac")])
def test_audio_only_file_has_no_video_stream(tmp_path: Path, ext: str, codec: str) -> None:
    path = tmp_path / f"speech.{ext}"
    rate = 16000
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=rate)
        assert isinstance(stream, av.AudioStream)
        tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate) * 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(tone[None, :], format="s16", layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    if ext == "wav":  # not a video container: refused by the allowlist before it is read
        _assert_raises(
            path, UnsupportedFormatError, VideoStatus.UNSUPPORTED_FORMAT, "a WAV audio file, not a"
        )
    else:
        _assert_raises(path, NoVideoStreamError, VideoStatus.NO_VIDEO_STREAM, "no video stream .*audio")


def test_max_pixels(tmp_path: Path) -> None:
    path = tmp_path / "v.mp4"
    write_video(path, numbered_frames(3))
    with pytest.raises(VideoTooLargeError, match="64x48 = 3072 pixels exceeds max_pixels=3071") as caught:
        probe(path, max_pixels=W * H - 1)
    assert caught.value.status == VideoStatus.TOO_LARGE
    with pytest.raises(VideoTooLargeError):
        next(iter_frames(path, max_pixels=W * H - 1))
    assert probe(path, max_pixels=W * H).width == W
    assert len(list(iter_frames(path, max_pixels=W * H))) == 3


def _cut_in_half(source: Path, target: Path) -> Path:
    payload = source.read_bytes()
    target.write_bytes(payload[: len(payload) // 2])
    return target


def test_truncated_matroska_yields_the_frames_before_the_cut(tmp_path: Path) -> None:
    originals = noise_frames(20, seed=3)
    full = tmp_path / "full.mkv"
    write_video(full, originals, codec="ffv1", pix_fmt="bgr0")
    frames = list(iter_frames(_cut_in_half(full, tmp_path / "half.mkv")))  # documented: ends cleanly
    assert 0 < len(frames) < 20
    assert [f.index for f in frames] == list(range(len(frames)))
    for frame in frames:
        np.testing.assert_array_equal(frame.image, originals[frame.index])


def test_truncated_avi_warns_about_missing_frames(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    full = tmp_path / "full.avi"
    write_video(full, noise_frames(20, seed=4), codec="mpeg4")
    with caplog.at_level(logging.WARNING, logger="deepfake_detect.video.decode"):
        frames = list(iter_frames(_cut_in_half(full, tmp_path / "half.avi")))
    assert 0 < len(frames) < 20
    assert f"decoded {len(frames)} frames, the container declares 20" in caplog.text


def test_mp4_cut_before_its_index_is_not_readable(tmp_path: Path) -> None:
    full = tmp_path / "full.mp4"
    write_video(full, noise_frames(20, seed=5))
    half = _cut_in_half(full, tmp_path / "half.mp4")
    _assert_raises(half, NotAMediaFileError, VideoStatus.UNDECODABLE, "corrupt/truncated")


def test_corrupt_h264_raises_decode_error_with_frame_index(tmp_path: Path) -> None:
    full = tmp_path / "full.mp4"
    write_video(full, noise_frames(30, seed=6), fps=10)
    payload = bytearray(full.read_bytes())
    start = int(len(payload) * 0.4)
    payload[start : start + 2000] = np.random.default_rng(0).bytes(2000)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(bytes(payload))
    delivered = []
    with pytest.raises(DecodeError) as caught:
        for frame in iter_frames(broken):
            delivered.append(frame.index)
    assert caught.value.status == VideoStatus.UNDECODABLE
    assert 0 < caught.value.frame_index < 30
    assert delivered == list(range(caught.value.frame_index))
    assert f"frame {caught.value.frame_index}" in str(caught.value)


# --- choose_stride ----------------------------------------------------------------------------------


def _info(frame_count: int | None, duration: float | None = None, fps: float = 25.0) -> VideoInfo:
    return VideoInfo(Path("x.mp4"), W, H, fps, duration, frame_count, 0, "h264", "mp4")


def test_choose_stride_matches_brute_force() -> None:
    for total in range(1, 80):
        for desired in range(1, 7):
            for min_frames in (1, 5, 16, 40):
                chosen = choose_stride(_info(total), desired, min_frames)
                fits = [s for s in range(1, desired + 1) if len(range(0, total, s)) >= min_frames]
                assert chosen == (max(fits) if fits else 1), (total, desired, min_frames)


def test_choose_stride_edge_cases(tmp_path: Path) -> None:
    assert choose_stride(_info(25), 4, 16) == 1  # a 1-second clip keeps every frame
    assert choose_stride(_info(None, duration=4.0, fps=25.0), 5, 16) == 5  # 100 estimated frames
    assert choose_stride(_info(None, duration=1.0, fps=25.0), 5, 16) == 1
    assert choose_stride(_info(None), 3, 16) == 3  # unknown length: as asked
    with pytest.raises(ValueError):
        choose_stride(_info(10), 0, 16)
    path = tmp_path / "v.mp4"
    write_video(path, numbered_frames(30), fps=10)
    stride = choose_stride(probe(path), desired_stride=5, min_frames=10)
    assert stride == 3 and len(list(iter_frames(path, stride=stride))) == 10
