"""Face detector backends on real photographs, coordinate mapping, and square cropping."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import cv2
import numpy as np
import pytest

from deepfake_detect.config import FaceConfig, config_from_dict
from deepfake_detect.faces import (
    FACE_DETECTORS,
    FaceDetector,
    HaarDetector,
    MTCNNDetector,
    create_face_detector,
    crop_face,
)
from deepfake_detect.registry import UnknownNameError, UnknownOptionError
from deepfake_detect.types import BBox, Detection

# Hand-checked on the images (eyebrows to chin, ear to ear), 512x512 pixel coordinates.
ASTRONAUT_FACE = BBox(180, 65, 270, 175)
CAMERA_FACE = BBox(195, 115, 258, 195)


def _frame_with(photo: np.ndarray, height: int, width: int, x: int, y: int) -> np.ndarray:
    frame = np.zeros((height, width, 3), dtype=np.uint8)
    frame[y : y + photo.shape[0], x : x + photo.shape[1]] = photo
    return frame


def _resized(image: np.ndarray, side: int) -> np.ndarray:
    interpolation = cv2.INTER_AREA if side < image.shape[0] else cv2.INTER_LINEAR
    return cv2.resize(image, (side, side), interpolation=interpolation)


# --- every registered backend -------------------------------------------------------------------


@pytest.fixture(params=FACE_DETECTORS.names())
def any_detector(request: pytest.FixtureRequest, mtcnn_detector: MTCNNDetector) -> FaceDetector:
    if request.param == "mtcnn":
        return mtcnn_detector  # built once per session
    return create_face_detector(FaceConfig(detector=request.param))


def test_registry_lists_both_backends() -> None:
    assert {"mtcnn", "haar"} <= set(FACE_DETECTORS.names())


def test_every_backend_finds_the_astronaut(any_detector: FaceDetector, astronaut_rgb: np.ndarray) -> None:
    detections = any_detector.detect(astronaut_rgb)
    assert isinstance(any_detector, FaceDetector)
    assert len(detections) == 1
    assert detections[0].box.iou(ASTRONAUT_FACE) > 0.55
    assert 0.0 < detections[0].score <= 1.0


@pytest.mark.parametrize("kind", ["noise", "flat"])
def test_every_backend_finds_nothing_without_faces(any_detector: FaceDetector, kind: str) -> None:
    rng = np.random.default_rng(0)
    if kind == "noise":
        image = rng.integers(0, 256, size=(240, 320, 3), dtype=np.uint8)
    else:
        image = np.full((240, 320, 3), 128, dtype=np.uint8)
    assert any_detector.detect(image) == []


@pytest.mark.parametrize(
    "image", [np.zeros((32, 32), np.uint8), np.zeros((32, 32, 3), np.float32), np.zeros((0, 32, 3), np.uint8)]
)
def test_every_backend_rejects_non_rgb_input(any_detector: FaceDetector, image: np.ndarray) -> None:
    with pytest.raises(ValueError, match="image"):
        any_detector.detect(image)


def test_unknown_backend_name_is_a_clear_error() -> None:
    with pytest.raises(UnknownNameError, match="mtcnn"):
        create_face_detector(FaceConfig(detector="mtcn"))


# --- MTCNN ----------------------------------------------------------------------------------------


def test_mtcnn_finds_the_astronaut_confidently(
    mtcnn_detector: MTCNNDetector, astronaut_rgb: np.ndarray
) -> None:
    [detection] = mtcnn_detector.detect(astronaut_rgb)
    assert detection.score > 0.999
    assert detection.box.iou(ASTRONAUT_FACE) > 0.7


def test_mtcnn_finds_the_cameraman(mtcnn_detector: MTCNNDetector, camera_rgb: np.ndarray) -> None:
    [detection] = mtcnn_detector.detect(camera_rgb)
    assert detection.score > 0.99
    assert detection.box.iou(CAMERA_FACE) > 0.6


def test_mtcnn_boxes_are_in_full_resolution_coordinates(astronaut_rgb: np.ndarray) -> None:
    detector = MTCNNDetector(detect_max_side=256, min_face_size=40)
    small = _resized(astronaut_rgb, 384)
    large = _resized(astronaut_rgb, 1024)
    [on_small] = detector.detect(small)
    [on_large] = detector.detect(large)
    assert on_small.box.scale(512 / 384).iou(ASTRONAUT_FACE) > 0.65
    assert on_large.box.scale(512 / 1024).iou(ASTRONAUT_FACE) > 0.65
    assert on_small.box.scale(1024 / 384).iou(on_large.box) > 0.8


def test_mtcnn_maps_each_axis_and_offset_of_a_wide_frame(
    mtcnn_detector: MTCNNDetector, astronaut_rgb: np.ndarray
) -> None:
    frame = _frame_with(astronaut_rgb, height=600, width=1200, x=500, y=60)
    [detection] = mtcnn_detector.detect(frame)  # detected at 640x320
    shifted = BBox(
        ASTRONAUT_FACE.x1 + 500, ASTRONAUT_FACE.y1 + 60, ASTRONAUT_FACE.x2 + 500, ASTRONAUT_FACE.y2 + 60
    )
    assert detection.box.iou(shifted) > 0.65


def test_mtcnn_works_on_a_downscaled_copy(astronaut_rgb: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    detector = MTCNNDetector(detect_max_side=200, min_face_size=60)
    model = detector._load()
    seen: list[tuple[tuple[int, ...], int]] = []
    original = model.detect

    def spy(image: np.ndarray, *args: object, **kwargs: object) -> object:
        seen.append((image.shape, model.min_face_size))
        return original(image, *args, **kwargs)

    monkeypatch.setattr(model, "detect", spy)
    [detection] = detector.detect(astronaut_rgb)
    assert seen == [((200, 200, 3), round(60 * 200 / 512))]
    assert detection.box.iou(ASTRONAUT_FACE) > 0.6


def test_mtcnn_min_face_size_is_in_full_resolution_pixels(astronaut_rgb: np.ndarray) -> None:
    # The face is ~90 px wide at 512; detected at 256 it is ~45 px.
    assert len(MTCNNDetector(detect_max_side=256, min_face_size=60).detect(astronaut_rgb)) == 1
    assert MTCNNDetector(detect_max_side=256, min_face_size=200).detect(astronaut_rgb) == []


def test_mtcnn_score_threshold_boundary(mtcnn_detector: MTCNNDetector, astronaut_rgb: np.ndarray) -> None:
    [detection] = mtcnn_detector.detect(astronaut_rgb)
    at = MTCNNDetector(detect_max_side=640, min_face_size=20, score_threshold=detection.score)
    above = MTCNNDetector(
        detect_max_side=640, min_face_size=20, score_threshold=np.nextafter(detection.score, 2)
    )
    assert [d.score for d in at.detect(astronaut_rgb)] == [detection.score]
    assert above.detect(astronaut_rgb) == []


def test_mtcnn_batched_detection_equals_one_at_a_time(
    mtcnn_detector: MTCNNDetector, astronaut_rgb: np.ndarray, camera_rgb: np.ndarray
) -> None:
    blank = np.full_like(astronaut_rgb, 90)
    images = [astronaut_rgb, blank, camera_rgb, np.ascontiguousarray(astronaut_rgb[:, ::-1])]
    batched = mtcnn_detector.detect_batch(images)
    alone = [mtcnn_detector.detect(image) for image in images]
    assert [len(found) for found in batched] == [len(found) for found in alone] == [1, 0, 1, 1]
    for mine, theirs in zip(batched, alone, strict=True):
        for a, b in zip(mine, theirs, strict=True):
            assert a.box.iou(b.box) > 0.99 and a.score == pytest.approx(b.score, abs=1e-4)
    mixed = mtcnn_detector.detect_batch([astronaut_rgb, astronaut_rgb[:300]])  # sizes differ: one by one
    assert len(mixed) == 2 and len(mixed[0]) == 1


def test_creating_mtcnn_loads_nothing() -> None:
    code = (
        "import sys\n"
        "from deepfake_detect.config import FaceConfig\n"
        "from deepfake_detect.faces import create_face_detector\n"
        "d = create_face_detector(FaceConfig())\n"
        "assert d.name == 'mtcnn'\n"
        "assert 'torch' not in sys.modules and 'facenet_pytorch' not in sys.modules, 'loaded eagerly'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# --- Haar -----------------------------------------------------------------------------------------


def test_haar_score_is_normalised_neighbour_count(astronaut_rgb: np.ndarray) -> None:
    detector = HaarDetector(min_neighbors=5)
    [detection] = detector.detect(astronaut_rgb)
    neighbours = detection.score * 5 / (1 - detection.score)
    assert 0.5 < detection.score < 1.0
    assert neighbours == pytest.approx(round(neighbours)) and round(neighbours) > 5


def test_haar_maps_boxes_back_from_the_downscaled_frame(astronaut_rgb: np.ndarray) -> None:
    frame = _frame_with(_resized(astronaut_rgb, 1024), height=1024, width=1400, x=300, y=0)
    [detection] = HaarDetector(detect_max_side=350, min_face_size=80).detect(frame)
    face = ASTRONAUT_FACE.scale(2.0)
    shifted = BBox(face.x1 + 300, face.y1, face.x2 + 300, face.y2)
    assert detection.box.iou(shifted) > 0.55


def test_haar_misses_the_cameraman_in_near_profile(camera_rgb: np.ndarray) -> None:
    # Documented limitation: the frontal-face cascade does not see this face; MTCNN does.
    assert HaarDetector().detect(camera_rgb) == []


def test_haar_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError, match="scale_factor"):
        HaarDetector(scale_factor=1.0)
    with pytest.raises(ValueError, match="min_neighbors"):
        HaarDetector(min_neighbors=0)


# --- cropping -------------------------------------------------------------------------------------


@pytest.fixture
def ramp() -> np.ndarray:
    rng = np.random.default_rng(7)
    return rng.integers(0, 256, size=(100, 120, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    ("box", "margin", "rows", "cols"),
    [
        (BBox(10, 20, 30, 40), 0.0, (20, 40), (10, 30)),
        (BBox(40, 40, 60, 60), 0.5, (35, 65), (35, 65)),  # side 30 around centre (50, 50)
        (BBox(10, 20, 50, 30), 0.0, (5, 45), (10, 50)),  # wide box -> square of side 40 around (30, 25)
        (BBox(10.4, 20.4, 30.4, 40.4), 0.0, (20, 40), (10, 30)),  # sub-pixel: rounds to the nearest pixel
    ],
)
def test_crop_face_exact_pixels_without_resize(
    ramp: np.ndarray, box: BBox, margin: float, rows: tuple[int, int], cols: tuple[int, int]
) -> None:
    side = rows[1] - rows[0]
    crop = crop_face(ramp, box, size=side, margin=margin)
    np.testing.assert_array_equal(crop, ramp[rows[0] : rows[1], cols[0] : cols[1]])


def test_crop_face_pads_outside_with_zeros(ramp: np.ndarray) -> None:
    crop = crop_face(ramp, BBox(-10, -5, 10, 15), size=20, margin=0.0)
    expected = np.zeros((20, 20, 3), np.uint8)
    expected[5:, 10:] = ramp[0:15, 0:10]
    np.testing.assert_array_equal(crop, expected)
    corner = crop_face(ramp, BBox(110, 90, 130, 110), size=20, margin=0.0)
    np.testing.assert_array_equal(corner[:10, :10], ramp[90:100, 110:120])
    assert not corner[10:].any() and not corner[:, 10:].any()


def test_crop_face_far_outside_is_all_zero(ramp: np.ndarray) -> None:
    crop = crop_face(ramp, BBox(500, 500, 540, 540), size=16)
    assert crop.shape == (16, 16, 3) and not crop.any()


@pytest.mark.parametrize(("size", "interpolation"), [(16, cv2.INTER_AREA), (64, cv2.INTER_LINEAR)])
def test_crop_face_resizes_with_area_or_linear(ramp: np.ndarray, size: int, interpolation: int) -> None:
    crop = crop_face(ramp, BBox(10, 20, 50, 60), size=size, margin=0.0)
    reference = cv2.resize(
        np.ascontiguousarray(ramp[20:60, 10:50]), (size, size), interpolation=interpolation
    )
    assert crop.shape == (size, size, 3) and crop.dtype == np.uint8
    np.testing.assert_array_equal(crop, reference)


def test_crop_face_takes_pixels_from_the_full_resolution_frame(
    mtcnn_detector: MTCNNDetector, astronaut_rgb: np.ndarray
) -> None:
    big = _resized(astronaut_rgb, 1024)
    [detection] = mtcnn_detector.detect(big)
    crop = crop_face(big, detection.box, size=256, margin=0.2)
    x, y = round(detection.box.center[0]), round(detection.box.center[1])
    assert crop.shape == (256, 256, 3)
    # the square is ~1.2 x 200 px wide: the crop's centre is the frame's pixel at the box centre
    np.testing.assert_allclose(crop[128, 128].astype(float), big[y, x].astype(float), atol=12)


def test_crop_face_rejects_bad_arguments(ramp: np.ndarray) -> None:
    with pytest.raises(ValueError, match="size"):
        crop_face(ramp, BBox(0, 0, 10, 10), size=0)
    with pytest.raises(ValueError, match="margin"):
        crop_face(ramp, BBox(0, 0, 10, 10), margin=-0.1)
    with pytest.raises(ValueError, match="image"):
        crop_face(ramp[:, :, 0], BBox(0, 0, 10, 10))


# --- a new backend with an option of its own ------------------------------------------------------


class GrownHaar:
    """A throwaway backend: Haar's faces, each box grown by ``grow`` times its size (its own option)."""

    name: str  # set by the registry

    def __init__(self, detect_max_side: int = 640, min_face_size: int = 40, grow: float = 0.0) -> None:
        self.haar = HaarDetector(detect_max_side=detect_max_side, min_face_size=min_face_size)
        self.grow = grow

    def detect(self, image: np.ndarray) -> list[Detection]:
        grown = []
        for found in self.haar.detect(image):
            b, dx, dy = found.box, found.box.width * self.grow / 2, found.box.height * self.grow / 2
            grown.append(Detection(BBox(b.x1 - dx, b.y1 - dy, b.x2 + dx, b.y2 + dy), found.score))
        return grown


@pytest.fixture
def grown_haar() -> Iterator[str]:
    FACE_DETECTORS.register("test-grown-haar")(GrownHaar)
    yield "test-grown-haar"
    FACE_DETECTORS.unregister("test-grown-haar")


def test_a_new_backend_gets_its_own_option_from_the_config(
    grown_haar: str, astronaut_rgb: np.ndarray
) -> None:
    """``faces.detector_options`` reach the backend's constructor; the shared settings still do too."""
    config = config_from_dict({}, [f"faces.detector={grown_haar}", "faces.detector_options={grow: 1.0}"])
    detector = create_face_detector(config.faces)
    assert detector.name == grown_haar  # the registry named it
    [plain] = HaarDetector().detect(astronaut_rgb)
    [detection] = detector.detect(astronaut_rgb)
    assert plain.box.iou(ASTRONAUT_FACE) > 0.55
    assert detection.box.width == pytest.approx(2 * plain.box.width)
    assert detection.box.height == pytest.approx(2 * plain.box.height)
    huge = config.faces.model_copy(update={"min_face_size": 400})  # a shared setting
    assert create_face_detector(huge).detect(astronaut_rgb) == []


def test_an_unknown_detector_option_names_the_options_it_takes() -> None:
    with pytest.raises(
        UnknownOptionError, match=r"'haar' has no option 'grow'; its options: scale_factor, mi"
    ):
        create_face_detector(FaceConfig(detector="haar", detector_options={"grow": 1.0}))
    with pytest.raises(ValueError, match=r"shared setting; set faces\.min_face_size"):
        create_face_detector(FaceConfig(detector="haar", detector_options={"min_face_size": 10}))
    haar = create_face_detector(FaceConfig(detector="haar", detector_options={"min_neighbors": 3}))
    assert isinstance(haar, HaarDetector) and haar.min_neighbors == 3 and haar.min_face_size == 40


def test_no_detector_options_leave_the_face_settings_as_they_were() -> None:
    """Model directories and store settings hold FaceConfig dumps: without options they read the same."""
    assert "detector_options" not in FaceConfig().model_dump(mode="json")
    dumped = FaceConfig(detector="haar", detector_options={"min_neighbors": 3}).model_dump(mode="json")
    assert dumped["detector_options"] == {"min_neighbors": 3}
    assert FaceConfig.model_validate(dumped).detector_options == {"min_neighbors": 3}
