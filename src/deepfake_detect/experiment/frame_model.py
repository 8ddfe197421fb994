"""An imported frame model in the experiment: "alone" vs "+ head", on the same splits (issue 10, item 4).

With ``experiment.frame_model`` (a directory written by ``import-model``) every repetition adds, on the
split the other rows use:

- **alone**: member ``experiment.frame_model_member``'s own classifier (its published head and output
  rule) gives P(fake) for every crop of a test clip; the clip's P(fake) is the **mean over its crops**
  (:class:`~deepfake_detect.evaluation.frame_scores.FrameScorer`, which ``evaluate`` uses too). Nothing is
  trained. The recipe's own video rule (e.g. the winner's confident strategy over a video's
  crops) is not used: video level is ``evaluation.aggregation`` of clip probabilities, as for every row.
- **+ head**: the same member's pooled features (the input of its classifier) as a frozen extractor
  (:func:`~deepfake_detect.models.frame_extractor.load_frame_extractor`), embeddings cached like any other
  extractor's, each head of :func:`frame_model_heads` trained on the training clips (validation clips for
  ``head.keep: best`` and the loss curves; seed ``seed + repeat``, as the main heads) and scored on the test
  clips.

Both rows see the clip store's crops (the experiment's face detector and margin), resized to the member's
input by its recipe's crop rule and normalised as its recipe says; this is not the frame model's own face
recipe (detector, padding, sampled frames), and the report says so.

Per-crop probabilities are float32, cached per (weights + recipe digest, clip) under
``cache/frame_probabilities`` beside the embeddings; nothing is written into the model directory.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from deepfake_detect.config import Config
from deepfake_detect.data.store import ClipStore
from deepfake_detect.evaluation.evaluate import clip_predictions, evaluate_predictions
from deepfake_detect.evaluation.frame_scores import FrameScorer, load_frame_scorer
from deepfake_detect.experiment.splits import Split, train_split_head
from deepfake_detect.experiment.summary import stats
from deepfake_detect.models.dir_config import ModelDirError, model_dir_kind
from deepfake_detect.models.frame_config import FrameModelConfig, read_frame_model_config
from deepfake_detect.models.frame_extractor import FrameFeatureExtractor
from deepfake_detect.models.heads import SEQUENCE_HEADS, temporal_evidence
from deepfake_detect.training import embed_clips, predict_clips

__all__ = [
    "ALONE",
    "FrameModelRows",
    "FrameRowResult",
    "frame_model_heads",
    "frame_model_stages",
    "load_frame_model_rows",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")
Runner = Callable[[str, str, Callable[[], T]], T]  # the experiment clock: (kind, label, fn) -> fn()

ALONE = "alone"
METRICS = ("accuracy", "log_loss", "roc_auc", "average_precision", "eer")
ALONE_RULE = (
    "the member's own classifier (its published head and output rule) scores every crop of a test clip; "
    "the clip's P(fake) is the mean over its crops; nothing is trained"
)
HEAD_RULE = (
    "the member's pooled features (the input of its classifier) as a frozen extractor; each head trained "
    "on the repetition's training clips (its validation clips choose the kept epoch with head.keep: best, "
    "as for the Table 3 heads) and scored on its test clips"
)


def frame_model_heads(config: Config) -> list[str]:
    """The heads trained on the frame model's features: ``frame_model_heads``, else head.name + Table 3's."""
    exp = config.experiment
    heads = (
        exp.frame_model_heads if exp.frame_model_heads is not None else [config.head.name, *exp.table3_heads]
    )
    return list(dict.fromkeys(heads))


def frame_model_stages(config: Config) -> int:
    """Clock stages the frame-model rows add: loading once, then per repetition alone + embed + heads."""
    if config.experiment.frame_model is None:
        return 0
    return 1 + config.experiment.repeats * (2 + len(frame_model_heads(config)))


@dataclass
class FrameRowResult:
    """One row ("alone" or a head name) on one repetition's test clips."""

    name: str
    clip: dict[str, float]
    video: dict[str, float]
    predictions: pd.DataFrame
    history: pd.DataFrame = field(default_factory=pd.DataFrame)


@dataclass
class FrameModelRows:
    """The loaded member (its scorer: extractor and classifier share one network) and the rows of every
    repetition."""

    path: Path
    member: int
    config: FrameModelConfig
    scorer: FrameScorer
    heads: list[str]
    cache_dir: Path
    results: dict[int, list[FrameRowResult]] = field(default_factory=dict)

    @property
    def arch(self) -> str:
        return self.config.network.arch

    def label(self, name: str) -> str:
        return f"{self.arch} alone" if name == ALONE else f"{self.arch} + {name}"

    @property
    def extractor(self) -> FrameFeatureExtractor:
        return self.scorer.extractor

    @property
    def digest(self) -> str:
        return self.scorer.digest

    def clip_probabilities(self, store: ClipStore, rows: pd.DataFrame, batch_size: int = 64) -> np.ndarray:
        """Mean per-crop P(fake) of the member's classifier for each clip of ``rows`` (float64, row order)."""
        cache = self.cache_dir / "frame_probabilities"
        return self.scorer.clip_probabilities(store, rows, cache, batch_size=batch_size)

    def run_repetition(
        self, config: Config, store: ClipStore, split: Split, out_dir: Path, run: Runner[Any]
    ) -> None:
        """The alone row and every head's row on ``split`` (artefacts under ``out_dir``)."""
        tag = f"rep {split.repeat + 1}/{config.experiment.repeats}"
        probabilities = run(
            "frame_model:alone",
            f"{tag}: score the test clips with {self.label(ALONE)}",
            lambda: self.clip_probabilities(store, split.test),
        )
        table = clip_predictions(split.test, probabilities)
        rows = [_evaluate(config, ALONE, table, out_dir, self.label(ALONE))]
        embeddings = run(
            "frame_model:embed",
            f"{tag}: embed the split's clips with {self.arch} (member {self.member})",
            lambda: embed_clips(
                self.extractor,
                store,
                pd.concat(list(split.sides().values())),
                self.cache_dir / "embeddings",
                digest=self.digest,
                progress=False,
            ),
        )
        rows += self._head_rows(config, embeddings, split, out_dir, run, tag)
        self.results[split.repeat] = rows

    def _head_rows(
        self,
        config: Config,
        embeddings: Mapping[str, np.ndarray],
        split: Split,
        out_dir: Path,
        run: Runner[Any],
        tag: str,
    ) -> list[FrameRowResult]:
        """Each head trained on the training clips' features (validation clips for head.keep), tested."""
        cfg = config.model_copy(deep=True)
        cfg.seed = config.seed + split.repeat  # a seed per repetition, as for a trained extractor's heads
        rows = []
        for head in self.heads:
            head_run = run(
                f"frame_model:head:{head}",
                f"{tag}: train {head} on {self.arch} features",
                partial(train_split_head, cfg, embeddings, split, out_dir / head, head),
            )
            table = clip_predictions(split.test, predict_clips(head_run.head, embeddings, split.test))
            rows.append(_evaluate(config, head, table, out_dir, self.label(head), head_run.history))
        return rows

    def values(self, name: str, level: str, metric: str) -> np.ndarray:
        """One metric of one row over the repetitions (in repetition order)."""
        found = [
            getattr(r, level)[metric]
            for rep in sorted(self.results)
            for r in self.results[rep]
            if r.name == name
        ]
        return np.asarray(found, dtype=float)

    def report(self) -> dict[str, Any]:
        """The ``frame_model`` section of report.json."""
        names = [ALONE, *self.heads]
        return {
            "model_dir": str(self.path),
            "member": self.member,
            "members": len(self.config.members),
            "family": self.config.card.get("family"),
            "arch": self.arch,
            "input": f"{self.config.recipe.crop.rule} to {self.config.recipe.crop.size} px",
            "crops": self.extractor.record["differences"],
            "alone_rule": ALONE_RULE,
            "head_rule": HEAD_RULE,
            "repetitions": len(self.results),
            "rows": [
                {
                    "name": name,
                    "label": self.label(name),
                    "evidence": None if name == ALONE else temporal_evidence(name),
                    "clip": {m: stats(self.values(name, "clip", m)) for m in METRICS},
                    "video": {m: stats(self.values(name, "video", m)) for m in METRICS},
                }
                for name in names
            ],
            "differences": [self._difference(head, ALONE) for head in self.heads] + self._temporal(),
        }

    def _difference(self, first: str, second: str) -> dict[str, Any]:
        """Paired clip ROC AUC difference ``first - second`` over the repetitions."""
        diff = self.values(first, "clip", "roc_auc") - self.values(second, "clip", "roc_auc")
        finite = diff[np.isfinite(diff)]
        return {
            "first": first,
            "second": second,
            "label": f"{first} minus {second}",
            "auc_difference": stats(diff),
            "higher_in": int((finite > 0).sum()),
            "repetitions": int(finite.size),
        }

    def _temporal(self) -> list[dict[str, Any]]:
        """The order-seeing heads minus the frame-only heads on the same features (the temporal evidence)."""
        order = [h for h in self.heads if temporal_evidence(h) == "order"]
        none = [h for h in self.heads if temporal_evidence(h) == "none"]
        return [self._difference(a, b) for a in order for b in none]


def _evaluate(
    config: Config,
    name: str,
    table: pd.DataFrame,
    out_dir: Path,
    title: str,
    history: pd.DataFrame | None = None,
) -> FrameRowResult:
    ev = config.evaluation
    evaluation = evaluate_predictions(
        table,
        out_dir / name / "evaluation",
        eps=ev.eps,
        threshold=ev.threshold,
        aggregation=ev.aggregation,
        title=title,
        plots=False,
    )
    return FrameRowResult(
        name,
        dict(evaluation.clip),
        dict(evaluation.video),
        table,
        history if history is not None else pd.DataFrame(),
    )


def load_frame_model_rows(config: Config, cache_dir: Path, run: Runner[Any]) -> FrameModelRows | None:
    """Load ``experiment.frame_model``'s member as a clock stage (None when it is not set)."""
    path = config.experiment.frame_model
    if path is None:
        return None
    return run("frame_model:load", f"load the frame model {path}", partial(_load, config, cache_dir, path))


def _load(config: Config, cache_dir: Path, path: Path) -> FrameModelRows:
    """The member, its classifier and digest; the heads' names are checked before anything is trained."""
    exp = config.experiment
    if model_dir_kind(path) != "frame":
        raise ModelDirError(
            f"experiment.frame_model: {path} is a model this tool trained, not an imported frame model "
            "(deepfake-detect import-model writes one)"
        )
    heads = frame_model_heads(config)
    for head in heads:
        SEQUENCE_HEADS.get(head)  # an unknown name fails here, with the known ones
    model_config = read_frame_model_config(path)
    scorer = load_frame_scorer(path, exp.frame_model_member)
    logger.info(
        "frame model %s member %d (%s): %d-d pooled features; %s",
        path,
        exp.frame_model_member,
        model_config.network.arch,
        scorer.extractor.embed_dim,
        scorer.extractor.record["differences"],
    )
    return FrameModelRows(path, exp.frame_model_member, model_config, scorer, heads, cache_dir)
