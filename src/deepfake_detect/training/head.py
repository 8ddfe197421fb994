"""Train a sequence head (LSTM, MLP, frame-MLP) on cached clip embeddings with BCE (SPEC §2 'Detector').

Batches are right-padded (B, T_max, D) embeddings with their lengths; the loss is ``BCEWithLogits`` over
the head's logits; Adam at ``head.lr`` for ``head.epochs`` epochs (paper: 20). Model selection:
``keep`` (default: ``config.head.keep``). ``"best"``: with validation rows, the weights of the epoch
with the lowest validation loss (the paper stopped at 20 epochs "to avoid over-fitting", which selecting
the best validation epoch does without guessing the epoch count). ``"last"``, or no validation rows: the
last epoch's weights (steadier when the validation set is small, so the demo and paper configs use it).

Output folder (``out_dir``): ``head.safetensors``, ``detector.json`` (head name, kwargs, kept epoch;
the file keeps its pre-rename name so that existing output folders read the same),
``history.csv``, ``loss_curves.png`` (paper figure 5), ``checkpoints/`` and logs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import lightning as L
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from deepfake_detect.config import Config
from deepfake_detect.infra.files import save_tensors, write_json
from deepfake_detect.models import SEQUENCE_HEADS, SequenceHead, create_head, resolve_head_kwargs
from deepfake_detect.training.datamodules import EmbeddingDataset, EpochShuffleSampler, pad_collate
from deepfake_detect.training.history import HISTORY_FILE, history_frame, write_history
from deepfake_detect.training.loss_curves import plot_loss_curves
from deepfake_detect.training.trainer import build_trainer, fit, load_checkpoint_weights, resume_path

logger = logging.getLogger(__name__)

WEIGHTS_FILE = "head.safetensors"
INFO_FILE = "detector.json"

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class HeadRun:
    """Result of :func:`train_head`; ``kept_epoch`` is the epoch whose weights ``head`` holds."""

    head: SequenceHead
    head_name: str
    head_kwargs: dict[str, Any]
    history: pd.DataFrame
    weights_path: Path | None = None
    kept_epoch: int = 0


class HeadModule(L.LightningModule):
    """BCE-with-logits training of a :class:`SequenceHead` on padded embedding batches."""

    def __init__(self, head: SequenceHead, *, lr: float) -> None:
        super().__init__()
        self.head = head
        self.lr = lr

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """x (B, T, D), lengths (B,) -> logits (B,)."""
        logits: torch.Tensor = self.head(x, lengths)
        return logits

    def _step(self, batch: Batch, name: str) -> torch.Tensor:
        x, lengths, y = batch
        loss = F.binary_cross_entropy_with_logits(self(x, lengths).float(), y.float())
        self.log(
            name, loss, on_step=False, on_epoch=True, sync_dist=True, batch_size=y.shape[0], prog_bar=True
        )
        return loss

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train_loss")

    def validation_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "val_loss")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.lr)


def _embedding_dim(embeddings: Mapping[str, np.ndarray]) -> int:
    for array in embeddings.values():
        return int(np.shape(array)[-1])
    raise ValueError("no embeddings given")


def head_kwargs_from(config: Config, input_dim: int, head: str | None = None) -> dict[str, Any]:
    """The constructor kwargs of ``head`` (default ``config.head.name``): ``input_dim`` and its options,
    ``config.head.options`` over the head's own defaults. An option the configured head does not take is
    an error; a head trained in its place (``head``, e.g. Table 3's baselines) gets only those it takes."""
    name = head or config.head.name
    options = config.head.options
    if name != config.head.name:
        accepted = SEQUENCE_HEADS.options(name)
        if dropped := sorted(set(options) - set(accepted)):
            logger.info("head %s takes no option %s of head.options; left out", name, ", ".join(dropped))
        options = {k: v for k, v in options.items() if k in accepted}
    return resolve_head_kwargs(name, input_dim, options)


def _loaders(
    config: Config,
    embeddings: Mapping[str, np.ndarray],
    train_rows: pd.DataFrame,
    val_rows: pd.DataFrame | None,
) -> tuple[DataLoader[Any], DataLoader[Any] | None]:
    batch = config.head.batch_size
    train_set = EmbeddingDataset(embeddings, train_rows)
    order = EpochShuffleSampler(len(train_set), config.seed)
    train = DataLoader(train_set, batch_size=batch, collate_fn=pad_collate, sampler=order)
    if val_rows is None or not len(val_rows):
        return train, None
    val_set = EmbeddingDataset(embeddings, val_rows)
    return train, DataLoader(val_set, batch_size=batch, shuffle=False, collate_fn=pad_collate)


def train_head(
    config: Config,
    embeddings: Mapping[str, np.ndarray],
    train_rows: pd.DataFrame,
    val_rows: pd.DataFrame | None,
    out_dir: Path,
    *,
    head: str | None = None,
    progress: bool = True,
    keep: Literal["best", "last"] | None = None,
    resume: bool = False,
    accelerator: str = "cpu",
) -> HeadRun:
    """Train ``head`` (default ``config.head.name``) on the embeddings of ``train_rows``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    L.seed_everything(config.seed, workers=True, verbose=False)
    d = config.head
    name = head or d.name
    kwargs = head_kwargs_from(config, _embedding_dim(embeddings), name)
    module = HeadModule(create_head(name, **kwargs), lr=d.lr)
    train, val = _loaders(config, embeddings, train_rows, val_rows)
    keep = keep or config.head.keep
    monitor = "val_loss" if val is not None and keep == "best" else None
    if d.epochs == 0:
        logger.warning("head.epochs is 0: the %s head keeps its random initial weights", name)
        return _finish(module.head.eval(), name, kwargs, history_frame(), out_dir, kept_epoch=0)
    trainer, checkpoint, history = build_trainer(
        out_dir, max_epochs=d.epochs, accelerator=accelerator, progress=progress, monitor=monitor
    )
    fit(trainer, module, train, val, ckpt_path=resume_path(out_dir, resume))
    frame = history.frame()
    kept = int(frame["epoch"].iloc[-1]) if len(frame) else 0
    if monitor and checkpoint.best_model_path:
        load_checkpoint_weights(module, Path(checkpoint.best_model_path))
        kept = int(frame.loc[frame["val_loss"].idxmin(), "epoch"])
        logger.info("kept the weights of epoch %d (lowest validation loss)", kept)
    return _finish(module.head.cpu().eval(), name, kwargs, frame, out_dir, kept_epoch=kept)


def _finish(
    head: SequenceHead,
    name: str,
    kwargs: dict[str, Any],
    history: pd.DataFrame,
    out_dir: Path,
    *,
    kept_epoch: int,
) -> HeadRun:
    weights = save_tensors(out_dir / WEIGHTS_FILE, head.state_dict())
    write_json(
        out_dir / INFO_FILE, {"head": name, "head_kwargs": kwargs, "kept_epoch": kept_epoch}, sort_keys=True
    )
    write_history(out_dir / HISTORY_FILE, history)
    if len(history):
        title = f"Detector ({name}): binary cross-entropy"
        plot_loss_curves(history, out_dir / "loss_curves.png", title=title, loss_name="BCE loss")
    return HeadRun(head, name, dict(kwargs), history, weights, kept_epoch)


def predict_clips(
    head: SequenceHead, embeddings: Mapping[str, np.ndarray], rows: pd.DataFrame, batch_size: int = 256
) -> np.ndarray:
    """Fake probabilities (float64, in row order) of the clips in ``rows`` (head in eval mode, no grad)."""
    dataset = EmbeddingDataset(embeddings, rows, allow_unknown=True)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=pad_collate)
    device = next(head.parameters()).device
    was_training = head.training
    head.eval()
    probs = []
    try:
        with torch.inference_mode():
            for x, lengths, _ in loader:
                probs.append(torch.sigmoid(head(x.to(device), lengths.to(device)).float()).cpu())
    finally:
        head.train(was_training)
    if not probs:
        return np.zeros(0, dtype=np.float64)
    return torch.cat(probs).numpy().astype(np.float64)  # (N,)
