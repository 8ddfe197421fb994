"""Dataset layouts (SPEC §5): small trees of real videos, label files written as the datasets write them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deepfake_detect.data.layouts import LAYOUTS, DatasetError, DatasetListing, load_dataset
from deepfake_detect.registry import UnknownNameError
from deepfake_detect.types import Label, VideoRecord
from deepfake_detect.video import write_video


@pytest.fixture(scope="session")
def video(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The bytes of one real 3-frame 32x32 H.264 video, copied to every path a tree needs."""
    path = tmp_path_factory.mktemp("video") / "tiny.mp4"
    frames = np.random.default_rng(0).integers(0, 256, size=(3, 32, 32, 3), dtype=np.uint8)
    assert write_video(path, list(frames), fps=25) == 3
    return path.read_bytes()


def put(root: Path, *relpaths: str, data: bytes) -> None:
    for relpath in relpaths:
        path = root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def write_json(path: Path, content: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content), encoding="utf-8")


def by_id(listing: DatasetListing) -> dict[str, VideoRecord]:
    return {record.video_id: record for record in listing.records}


def summary(listing: DatasetListing) -> dict[str, tuple[Label | None, str, str | None]]:
    return {r.video_id: (r.label, r.source_id, r.split) for r in listing.records}


# ------------------------------------------------------------------ fixture trees, one per layout

SPEC_DFDC_METADATA = {
    "owxbbpjpch.mp4": {"label": "FAKE", "split": "train", "original": "wynotylpnm.mp4"},
    "vpmyeepbep.mp4": {"label": "REAL", "split": "train"},
}


def build_dfdc(root: Path, data: bytes) -> dict[str, Any]:
    write_json(root / "dfdc_train_part_0" / "metadata.json", SPEC_DFDC_METADATA)
    put(root, "dfdc_train_part_0/owxbbpjpch.mp4", "dfdc_train_part_0/vpmyeepbep.mp4", data=data)
    part = {
        "wynotylpnm.mp4": {"label": "REAL", "split": "train", "original": None},
        "aaaaaaaaaa.mp4": {"label": "FAKE", "split": "train", "original": "vpmyeepbep.mp4"},
        "gonegonego.mp4": {"label": "REAL", "split": "train"},
    }
    write_json(root / "dfdc_train_part_12" / "metadata.json", part)
    put(root, "dfdc_train_part_12/wynotylpnm.mp4", "dfdc_train_part_12/aaaaaaaaaa.mp4", data=data)
    return {}


def build_dfdc_test(root: Path, data: bytes) -> dict[str, Any]:
    # "fake_named.mp4" is REAL: labels come from labels.csv, never from names.
    (root / "labels.csv").write_text("filename,label\nfake_named.mp4,0\nbbbb.mp4,1\ncccc.mp4,1\n")
    put(root, "fake_named.mp4", "videos/bbbb.mp4", data=data)
    return {}


PREVIEW_REAL = "original_videos/1003254/1003254_A_001.mp4"
PREVIEW_FAKE = "method_A/1003254/1003254_A/1255229_1003254_A_001.mp4"
PREVIEW_FAKE_B = "method_B/1003254/1003254_A/1300001_1003254_A_001.mp4"


def build_dfdc_preview(root: Path, data: bytes) -> dict[str, Any]:
    content = {
        PREVIEW_REAL: {"augmentations": [], "label": "real", "set": "train"},
        PREVIEW_FAKE: {"label": "fake", "set": "train", "target_id": "ignored"},
        PREVIEW_FAKE_B: {"label": "fake", "set": "test"},
        "original_videos/643049/643049_A_001.mp4": {"label": "real", "set": "test"},
    }
    write_json(root / "dataset.json", content)
    put(root, PREVIEW_REAL, PREVIEW_FAKE, PREVIEW_FAKE_B, data=data)
    return {}


def build_ffpp(root: Path, data: bytes) -> dict[str, Any]:
    put(
        root,
        *(f"original_sequences/youtube/c23/videos/{i}.mp4" for i in ("720", "672", "100", "200")),
        "original_sequences/actors/c23/videos/01__meeting_serious.mp4",
        "manipulated_sequences/Deepfakes/c23/videos/720_672.mp4",
        "manipulated_sequences/Deepfakes/c23/videos/672_720.mp4",
        "manipulated_sequences/Deepfakes/c23/videos/100_200.mp4",
        "manipulated_sequences/Face2Face/c23/videos/720_672.mp4",
        "manipulated_sequences/DeepFakeDetection/c23/videos/01_02__meeting_serious__YVGY8LOK.mp4",
        "original_sequences/youtube/c40/videos/720.mp4",
        "manipulated_sequences/Deepfakes/c40/videos/720_672.mp4",
        data=data,
    )
    write_json(root / "splits" / "train.json", [["720", "672"]])
    write_json(root / "test.json", [["100", "200"]])
    return {}


CELEBDF_LIST = "1 YouTube-real/00170.mp4\n0 Celeb-synthesis/id0_id16_0000.mp4\n1 Celeb-real/id9_0009.mp4\n"


def build_celebdf(root: Path, data: bytes) -> dict[str, Any]:
    put(
        root,
        "Celeb-real/id0_0000.mp4",
        "Celeb-real/id1_0001.mp4",
        "YouTube-real/00170.mp4",
        "YouTube-real/00171.mp4",
        "Celeb-synthesis/id0_id16_0000.mp4",
        "Celeb-synthesis/id1_id0_0001.mp4",
        data=data,
    )
    (root / "List_of_testing_videos.txt").write_text(CELEBDF_LIST)
    return {}


def build_folder(root: Path, data: bytes) -> dict[str, Any]:
    put(root, "real/a.mp4", "real/sub/b.MOV", "fake/c.mkv", "fake/.hidden.mp4", data=data)
    (root / "fake" / "notes.txt").write_text("not a video")
    return {}


def build_csv(root: Path, data: bytes) -> dict[str, Any]:
    table = (
        "path,label,source_id,split\n"
        "videos/a.mp4,fake,b,train\n"
        "videos/b.mp4,0,,\n"
        "videos/gone.mp4,REAL,,test\n"
    )
    (root / "labels.csv").write_text(table)
    put(root, "videos/a.mp4", "videos/b.mp4", data=data)
    return {}


BUILDERS: dict[str, Callable[[Path, bytes], dict[str, Any]]] = {
    "dfdc": build_dfdc,
    "dfdc-test": build_dfdc_test,
    "dfdc-preview": build_dfdc_preview,
    "ffpp": build_ffpp,
    "celebdf": build_celebdf,
    "folder": build_folder,
    "csv": build_csv,
}


@pytest.mark.parametrize("layout", LAYOUTS.names())
def test_every_registered_layout_reads_its_fixture_tree(layout: str, tmp_path: Path, video: bytes) -> None:
    assert layout in BUILDERS, f"layout {layout!r} has no fixture tree in tests/test_layouts.py"
    options = BUILDERS[layout](tmp_path, video)
    listing = load_dataset(layout, tmp_path, **options)
    labels = {record.label for record in listing.records}
    assert {Label.REAL, Label.FAKE} <= labels
    ids = [record.video_id for record in listing.records]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    for record in listing.records:
        assert record.path.read_bytes() == video
        assert record.dataset == layout
        assert record.source_id
    # Reading twice gives the same listing (determinism).
    assert load_dataset(layout, tmp_path, **options) == listing


def test_builders_cover_only_registered_layouts() -> None:
    assert set(BUILDERS) == set(LAYOUTS.names())


# ------------------------------------------------------------------ dfdc


def test_dfdc_reads_parts_labels_originals_and_missing(tmp_path: Path, video: bytes) -> None:
    build_dfdc(tmp_path, video)
    listing = load_dataset("dfdc", tmp_path)
    assert summary(listing) == {
        "aaaaaaaaaa": (Label.FAKE, "vpmyeepbep", "train"),
        "owxbbpjpch": (Label.FAKE, "wynotylpnm", "train"),
        "vpmyeepbep": (Label.REAL, "vpmyeepbep", "train"),
        "wynotylpnm": (Label.REAL, "wynotylpnm", "train"),
    }
    assert listing.missing == ["dfdc_train_part_12/gonegonego.mp4"]
    record = by_id(listing)["owxbbpjpch"]
    assert record.path == tmp_path / "dfdc_train_part_0" / "owxbbpjpch.mp4"
    assert record.extra == {"part": "dfdc_train_part_0", "original": "wynotylpnm.mp4"}
    assert listing.warnings == []


def test_dfdc_reads_a_metadata_json_in_the_root(tmp_path: Path, video: bytes) -> None:
    write_json(tmp_path / "metadata.json", SPEC_DFDC_METADATA)
    put(tmp_path, "owxbbpjpch.mp4", "vpmyeepbep.mp4", data=video)
    listing = load_dataset("dfdc", tmp_path)
    assert summary(listing) == {
        "owxbbpjpch": (Label.FAKE, "wynotylpnm", "train"),
        "vpmyeepbep": (Label.REAL, "vpmyeepbep", "train"),
    }
    assert listing.missing == []


def test_dfdc_duplicate_names_get_the_part_as_prefix(tmp_path: Path, video: bytes) -> None:
    root = tmp_path / "dfdc"
    for part in ("dfdc_train_part_1", "dfdc_train_part_02", "."):
        write_json(root / part / "metadata.json", {"same.mp4": {"label": "REAL", "split": "train"}})
        put(root, f"{part}/same.mp4", data=video)
    listing = load_dataset("dfdc", root)
    assert summary(listing) == {
        "dfdc/same": (Label.REAL, "same", "train"),
        "dfdc_train_part_02/same": (Label.REAL, "same", "train"),
        "dfdc_train_part_1/same": (Label.REAL, "same", "train"),
    }
    assert by_id(listing)["dfdc/same"].extra == {}
    assert len(listing.warnings) == 1 and "same" in listing.warnings[0]


def test_dfdc_fake_without_original_keeps_its_own_source_and_warns(tmp_path: Path, video: bytes) -> None:
    write_json(tmp_path / "metadata.json", {"lonely.mp4": {"label": "FAKE", "original": None}})
    put(tmp_path, "lonely.mp4", data=video)
    listing = load_dataset("dfdc", tmp_path)
    assert summary(listing) == {"lonely": (Label.FAKE, "lonely", None)}
    assert "no original" in listing.warnings[0]


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ('{"a.mp4": {"label": "FAKE",}}', r"metadata\.json: malformed JSON at line 1"),
        ("[1, 2]", r"metadata\.json: expected a JSON object"),
        ('{"a.mp4": "FAKE"}', r"metadata\.json: entry 'a\.mp4' should be a JSON object"),
        ('{"a.mp4": {"split": "train"}}', r"entry 'a\.mp4' has no 'label'"),
        ('{"a.mp4": {"label": "MAYBE"}}', r"metadata\.json entry 'a\.mp4': unknown label value 'MAYBE'"),
        ('{"a.mp4": {"label": "FAKE", "original": 3}}', r"'original' should be a file name"),
    ],
)
def test_dfdc_bad_metadata_is_a_dataset_error(tmp_path: Path, content: str, match: str) -> None:
    (tmp_path / "metadata.json").write_text(content)
    with pytest.raises(DatasetError, match=match):
        load_dataset("dfdc", tmp_path)


def test_dfdc_without_metadata_is_a_dataset_error(tmp_path: Path, video: bytes) -> None:
    put(tmp_path, "dfdc_train_part_0/x.mp4", data=video)
    with pytest.raises(DatasetError, match=r"no DFDC metadata"):
        load_dataset("dfdc", tmp_path)


# ------------------------------------------------------------------ dfdc-test


def test_dfdc_test_reads_labels_csv(tmp_path: Path, video: bytes) -> None:
    build_dfdc_test(tmp_path, video)
    listing = load_dataset("dfdc-test", tmp_path)
    assert summary(listing) == {
        "bbbb": (Label.FAKE, "bbbb", "test"),
        "fake_named": (Label.REAL, "fake_named", "test"),
    }
    assert by_id(listing)["bbbb"].path == tmp_path / "videos" / "bbbb.mp4"
    assert listing.missing == ["cccc.mp4"]


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("filename,label\na.mp4,1\nb.mp4,FAKE\n", r"labels\.csv line 3: unknown label value 'FAKE'"),
        ("name,label\na.mp4,1\n", r"labels\.csv: header name,label lacks column 'filename'"),
        ("filename,label\na.mp4,1,extra\n", r"labels\.csv line 2: 3 fields, the header has 2"),
        ("filename,label\n,1\n", r"labels\.csv line 2: empty filename"),
    ],
)
def test_dfdc_test_bad_labels_are_dataset_errors(tmp_path: Path, content: str, match: str) -> None:
    (tmp_path / "labels.csv").write_text(content)
    with pytest.raises(DatasetError, match=match):
        load_dataset("dfdc-test", tmp_path)


def test_dfdc_test_without_labels_csv_is_a_dataset_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"DFDC test label file .*labels\.csv not found"):
        load_dataset("dfdc-test", tmp_path)


# ------------------------------------------------------------------ dfdc-preview


def test_dfdc_preview_reads_dataset_json(tmp_path: Path, video: bytes) -> None:
    build_dfdc_preview(tmp_path, video)
    listing = load_dataset("dfdc-preview", tmp_path)
    assert summary(listing) == {
        "method_A__1003254__1003254_A__1255229_1003254_A_001": (Label.FAKE, "1003254_A_001", "train"),
        "method_B__1003254__1003254_A__1300001_1003254_A_001": (Label.FAKE, "1003254_A_001", "test"),
        "original_videos__1003254__1003254_A_001": (Label.REAL, "1003254_A_001", "train"),
    }
    assert listing.missing == ["original_videos/643049/643049_A_001.mp4"]
    fake = by_id(listing)["method_A__1003254__1003254_A__1255229_1003254_A_001"]
    assert fake.path == tmp_path / PREVIEW_FAKE
    assert fake.extra == {"method": "method_A"}


def test_dfdc_preview_source_follows_the_listed_real_and_odd_names_warn(tmp_path: Path, video: bytes) -> None:
    content = {
        "original_videos/7/7_B_002.mp4": {"label": "real"},
        "method_A/7/7_B/7_9_B_002.mp4": {"label": "fake"},  # the other id order names the real
        "method_A/odd_name.mp4": {"label": "fake"},
    }
    write_json(tmp_path / "dataset.json", content)
    put(tmp_path, *content, data=video)
    listing = load_dataset("dfdc-preview", tmp_path)
    assert summary(listing) == {
        "method_A__7__7_B__7_9_B_002": (Label.FAKE, "7_B_002", None),
        "method_A__odd_name": (Label.FAKE, "method_A__odd_name", None),
        "original_videos__7__7_B_002": (Label.REAL, "7_B_002", None),
    }
    assert len(listing.warnings) == 1 and "method_A__odd_name" in listing.warnings[0]


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ('{"a/b.mp4": {"label": "FAKE"', r"dataset\.json: malformed JSON"),
        ('{"a/b.mp4": {"label": "deepfake"}}', r"dataset\.json entry 'a/b\.mp4': unknown label value"),
        ('{"a/b.mp4": {"set": "train"}}', r"entry 'a/b\.mp4' has no 'label'"),
    ],
)
def test_dfdc_preview_bad_json_is_a_dataset_error(tmp_path: Path, content: str, match: str) -> None:
    (tmp_path / "dataset.json").write_text(content)
    with pytest.raises(DatasetError, match=match):
        load_dataset("dfdc-preview", tmp_path)


# ------------------------------------------------------------------ ffpp


def test_ffpp_reads_folders_sources_and_pair_splits(tmp_path: Path, video: bytes) -> None:
    build_ffpp(tmp_path, video)
    listing = load_dataset("ffpp", tmp_path)
    assert summary(listing) == {
        "original/720": (Label.REAL, "720", "train"),
        "original/672": (Label.REAL, "672", "train"),
        "original/100": (Label.REAL, "100", "test"),
        "original/200": (Label.REAL, "200", "test"),
        "actors/01__meeting_serious": (Label.REAL, "01__meeting_serious", None),
        # a pair covers both directions of the fakes, in every method
        "Deepfakes/720_672": (Label.FAKE, "720", "train"),
        "Deepfakes/672_720": (Label.FAKE, "672", "train"),
        "Deepfakes/100_200": (Label.FAKE, "100", "test"),
        "Face2Face/720_672": (Label.FAKE, "720", "train"),
        "DeepFakeDetection/01_02__meeting_serious__YVGY8LOK": (Label.FAKE, "01__meeting_serious", None),
    }
    record = by_id(listing)["Face2Face/720_672"]
    assert record.path == tmp_path / "manipulated_sequences/Face2Face/c23/videos/720_672.mp4"
    assert record.extra == {"compression": "c23", "method": "Face2Face"}


def test_ffpp_options_pick_compression_and_methods(tmp_path: Path, video: bytes) -> None:
    build_ffpp(tmp_path, video)
    c40 = load_dataset("ffpp", tmp_path, compression="c40")
    assert summary(c40) == {
        "original/720": (Label.REAL, "720", "train"),
        "Deepfakes/720_672": (Label.FAKE, "720", "train"),
    }
    only = load_dataset("ffpp", tmp_path, methods="Deepfakes")
    assert {r.video_id for r in only.records if r.label == Label.FAKE} == {
        "Deepfakes/720_672",
        "Deepfakes/672_720",
        "Deepfakes/100_200",
    }
    assert not any(r.video_id.startswith("actors/") for r in only.records)
    with_dfd = load_dataset("ffpp", tmp_path, methods=["DeepFakeDetection"])
    assert "actors/01__meeting_serious" in by_id(with_dfd)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"compression": "c99"}, r"unknown FF\+\+ compression 'c99'"),
        ({"methods": "DeepFakes"}, r"unknown FF\+\+ method 'DeepFakes'"),
        ({"methods": ["FaceShifter"]}, r"'FaceShifter' has no folder manipulated_sequences/FaceShifter/c23"),
        ({"quality": "c23"}, r"layout 'ffpp' has no option 'quality' \(its options: compression, methods\)"),
    ],
)
def test_ffpp_bad_options_are_dataset_errors(
    tmp_path: Path, video: bytes, options: dict[str, Any], match: str
) -> None:
    build_ffpp(tmp_path, video)
    with pytest.raises(DatasetError, match=match):
        load_dataset("ffpp", tmp_path, **options)


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("val.json", [["672", "9"]], r"val\.json: video 672 is in both train\.json and val\.json"),
        ("val.json", [["1", "2", "3"]], r"val\.json: item 0 should be a pair"),
        ("val.json", {"a": 1}, r"val\.json: expected a JSON list"),
    ],
)
def test_ffpp_bad_split_files_are_dataset_errors(
    tmp_path: Path, video: bytes, name: str, content: Any, match: str
) -> None:
    build_ffpp(tmp_path, video)
    write_json(tmp_path / name, content)
    with pytest.raises(DatasetError, match=match):
        load_dataset("ffpp", tmp_path)


def test_ffpp_needs_its_folders(tmp_path: Path, video: bytes) -> None:
    put(tmp_path, "videos/720.mp4", data=video)
    with pytest.raises(DatasetError, match=r"neither original_sequences/ nor manipulated_sequences/"):
        load_dataset("ffpp", tmp_path)
    put(tmp_path, "original_sequences/youtube/raw/videos/720.mp4", data=video)
    with pytest.raises(DatasetError, match=r"no FF\+\+ videos at compression 'c23'"):
        load_dataset("ffpp", tmp_path)


# ------------------------------------------------------------------ celebdf


def test_celebdf_reads_folders_inverted_list_and_sources(tmp_path: Path, video: bytes) -> None:
    build_celebdf(tmp_path, video)
    listing = load_dataset("celebdf", tmp_path)
    assert summary(listing) == {
        "Celeb-real/id0_0000": (Label.REAL, "id0_0000", "train"),
        "Celeb-real/id1_0001": (Label.REAL, "id1_0001", "train"),
        "YouTube-real/00170": (Label.REAL, "00170", "test"),
        "YouTube-real/00171": (Label.REAL, "00171", "train"),
        "Celeb-synthesis/id0_id16_0000": (Label.FAKE, "id0_0000", "test"),
        "Celeb-synthesis/id1_id0_0001": (Label.FAKE, "id1_0001", "train"),
    }
    assert listing.missing == ["Celeb-real/id9_0009.mp4"]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        # DFDC's convention (1 = fake) by mistake: the folder cross-check catches it on line 1
        (
            "0 YouTube-real/00170.mp4\n",
            r"List_of_testing_videos\.txt line 1: label 0 means fake .* YouTube-real/ holds real",
        ),
        (
            "1 YouTube-real/00170.mp4\n1 Celeb-synthesis/id0_id16_0000.mp4\n",
            r"line 2: label 1 means real .* Celeb-synthesis/ holds fake",
        ),
        ("\n2 YouTube-real/00170.mp4\n", r"line 2: unknown label value '2'"),
        ("1 Other/00170.mp4\n", r"line 1: 'Other/00170\.mp4' is not in one of"),
        ("1\n", r"line 1: expected '<1 real\|0 fake> <folder>/<video>'"),
    ],
)
def test_celebdf_list_errors_name_the_line(tmp_path: Path, video: bytes, text: str, match: str) -> None:
    build_celebdf(tmp_path, video)
    (tmp_path / "List_of_testing_videos.txt").write_text(text)
    with pytest.raises(DatasetError, match=match):
        load_dataset("celebdf", tmp_path)


def test_celebdf_without_test_list_warns_and_leaves_splits_empty(tmp_path: Path, video: bytes) -> None:
    build_celebdf(tmp_path, video)
    (tmp_path / "List_of_testing_videos.txt").unlink()
    listing = load_dataset("celebdf", tmp_path)
    assert {r.split for r in listing.records} == {None}
    assert "List_of_testing_videos.txt not found" in listing.warnings[0]


def test_celebdf_needs_its_folders(tmp_path: Path, video: bytes) -> None:
    put(tmp_path, "real/a.mp4", data=video)
    with pytest.raises(DatasetError, match=r"none of the Celeb-DF folders"):
        load_dataset("celebdf", tmp_path)


# ------------------------------------------------------------------ folder


def test_folder_reads_real_and_fake_recursively(tmp_path: Path, video: bytes) -> None:
    build_folder(tmp_path, video)
    listing = load_dataset("folder", tmp_path)
    assert summary(listing) == {
        "fake/c": (Label.FAKE, "fake/c", None),
        "real/a": (Label.REAL, "real/a", None),
        "real/sub/b": (Label.REAL, "real/sub/b", None),
    }
    assert by_id(listing)["real/sub/b"].path == tmp_path / "real" / "sub" / "b.MOV"


def test_folder_errors_and_warnings(tmp_path: Path, video: bytes) -> None:
    put(tmp_path, "videos/a.mp4", data=video)
    with pytest.raises(DatasetError, match=r"neither a real/ nor a fake/ sub-folder"):
        load_dataset("folder", tmp_path)
    put(tmp_path, "Fake/a.mp4", data=video)
    listing = load_dataset("folder", tmp_path)
    assert summary(listing) == {"Fake/a": (Label.FAKE, "Fake/a", None)}
    assert listing.warnings == [f"{tmp_path} has no real/ sub-folder"]
    put(tmp_path, "fake/b.mp4", data=video)
    with pytest.raises(DatasetError, match=r"two fake folders: Fake and fake"):
        load_dataset("folder", tmp_path)


# ------------------------------------------------------------------ csv


def test_csv_reads_a_table_in_a_folder_or_given_directly(tmp_path: Path, video: bytes) -> None:
    build_csv(tmp_path, video)
    expected = {
        "videos/a": (Label.FAKE, "b", "train"),
        "videos/b": (Label.REAL, "videos/b", None),
    }
    listing = load_dataset("csv", tmp_path)
    assert summary(listing) == expected
    assert listing.missing == ["videos/gone.mp4"]
    assert by_id(listing)["videos/a"].path == tmp_path / "videos" / "a.mp4"
    assert summary(load_dataset("csv", tmp_path / "labels.csv")) == expected
    (tmp_path / "labels.csv").rename(tmp_path / "mine.csv")
    assert summary(load_dataset("csv", tmp_path, csv="mine.csv")) == expected


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("path,label\nvideos/a.mp4,fake\nvideos/b.mp4,2\n", r"labels\.csv line 3: unknown label value '2'"),
        ("path,source_id\nvideos/a.mp4,x\n", r"labels\.csv: header path,source_id lacks column 'label'"),
        ("path,label\nvideos/a.mp4\n", r"labels\.csv line 2: 1 fields, the header has 2"),
        ('path,label\n"videos/a.mp4,fake\n', r"labels\.csv line \d+: malformed CSV"),
        ("path,label\nvideos/a.mp4,1\nvideos/a.mp4,1\n", r"two videos have the id 'videos/a'"),
    ],
)
def test_csv_bad_tables_are_dataset_errors(tmp_path: Path, video: bytes, content: str, match: str) -> None:
    put(tmp_path, "videos/a.mp4", "videos/b.mp4", data=video)
    (tmp_path / "labels.csv").write_text(content)
    with pytest.raises(DatasetError, match=match):
        load_dataset("csv", tmp_path)


def test_csv_missing_table_is_a_dataset_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"label table .*labels\.csv not found"):
        load_dataset("csv", tmp_path)


# ------------------------------------------------------------------ shared


def test_missing_root_and_unknown_layout(tmp_path: Path) -> None:
    for layout in LAYOUTS.names():
        with pytest.raises(DatasetError, match=r"dataset root .*nowhere does not exist"):
            load_dataset(layout, tmp_path / "nowhere")
    with pytest.raises(UnknownNameError, match=r"Did you mean 'ffpp'"):
        load_dataset("ffp", tmp_path)


def test_a_file_root_is_refused_by_folder_layouts(tmp_path: Path) -> None:
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(DatasetError, match=r"x\.txt is not a folder \(layout 'dfdc' needs one\)"):
        load_dataset("dfdc", tmp_path / "x.txt")


def test_name_overrides_the_dataset_field(tmp_path: Path, video: bytes) -> None:
    build_folder(tmp_path, video)
    listing = load_dataset("folder", tmp_path, name="my-videos")
    assert {record.dataset for record in listing.records} == {"my-videos"}


def test_non_utf8_label_file_is_a_dataset_error(tmp_path: Path) -> None:
    (tmp_path / "labels.csv").write_bytes(b"filename,label\n\xff\xfe.mp4,1\n")
    with pytest.raises(DatasetError, match=r"labels\.csv line \d+: not UTF-8 text"):
        load_dataset("dfdc-test", tmp_path)


def test_dfdc_reads_the_synthetic_generator_output(tmp_path: Path) -> None:
    from deepfake_detect.data.synth import generate_dataset

    written = generate_dataset(tmp_path, videos=4, seed=0, size=(64, 48), frames=4)
    listing = load_dataset("dfdc", tmp_path)
    assert listing.missing == []
    assert summary(listing) == {r.video_id: (r.label, r.source_id, r.split) for r in written}
