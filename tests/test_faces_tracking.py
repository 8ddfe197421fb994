"""Face tracking by crop MSE (exact hand-computed values) and the streaming detect -> crop -> track."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from deepfake_detect.config import FaceConfig
from deepfake_detect.faces import (
    FaceTracker,
    MTCNNDetector,
    TrackCollector,
    TrackedFace,
    crop_face,
    detect_batch,
    track_faces,
)
from deepfake_detect.types import BBox, Detection, FaceTrack, Frame
from deepfake_detect.video import write_video


def const(value: int, side: int = 64) -> np.ndarray:
    return np.full((side, side, 3), value, dtype=np.uint8)


# --- MSE ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (0, 0, 0.0),
        (0, 64, 0.25),  # (64 / 128) ** 2
        (0, 60, 0.2197265625),  # (60 / 128) ** 2
        (100, 90, 0.006103515625),  # (10 / 128) ** 2
        (0, 255, 65025 / 16384),  # (255 / 128) ** 2
    ],
)
def test_mse_of_constant_crops_is_exact(a: int, b: int, expected: float) -> None:
    tracker = FaceTracker()
    assert tracker.mse(const(a), const(b)) == expected
    assert tracker.mse(const(a, 256), const(b, 200)) == expected  # resized to 64 first: still constant


def test_mse_compares_at_compare_size() -> None:
    half = np.zeros((128, 128, 3), dtype=np.uint8)
    half[:, 64:] = 255  # area-shrunk to 64x64: still exactly half black, half white
    assert FaceTracker(compare_size=64).mse(half, const(0, 128)) == 65025 / 32768  # half of (255/128)**2


def test_mse_matches_the_definition_on_random_crops() -> None:
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    b = rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    sa, sb = (a.astype(np.float64) - 127.5) / 128, (b.astype(np.float64) - 127.5) / 128
    assert FaceTracker().mse(a, b) == pytest.approx(float(((sa - sb) ** 2).mean()), rel=1e-12)


# --- pairing rules --------------------------------------------------------------------------------


def test_mse_exactly_at_threshold_is_not_kept() -> None:
    at = FaceTracker(mse_threshold=0.25)
    assert at.update(0, [const(0)]) == [0]
    assert at.update(1, [const(64)]) == [1]  # MSE 0.25 == threshold -> new track
    below = FaceTracker(mse_threshold=0.25 + 1e-12)
    assert below.update(0, [const(0)]) == [0]
    assert below.update(1, [const(64)]) == [0]


def test_default_threshold_boundary_is_half() -> None:
    half = const(0)
    half[:, :32] = 128  # standardised difference 1.0 on half the pixels: MSE exactly 0.5
    almost = const(0)
    almost[:, :31] = 128  # 31/64 of the pixels: MSE 0.484375
    tracker = FaceTracker()
    assert tracker.mse(half, const(0)) == 0.5 and tracker.mse(almost, const(0)) == 0.484375
    assert tracker.update(0, [const(0)]) == [0]
    assert tracker.update(1, [half]) == [1]
    other = FaceTracker()
    other.update(0, [const(0)])
    assert other.update(1, [almost]) == [0]


def test_pairing_is_greedy_over_all_pairs_not_face_order() -> None:
    tracker = FaceTracker()
    assert tracker.update(0, [const(0), const(100)]) == [0, 1]
    # MSEs: face 60 -> track0 0.2197, -> track1 0.0977; face 90 -> track0 0.4944, -> track1 0.0061.
    # Lowest pair first: (90, track1); then 60 takes track0. Face order would have given [1, 0].
    assert tracker.update(1, [const(60), const(90)]) == [0, 1]


def test_at_most_one_face_per_track_per_frame() -> None:
    tracker = FaceTracker()
    assert tracker.update(0, [const(10)]) == [0]
    assert tracker.update(1, [const(10), const(10)]) == [0, 1]  # tie: the earlier face wins
    assert tracker.update(2, [const(10), const(10), const(10)]) == [0, 1, 2]


def test_unmatched_faces_start_tracks_with_increasing_ids() -> None:
    tracker = FaceTracker()
    assert tracker.update(0, [const(0), const(200)]) == [0, 1]
    assert tracker.update(1, [const(100)]) == [2]  # 0.61 from both tracks
    split = const(0)
    split[:, 32:] = 255  # MSE > 1 from every track so far
    assert tracker.update(2, [split, const(0), const(101)]) == [3, 0, 2]
    assert tracker.num_tracks == 4


def test_gaps_and_pairing_with_the_last_crop() -> None:
    tracker = FaceTracker()
    assert tracker.update(0, [const(0)]) == [0]
    assert tracker.update(1, []) == []  # missed detection: a gap
    assert tracker.update(4, [const(60)]) == [0]  # 0.2197 from the last crop
    assert tracker.update(5, [const(120)]) == [0]  # 0.2197 from 60 (0.88 from the first crop)


def test_frames_must_increase() -> None:
    tracker = FaceTracker()
    tracker.update(3, [])
    with pytest.raises(ValueError, match="increasing"):
        tracker.update(3, [const(0)])
    with pytest.raises(ValueError, match="increasing"):
        tracker.update(1, [const(0)])


def test_bad_crops_and_parameters_are_rejected() -> None:
    with pytest.raises(ValueError, match="crop"):
        FaceTracker().update(0, [np.zeros((8, 8), np.uint8)])
    with pytest.raises(ValueError, match="crop"):
        FaceTracker().mse(const(0).astype(np.float32), const(0))
    with pytest.raises(ValueError, match="mse_threshold"):
        FaceTracker(mse_threshold=0)
    with pytest.raises(ValueError, match="compare_size"):
        FaceTracker(compare_size=0)


# --- the pipeline on real photographs --------------------------------------------------------------


def _side_by_side(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    return np.concatenate([left, right], axis=1)  # (H, 2W, 3)


@pytest.fixture(scope="module")
def two_faces(astronaut_rgb: np.ndarray, camera_rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    size = (320, 320)
    return (
        cv2.resize(astronaut_rgb, size, interpolation=cv2.INTER_AREA),
        cv2.resize(camera_rgb, size, interpolation=cv2.INTER_AREA),
    )


def _identity(face: TrackedFace, astronaut_left: bool) -> str:
    on_left = face.detection.box.center[0] < 320
    return "astronaut" if on_left == astronaut_left else "camera"


def test_track_ids_follow_faces_when_they_swap_places(
    mtcnn_detector: MTCNNDetector, two_faces: tuple[np.ndarray, np.ndarray]
) -> None:
    astro, cam = two_faces
    layouts = [True, False, None, True, False]  # astronaut on the left?  None: a frame with no face
    blank = np.full((320, 640, 3), 90, dtype=np.uint8)
    frames = [
        Frame(
            i,
            i / 25,
            blank if left is None else _side_by_side(astro, cam) if left else _side_by_side(cam, astro),
        )
        for i, left in enumerate(layouts)
    ]
    config = FaceConfig(min_face_size=20, crop_size=128)
    faces = list(track_faces(frames, mtcnn_detector, config))
    assert [f.frame_index for f in faces] == [0, 0, 1, 1, 3, 3, 4, 4]
    ids: dict[str, set[int]] = {"astronaut": set(), "camera": set()}
    for face in faces:
        left = layouts[face.frame_index]
        assert left is not None
        ids[_identity(face, left)].add(face.track_id)
        assert face.crop.shape == (128, 128, 3) and face.crop.dtype == np.uint8
        assert face.timestamp == face.frame_index / 25
        image = frames[face.frame_index].image
        np.testing.assert_array_equal(face.crop, crop_face(image, face.detection.box, 128, config.margin))
    assert len(ids["astronaut"]) == 1 and len(ids["camera"]) == 1
    assert ids["astronaut"] != ids["camera"]
    first = {f.track_id: f.crop for f in faces if f.frame_index == 0}
    assert FaceTracker().mse(*first.values()) > config.mse_threshold  # the two faces really differ


def test_track_faces_streams(mtcnn_detector: MTCNNDetector, two_faces: tuple[np.ndarray, np.ndarray]) -> None:
    frame = _side_by_side(*two_faces)

    def frames() -> Iterator[Frame]:
        yield Frame(0, 0.0, frame)
        raise AssertionError("read past the first frame before its faces were yielded")

    first = next(track_faces(frames(), mtcnn_detector, FaceConfig(min_face_size=20)))
    assert first.frame_index == 0 and first.track_id == 0


def _decode(path: Path) -> Iterator[Frame]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for index, frame in enumerate(container.decode(stream)):
            yield Frame(index, float(frame.time or 0.0), frame.to_ndarray(format="rgb24"))


def test_track_faces_on_a_real_encoded_video(
    tmp_path: Path, mtcnn_detector: MTCNNDetector, two_faces: tuple[np.ndarray, np.ndarray]
) -> None:
    astro, cam = two_faces
    pictures = [_side_by_side(astro, cam), _side_by_side(cam, astro)] * 2
    pictures.insert(2, np.zeros_like(pictures[0]))  # frame 2: no face
    path = tmp_path / "swap.mp4"
    write_video(path, pictures, fps=10, codec="libx264", crf=18)
    faces = list(track_faces(_decode(path), mtcnn_detector, FaceConfig(min_face_size=20, crop_size=64)))
    layouts = [True, False, None, True, False]
    by_identity: dict[str, set[int]] = {"astronaut": set(), "camera": set()}
    for face in faces:
        left = layouts[face.frame_index]
        assert left is not None
        by_identity[_identity(face, left)].add(face.track_id)
    assert sorted(f.frame_index for f in faces) == [0, 0, 1, 1, 3, 3, 4, 4]
    assert len(by_identity["astronaut"]) == 1 and len(by_identity["camera"]) == 1
    assert by_identity["astronaut"] != by_identity["camera"]
    assert [round(f.timestamp, 3) for f in faces if f.frame_index == 4] == [0.4, 0.4]


class _CountingDetector:
    """A real detector that records the frames it was run on."""

    def __init__(self, detector: MTCNNDetector) -> None:
        self.name, self.detector, self.calls = detector.name, detector, 0

    def detect(self, image: np.ndarray) -> list:
        self.calls += 1
        return self.detector.detect(image)


def _corners(box: BBox) -> tuple[float, float, float, float]:
    return (box.x1, box.y1, box.x2, box.y2)


def _panning(astronaut_rgb: np.ndarray, n: int, blank: tuple[int, ...] = ()) -> list[Frame]:
    """The astronaut's head moving 7 px right and 3 px down per frame on a grey 640x360 canvas."""
    head = cv2.resize(astronaut_rgb[0:300, 100:400], (200, 200), interpolation=cv2.INTER_AREA)
    frames = []
    for i in range(n):
        canvas = np.full((360, 640, 3), 120, dtype=np.uint8)
        if i not in blank:
            x, y = 40 + 7 * i, 30 + 3 * i
            canvas[y : y + 200, x : x + 200] = head
        frames.append(Frame(i, i / 25, canvas))
    return frames


def test_keyframe_detection_interpolates_boxes_along_the_track(
    mtcnn_detector: MTCNNDetector, astronaut_rgb: np.ndarray
) -> None:
    frames = _panning(astronaut_rgb, 11)
    detected = track_faces(frames, mtcnn_detector, FaceConfig(min_face_size=20))
    every_frame = {f.frame_index: _corners(f.detection.box) for f in detected}
    counting = _CountingDetector(mtcnn_detector)
    config = FaceConfig(min_face_size=20, detect_every=4, crop_size=96)
    faces = list(track_faces(frames, counting, config))
    assert counting.calls == 4  # frames 0, 4, 8 and the last one (10)
    assert [f.frame_index for f in faces] == list(range(11)) and {f.track_id for f in faces} == {0}
    for face in faces:
        off = np.abs(np.subtract(_corners(face.detection.box), every_frame[face.frame_index]))
        assert off.max() < 4.0, (face.frame_index, off)  # the face moves ~7.6 px per frame
        image = frames[face.frame_index].image
        np.testing.assert_array_equal(face.crop, crop_face(image, face.detection.box, 96, config.margin))
    halfway = faces[2].detection.box  # frame 2: exactly between the detections of frames 0 and 4
    a, b = faces[0].detection.box, faces[4].detection.box
    assert halfway.x1 == pytest.approx((a.x1 + b.x1) / 2) and halfway.y2 == pytest.approx((a.y2 + b.y2) / 2)


def test_keyframe_detection_leaves_a_gap_where_a_face_is_missing(
    mtcnn_detector: MTCNNDetector, astronaut_rgb: np.ndarray
) -> None:
    frames = _panning(astronaut_rgb, 9, blank=(7, 8))  # the face is gone from frame 7 on
    faces = list(track_faces(frames, mtcnn_detector, FaceConfig(min_face_size=20, detect_every=4)))
    # detected in 0 and 4, not in 8: frames 1-3 are interpolated, 5-7 are a gap (the face's end is unknown)
    assert [f.frame_index for f in faces] == [0, 1, 2, 3, 4]


def test_keyframe_detection_keeps_the_frames_read_before_decoding_fails(
    mtcnn_detector: MTCNNDetector, astronaut_rgb: np.ndarray
) -> None:
    frames = _panning(astronaut_rgb, 6)

    def broken() -> Iterator[Frame]:
        yield from frames
        raise RuntimeError("the decoder gave up")

    faces: list[TrackedFace] = []
    with pytest.raises(RuntimeError, match="gave up"):
        for face in track_faces(broken(), mtcnn_detector, FaceConfig(min_face_size=20, detect_every=4)):
            faces.append(face)
    assert [f.frame_index for f in faces] == [0, 1, 2, 3, 4, 5]  # 5, the last read, was detected in


class _BatchCountingDetector(_CountingDetector):
    """Also offers ``detect_batch`` (as MTCNN does), counting its calls and the frames in them."""

    def __init__(self, detector: MTCNNDetector) -> None:
        super().__init__(detector)
        self.batches: list[int] = []

    def detect_batch(self, images: list[np.ndarray]) -> list:
        self.batches.append(len(images))
        return self.detector.detect_batch(images)


class _OldStyleBatcher:
    """A backend written before the rename: batched detection under its old name ``detect_many``."""

    name = "old-style"

    def __init__(self) -> None:
        self.singles = 0
        self.batches: list[int] = []

    def detect(self, image: np.ndarray) -> list:
        self.singles += 1
        return []

    def detect_many(self, images: list[np.ndarray]) -> list:
        self.batches.append(len(images))
        return [[] for _ in images]


def test_detect_batch_still_batches_an_old_style_backend_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    images = [np.zeros((8, 8, 3), np.uint8)] * 3
    old = _OldStyleBatcher()
    with caplog.at_level(logging.WARNING, logger="deepfake_detect.faces.detectors.base"):
        assert detect_batch(old, images) == [[], [], []]
        detect_batch(old, images)
    assert old.batches == [3, 3] and old.singles == 0
    assert caplog.text.count("detect_many is deprecated; name it detect_batch") == 1  # once per backend


def test_batched_keyframe_detection_gives_the_same_faces(
    mtcnn_detector: MTCNNDetector, astronaut_rgb: np.ndarray
) -> None:
    frames = _panning(astronaut_rgb, 14, blank=(9,))
    one = list(track_faces(frames, mtcnn_detector, FaceConfig(min_face_size=20, detect_every=3)))
    counting = _BatchCountingDetector(mtcnn_detector)
    config = FaceConfig(min_face_size=20, detect_every=3, detect_batch=2)
    batched = list(track_faces(frames, counting, config))
    # detected in 0, 3 | 6, 9 | 12 and the last (13): batches of 2 keyframes, the rest at the end
    assert counting.batches == [2, 2, 2] and counting.calls == 0
    assert [(f.frame_index, f.track_id) for f in batched] == [(f.frame_index, f.track_id) for f in one]
    for mine, theirs in zip(batched, one, strict=True):
        assert np.abs(np.subtract(_corners(mine.detection.box), _corners(theirs.detection.box))).max() < 0.5


def test_track_collector_gathers_faces_into_one_face_track_per_id() -> None:
    collector, crop = TrackCollector(), np.zeros((4, 4, 3), np.uint8)
    for index, track_id in [(0, 1), (0, 0), (1, 1), (3, 1), (3, 0)]:
        collector.add(TrackedFace(index, index / 10, track_id, Detection(BBox(0, 0, 4, 4), 0.9), crop))
    assert len(collector) == 2 and collector.frame_count(1) == 3 and collector.frame_count(7) == 0
    assert collector.tracks() == [FaceTrack(0, (0, 3), (0.0, 0.3)), FaceTrack(1, (0, 1, 3), (0.0, 0.1, 0.3))]
    with pytest.raises(ValueError, match="2 frames but 1 timestamps"):
        FaceTrack(0, (0, 1), (0.0,))
    with pytest.raises(ValueError, match="1 frames but 2 embeddings"):
        FaceTrack(0, (0,), (0.0,), np.zeros((2, 8), np.float32))
