"""What every importer shares: the registry, reading a published container, variant inference, the card."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from deepfake_detect.models.frame import create_frame_network, shape_signature
from deepfake_detect.models.frame_dir import FrameMember, FrameModelConfig, FrameRecipe, NetworkSpec
from deepfake_detect.models.safe_load import CheckpointError, safe_torch_load, sha256_file
from deepfake_detect.registry import Registry

__all__ = [
    "IMPORTERS",
    "CheckpointError",
    "FamilyImporter",
    "Imported",
    "build_config",
    "ensemble_variant",
    "infer_variant",
    "read_container",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Imported:
    """An importer's result: the network spec, the members' state dicts (sources in order), recipe, card."""

    network: NetworkSpec
    states: list[dict[str, torch.Tensor]]
    sources: list[Path]
    recipe: FrameRecipe
    card: dict[str, Any]


@dataclass(frozen=True)
class FamilyImporter:
    """A published family: ``run(checkpoints, recipe_file)`` reads and checks them."""

    name: str
    summary: str
    licence: str
    run: Callable[[list[Path], Path | None], Imported]
    suits: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


# Every module of this package is imported on the first lookup, so a family's module registers itself.
IMPORTERS: Registry[FamilyImporter] = Registry("model family", package="deepfake_detect.models.importers")


def read_container(
    path: Path, key: str | None, prefix: str, *, optional_prefix: bool = False, keep_prefix: bool = False
) -> dict[str, torch.Tensor]:
    """The state dict of a published checkpoint: ``obj[key]`` (or the object itself when it already is a
    state dict), every key starting with ``prefix`` (removed unless ``keep_prefix``; with
    ``optional_prefix`` a state dict without it is accepted as it is)."""
    obj = safe_torch_load(path)
    if key is not None and isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
        obj = obj[key]
    elif key is not None and not (isinstance(obj, Mapping) and all(torch.is_tensor(v) for v in obj.values())):
        found = ", ".join(map(str, list(obj)[:6])) if isinstance(obj, Mapping) else type(obj).__name__
        raise CheckpointError(f"{path} has no {key!r} entry holding the weights (it has: {found})")
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(f"{path} does not hold a state dict (a mapping of names to tensors)")
    not_tensors = [str(k) for k, v in obj.items() if not torch.is_tensor(v)]
    if not_tensors:
        raise CheckpointError(f"{path}: these entries are not tensors: {_few(not_tensors)}")
    state = {str(k): v for k, v in obj.items()}
    outside = [k for k in state if not k.startswith(prefix)]
    if optional_prefix and len(outside) == len(state):
        return state
    if outside:
        raise CheckpointError(
            f"{path}: expected every key to start with {prefix!r}; these do not: {_few(outside)}"
        )
    return state if keep_prefix else {k[len(prefix) :]: v for k, v in state.items()}


def _few(keys: list[str], n: int = 6) -> str:
    return ", ".join(keys[:n]) + (f" ... ({len(keys)} in all)" if len(keys) > n else "")


def _mismatch(state: dict[str, tuple[int, ...]], want: dict[str, tuple[int, ...]]) -> list[str]:
    missing = [k for k in want if k not in state]
    unexpected = [k for k in state if k not in want]
    shapes = [f"{k} {state[k]} (expected {want[k]})" for k in want if k in state and state[k] != want[k]]
    problems = []
    if missing:
        problems.append(f"missing keys: {_few(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_few(unexpected)}")
    if shapes:
        problems.append(f"wrong shapes: {_few(shapes)}")
    return problems


def infer_variant(
    state: Mapping[str, torch.Tensor], builder: str, candidates: list[str], num_outputs: int, *, source: Path
) -> str:
    """The one candidate architecture whose state dict has exactly these keys and shapes.

    Candidates are built on the meta device (no memory, no weights). When none fits, the error names the
    closest candidate's missing and unexpected keys and wrong shapes.
    """
    have = shape_signature(state)
    best: tuple[int, str, list[str]] | None = None
    for arch in candidates:
        want = shape_signature(create_frame_network(builder, arch, num_outputs, meta=True).state_dict())
        problems = _mismatch(have, want)
        if not problems:
            logger.info("%s: architecture %s (from tensor shapes)", source, arch)
            return arch
        score = sum(1 for k, s in want.items() if have.get(k) == s) - abs(len(want) - len(have))
        if best is None or score > best[0]:
            best = (score, arch, problems)
    assert best is not None
    raise CheckpointError(
        f"{source} fits none of {', '.join(candidates)}; closest is {best[1]}: " + "; ".join(best[2])
    )


def ensemble_variant(
    states: list[dict[str, torch.Tensor]],
    sources: list[Path],
    builder: str,
    candidates: list[str],
    outputs: int,
) -> str:
    """:func:`infer_variant` of every member; all members of one ensemble must share it."""
    archs = [
        infer_variant(s, builder, candidates, outputs, source=p) for s, p in zip(states, sources, strict=True)
    ]
    if len(set(archs)) > 1:
        listing = ", ".join(f"{p.name}: {a}" for p, a in zip(sources, archs, strict=True))
        raise CheckpointError(f"the members of one ensemble must share an architecture ({listing})")
    return archs[0]


def build_config(
    imported: Imported, *, family: str
) -> tuple[FrameModelConfig, list[dict[str, torch.Tensor]]]:
    """The format-2 config (members with sha256, card with the files) for an importer's result."""
    members = []
    files = []
    for i, source in enumerate(imported.sources):
        digest = sha256_file(source)
        members.append(FrameMember(file=f"member-{i}.safetensors", source=source.name, sha256=digest))
        files.append({"name": source.name, "sha256": digest, "bytes": source.stat().st_size})
    card = {"family": family, "architecture": imported.network.arch, "files": files, **imported.card}
    card.setdefault("warnings", [])
    config = FrameModelConfig(network=imported.network, members=members, recipe=imported.recipe, card=card)
    return config, imported.states
