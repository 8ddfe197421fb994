"""The Lightning ``Trainer`` of both training runs (SPEC §2 'Training') and how a run starts or resumes.

One place builds the Trainer: precision (bf16 autocast on CPUs that support it), a checkpoint every
epoch (``checkpoints/last.ckpt``, plus the best validation epoch when a metric is monitored), CSV +
TensorBoard logs in ``out_dir``, progress bars, and DDP (gloo on CPU) for multi-process runs under
Lightning's own launcher, ``torchrun`` or SLURM.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from deepfake_detect.training.history import HistoryCallback

logger = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = "last.ckpt"

# Lightning advice that does not apply to these small CPU runs (loader workers, logging interval).
_QUIET_WARNINGS = (
    r".*does not have many workers.*",
    r".*The number of training batches .* is smaller than the logging interval.*",
    r".*Checkpoint directory .* exists and is not empty.*",
    r".*Experiment logs directory .* exists and is not empty.*",
    r".*isinstance\(treespec, LeafSpec\)` is deprecated.*",
    r".*You defined a `validation_step` but have no `val_dataloader`.*",  # no validation rows given
)


# Loggers through which Lightning announces, at INFO on every fit, the GPU/TPU it did (not) find, an
# advertisement for its cloud logger ("litlogger") and that max_epochs was reached. Lightning prints them
# with its own handler and they propagate to ours, so each came out twice. Their warnings still pass.
_CHATTY_LOGGERS = (
    "lightning.pytorch.utilities.rank_zero",
    "lightning.fabric.utilities.rank_zero",
    "lightning.pytorch.accelerators.cuda",
)


@contextmanager
def quiet_lightning() -> Iterator[None]:
    """Lightning's INFO chatter off (WARNING and above kept) for the block; untouched when the root logger
    is at DEBUG (``-vv``), where a user asked for everything."""
    if logging.getLogger().getEffectiveLevel() <= logging.DEBUG:
        yield
        return
    saved = [(lg, lg.level) for lg in map(logging.getLogger, _CHATTY_LOGGERS)]
    for lg, _ in saved:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in saved:
            lg.setLevel(level)


def uses_cpu(accelerator: str) -> bool:
    """True when ``accelerator`` resolves to the CPU (``auto`` without a visible GPU)."""
    if accelerator == "cpu":
        return True
    return accelerator == "auto" and not torch.cuda.is_available()


def resolve_precision(requested: str, accelerator: str) -> str:
    """The Lightning precision to use: bf16 autocast on CPU only where the CPU has native bf16 kernels."""
    if not uses_cpu(accelerator):
        return requested
    if requested == "16-mixed":
        logger.warning("float16 autocast is not available on CPU; using bf16-mixed instead")
        requested = "bf16-mixed"
    if requested == "bf16-mixed" and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        logger.warning("this CPU has no native bfloat16 support; training in float32")
        return "32"
    return requested


def _strategy(devices: int, num_nodes: int, accelerator: str) -> Any:
    if devices * num_nodes <= 1:
        return "auto"
    from lightning.pytorch.strategies import DDPStrategy

    # gloo is the collective backend that works between CPU processes; GPUs keep Lightning's default (nccl).
    return DDPStrategy(process_group_backend="gloo" if uses_cpu(accelerator) else None)


def _checkpoint_callback(out_dir: Path, monitor: str | None) -> ModelCheckpoint:
    # Lightning (2.6) writes last.ckpt only in an epoch where it also saved a top-k checkpoint, so one is
    # always kept: the best epoch's, or without a monitor metric the latest epoch's (else a run without
    # validation would have no checkpoint to resume from until it ended).
    return ModelCheckpoint(
        dirpath=out_dir / CHECKPOINT_DIR,
        filename="best-epoch{epoch:03d}" if monitor else "epoch{epoch:03d}",  # 0-based epoch index
        auto_insert_metric_name=False,
        monitor=monitor,
        mode="min",
        save_top_k=1,
        save_last=True,
        every_n_epochs=1,
    )


def build_trainer(
    out_dir: Path,
    *,
    max_epochs: int,
    devices: int = 1,
    num_nodes: int = 1,
    accelerator: str = "auto",
    precision: str = "32",
    progress: bool = True,
    monitor: str | None = None,
) -> tuple[L.Trainer, ModelCheckpoint, HistoryCallback]:
    """A Trainer writing checkpoints, logs and history into ``out_dir``.

    ``checkpoints/last.ckpt`` is rewritten after every epoch (what ``resume`` continues from); with a
    ``monitor`` metric the best epoch's checkpoint is kept too (``checkpoints/best-epochNNN.ckpt``),
    without one the latest epoch's (``checkpoints/epochNNN.ckpt``).
    """
    history = HistoryCallback()
    checkpoint = _checkpoint_callback(out_dir, monitor)
    callbacks: list[Callback] = [history, checkpoint]
    if progress:
        from lightning.pytorch.callbacks import RichProgressBar

        callbacks.append(RichProgressBar(leave=True))
    with quiet_lightning():  # the GPU/TPU lines come from the constructor
        trainer = L.Trainer(
            default_root_dir=out_dir,
            max_epochs=max_epochs,
            devices=devices,
            num_nodes=num_nodes,
            accelerator=accelerator,
            strategy=_strategy(devices, num_nodes, accelerator),
            precision=resolve_precision(precision, accelerator),  # type: ignore[arg-type]
            logger=[
                CSVLogger(save_dir=out_dir, name="logs"),
                TensorBoardLogger(save_dir=out_dir, name="tensorboard", default_hp_metric=False),
            ],
            callbacks=callbacks,
            enable_progress_bar=progress,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            log_every_n_steps=1,
        )
    return trainer, checkpoint, history


def last_checkpoint(out_dir: Path) -> Path | None:
    """``out_dir/checkpoints/last.ckpt`` if a previous run wrote it."""
    path = out_dir / CHECKPOINT_DIR / LAST_CHECKPOINT
    return path if path.is_file() else None


def resume_path(out_dir: Path, resume: bool) -> Path | None:
    """The checkpoint to continue from (None: start from scratch, with a warning when asked to resume)."""
    path = last_checkpoint(out_dir)
    if not resume:
        if path is not None:
            logger.warning(
                "starting over in %s: its checkpoints will be replaced (resume continues)", out_dir
            )
        return None
    if path is None:
        logger.warning("--resume: no checkpoint in %s yet; starting from scratch", out_dir / CHECKPOINT_DIR)
    else:
        logger.info("resuming from %s", path)
    return path


def fit(
    trainer: L.Trainer, module: L.LightningModule, train: Any, val: Any | None, *, ckpt_path: Path | None
) -> None:
    """``trainer.fit`` with Lightning's inapplicable advice silenced (locally, not process-wide).

    Checkpoints are read with ``weights_only=True``: everything this package puts into its own
    Lightning checkpoints (tensors, numbers, strings, plain lists and dicts) loads without unpickling
    arbitrary objects. Only checkpoints that this program wrote into ``out_dir`` are ever resumed from.
    """
    with warnings.catch_warnings(), quiet_lightning():
        for pattern in _QUIET_WARNINGS:
            warnings.filterwarnings("ignore", message=pattern)
        try:
            trainer.fit(module, train, val, ckpt_path=ckpt_path, weights_only=True)
        except RuntimeError as exc:
            if ckpt_path is None or "state_dict" not in str(exc):
                raise
            raise ValueError(
                f"cannot resume from {ckpt_path}: it holds another model (backbone, sizes or head changed?)"
            ) from exc


def load_checkpoint_weights(module: L.LightningModule, path: Path) -> None:
    """Load the model weights of one of our own checkpoints (weights_only: no arbitrary unpickling)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    module.load_state_dict(state["state_dict"])
