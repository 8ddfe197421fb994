"""Benchmark 4: extractor training images/s through the real data pipeline vs the bare model step
(target: at least 0.85).

Pipeline: the clip store that ``preprocess_dataset`` makes from the built-in synthetic videos (JPEG
crops, demo settings) -> ``ClipWindowDataset`` + DataLoader exactly as ``train_extractor`` builds them ->
``ExtractorModule`` fitted by the Lightning Trainer that ``training.trainer.build_trainer`` configures
(CSV/TensorBoard loggers, a checkpoint every epoch). A callback timestamps the end of every batch; the
throughput counts the images of the batches after the first epoch over the time they took
(epoch boundaries, checkpoints and data loading included).
Bare step: the same module, batch shapes and number of steps, the batches already in memory as uint8
tensors; forward (prepare + embed), hinge loss, backward, Adam step, no Trainer and no loader.
Cases: the demo's extractor (the packaged demo.yaml: a small cnn4) and the paper's (ResNet-50 at 224 px;
2 clips x 8 frames per batch so that a step takes seconds, not minutes, on 2 cores). The first epoch of
each fit is warm-up (not counted).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

from benchmarks import arguments, host, inputs, recording, timing
from deepfake_detect.config import Config
from deepfake_detect.data.store import ClipStore
from deepfake_detect.losses import similarity_hinge_loss
from deepfake_detect.training import trainer as training_trainer
from deepfake_detect.training.extractor import ExtractorModule, _loaders, build_extractor

TARGET = 0.85


@dataclass(frozen=True)
class Case:
    name: str
    overrides: dict[str, Any]
    clips: int  # clips of the store used (the first ones)
    epochs: int
    warmup_epochs: int = 1  # epochs whose batches are not counted


class BatchClock(L.Callback):
    """Wall-clock time and image count at the end of every training batch."""

    def __init__(self) -> None:
        self.ends: list[float] = []
        self.images: list[int] = []

    def on_train_batch_end(
        self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self.ends.append(time.perf_counter())
        self.images.append(int(batch[0].shape[0] * batch[0].shape[1]))

    def rate(self, skip: int) -> tuple[float, int]:
        """Images/s over the batches after the first ``skip`` (>= 1), from the end of batch ``skip - 1``
        to the end of the last; and how many batches that is."""
        counted = len(self.ends) - skip
        if skip < 1 or counted < 1:
            raise RuntimeError(f"only {len(self.ends)} batches ran; cannot skip {skip} and count some")
        return sum(self.images[skip:]) / (self.ends[-1] - self.ends[skip - 1]), counted

    def intervals(self, skip: int, per_epoch: int) -> dict[str, float]:
        """Median seconds between batch ends within an epoch and across an epoch boundary (after ``skip``)."""
        gaps = np.diff(self.ends)  # gaps[i - 1] ends batch i
        index = np.arange(1, len(self.ends))
        counted = index >= skip
        boundary = counted & (index % per_epoch == 0)
        inner = counted & (index % per_epoch != 0)
        return {
            "batch_s_within_epoch": float(np.median(gaps[inner])) if inner.any() else float("nan"),
            "batch_s_at_epoch_start": float(np.median(gaps[boundary])) if boundary.any() else float("nan"),
        }


def make_module(config: Config) -> ExtractorModule:
    torch.manual_seed(config.seed)
    ex = config.extractor
    return ExtractorModule(
        build_extractor(config),
        lr=ex.lr,
        margin=ex.margin,
        window=ex.similarity_window,
        channels_last=ex.channels_last,
    )


def pipeline_rate(
    config: Config, store: ClipStore, case: Case
) -> tuple[float, int, list[Any], dict[str, float]]:
    """Images/s of a real fit, batches counted, the batches the loader produced (for the bare step) and
    the median batch times within an epoch and at an epoch's start."""
    rows = store.clips().head(case.clips)
    clock = BatchClock()
    with tempfile.TemporaryDirectory() as out:
        trainer, _, _ = training_trainer.build_trainer(
            Path(out), max_epochs=case.epochs, precision=config.extractor.precision, progress=False
        )
        trainer.callbacks.append(clock)  # type: ignore[attr-defined]
        train, _ = _loaders(config, store, rows, None, distributed=False)
        warmup = len(train) * case.warmup_epochs
        with timing.quiet_logs():
            training_trainer.fit(trainer, make_module(config), train, None, ckpt_path=None)
    rate, batches = clock.rate(warmup)
    return rate, batches, list(train), clock.intervals(warmup, len(train))


def bare_rate(config: Config, batches: list[Any], steps: int, warmup: int) -> float:
    """Images/s of forward + loss + backward + Adam on batches already in memory."""
    module = make_module(config).train()
    optimizer = module.configure_optimizers()
    ex = config.extractor
    images, start = 0, 0.0
    for step in range(warmup + steps):
        if step == warmup:
            images, start = 0, time.perf_counter()
        frames, labels = batches[step % len(batches)]
        embeddings = module(frames)  # (B, T, D)
        loss = similarity_hinge_loss(
            embeddings.float(), labels, margin=ex.margin, window=ex.similarity_window
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        images += int(frames.shape[0] * frames.shape[1])
    return images / (time.perf_counter() - start)


def run_case(base: Config, store: ClipStore, case: Case) -> recording.Ratio:
    data = base.model_dump()
    data["extractor"].update(case.overrides)
    config = Config.model_validate(data)
    piped, steps, batches, gaps = pipeline_rate(config, store, case)
    bare = bare_rate(config, batches, steps, warmup=min(2, len(batches)))
    ex = config.extractor
    details = {
        "pipeline_img_s": piped,
        "bare_img_s": bare,
        "extractor": f"{ex.backbone} at {config.extractor.input_size or 'its own size'} px",
        "batch": f"{ex.batch_size} clips x {ex.extractor_clip_len} frames",
        "counted_batches": steps,
        "batches_per_epoch": len(batches),
        **gaps,
        "bare_batch_s": ex.batch_size * ex.extractor_clip_len / bare,
        "num_workers": ex.num_workers,
        "precision": ex.precision,
    }
    return recording.Ratio(
        "train_throughput",
        case.name,
        piped / bare,
        TARGET,
        "at_least",
        "pipeline images/s / bare step images/s",
        details,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = arguments.parse(arguments.parser(__doc__ or ""), argv)
    host.set_threads(2)
    start = host.machine()
    cnn4 = {"num_workers": 0}
    resnet = {
        "backbone": "resnet50",
        "input_size": None,
        "embed_dim": 512,
        "batch_size": 2,
        "extractor_clip_len": 8,
        "num_workers": 0,
    }
    if args.quick:
        store = inputs.clip_store(args.cache, videos=2, frames=30)
        cases = [Case("demo extractor, quick", {**cnn4, "batch_size": 1}, clips=2, epochs=2)]
    else:
        store = inputs.clip_store(args.cache, videos=16, frames=72)
        cases = [
            Case("demo extractor", cnn4, clips=64, epochs=6),
            Case("demo extractor, num_workers=1", {**cnn4, "num_workers": 1}, clips=64, epochs=6),
            Case("resnet50 224px", resnet, clips=8, epochs=3),
        ]
    ratios = [run_case(inputs.demo_config(), store, case) for case in cases]
    notes = [
        "num_workers=0 is the configured default (ExtractorConfig.num_workers); the num_workers=1 row"
        " is a lever, not the default."
    ]
    recording.report(
        "train_throughput",
        "extractor training: data pipeline vs bare step",
        ratios,
        notes,
        record=args.record,
        start_info=start,
        results_path=args.results,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
