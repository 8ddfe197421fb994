"""A self-contained HTML report of detect results (``deepfake-detect detect --report DIR``).

``DIR/index.html`` (inline CSS, no JavaScript, nothing fetched from the network) plus PNG figures in
``DIR/assets/``: per video and face, thumbnails (inline JPEG data URIs), the P(fake) timeline, and the
cosine-similarity matrix of the face's frame embeddings as a heatmap: the paper's own evidence, since
the extractor is trained so that a real face stays self-similar over time and a fake one does not.
"""

from __future__ import annotations

import base64
import html
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deepfake_detect.inference.results import FaceResult, VideoResult

logger = logging.getLogger(__name__)

REPORT_FILE = "index.html"
ASSETS_DIR = "assets"

_CSS = """
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 24px auto; max-width: 1100px;
       color: #1d2330; background: #f6f7f9; }
h1 { font-size: 1.6em; margin-bottom: 4px; }
h2 { font-size: 1.2em; margin: 0 0 6px 0; word-break: break-all; }
.muted { color: #667085; font-size: 0.9em; }
table.summary { border-collapse: collapse; width: 100%; background: #fff; margin: 16px 0; }
table.summary th, table.summary td { border-bottom: 1px solid #e4e7ec; padding: 6px 10px; text-align: left; }
.video { background: #fff; border: 1px solid #e4e7ec; border-radius: 8px; padding: 16px; margin: 18px 0; }
.badge { display: inline-block; padding: 2px 8px; border-radius: 10px; font-size: 0.85em; font-weight: 600; }
.fake { background: #fde2e1; color: #b42318; } .real { background: #dcfae6; color: #067647; }
.noanswer { background: #fef0c7; color: #93370d; } .failed { background: #eaecf0; color: #344054; }
.face { border-top: 1px solid #e4e7ec; margin-top: 12px; padding-top: 12px; }
.thumbs img { width: 96px; height: 96px; border-radius: 4px; margin-right: 4px; }
.figures { display: flex; flex-wrap: wrap; gap: 12px; margin-top: 8px; }
.figures figure { margin: 0; }
.figures img { border: 1px solid #e4e7ec; border-radius: 4px; background: #fff; }
figcaption { font-size: 0.8em; color: #667085; max-width: 420px; }
.error { color: #b42318; } .warning { color: #93370d; }
"""

_SIMILARITY_CAPTION = (
    "Cosine similarity of this face's frame embeddings (rows and columns: frames in time order). The "
    "extractor is trained so that a real face stays self-similar over time (uniformly high) and a fake "
    "one does not (blocks and stripes of low similarity)."
)


def write_report(
    results: Sequence[VideoResult],
    out_dir: Path | str,
    model: dict[str, Any] | None = None,
    *,
    title: str = "deepfake-detect report",
) -> Path:
    """Write ``out_dir/index.html`` and its figures; returns the HTML file's path."""
    out_dir = Path(out_dir)
    assets = out_dir / ASSETS_DIR
    assets.mkdir(parents=True, exist_ok=True)
    sections = [_video_section(number, result, assets) for number, result in enumerate(results)]
    page = (
        f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{_e(title)}</title>"
        f"<style>{_CSS}</style></head><body>\n<h1>{_e(title)}</h1>\n{_model_line(model)}\n"
        f"{_summary_table(results)}\n{''.join(sections)}\n</body></html>\n"
    )
    target = out_dir / REPORT_FILE
    target.write_text(page, encoding="utf-8")
    logger.debug("report with %d video(s) written to %s", len(results), target)
    return target


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _badge(result: VideoResult) -> str:
    if result.ok and result.fake_probability is not None:
        kind = result.label or "real"
        return f"<span class='badge {kind}'>{kind} · P(fake) {result.fake_probability:.3f}</span>"
    css = "noanswer" if result.answered else "failed"
    return f"<span class='badge {css}'>{_e(result.status.value)}</span>"


def _model_line(model: dict[str, Any] | None) -> str:
    if not model:
        return ""
    parts = [
        f"{key}: {model[key]}"
        for key in (
            "path",
            "family",
            "architecture",
            "backbone",
            "head",
            "threshold",
            "aggregation",
            "engine",
        )
        if model.get(key) is not None
    ]
    warnings = "".join(f"<p class='warning model-warning'>{_e(w)}</p>" for w in model.get("warnings") or [])
    return f"<p class='muted'>Model — {_e(' · '.join(parts))}</p>{warnings}"


def _summary_table(results: Sequence[VideoResult]) -> str:
    rows = []
    for number, result in enumerate(results):
        rows.append(
            f"<tr><td><a href='#video-{number}'>{_e(Path(result.path).name)}</a></td>"
            f"<td>{_badge(result)}</td><td>{len(result.faces)}</td>"
            f"<td>{result.timings.get('total', 0.0):.1f} s</td></tr>"
        )
    head = "<tr><th>Video</th><th>Verdict</th><th>Faces</th><th>Time</th></tr>"
    return f"<table class='summary'>{head}{''.join(rows)}</table>"


def _video_section(number: int, result: VideoResult, assets: Path) -> str:
    info = result.info
    facts = []
    if info.get("width"):
        facts.append(f"{info['width']}x{info['height']}")
    if info.get("fps"):
        facts.append(f"{info['fps']:.2f} fps")
    if info.get("frames_used") is not None:
        facts.append(f"{info['frames_used']} frames examined (stride {info.get('stride', 1)})")
    facts += [f"{stage} {seconds:.2f} s" for stage, seconds in result.timings.items()]
    parts = [
        f"<section class='video' id='video-{number}'><h2>{_e(result.path)}</h2>{_badge(result)}",
        f"<p class='muted'>{_e(' · '.join(facts))}</p>",
    ]
    if result.error:
        parts.append(f"<p class='error'>{_e(result.error)}</p>")
    parts += [f"<p class='warning'>{_e(w)}</p>" for w in result.warnings]
    parts += [_face_block(number, face, result.threshold, assets) for face in result.faces]
    parts.append("</section>\n")
    return "".join(parts)


def _face_block(number: int, face: FaceResult, threshold: float | None, assets: Path) -> str:
    stem = f"v{number:03d}_face{face.track_id}"
    thumbs = "".join(
        f"<img alt='face {face.track_id}' src='data:image/jpeg;base64,{base64.b64encode(j).decode()}'>"
        for j in (face.thumbnails or ([face.thumbnail_jpeg] if face.thumbnail_jpeg else []))
    )
    figures = []
    if face.timeline:
        name = _timeline_png(face, threshold, assets / f"{stem}_timeline.png")
        figures.append(
            f"<figure><img class='timeline' alt='timeline' src='{ASSETS_DIR}/{name}'>"
            "<figcaption>P(fake) of short windows over time.</figcaption></figure>"
        )
    if face.similarity:
        name = _similarity_png(face, assets / f"{stem}_similarity.png")
        caption = f"{_similarity_stats(face.similarity)} {_SIMILARITY_CAPTION}"
        figures.append(
            f"<figure><img class='similarity' alt='similarity heatmap' src='{ASSETS_DIR}/{name}'>"
            f"<figcaption>{_e(caption)}</figcaption></figure>"
        )
    return (
        f"<div class='face'><strong>Face {face.track_id}</strong> — P(fake) {face.fake_probability:.3f}, "
        f"{face.n_frames} frames ({face.start_s:.2f}–{face.end_s:.2f} s), {face.n_windows} window(s)"
        f"<div class='thumbs'>{thumbs}</div><div class='figures'>{''.join(figures)}</div></div>"
    )


def _similarity_stats(similarity: list[list[float]]) -> str:
    sim = np.asarray(similarity, dtype=np.float64)  # (K, K)
    off = sim[~np.eye(len(sim), dtype=bool)]  # (K * (K - 1),) the diagonal is 1 by definition
    if off.size == 0:
        return "One frame only."
    return f"Between different frames: mean {off.mean():.3f}, min {off.min():.3f}."


def _timeline_png(face: FaceResult, threshold: float | None, target: Path) -> str:
    from matplotlib.figure import Figure  # Agg canvas, no pyplot state

    fig = Figure(figsize=(4.6, 2.8), dpi=100)
    ax = fig.add_subplot()
    starts = np.array([p.start_s for p in face.timeline])
    ends = np.array([p.end_s for p in face.timeline])
    probs = np.array([p.fake_probability for p in face.timeline])
    ax.hlines(probs, starts, ends, colors="#98a2b3", linewidth=1)
    ax.plot((starts + ends) / 2, probs, marker="o", markersize=3, color="#b42318", label="window P(fake)")
    ax.axhline(face.fake_probability, color="#344054", linestyle=":", label="face P(fake)")
    if threshold is not None:
        ax.axhline(threshold, color="#667085", linestyle="--", linewidth=0.8, label="threshold")
    ax.set(ylim=(-0.02, 1.02), xlabel="time (s)", ylabel="P(fake)", title=f"Face {face.track_id}: timeline")
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(target)
    return target.name


def _similarity_png(face: FaceResult, target: Path) -> str:
    from matplotlib.figure import Figure

    sim = np.asarray(face.similarity, dtype=np.float64)  # (K, K)
    frames = face.similarity_frames or list(range(len(sim)))
    fig = Figure(figsize=(4.0, 3.4), dpi=100)
    ax = fig.add_subplot()
    image = ax.imshow(sim, cmap="viridis", vmin=min(0.0, float(sim.min())), vmax=1.0, interpolation="nearest")
    ticks = np.unique(np.linspace(0, len(sim) - 1, num=min(len(sim), 5)).round().astype(int))
    ax.set_xticks(ticks, [str(frames[t]) for t in ticks], fontsize=7)
    ax.set_yticks(ticks, [str(frames[t]) for t in ticks], fontsize=7)
    ax.set(xlabel="frame", ylabel="frame", title=f"Face {face.track_id}: cosine similarity")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    fig.savefig(target)
    return target.name
