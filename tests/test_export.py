"""ONNX export (issue 4): torch parity on real face crops, refused bad exports, the engine, the CLI."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from deepfake_detect.config import ClipConfig, FaceConfig
from deepfake_detect.export import (
    EXPORT_FORMATS,
    OnnxEngine,
    OnnxExportError,
    export_onnx,
    onnx_export,
    prepare_frames,
    read_onnx_dir,
)
from deepfake_detect.faces import crop_face
from deepfake_detect.models import (
    SEQUENCE_HEADS,
    FeatureExtractor,
    LoadedModel,
    ModelDirConfig,
    ModelDirError,
    create_head,
    load_model_dir,
    save_model_dir,
)
from deepfake_detect.types import BBox

ASTRONAUT_FACE = BBox(180, 65, 270, 175)
TOL = 1e-4


def make_model_dir(
    path: Path,
    *,
    backbone: str = "cnn4",
    input_size: int = 64,
    embed_dim: int = 512,
    head: str = "lstm",
    head_kwargs: dict[str, int] | None = None,
    seed: int = 0,
) -> Path:
    """A real model directory with random weights (BatchNorm statistics perturbed so they matter)."""
    torch.manual_seed(seed)
    extractor = FeatureExtractor(backbone, embed_dim, input_size=input_size)
    for module in extractor.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 2.0)
    kwargs = head_kwargs or {"input_dim": embed_dim, "hidden": 32, "layers": 2}
    sequence_head = create_head(head, **kwargs)
    clips = ClipConfig(clip_len=8, min_clip_len=4)
    return save_model_dir(
        path,
        extractor.eval(),
        sequence_head.eval(),
        head_name=head,
        head_kwargs=kwargs,
        threshold=0.5,
        faces=FaceConfig(),
        clips=clips,
    )


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """cnn4 at 64 px -> 512-d embeddings, LSTM hidden 32 x 2 layers, random init."""
    return make_model_dir(tmp_path_factory.mktemp("export") / "model")


@pytest.fixture(scope="module")
def tiny_onnx_dir(tiny_model_dir: Path) -> Path:
    return export_onnx(tiny_model_dir, tiny_model_dir.parent / "onnx")


@pytest.fixture(scope="module")
def tiny_loaded(tiny_model_dir: Path) -> LoadedModel:
    return load_model_dir(tiny_model_dir)


@pytest.fixture(scope="module")
def face_crops(astronaut_rgb: np.ndarray, camera_rgb: np.ndarray) -> np.ndarray:
    """12 real 256 px face crops: the astronaut and the cameraman, shifted, scaled and mirrored."""
    crops = []
    for i in range(6):
        box = BBox(180 + 4 * i, 65 - 3 * i, 270 + 6 * i, 175 + 2 * i)
        crop = crop_face(astronaut_rgb, box, size=256)
        crops.append(crop[:, ::-1] if i % 2 else crop)
        crops.append(crop_face(camera_rgb, BBox(195 - 2 * i, 115, 258 + i, 195 + 3 * i), size=256))
    return np.stack(crops)  # (12, 256, 256, 3)


def torch_embed(loaded: LoadedModel, frames: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return loaded.extractor(loaded.extractor.prepare(frames)).numpy()  # (N, D)


def torch_probs(loaded: LoadedModel, x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return torch.sigmoid(loaded.head(torch.from_numpy(x), torch.from_numpy(lengths))).numpy()  # (B,)


def padded_batch(embeddings: np.ndarray, lengths: list[int], fill: float) -> tuple[np.ndarray, np.ndarray]:
    """Consecutive runs of ``embeddings`` (N, D) as a right-padded batch (B, T, D) filled with ``fill``."""
    x = np.full((len(lengths), max(lengths), embeddings.shape[1]), fill, dtype=np.float32)
    start = 0
    for b, n in enumerate(lengths):
        x[b, :n] = embeddings[start : start + n]
        start += n
    return x, np.asarray(lengths, dtype=np.int64)


# --- preprocessing and parity ---------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(256, 256), (64, 64), (97, 130)])
def test_prepare_frames_is_bitwise_feature_extractor_prepare(
    tiny_loaded: LoadedModel, face_crops: np.ndarray, shape: tuple[int, int]
) -> None:
    import cv2

    frames = np.stack([cv2.resize(c, shape[::-1], interpolation=cv2.INTER_AREA) for c in face_crops[:3]])
    cfg = tiny_loaded.config
    ours = prepare_frames(frames, cfg.input_size, cfg.mean, cfg.std)
    reference = tiny_loaded.extractor.prepare(frames).numpy()
    assert ours.shape == (3, 3, 64, 64) and ours.dtype == np.float32 and ours.flags.c_contiguous
    np.testing.assert_array_equal(ours, reference)


@pytest.mark.parametrize("batch", [1, 2, 5, 12])
def test_onnx_embeddings_match_torch_on_face_crops(
    tiny_onnx_dir: Path, tiny_loaded: LoadedModel, face_crops: np.ndarray, batch: int
) -> None:
    engine = OnnxEngine(tiny_onnx_dir, threads=1)
    got = engine.embed(face_crops[:batch])
    expected = torch_embed(tiny_loaded, face_crops[:batch])
    assert got.shape == (batch, 512) and got.dtype == np.float32
    assert np.abs(expected).max() > 0.05  # not a degenerate all-zero comparison
    np.testing.assert_allclose(got, expected, rtol=0, atol=TOL)


@pytest.mark.parametrize("lengths", [[1], [12], [4, 8], [5, 1, 6], [3, 3, 3, 3]])
def test_onnx_probabilities_match_torch_with_padding(
    tiny_onnx_dir: Path, tiny_loaded: LoadedModel, face_crops: np.ndarray, lengths: list[int]
) -> None:
    engine = OnnxEngine(tiny_onnx_dir)
    embeddings = torch_embed(tiny_loaded, face_crops)  # (12, D)
    x, n = padded_batch(embeddings, lengths, fill=50.0)
    got = engine.score(x, n)
    # independent reference: torch on each clip alone, unpadded (packed LSTM path)
    alone = np.concatenate(
        [torch_probs(tiny_loaded, x[b : b + 1, :k], n[b : b + 1]) for b, k in enumerate(n)]
    )
    assert got.shape == (len(lengths),) and got.dtype == np.float32
    np.testing.assert_allclose(got, alone, rtol=0, atol=TOL)
    np.testing.assert_allclose(got, torch_probs(tiny_loaded, x, n), rtol=0, atol=TOL)


def test_head_output_depends_on_order_and_content(
    tiny_onnx_dir: Path, tiny_loaded: LoadedModel, face_crops: np.ndarray
) -> None:
    """Guards against a graph that ignores its inputs (e.g. constant-folded at the traced shape)."""
    engine = OnnxEngine(tiny_onnx_dir)
    x = torch_embed(tiny_loaded, face_crops)[None]  # (1, 12, D)
    reversed_x = np.ascontiguousarray(x[:, ::-1])
    lengths = np.array([12])
    first, second = engine.score(x, lengths)[0], engine.score(reversed_x, lengths)[0]
    assert abs(first - second) > 1e-6
    np.testing.assert_allclose(second, torch_probs(tiny_loaded, reversed_x, lengths)[0], atol=TOL)


@pytest.mark.parametrize("head", SEQUENCE_HEADS.names())
def test_every_sequence_head_exports(tmp_path: Path, face_crops: np.ndarray, head: str) -> None:
    kwargs = {"input_dim": 16, "hidden": 8, "layers": 2}
    model_dir = make_model_dir(tmp_path / "m", input_size=32, embed_dim=16, head=head, head_kwargs=kwargs)
    onnx_dir = export_onnx(model_dir, tmp_path / "o")
    engine, loaded = OnnxEngine(onnx_dir), load_model_dir(model_dir)
    x, n = padded_batch(engine.embed(face_crops), [7, 2, 3], fill=-9.0)
    np.testing.assert_allclose(engine.score(x, n), torch_probs(loaded, x, n), rtol=0, atol=TOL)


@pytest.mark.slow
def test_resnet50_export_parity(tmp_path: Path, face_crops: np.ndarray) -> None:
    model_dir = make_model_dir(tmp_path / "m", backbone="resnet50", input_size=224)
    start = time.perf_counter()
    onnx_dir = export_onnx(model_dir, tmp_path / "o")
    assert time.perf_counter() - start < 300
    loaded = load_model_dir(model_dir)
    got = OnnxEngine(onnx_dir).embed(face_crops[:4])
    expected = torch_embed(loaded, face_crops[:4])
    scale = max(1.0, float(np.abs(expected).max()))
    assert np.abs(got - expected).max() / scale < TOL


# --- the export directory ------------------------------------------------------------------------


def test_export_directory_layout_and_config(tiny_onnx_dir: Path, tiny_model_dir: Path) -> None:
    assert sorted(p.name for p in tiny_onnx_dir.iterdir()) == ["config.json", "extractor.onnx", "head.onnx"]
    raw = json.loads((tiny_onnx_dir / "config.json").read_text())
    config = ModelDirConfig.model_validate(raw)  # still a valid model config
    original = json.loads((tiny_model_dir / "config.json").read_text())
    assert {k: v for k, v in raw.items() if k != "extra"} == {
        k: v for k, v in original.items() if k != "extra"
    }
    section = raw["extra"]["onnx"]
    assert section["opset"] == 17
    assert section["parity"]["extractor_max_rel"] <= TOL and section["parity"]["head_max_abs"] <= TOL
    model = read_onnx_dir(tiny_onnx_dir)
    assert model.config == config and model.onnx.sha256.keys() == {"extractor.onnx", "head.onnx"}


def test_graphs_have_dynamic_batch_and_time(tiny_onnx_dir: Path) -> None:
    import onnx

    def dims(path: Path) -> dict[str, list[str | int]]:
        graph = onnx.load(str(path)).graph
        return {
            v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
            for v in [*graph.input, *graph.output]
        }

    assert dims(tiny_onnx_dir / "extractor.onnx") == {"images": ["N", 3, 64, 64], "embeddings": ["N", 512]}
    assert dims(tiny_onnx_dir / "head.onnx") == {
        "embeddings": ["B", "T", 512],
        "lengths": ["B"],
        "probabilities": ["B"],
    }


def test_export_into_the_model_directory_serves_both_engines(tmp_path: Path, face_crops: np.ndarray) -> None:
    model_dir = make_model_dir(tmp_path / "m", input_size=32, embed_dim=16, head_kwargs={"input_dim": 16})
    export_onnx(model_dir, model_dir)
    loaded = load_model_dir(model_dir)
    np.testing.assert_allclose(
        OnnxEngine(model_dir).embed(face_crops[:2]), torch_embed(loaded, face_crops[:2]), atol=TOL
    )
    assert not [p for p in model_dir.iterdir() if p.name.startswith(".")]  # staging folder removed


def test_a_bad_export_is_refused_and_leaves_the_old_one(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = export_onnx(tiny_model_dir, tmp_path / "o")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    real_export = onnx_export.export_graphs

    def export_a_different_head(loaded: LoadedModel, staging: Path, opset: int) -> None:
        with torch.no_grad():
            loaded.head.out.bias += 0.01  # the torch reference stays; the graph differs by ~0.0025
            real_export(loaded, staging, opset)
            loaded.head.out.bias -= 0.01

    monkeypatch.setattr(onnx_export, "export_graphs", export_a_different_head)
    with pytest.raises(OnnxExportError, match="probabilities differ from torch"):
        export_onnx(tiny_model_dir, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_unexportable_opset_is_a_clear_error(tiny_model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(OnnxExportError, match="opset 3"):
        export_onnx(tiny_model_dir, tmp_path / "o", opset=3)
    assert list((tmp_path / "o").iterdir()) == []


# --- the engine's checks -------------------------------------------------------------------------


def test_engine_rejects_a_plain_model_dir_and_altered_graphs(
    tiny_model_dir: Path, tiny_onnx_dir: Path, tmp_path: Path
) -> None:
    with pytest.raises(ModelDirError, match="no ONNX export"):
        OnnxEngine(tiny_model_dir)
    with pytest.raises(ModelDirError, match=r"no config\.json"):
        OnnxEngine(tmp_path)
    altered = tmp_path / "altered"
    altered.mkdir()
    for p in tiny_onnx_dir.iterdir():
        (altered / p.name).write_bytes(p.read_bytes())
    (altered / "head.onnx").write_bytes((altered / "head.onnx").read_bytes()[:-10])
    with pytest.raises(ModelDirError, match="sha256"):
        OnnxEngine(altered)
    (altered / "head.onnx").unlink()
    with pytest.raises(ModelDirError, match=r"missing head\.onnx"):
        OnnxEngine(altered)


def test_engine_rejects_bad_inputs(tiny_onnx_dir: Path) -> None:
    engine = OnnxEngine(tiny_onnx_dir)
    x = np.zeros((2, 4, 512), np.float32)
    with pytest.raises(ValueError, match=r"lengths must lie in \[1, T=4\]"):
        engine.score(x, np.array([4, 0]))
    with pytest.raises(ValueError, match=r"lengths must lie"):
        engine.score(x, np.array([5, 1]))
    with pytest.raises(ValueError, match="lengths must be 2 integers"):
        engine.score(x, np.array([4.0, 1.0]))
    with pytest.raises(ValueError, match=r"\(B, T, 512\)"):
        engine.score(np.zeros((2, 4, 8), np.float32), np.array([4, 1]))
    with pytest.raises(TypeError, match="uint8"):
        engine.embed(np.zeros((1, 64, 64, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\)"):
        engine.embed(np.zeros((0, 64, 64, 3), np.uint8))
    with pytest.raises(ValueError, match="threads"):
        OnnxEngine(tiny_onnx_dir, threads=0)
    assert engine.score(np.zeros((0, 4, 512), np.float32), np.zeros(0, np.int64)).shape == (0,)


# --- CLI ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cli() -> CliRunner:
    from deepfake_detect.cli.app import _load_commands

    _load_commands()
    return CliRunner()


def run_cli(runner: CliRunner, *args: str) -> tuple[int, str]:
    from deepfake_detect.cli.app import app

    result = runner.invoke(app, list(args))
    return result.exit_code, result.output  # stdout and stderr together (click >= 8.2)


def test_cli_exports_and_the_result_loads(cli: CliRunner, tiny_model_dir: Path, tmp_path: Path) -> None:
    code, output = run_cli(
        cli, "export", "--model", str(tiny_model_dir), "--format", "onnx", str(tmp_path / "o")
    )
    assert code == 0, output
    assert "exported" in output
    assert OnnxEngine(tmp_path / "o").config.backbone == "cnn4"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "{missing}", "{out}"], "model directory not found"),
        (
            ["--model", "{model}", "--format", "onxx", "{out}"],
            "unknown export format 'onxx'. Did you mean 'onnx'",
        ),
        (["--model", "{onnx}", "{out}"], "missing extractor.safetensors"),
    ],
)
def test_cli_user_errors_exit_2(
    cli: CliRunner,
    tiny_model_dir: Path,
    tiny_onnx_dir: Path,
    tmp_path: Path,
    args: list[str],
    message: str,
) -> None:
    paths = {
        "missing": tmp_path / "nope",
        "model": tiny_model_dir,
        "onnx": tiny_onnx_dir,
        "out": tmp_path / "o",
    }
    code, output = run_cli(cli, "export", *(a.format(**paths) for a in args))
    assert code == 2
    assert message in " ".join(output.split())
    assert "Traceback" not in output
    assert not (tmp_path / "o").exists()


def test_cli_output_that_is_a_file_exits_1(cli: CliRunner, tiny_model_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "o").write_text("not a folder")
    code, output = run_cli(cli, "export", "--model", str(tiny_model_dir), str(tmp_path / "o"))
    assert code == 1 and "cannot write" in output and "Traceback" not in output


def test_export_formats_registry_lists_onnx() -> None:
    assert EXPORT_FORMATS.names() == ["onnx"]
    assert EXPORT_FORMATS.get("onnx") is export_onnx


# --- end to end: Detector with the onnx engine ----------------------------------------------------


@pytest.fixture(scope="module")
def face_video(tmp_path_factory: pytest.TempPathFactory, astronaut_rgb: np.ndarray) -> Path:
    """A real video (FFV1, yuv444p): the astronaut drifting and zooming slightly over 24 frames."""
    import cv2

    from deepfake_detect.video import write_video

    frames = []
    for t in range(24):
        x0, y0, side = 10 + t, 20 - t // 2, 460 - 2 * t
        window = np.ascontiguousarray(astronaut_rgb[y0 : y0 + side, x0 : x0 + side])
        frames.append(cv2.resize(window, (320, 320), interpolation=cv2.INTER_AREA))
    path = tmp_path_factory.mktemp("video") / "astronaut.mkv"
    write_video(path, frames, fps=25, codec="ffv1", pix_fmt="yuv444p")
    return path


def test_detector_onnx_engine_matches_torch_on_a_face_video(
    tiny_model_dir: Path, tiny_onnx_dir: Path, face_video: Path
) -> None:
    from deepfake_detect.inference import DetectOptions, Detector

    def options() -> DetectOptions:
        return DetectOptions(
            precision="32", face_detector="haar", keep_thumbnails=False, keep_embeddings=True
        )

    onnx_result = Detector.load(tiny_onnx_dir, engine="onnx", options=options()).detect(face_video)
    torch_result = Detector.load(tiny_model_dir, engine="torch", options=options()).detect(face_video)
    assert onnx_result.status == torch_result.status == "ok", (onnx_result.error, torch_result.error)
    assert onnx_result.fake_probability is not None and torch_result.fake_probability is not None
    assert abs(onnx_result.fake_probability - torch_result.fake_probability) < TOL
    assert onnx_result.label == torch_result.label
    assert len(onnx_result.faces) == len(torch_result.faces) >= 1
    for ours, theirs in zip(onnx_result.faces, torch_result.faces, strict=True):
        assert ours.n_frames == theirs.n_frames >= 16
        assert ours.embeddings is not None and theirs.embeddings is not None
        assert np.abs(theirs.embeddings).max() > 0.05
        np.testing.assert_allclose(ours.embeddings, theirs.embeddings, rtol=0, atol=TOL)
        assert abs(ours.fake_probability - theirs.fake_probability) < TOL
        assert len(ours.timeline) == len(theirs.timeline) >= 2
        for a, b in zip(ours.timeline, theirs.timeline, strict=True):
            assert abs(a.fake_probability - b.fake_probability) < TOL
