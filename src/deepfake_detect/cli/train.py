"""``train-extractor``, ``embed`` and ``train-head``: the paper's two training stages (SPEC §2).

``train-detector`` is the deprecated name of ``train-head``: a hidden alias that logs a warning and then
does the same thing.
"""

from __future__ import annotations

import functools
import json
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import pandas as pd
import typer

from deepfake_detect.cli.app import app
from deepfake_detect.cli.common import (
    ConfigOption,
    QuietOption,
    RegistryHelpCommand,
    SetOption,
    VerboseOption,
    console,
    fail,
    load_cli_config,
    setup_logging,
    user_errors,
)
from deepfake_detect.config import ClipConfig, Config, FaceConfig, dump_config
from deepfake_detect.data.store import ClipStore, StoreError

if TYPE_CHECKING:
    from deepfake_detect.models import FeatureExtractor
    from deepfake_detect.models.frame_extractor import FrameFeatureExtractor
    from deepfake_detect.training import HeadRun

logger = logging.getLogger(__name__)


def _paragraphs(text: str) -> str:
    """Join the lines of each paragraph, so that the terminal wraps the help text, not the source."""
    return "\n\n".join(" ".join(block.split()) for block in text.strip().split("\n\n"))


SPLIT_HELP = """Which clips train and which validate: only 'ok' clips with a label (fake/real) are
used; rows with split 'test' in the manifest are never used. If the manifest has rows with split
'val'/'validation'/'dev', those validate and the rest train; otherwise whole source videos (a fake goes
with its original) are put in validation when a hash of (seed, source_id) falls below --val-fraction
(deterministic). --split all trains on every labelled clip, without validation."""

EXTRACTOR_HELP = f"""Train the per-frame feature extractor with the cosine-similarity hinge loss.

Writes OUT/extractor.safetensors, OUT/extractor.json (with the digest that keys the embedding cache),
OUT/history.csv, OUT/loss_curves.png, OUT/checkpoints/last.ckpt (every epoch; --resume continues from it)
and CSV/TensorBoard logs. With extractor.hinge=false or extractor.epochs=0 the extractor is only built
(the paper's pretrained baseline) and exported.

{SPLIT_HELP}

Several processes (DDP; gloo on CPU): --devices N starts N local processes; under torchrun
(torchrun --nproc-per-node N --no-python deepfake-detect train-extractor ... --devices N) or SLURM
(srun ... --devices N --num-nodes M) the launcher's processes are used."""

FRAME_MODEL_HELP = """-e may also name an imported frame-model directory (import-model): one member
(--member, default 0) is then a frozen extractor of its pooled features (the input of its classifier,
e.g. 2560-d for EfficientNet-B7), fed the store's square face crops resized by the recipe's crop rule
and normalised as the recipe says."""

EMBED_HELP = f"""Embed every frame of every ok clip with a trained extractor.

Arrays are cached as float16 (T, D) in CACHE_DIR/<digest>/<clip>.npy; clips already cached for this
extractor are not recomputed.

{FRAME_MODEL_HELP}"""

HEAD_HELP = f"""Train a sequence head on the clips' embeddings with BCE (heads: {{heads}}).

Embeddings come from the cache (missing ones are computed with --extractor). Keeps the weights of the
epoch with the lowest validation loss (--keep best) or of the last epoch (--keep last); the default is
the config's head.keep (best, or last in configs/paper.yaml and the demo). Writes
OUT/head.safetensors, history, loss curves, checkpoints, and OUT/model: a complete model directory
for `deepfake-detect detect`.

{FRAME_MODEL_HELP} The model directory records that frozen extractor (and its weights), so detect
runs the frame network and the trained head together.

{SPLIT_HELP}"""

ClipsArg = Annotated[
    Path, typer.Argument(help="Clip store folder (output of preprocess).", show_default=False)
]
SplitOption = Annotated[str, typer.Option("--split", help="'train' (train/val split) or 'all'.")]
ValFractionOption = Annotated[
    float, typer.Option("--val-fraction", min=0.0, max=0.95, help="Share of source videos that validate.")
]
ExtractorDirOption = Annotated[
    Path,
    typer.Option(
        "--extractor",
        "-e",
        help="Output folder of train-extractor, or an imported frame-model directory.",
        show_default=False,
    ),
]
MemberOption = Annotated[
    int | None,
    typer.Option(
        "--member", min=0, help="Which member of a frame-model directory (default 0).", show_default=False
    ),
]
NoProgressOption = Annotated[bool, typer.Option("--no-progress", help="No progress bars.")]


def _open_store(clips_dir: Path) -> tuple[ClipStore, pd.DataFrame]:
    if not clips_dir.is_dir():
        fail(f"clip store not found: {clips_dir}")
    store = ClipStore(clips_dir)
    with user_errors(StoreError):
        clips = store.clips()
    if clips.empty:
        fail(f"{clips_dir} holds no ok clip (run preprocess first)")
    return store, clips


def _split(clips: pd.DataFrame, split: str, val_fraction: float, seed: int) -> tuple[Any, Any]:
    from deepfake_detect.training import split_train_val

    if split not in ("train", "all"):
        fail(f"--split must be 'train' or 'all', got {split!r}")
    use: Literal["train", "all"] = "all" if split == "all" else "train"
    with user_errors(ValueError):
        return split_train_val(clips, use=use, val_fraction=val_fraction, seed=seed)


def _last_losses(history: pd.DataFrame) -> str:
    if history.empty:
        return "not trained"
    last = history.iloc[-1]
    val = "" if math.isnan(last["val_loss"]) else f", val loss {last['val_loss']:.4f}"
    return f"{int(last['epoch'])} epoch(s), train loss {last['train_loss']:.4f}{val}"


@app.command("train-extractor", help=_paragraphs(EXTRACTOR_HELP))
def train_extractor_command(
    clips_dir: ClipsArg,
    out: Annotated[Path, typer.Argument(help="Output folder (created).", show_default=False)],
    config: ConfigOption = None,
    overrides: SetOption = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from OUT/checkpoints/last.ckpt.")
    ] = False,
    devices: Annotated[int, typer.Option(min=1, help="Processes (or GPUs) per node.")] = 1,
    num_nodes: Annotated[int, typer.Option("--num-nodes", min=1, help="Machines.")] = 1,
    accelerator: Annotated[str, typer.Option(help="cpu, gpu or auto.")] = "auto",
    split: SplitOption = "train",
    val_fraction: ValFractionOption = 0.1,
    backbone: Annotated[str | None, typer.Option(help="Backbone (default: extractor.backbone).")] = None,
    epochs: Annotated[int | None, typer.Option(min=0, help="Epochs (default: extractor.epochs).")] = None,
    no_progress: NoProgressOption = False,
    verbose: VerboseOption = 0,
    quiet: QuietOption = False,
) -> None:
    from deepfake_detect.training import train_extractor

    setup_logging(verbose, quiet)
    cfg = load_cli_config(config, overrides, {"extractor.backbone": backbone, "extractor.epochs": epochs})
    store, clips = _open_store(clips_dir)
    train_rows, val_rows = _split(clips, split, val_fraction, cfg.seed)
    with user_errors(ValueError, FileNotFoundError, StoreError):
        run = train_extractor(
            cfg,
            store,
            train_rows,
            val_rows,
            out,
            resume=resume,
            devices=devices,
            num_nodes=num_nodes,
            accelerator=accelerator,
            progress=not no_progress,
        )
    if run.global_rank != 0:
        return
    (out / "config.yaml").write_text(dump_config(cfg), encoding="utf-8")
    console.print(f"extractor {cfg.extractor.backbone}: {_last_losses(run.history)}", highlight=False)
    console.print(f"weights: {run.weights_path}  digest: {run.digest}", highlight=False)


@app.command("embed", help=_paragraphs(EMBED_HELP))
def embed_command(
    clips_dir: ClipsArg,
    cache_dir: Annotated[Path, typer.Argument(help="Embedding cache folder.", show_default=False)],
    extractor_dir: ExtractorDirOption,
    member: MemberOption = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Frames per forward pass.")] = 64,
    precision: Annotated[
        str | None, typer.Option(help="32 or bf16-mixed (default: extractor.precision).")
    ] = None,
    config: ConfigOption = None,
    overrides: SetOption = None,
    no_progress: NoProgressOption = False,
    verbose: VerboseOption = 0,
    quiet: QuietOption = False,
) -> None:
    from deepfake_detect.training import embed_clips, load_extractor

    setup_logging(verbose, quiet)
    cfg = load_cli_config(config, overrides, {"extractor.precision": precision})
    store, clips = _open_store(clips_dir)
    with user_errors(ValueError, FileNotFoundError, StoreError):
        extractor, digest = load_extractor(extractor_dir, member)
        embeddings = embed_clips(
            extractor,
            store,
            clips,
            cache_dir,
            digest=digest,
            batch_size=batch_size,
            precision=cfg.extractor.precision,
            progress=not no_progress,
            channels_last=cfg.extractor.channels_last,
        )
    console.print(f"{len(embeddings)} clip(s) embedded in {cache_dir / digest}", highlight=False)


def _store_configs(store: ClipStore, cfg: Config) -> tuple[FaceConfig, ClipConfig]:
    """The face and clip settings the store's crops were made with (store.json), else the config's."""
    try:
        settings = json.loads(store.settings_path.read_text(encoding="utf-8"))["settings"]
        faces = FaceConfig.model_validate({**settings["faces"], "device": cfg.faces.device})
        clip_len = int(settings["clip_len"])
        clips = ClipConfig(
            frame_stride=int(settings["frame_stride"]),
            clip_len=clip_len,
            min_clip_len=min(cfg.clips.min_clip_len, clip_len),
        )
    except (OSError, KeyError, TypeError, ValueError) as exc:
        logger.warning("cannot read the store's settings (%s); the model dir records the config's", exc)
        return cfg.faces, cfg.clips
    return faces, clips


@app.command("train-head", help=_paragraphs(HEAD_HELP), cls=RegistryHelpCommand)
def train_head_command(
    clips_dir: ClipsArg,
    out: Annotated[Path, typer.Argument(help="Output folder (created); the model goes to OUT/model.")],
    extractor_dir: ExtractorDirOption,
    member: MemberOption = None,
    embeddings: Annotated[
        Path | None,
        typer.Option(
            "--embeddings",
            help="Embedding cache folder (default: EXTRACTOR/embeddings; OUT/embeddings for a frame model).",
        ),
    ] = None,
    head: Annotated[str | None, typer.Option(help="A sequence head: {heads} (default: head.name).")] = None,
    keep: Annotated[
        str | None,
        typer.Option(help="'best' (lowest validation loss) or 'last' epoch (default: head.keep)."),
    ] = None,
    epochs: Annotated[int | None, typer.Option(min=0, help="Epochs (default: head.epochs).")] = None,
    split: SplitOption = "train",
    val_fraction: ValFractionOption = 0.1,
    config: ConfigOption = None,
    overrides: SetOption = None,
    no_progress: NoProgressOption = False,
    verbose: VerboseOption = 0,
    quiet: QuietOption = False,
) -> None:
    from deepfake_detect.training import embed_clips, load_extractor, train_head

    setup_logging(verbose, quiet)
    if keep not in (None, "best", "last"):
        fail(f"--keep must be 'best' or 'last', got {keep!r}")
    cfg = load_cli_config(config, overrides, {"head.name": head, "head.epochs": epochs, "head.keep": keep})
    store, clips = _open_store(clips_dir)
    train_rows, val_rows = _split(clips, split, val_fraction, cfg.seed)
    with user_errors(ValueError, FileNotFoundError, KeyError, StoreError):
        extractor, digest = load_extractor(extractor_dir, member)
        frozen = getattr(extractor, "record", None) is not None  # never write into an imported model
        default_cache = (out if frozen else extractor_dir) / "embeddings"
        cache = embeddings if embeddings is not None else default_cache
        used = train_rows if val_rows is None else pd.concat([train_rows, val_rows], ignore_index=True)
        emb = embed_clips(
            extractor,
            store,
            used,
            cache,
            digest=digest,
            progress=not no_progress,
            precision=cfg.extractor.precision,
            channels_last=cfg.extractor.channels_last,
        )
        run = train_head(
            cfg,
            emb,
            train_rows,
            val_rows,
            out,
            progress=not no_progress,
        )
    model_dir = _save_model(out / "model", extractor, run, store, cfg, {"extractor_digest": digest})
    (out / "config.yaml").write_text(dump_config(cfg), encoding="utf-8")
    summary = f"detector {run.head_name}: {_last_losses(run.history)}; kept epoch {run.kept_epoch}"
    console.print(summary, highlight=False)
    console.print(f"model: {model_dir}", highlight=False)


DEPRECATED_NAME = "train-detector"


@functools.wraps(train_head_command)
def _train_detector_alias(*args: Any, **kwargs: Any) -> None:
    """``train-detector``: the deprecated name of ``train-head`` (warns, then does the same)."""
    setup_logging(kwargs.get("verbose", 0), kwargs.get("quiet", False))
    logger.warning("`deepfake-detect %s` is deprecated; use `deepfake-detect train-head`", DEPRECATED_NAME)
    train_head_command(*args, **kwargs)


app.command(
    DEPRECATED_NAME,
    hidden=True,
    cls=RegistryHelpCommand,
    help=_paragraphs(f"Deprecated: use `train-head` (the same command under its new name).\n\n{HEAD_HELP}"),
)(_train_detector_alias)


def _save_model(
    path: Path,
    extractor: FeatureExtractor | FrameFeatureExtractor,
    run: HeadRun,
    store: ClipStore,
    cfg: Config,
    extra: dict[str, Any],
) -> Path:
    """The model directory for ``detect``: faces/clips settings from the store, threshold from the config."""
    from deepfake_detect.models import save_model_dir

    faces, clip_cfg = _store_configs(store, cfg)
    return save_model_dir(
        path,
        extractor,
        run.head,
        head_name=run.head_name,
        head_kwargs=run.head_kwargs,
        threshold=cfg.head.threshold,
        faces=faces,
        clips=clip_cfg,
        extra={**extra, "kept_epoch": run.kept_epoch},
    )
