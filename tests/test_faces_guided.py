"""Track-guided keyframe detection (faces.tracked): region geometry by hand, then real faces in real videos
against per-frame full-frame MTCNN."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from deepfake_detect.config import FaceConfig
from deepfake_detect.faces import MTCNNDetector, TrackedFace, crop_face, track_faces
from deepfake_detect.faces.guided import GuidedScan, Region, pyramid_start, region_around
from deepfake_detect.types import BBox, Detection, Frame
from deepfake_detect.video import write_video

# --- geometry, hand-computed ----------------------------------------------------------------------


def test_region_is_twice_the_face_centred_and_shrunk_like_the_full_scan() -> None:
    # a 40x40 face centred on (120, 70): the square of side 80 from (80, 30); shrunk 2x to 40 px
    region = region_around(BBox(100, 50, 140, 90), shrink=2.0, context=2.0)
    assert region == Region(x0=80, y0=30, side=80, size=40)
    assert region.scale == 0.5
    # a box found at (10, 5)-(30, 25) in the 40 px image is (80 + 2 * 10, 30 + 2 * 5)-(80 + 60, 30 + 50)
    assert region.to_frame(BBox(10, 5, 30, 25)) == BBox(100, 40, 140, 80)


def test_region_mapping_with_a_fractional_scale_and_an_offset_outside_the_frame() -> None:
    # a 30x20 face centred on (5, 10): side 60 (the longer side, doubled) from x = -25, y = -20; 1080p -> 640
    # shrinks 3x: the corner moves out to multiples of 3 (-27, -21) and the side to 63 (21 px)
    region = region_around(BBox(-10, 0, 20, 20), shrink=1920 / 640, context=2.0)
    assert region == Region(x0=-27, y0=-21, side=63, size=21)
    got = region.to_frame(BBox(1.5, 2.0, 19.0, 20.0))  # x: -27 + 3 * 1.5, y: -21 + 3 * 2 ...
    assert (got.x1, got.y1, got.x2, got.y2) == pytest.approx((-22.5, -15.0, 30.0, 39.0))


def test_region_pyramid_starts_at_one_of_the_full_scans_scales() -> None:
    assert pyramid_start(12.0, 36.0) == pytest.approx(12 / 0.709**3)  # 33.67 <= 36 < 12 / 0.709**4
    assert pyramid_start(20.0, 10.0) == 20.0  # never below the full scan's own smallest face


class _StubDetector:
    """Full scans give ``full``; ``detect_scaled`` gives ``local`` (region pixels), recording its inputs."""

    name = "stub"

    def __init__(self, full: list[Detection], local: list[Detection]) -> None:
        self.full, self.local = full, local
        self.scaled: list[tuple[np.ndarray, float]] = []

    def detect(self, image: np.ndarray) -> list[Detection]:
        return list(self.full)

    def detect_scaled(self, images: list[np.ndarray], min_face_size: float) -> list[list[Detection]]:
        self.scaled += [(image, min_face_size) for image in images]
        return [list(self.local) for _ in images]


def test_guided_scan_cuts_the_region_and_maps_its_box_back_to_frame_pixels() -> None:
    image = np.random.default_rng(0).integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    known = Detection(BBox(400, 200, 520, 320), 0.99)  # 120 px face; the frame is shrunk 2x to 640
    stub = _StubDetector(full=[], local=[Detection(BBox(35, 32, 95, 92), 0.98)])
    scan = GuidedScan(stub, FaceConfig(tracked=True, min_face_size=20))
    found = scan.detect(image, [known])
    # region: 2.5 x 120 = 300 px from (310, 110), seen at 150 px (x2): (310 + 70, 110 + 64)-(310 + 190, ...)
    assert found == [Detection(BBox(380, 174, 500, 294), 0.98)]
    cut, smallest = stub.scaled[0]
    expected = cv2.resize(image[110:410, 310:610], (150, 150), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(cut, expected)
    # the pyramid from 0.6 x the face's 60 px in the region, rounded down to a scale of the full scan's
    assert smallest == pytest.approx(12 / 0.709**3)
    assert (scan.guided_scans, scan.full_scans) == (1, 0)


def test_guided_scan_falls_back_to_a_full_scan_when_the_face_is_not_found_near_its_box() -> None:
    image = np.zeros((360, 640, 3), dtype=np.uint8)
    full = [Detection(BBox(300, 100, 360, 160), 0.97)]
    known = [Detection(BBox(100, 100, 160, 160), 0.99)]
    elsewhere = Detection(BBox(0, 0, 20, 20), 0.99)  # in the region (from 55, 55), a third of the size
    for local in ([], [elsewhere]):
        scan = GuidedScan(_StubDetector(full, local), FaceConfig(tracked=True, min_face_size=20))
        assert scan.detect(image, known) == full
        assert (scan.guided_scans, scan.full_scans) == (0, 1)


def test_full_scan_every_k_keyframes_and_without_known_faces() -> None:
    image = np.zeros((360, 640, 3), dtype=np.uint8)
    known = [Detection(BBox(100, 100, 160, 160), 0.99)]
    stub = _StubDetector(full=known, local=[Detection(BBox(30, 30, 90, 90), 0.99)])
    scan = GuidedScan(stub, FaceConfig(tracked=True, min_face_size=20, full_scan_every=3))
    kinds = []
    for faces in ([], known, known, known, known, known, known):
        before = scan.full_scans
        scan.detect(image, faces)
        kinds.append("F" if scan.full_scans > before else "g")
    assert "".join(kinds) == "FggFggF"
    untracked = GuidedScan(stub, FaceConfig(tracked=False))
    untracked.detect(image, known)
    assert (untracked.guided_scans, untracked.full_scans) == (0, 1)


# --- real faces in encoded videos ------------------------------------------------------------------


class _Counting:
    """The session's MTCNN, counting full scans and region calls."""

    def __init__(self, detector: MTCNNDetector) -> None:
        self.name, self.detector, self.full, self.regions = detector.name, detector, 0, 0

    def detect(self, image: np.ndarray) -> list[Detection]:
        self.full += 1
        return self.detector.detect(image)

    def detect_scaled(self, images: list[np.ndarray], min_face_size: float) -> list[list[Detection]]:
        self.regions += len(images)
        return self.detector.detect_scaled(images, min_face_size)


def _head(photo: np.ndarray, side: int = 160) -> np.ndarray:
    return cv2.resize(photo[0:300, 100:400], (side, side), interpolation=cv2.INTER_AREA)


def _video(path: Path, n: int, place: list[list[tuple[int, int, np.ndarray]]]) -> list[Frame]:
    """Encode ``n`` 640x360 frames with the given (x, y, head) per frame (H.264), decode them back."""
    pictures = []
    for i in range(n):
        canvas = np.full((360, 640, 3), 110, dtype=np.uint8)
        for x, y, head in place[i]:
            canvas[y : y + head.shape[0], x : x + head.shape[1]] = head
        pictures.append(canvas)
    write_video(path, pictures, fps=25, codec="libx264", crf=18)
    with av.open(str(path)) as container:
        return [
            Frame(i, float(f.time or 0.0), f.to_ndarray(format="rgb24"))
            for i, f in enumerate(container.decode(container.streams.video[0]))
        ]


def _best_iou(box: BBox, faces: list[TrackedFace], index: int) -> float:
    return max((box.iou(f.detection.box) for f in faces if f.frame_index == index), default=0.0)


def test_tracked_keyframes_find_the_faces_of_per_frame_full_detection(
    tmp_path: Path, mtcnn_detector: MTCNNDetector, astronaut_rgb: np.ndarray
) -> None:
    head = _head(astronaut_rgb, 240)  # the face: about 75 px
    n = 40
    place = [[(40 + 5 * i, 40 + i, head)] for i in range(n)]  # linear: interpolation is exact
    frames = _video(tmp_path / "pan.mp4", n, place)
    full = list(track_faces(frames, mtcnn_detector, FaceConfig(min_face_size=20)))
    counting = _Counting(mtcnn_detector)
    config = FaceConfig(min_face_size=20, detect_every=4, tracked=True, full_scan_every=4)
    tracked = list(track_faces(frames, counting, config))
    assert {f.frame_index for f in full} == set(range(n))
    good = sum(_best_iou(f.detection.box, tracked, f.frame_index) >= 0.9 for f in full)
    assert good >= 0.95 * len(full)
    # (the misses are MTCNN's own jitter frame to frame), and not at keyframes
    keyframes = [f for f in full if f.frame_index % 4 == 0 or f.frame_index == n - 1]
    assert all(_best_iou(f.detection.box, tracked, f.frame_index) >= 0.9 for f in keyframes)
    assert {f.track_id for f in tracked} == {0}  # no extra tracks
    # keyframes 0, 4, ..., 36 and the last (39): full scans at 0, 16, 32; the other 8 around the face
    assert (counting.full, counting.regions) == (3, 8)
    for face in tracked:
        np.testing.assert_array_equal(
            face.crop, crop_face(frames[face.frame_index].image, face.detection.box, 256, config.margin)
        )


def test_a_face_that_appears_later_is_found_by_the_periodic_full_scan(
    tmp_path: Path, mtcnn_detector: MTCNNDetector, astronaut_rgb: np.ndarray, camera_rgb: np.ndarray
) -> None:
    astro, cam = _head(astronaut_rgb, 150), _head(camera_rgb, 150)
    n = 24
    place = [[(40 + 2 * i, 60, astro)] + ([(420, 100, cam)] if i >= 5 else []) for i in range(n)]
    frames = _video(tmp_path / "later.mp4", n, place)
    counting = _Counting(mtcnn_detector)
    config = FaceConfig(min_face_size=20, detect_every=2, tracked=True, full_scan_every=4)
    faces = list(track_faces(frames, counting, config))
    tracks: dict[int, list[int]] = {}
    for face in faces:
        tracks.setdefault(face.track_id, []).append(face.frame_index)
    assert len(tracks) == 2
    # keyframes 2, 4, 6 looked only around the astronaut; 8 is the next full scan
    assert sorted(indices[0] for indices in tracks.values()) == [0, 8]
    assert max(f.detection.box.x1 for f in faces if f.frame_index == n - 1) > 400
    assert counting.regions > 0


def test_a_lost_face_makes_that_keyframe_a_full_scan(
    tmp_path: Path, mtcnn_detector: MTCNNDetector, astronaut_rgb: np.ndarray
) -> None:
    head = _head(astronaut_rgb)
    n = 13
    place = [[(40 + 3 * i, 50, head)] if i < 8 else [(440, 180, head)] for i in range(n)]  # jumps at 8
    frames = _video(tmp_path / "jump.mp4", n, place)
    counting = _Counting(mtcnn_detector)
    config = FaceConfig(min_face_size=20, detect_every=4, tracked=True, full_scan_every=100)
    faces = list(track_faces(frames, counting, config))
    at_8 = [f for f in faces if f.frame_index == 8]
    assert len(at_8) == 1 and at_8[0].detection.box.x1 > 400  # found where it went, in that keyframe
    assert counting.full == 2  # frame 0 (nothing known) and frame 8 (the face was lost there)
    assert counting.regions == 3  # keyframes 4, 8 (in vain) and 12


def test_detect_hands_the_guided_scan_through_its_timed_detector(astronaut_rgb: np.ndarray) -> None:
    from deepfake_detect.faces import HaarDetector
    from deepfake_detect.faces.detectors.base import supports_scaled
    from deepfake_detect.inference.analyze import StageTimer, TimedDetector

    timer = StageTimer()
    timed = TimedDetector(_StubDetector(full=[], local=[Detection(BBox(1, 1, 9, 9), 0.9)]), timer, 1)
    assert supports_scaled(timed)
    assert timed.detect_scaled([astronaut_rgb[:64, :64]], 12.0) == [[Detection(BBox(1, 1, 9, 9), 0.9)]]
    assert "detect" in timer.seconds
    assert not supports_scaled(TimedDetector(HaarDetector(), StageTimer(), 1))  # Haar: full scans only


def test_detect_resolves_tracked_off_by_default_and_on_when_told(detect_model_dir: Path) -> None:
    from deepfake_detect.inference.options import DetectOptions, resolve
    from deepfake_detect.models.io import read_model_config

    config = read_model_config(detect_model_dir)
    assert config.face_config().tracked is False  # the model's (preprocessing's) setting
    assert resolve(DetectOptions(), config).faces.tracked is False
    assert resolve(DetectOptions(tracked=True), config).faces.tracked is True


def test_preprocess_store_settings_name_the_tracked_scan_only_when_it_is_on() -> None:
    from deepfake_detect.config import Config
    from deepfake_detect.preprocess import store_settings

    paper = store_settings(Config())["faces"]
    assert "tracked" not in paper and "full_scan_every" not in paper  # older stores stay valid
    opted_in = store_settings(Config.model_validate({"faces": {"tracked": True, "detect_every": 4}}))["faces"]
    assert (opted_in["tracked"], opted_in["full_scan_every"], opted_in["detect_every"]) == (True, 8, 4)
