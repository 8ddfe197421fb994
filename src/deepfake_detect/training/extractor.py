"""Train the per-frame feature extractor with the cosine-similarity hinge loss (SPEC §2, paper §2-3).

Each training item is a window of ``extractor_clip_len`` consecutive crops of one clip (a random window
per epoch; the first window for validation). The module prepares the uint8 crops (resize + normalise),
embeds every frame, and applies :func:`similarity_hinge_loss` per clip (computed in float32 even under
bf16 autocast). Adam at ``extractor.lr`` for ``extractor.epochs`` epochs. The weights of the *last* epoch
are exported (the paper reports no model selection for the extractor; the validation hinge loss is
logged and plotted so that over-fitting is visible).

Output folder (``out_dir``)::

    extractor.safetensors   the trained FeatureExtractor's weights
    extractor.json          backbone, embed_dim, input_size, digest (the embedding cache key)
    history.csv             epoch, train_loss, val_loss
    loss_curves.png         training and validation loss per epoch (paper figure 4)
    checkpoints/last.ckpt   Lightning checkpoint of the latest epoch (``resume=True`` continues from it)
    logs/, tensorboard/     CSV and TensorBoard logs
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import pandas as pd
import torch
from torch.utils.data import DataLoader

from deepfake_detect.config import Config
from deepfake_detect.data.store import ClipStore
from deepfake_detect.infra.files import save_tensors, write_json
from deepfake_detect.losses import similarity_hinge_loss
from deepfake_detect.models import FeatureExtractor, load_weights
from deepfake_detect.models.frame_extractor import FrameFeatureExtractor
from deepfake_detect.training.datamodules import ClipWindowDataset, EpochWindowSampler, loader_kwargs
from deepfake_detect.training.digest import state_digest
from deepfake_detect.training.history import HISTORY_FILE, history_frame, write_history
from deepfake_detect.training.loss_curves import plot_loss_curves
from deepfake_detect.training.trainer import build_trainer, fit, resume_path

logger = logging.getLogger(__name__)

WEIGHTS_FILE = "extractor.safetensors"
INFO_FILE = "extractor.json"


@dataclass(frozen=True)
class ExtractorRun:
    """Result of :func:`train_extractor` (``global_rank`` > 0 only on the other processes of a DDP run)."""

    extractor: FeatureExtractor
    weights_path: Path
    history: pd.DataFrame
    digest: str
    out_dir: Path
    global_rank: int = 0


class ExtractorModule(L.LightningModule):
    """Hinge-loss training of a :class:`FeatureExtractor` on batches of frame windows."""

    def __init__(
        self,
        extractor: FeatureExtractor,
        *,
        lr: float,
        margin: float,
        window: int | None,
        channels_last: bool,
    ) -> None:
        super().__init__()
        self.extractor = extractor
        self.lr = lr
        self.margin = margin
        self.window = window
        self.channels_last = channels_last
        if channels_last:
            self.extractor.to(memory_format=torch.channels_last)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, T, H, W, 3) uint8 crops or (B, T, 3, S, S) prepared frames -> (B, T, D) embeddings."""
        b, t = frames.shape[:2]
        flat = frames.flatten(0, 1)  # (B*T, ...)
        if flat.dtype == torch.uint8:
            flat = self.extractor.prepare(flat)  # (B*T, 3, S, S)
        if self.channels_last:
            flat = flat.contiguous(memory_format=torch.channels_last)
        return self.extractor(flat).unflatten(0, (b, t))  # (B, T, D)

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor], name: str) -> torch.Tensor:
        frames, labels = batch
        embeddings = self(frames)  # (B, T, D)
        with torch.autocast(device_type=embeddings.device.type, enabled=False):
            loss = similarity_hinge_loss(embeddings.float(), labels, margin=self.margin, window=self.window)
        self.log(
            name,
            loss,
            on_step=False,
            on_epoch=True,
            sync_dist=True,
            batch_size=labels.shape[0],
            prog_bar=True,
        )
        return loss

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train_loss")

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "val_loss")

    def on_train_epoch_start(self) -> None:
        dataset = self.trainer.train_dataloader.dataset  # type: ignore[union-attr]
        if isinstance(dataset, ClipWindowDataset):
            dataset.set_epoch(self.current_epoch)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.lr)


def build_extractor(config: Config) -> FeatureExtractor:
    """The extractor described by ``config.extractor`` (random init unless ``weights`` names a file)."""
    ex = config.extractor
    return FeatureExtractor(ex.backbone, embed_dim=ex.embed_dim, weights=ex.weights, input_size=ex.input_size)


def extractor_digest(extractor: FeatureExtractor | FrameFeatureExtractor) -> str:
    """The embedding-cache key of an extractor: its weights plus how frames are fed to it."""
    if isinstance(extractor, FrameFeatureExtractor):
        return "frame-" + state_digest(extractor, {"frame_extractor": extractor.record})
    facts = {
        "backbone": extractor.backbone_name,
        "embed_dim": extractor.embed_dim,
        "input_size": extractor.input_size,
        "mean": list(extractor.mean),
        "std": list(extractor.std),
    }
    return state_digest(extractor, facts)


def _loaders(
    config: Config,
    store: ClipStore,
    train_rows: pd.DataFrame,
    val_rows: pd.DataFrame | None,
    distributed: bool,
) -> tuple[DataLoader[Any], DataLoader[Any] | None]:
    ex = config.extractor
    persistent = loader_kwargs(ex.num_workers, persistent=True)
    train = ClipWindowDataset(
        store,
        train_rows,
        ex.extractor_clip_len,
        random_window=True,
        seed=config.seed,
        cache_mb=ex.frame_cache_mb,
    )
    if distributed:  # Lightning's DistributedSampler; set_epoch reaches the workers it starts each epoch
        each_epoch = loader_kwargs(ex.num_workers)
        train_loader = DataLoader(train, batch_size=ex.batch_size, shuffle=True, **each_epoch)
    else:  # the items carry their epoch, so the workers can persist
        sampler = EpochWindowSampler(len(train), config.seed)
        train_loader = DataLoader(train, batch_size=ex.batch_size, sampler=sampler, **persistent)
    if val_rows is None or not len(val_rows):
        return train_loader, None
    val = ClipWindowDataset(
        store, val_rows, ex.extractor_clip_len, random_window=False, cache_mb=ex.frame_cache_mb
    )
    # validation always reads the first window, so its workers can persist in every mode
    return train_loader, DataLoader(val, batch_size=ex.batch_size, shuffle=False, **persistent)


def train_extractor(
    config: Config,
    store: ClipStore,
    train_rows: pd.DataFrame,
    val_rows: pd.DataFrame | None,
    out_dir: Path,
    *,
    resume: bool = False,
    devices: int = 1,
    num_nodes: int = 1,
    accelerator: str = "auto",
    progress: bool = True,
) -> ExtractorRun:
    """Train (or, with ``hinge=False`` / ``epochs=0``, just build) the extractor; see the module docstring."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    L.seed_everything(config.seed, workers=True, verbose=False)
    extractor = build_extractor(config)
    ex = config.extractor
    if not ex.hinge or ex.epochs == 0:
        logger.info("extractor %s is not trained (hinge=%s, epochs=%d)", ex.backbone, ex.hinge, ex.epochs)
        return _finish(extractor.eval(), out_dir, history_frame(), rank=0, barrier=None)
    module = ExtractorModule(
        extractor, lr=ex.lr, margin=ex.margin, window=ex.similarity_window, channels_last=ex.channels_last
    )
    trainer, _, history = build_trainer(
        out_dir,
        max_epochs=ex.epochs,
        devices=devices,
        num_nodes=num_nodes,
        accelerator=accelerator,
        precision=ex.precision,
        progress=progress,
    )
    train, val = _loaders(config, store, train_rows, val_rows, distributed=devices * num_nodes > 1)
    fit(trainer, module, train, val, ckpt_path=resume_path(out_dir, resume))
    trained = module.extractor.cpu().to(memory_format=torch.contiguous_format).eval()
    return _finish(
        trained, out_dir, history.frame(), rank=trainer.global_rank, barrier=trainer.strategy.barrier
    )


def _finish(
    extractor: FeatureExtractor, out_dir: Path, history: pd.DataFrame, *, rank: int, barrier: Any
) -> ExtractorRun:
    """Export weights, facts, history and curves (on the global-zero process), then return the run."""
    digest = extractor_digest(extractor)
    weights_path = out_dir / WEIGHTS_FILE
    if rank == 0:
        save_tensors(weights_path, extractor.state_dict())
        info = {
            "backbone": extractor.backbone_name,
            "embed_dim": extractor.embed_dim,
            "input_size": extractor.input_size,
            "digest": digest,
            "weights": WEIGHTS_FILE,
            "epochs_trained": len(history),
        }
        write_json(out_dir / INFO_FILE, info, sort_keys=True)
        write_history(out_dir / HISTORY_FILE, history)
        if len(history):
            title = f"Feature extractor ({extractor.backbone_name}): cosine-similarity hinge loss"
            plot_loss_curves(history, out_dir / "loss_curves.png", title=title, loss_name="hinge loss")
    if barrier is not None:
        barrier()
    return ExtractorRun(extractor, weights_path, history, digest, out_dir, global_rank=rank)


def load_trained_extractor(path: Path) -> tuple[FeatureExtractor, str]:
    """Rebuild the extractor that :func:`train_extractor` wrote into ``path``; returns (extractor, digest).

    Raises FileNotFoundError when ``path`` is not such a folder and ValueError when the weights no longer
    match the recorded digest.
    """
    path = Path(path)
    info_path = path / INFO_FILE
    if not info_path.is_file():
        raise FileNotFoundError(f"{path} holds no {INFO_FILE}: is it the output folder of train-extractor?")
    info = json.loads(info_path.read_text(encoding="utf-8"))
    extractor = FeatureExtractor(
        info["backbone"], embed_dim=int(info["embed_dim"]), input_size=info["input_size"]
    )
    load_weights(extractor, path / str(info.get("weights", WEIGHTS_FILE)))
    extractor.eval()
    digest = extractor_digest(extractor)
    if info.get("digest") not in (None, digest):
        raise ValueError(f"the weights in {path} do not match their digest in {INFO_FILE} (changed since?)")
    return extractor, digest
