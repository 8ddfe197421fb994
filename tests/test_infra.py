"""Shared plumbing in ``deepfake_detect.infra``: atomic writes, JSON, safetensors, similarity, suffixes."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from deepfake_detect.infra.files import atomic_path, json_safe, save_tensors, write_json, write_text
from deepfake_detect.infra.media import VIDEO_SUFFIXES
from deepfake_detect.infra.similarity import cosine_similarity_matrix


def test_atomic_path_replaces_the_target_only_on_success(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "data.json"
    write_text(target, "old")
    with pytest.raises(RuntimeError, match="half-written"), atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.name.startswith(".") and tmp.suffix == ".tmp"
        tmp.write_text("new, but")
        raise RuntimeError("half-written")
    assert target.read_text() == "old" and sorted(p.name for p in target.parent.iterdir()) == ["data.json"]
    with atomic_path(target) as tmp:
        tmp.write_text("new")
        assert target.read_text() == "old"  # nothing visible before the block ends
    assert target.read_text() == "new" and sorted(p.name for p in target.parent.iterdir()) == ["data.json"]


def test_atomic_path_keeps_old_content_when_the_rename_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "rows.json"
    write_text(target, "old")

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write_text(target, "new")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["rows.json"]


def test_atomic_files_get_ordinary_permissions_and_the_asked_suffix(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "clip.mp4", suffix=".tmp.mp4") as tmp:
            assert tmp.name.endswith(".tmp.mp4")
            tmp.write_bytes(b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "clip.mp4").stat().st_mode & 0o777 == 0o644


def test_json_safe_and_write_json(tmp_path: Path) -> None:
    value = {1: np.float32(0.5), "a": (np.int64(3), math.nan), "b": np.arange(2), "p": Path("x/y"), "n": None}
    assert json_safe(value) == {"1": 0.5, "a": [3, None], "b": [0, 1], "p": "x/y", "n": None}
    assert json_safe({"inf": math.inf, "v": [math.nan]}, verbatim_lists=True)["inf"] is None
    assert math.isnan(json_safe({"v": [math.nan]}, verbatim_lists=True)["v"][0])  # metrics/report documents
    path = write_json(tmp_path / "doc.json", {"b": 1, "a": math.nan}, sort_keys=True)
    assert path.read_text() == '{\n  "a": null,\n  "b": 1\n}\n'
    assert "NaN" in write_json(tmp_path / "r.json", {"v": [math.nan]}, verbatim_lists=True).read_text()


def test_save_tensors_round_trip(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    module = torch.nn.Linear(3, 2)
    save_tensors(tmp_path / "w.safetensors", module.state_dict())
    loaded = load_file(str(tmp_path / "w.safetensors"))
    assert loaded.keys() == module.state_dict().keys()
    assert all(torch.equal(loaded[k], v) for k, v in module.state_dict().items())


def test_saved_tensors_get_the_umasks_permissions_like_every_other_file(tmp_path: Path) -> None:
    """safetensors writes owner-only files; a model directory must be readable as its config.json is."""
    import os

    mask = os.umask(0o022)
    try:
        save_tensors(tmp_path / "w.safetensors", {"w": torch.zeros(2)})
        write_text(tmp_path / "config.json", "{}")
    finally:
        os.umask(mask)
    assert (tmp_path / "w.safetensors").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "config.json").stat().st_mode & 0o777 == 0o644


def test_cosine_similarity_is_the_same_formula_for_torch_and_numpy() -> None:
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((2, 6, 5))
    emb[0, 2] = 0.0  # a zero vector: similarities 0, no division by zero
    tensor = torch.from_numpy(emb)
    got = cosine_similarity_matrix(tensor, eps=1e-8)
    unit = F.normalize(tensor, p=2.0, dim=-1, eps=1e-8)
    assert got.dtype == torch.float64 and torch.equal(got, unit @ unit.transpose(1, 2))  # the loss's numerics
    ours = cosine_similarity_matrix(emb[1], eps=1e-12)
    unit_np = emb[1] / np.maximum(np.linalg.norm(emb[1], axis=1, keepdims=True), 1e-12)
    assert ours.dtype == np.float64 and np.array_equal(ours, unit_np @ unit_np.T)
    np.testing.assert_allclose(cosine_similarity_matrix(emb, eps=1e-12), got.numpy(), atol=1e-12)
    assert np.all(cosine_similarity_matrix(emb[0], eps=1e-12)[2] == 0.0)


def _one_file_per_suffix(folder: Path) -> list[str]:
    names = []
    for i, suffix in enumerate(sorted(VIDEO_SUFFIXES | {".txt", ".json", ".jpg"})):
        name = f"v{i}{suffix.upper() if i % 2 else suffix}"
        (folder / name).write_bytes(b"")
        names.append(name)
    return names


def test_detect_folders_and_the_folder_layout_take_the_same_suffixes(tmp_path: Path) -> None:
    """``detect folder/`` and ``preprocess --layout folder`` agree on what a video file is."""
    from deepfake_detect.cli.detect import collect_videos
    from deepfake_detect.data.layouts import load_dataset

    (tmp_path / "real").mkdir()
    _one_file_per_suffix(tmp_path / "real")
    by_detect = {p.name for p in collect_videos([tmp_path / "real"])}
    by_layout = {r.path.name for r in load_dataset("folder", tmp_path).records}
    assert by_detect == by_layout
    assert {Path(n).suffix.lower() for n in by_layout} == VIDEO_SUFFIXES
    assert {".mpg", ".ts", ".mts", ".wmv"} <= VIDEO_SUFFIXES


def test_write_json_output_is_valid_json(tmp_path: Path) -> None:
    path = write_json(tmp_path / "x.json", {"v": [1.0, math.inf]})
    assert json.loads(path.read_text()) == {"v": [1.0, None]}
