"""report.md from the report's JSON payload: tables 1-3, generated conclusions, figures, timings.

Only the payload is read, so the markdown says nothing that report.json does not hold.
"""

from __future__ import annotations

import math
from typing import Any

CHANCE_MARGIN = 0.1  # |AUC - 0.5| below this is "near chance"
CLEAR_WIN = 0.2  # an AUC difference at least this large is "clear"
STRONG_DISPERSION = 0.75  # a no-head dispersion AUC at least this large counts as "separates"
_METRICS = [
    ("accuracy", "Accuracy"),
    ("log_loss", "Log loss"),
    ("log_loss_calibrated", "Log loss, calibrated"),
    ("temperature", "Temperature (median)"),
    ("roc_auc", "ROC AUC"),
    ("average_precision", "AP"),
    ("eer", "EER"),
]


def fmt(value: Any, digits: int = 3) -> str:
    """A number for a table: ``n/a`` for None / NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{float(value):.{digits}f}"


def pm(stat: dict[str, Any]) -> str:
    """``mean ± std`` (just the mean when the std is not defined)."""
    std = stat.get("std")
    if std is None or (isinstance(std, float) and math.isnan(std)):
        return fmt(stat.get("mean"))
    return f"{fmt(stat.get('mean'))} ± {fmt(std)}"


def _table1(t1: dict[str, Any]) -> list[str]:
    n = len(t1["clip"]["accuracy"]["values"])
    lines = [f"Extractor `{t1['extractor']}` + head `{t1['head']}`, {n} random test split(s).", ""]
    for level in ("clip", "video"):
        header = "| " + level + " level | Mean | Std | " + " | ".join(f"rep {i}" for i in range(n)) + " |"
        lines += [header, "|" + "---|" * (n + 3)]
        for key, name in _METRICS:
            s = t1[level][key]
            values = " | ".join(fmt(v) for v in s["values"])
            mean = fmt(s["mean"])
            if key == "temperature":  # the mean of T is dominated by a fit at the cap: the median instead
                name, mean = _temperature_name(s), fmt(s.get("median", s["mean"]))
            lines.append(f"| {name} | {mean} | {fmt(s['std'])} | {values} |")
        lines.append("")
    return [*lines, _CALIBRATION_NOTE, ""]


_CALIBRATION_NOTE = (
    "Log loss, calibrated: the same test clips after temperature scaling, p = sigmoid(logit / T), with T "
    "fitted on each repetition's validation clips (never on test clips). Scaling keeps the ranking, so ROC "
    "AUC, AP and EER do not change, and keeps 0.5 where it was, so accuracy at 0.5 does not change either. "
    "Temperature: the median over repetitions (a fit that hits its bound, e^7 ~ 1097 when the validation "
    "scores rank backwards or carry no signal, would dominate the mean); fits at the bound are counted."
)


def _temperature_name(stat: dict[str, Any]) -> str:
    """Table 1's temperature row name: the Mean column holds the median; capped fits are counted."""
    capped = stat.get("capped", 0)
    name = "Temperature (Mean column: median)"
    return f"{name}; {capped} of {stat.get('n', 0)} fits at the bound e^±7" if capped else name


def _cell(stat: dict[str, Any], key: str) -> str:
    """A Table 2/3 cell: mean ± std, but the median (and the capped fits) for the temperature."""
    if key != "temperature":
        return pm(stat)
    capped = stat.get("capped", 0)
    return fmt(stat.get("median", stat.get("mean"))) + (f" ({capped} at the bound)" if capped else "")


def _metric_header(first: list[str], last: list[str] | None = None) -> list[str]:
    cols = [*first, *[name for _, name in _METRICS], *(last or [])]
    return ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]


def _table2(t2: dict[str, Any]) -> list[str]:
    lines = [
        f"Head `{t2['head']}`; clip level, mean ± std over the first {t2['repetitions']} repetition(s).",
        "",
    ]
    lines += _metric_header(["Extractor", "Trained with hinge loss", "Initialisation"], ["Dispersion AUC"])
    for row in t2["rows"]:
        cells = [_cell(row["clip"][key], key) for key, _ in _METRICS] + [pm(row["dispersion_auc"])]
        hinge = "yes" if row["hinge"] else "no"
        lines.append(f"| {row['backbone']} | {hinge} | {row['initialisation']} | " + " | ".join(cells) + " |")
    return [*lines, "", _DISPERSION_NOTE, ""]


_DISPERSION_NOTE = (
    "Dispersion AUC: ROC AUC of 1 - (mean cosine similarity between a test clip's frame embeddings), "
    "the statistic the hinge loss trains, computed without any head."
)


_SINGLE_FRAME_NOTE = (
    "Single-frame AUC: the same trained head scoring every test frame alone (a sequence of one frame); "
    "near 0.5 means no single frame gives the label away."
)


def _table3(t3: dict[str, Any], dispersion: dict[str, Any]) -> list[str]:
    lines = [f"Extractor `{t3['extractor']}`; mean ± std over {t3['repetitions']} repetition(s).", ""]
    lines += _metric_header(["Head", "level"], ["Single-frame AUC"])
    for row in t3["rows"]:
        for level in ("clip", "video"):
            cells = [_cell(row[level][key], key) for key, _ in _METRICS]
            frame = pm(row["single_frame"]["frame_auc"]) if level == "clip" else ""
            lines.append(f"| {row['head']} | {level} | " + " | ".join(cells) + f" | {frame} |")
    cells = [pm(dispersion) if key == "roc_auc" else "n/a" for key, _ in _METRICS]
    lines.append("| no head: dispersion | clip | " + " | ".join(cells) + " | n/a |")
    return [*lines, "", _DISPERSION_NOTE, _SINGLE_FRAME_NOTE, ""]


def standard_error(stat: dict[str, Any]) -> float:
    """std / sqrt(n) of a mean over repetitions (NaN when the std is not defined)."""
    std, n = stat.get("std"), stat.get("n", 0)
    if std is None or n < 2 or (isinstance(std, float) and math.isnan(std)):
        return math.nan
    return float(std) / math.sqrt(n)


def interval(stat: dict[str, Any]) -> tuple[float, float]:
    """The 95% interval of the mean (report.stats' ``ci95``), NaNs when it is not defined."""
    low, high = stat.get("ci95") or (math.nan, math.nan)
    return (math.nan if low is None else float(low), math.nan if high is None else float(high))


def _interval_text(stat: dict[str, Any]) -> str:
    low, high = interval(stat)
    return "" if math.isnan(low) else f", 95% interval [{fmt(low)}, {fmt(high)}]"


def _significance(stat: dict[str, Any], reference: float) -> str:
    """' (standard error s: more/less than two standard errors from <reference>)' or ''."""
    se = standard_error(stat)
    if math.isnan(se):
        return ""
    side = "more" if abs(stat["mean"] - reference) > 2 * se else "less"
    return f" (standard error {fmt(se)}: {side} than two standard errors from {reference:g})"


def _rows_by(payload: dict[str, Any], evidence: str) -> list[dict[str, Any]]:
    """Table 3 rows of the heads that see ``evidence`` (models.heads.SequenceHead.temporal_evidence)."""
    return [row for row in payload["table3"]["rows"] if row.get("evidence") == evidence]


def _independence(payload: dict[str, Any]) -> str:
    """How far the repetitions are independent, for the sentences about intervals."""
    if payload.get("settings", {}).get("independent_data"):
        return "each repetition generated its own videos, so the repetitions are independent"
    return (
        "the repetitions re-split one dataset, so they are not independent replications and the interval "
        "is optimistic"
    )


def _comparison_sentence(
    head: str, other: str, c: dict[str, Any], numbers: str, payload: dict[str, Any]
) -> str:
    """One head comparison, decided by the 95% interval of the mean AUC difference over the repetitions."""
    d = c["auc_difference"]
    low, high = interval(d)
    every = c["higher_in"] == c["repetitions"]
    if not math.isnan(low) and low > 0:
        how = "clearly beats" if d["mean"] >= CLEAR_WIN and every else "beats"
        return (
            f"`{head}` {how} `{other}` on clip ROC AUC (the 95% interval of the difference excludes 0; "
            f"{_independence(payload)}): {numbers}."
        )
    if not math.isnan(high) and high < 0:
        return f"`{other}` beats `{head}` on clip ROC AUC (the 95% interval excludes 0): {numbers}."
    why = (
        "the 95% interval of the difference includes 0"
        if not math.isnan(low)
        else "with one repetition there is no interval"
    )
    lead = "leads on average" if d["mean"] > 0 else "does not lead on average"
    return f"Undecided: `{head}` {lead} over `{other}` on clip ROC AUC, but {why}: {numbers}."


def conclusions(payload: dict[str, Any]) -> list[str]:
    """Sentences about the temporal heads, generated from Table 3's numbers."""
    comp = payload["comparison"]
    head = comp["head"]
    rows = {row["head"]: row["clip"]["roc_auc"] for row in payload["table3"]["rows"]}
    out = []
    for other, c in comp["against"].items():
        d = c["auc_difference"]
        mean = d["mean"]
        if mean is None or math.isnan(mean):
            out.append(f"`{head}` vs `{other}`: ROC AUC not defined (a test set held one class).")
            continue
        numbers = (
            f"{pm(rows[head])} vs {pm(rows[other])}, difference {pm(d)}{_interval_text(d)}, higher in "
            f"{c['higher_in']} of {c['repetitions']} repetition(s){_significance(d, 0.0)}"
        )
        out.append(_comparison_sentence(head, other, c, numbers, payload))
    for frame_row in _rows_by(payload, "none"):
        out += _frame_only_sentences(frame_row, payload.get("splits", []))
    return out + _dispersion_sentences(payload, rows) + cross_track_sentences(payload.get("cross_track"))


def near_chance(stat: dict[str, Any]) -> bool:
    """Not distinguishable from 0.5: within two standard errors of it; with one repetition (no standard
    error), within CHANCE_MARGIN of it."""
    mean, se = stat["mean"], standard_error(stat)
    if math.isnan(se):
        return abs(mean - 0.5) < CHANCE_MARGIN
    return abs(mean - 0.5) <= 2 * se


def _frame_only_sentences(row: dict[str, Any], splits: list[dict[str, Any]]) -> list[str]:
    """A head that sees each frame alone: chance on clips, or above chance and why, from the numbers."""
    clip_auc, single = row["clip"]["roc_auc"], row["single_frame"]["frame_auc"]
    name = row["head"]
    if clip_auc["mean"] is None or math.isnan(clip_auc["mean"]):
        return []
    start = f"`{name}` (no relation between frames) reaches clip ROC AUC {pm(clip_auc)}"
    start += _significance(clip_auc, 0.5)
    if single["mean"] is None or math.isnan(single["mean"]):
        verdict = "near chance" if near_chance(clip_auc) else "above chance"
        return [f"{start}: {verdict}; no single-frame AUC was measured, so single frames are not judged."]
    alone = f"{pm(single)} on frames scored alone{_significance(single, 0.5)}"
    if not near_chance(single):
        sources = [int(s.get("n_test_sources", 0)) for s in splits] or [0]
        return [
            f"{start}, and {alone}: single frames carry label information (each test set holds "
            f"{_frames([min(sources), max(sources)])} source videos, and the repetitions draw from the same "
            "ones, so the standard error is optimistic)."
        ]
    if near_chance(clip_auc):
        return [f"{start}, and {alone}: both near chance, so single frames do not give the label away."]
    real, fake = row["single_frame"]["spread_real"]["mean"], row["single_frame"]["spread_fake"]["mean"]
    why = (
        f" The clip means of the frame scores spread by {fmt(real)} (std) over real clips and {fmt(fake)} "
        "over fake ones: a fake clip's frame scores average out while a real clip's stay alike, so averaging "
        "over frames is itself an order-blind use of temporal evidence."
        if real is not None and fake is not None and real > fake
        else ""
    )
    return [
        f"{start}, but only {alone}: single frames are not distinguishable from chance; the clip-level "
        f"score comes from averaging frame scores over the clip.{why}"
    ]


def _dispersion_sentences(payload: dict[str, Any], rows: dict[str, dict[str, Any]]) -> list[str]:
    """What the no-head dispersion statistic says about the heads (generated from the numbers)."""
    comp = payload["comparison"]
    disp, head = comp["dispersion_auc"]["mean"], comp["head"]
    if disp is None or math.isnan(disp):
        return []
    extractor = payload["table3"]["extractor"]
    if disp < STRONG_DISPERSION:
        return [
            f"The frames of `{extractor}` are not clearly separated by their dispersion (no-head ROC AUC "
            f"{fmt(disp)} < {STRONG_DISPERSION}): the hinge training put little temporal evidence into the "
            "spread of the embeddings, so the heads must find it themselves."
        ]
    out = [
        f"The extractor `{extractor}` alone separates test clips by the dispersion of their frame embeddings "
        f"(no head, ROC AUC {fmt(disp)}). For unit-length embeddings the squared length of their temporal "
        "mean equals this mean cosine similarity, so an order-blind head over the mean could read it too"
    ]
    pooled = [r["head"] for r in _rows_by(payload, "pooled") if r["head"] in comp["against"]]
    gap = comp["against"][pooled[0]]["auc_difference"]["mean"] if pooled else None
    if gap is None or math.isnan(gap):
        out[0] += "."
    elif gap < CLEAR_WIN:
        out[0] += f"; this fits `{pooled[0]}` coming within {CLEAR_WIN} of `{head}` here."
    else:
        out[0] += f"; here it does not: `{pooled[0]}` trails `{head}` by {fmt(gap)}."
    best = max(
        (r["mean"] for r in rows.values() if r["mean"] is not None and not math.isnan(r["mean"])),
        default=math.nan,
    )
    if not math.isnan(best) and best < disp - 0.05:
        n_train = payload["splits"][0]["n_train"]
        out.append(
            f"Every head scores below this no-head statistic (best {fmt(best)}): trained on {n_train} clips, "
            "the heads leave part of that evidence unused."
        )
    return out


def _frames(bounds: list[int]) -> str:
    low, high = bounds
    return str(low) if low == high else f"{low}-{high}"


def _settings(s: dict[str, Any]) -> list[str]:
    return [
        f"- Data: {s['data']}; {s['clips']} labelled clips of {s['videos']} videos, "
        f"{_frames(s['frames_per_clip'])} frames per clip.",
        f"- Protocol: {s['repeats']} repetition(s), test {s['test_clips']} clips, validation "
        f"{s['val_clips']} clips, **split by {s['split_by']}**, seed {s['seed']}; "
        + (
            "each repetition splits its own generated dataset (independent replications)."
            if s.get("independent_data")
            else "each repetition re-splits the same clips (not independent replications)."
        ),
        f"- Main model: extractor `{s['main_extractor']}` + head `{s['main_head']}`; threshold "
        f"{s['threshold']}, log loss eps {s['eps']:g}, video level = `{s['aggregation']}` of clip "
        "probabilities.",
        f"- Std: {s['std']}.",
    ]


def _splits(splits: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| rep | train (fake) | val (fake) | test (fake) | test videos | test sources also in train/val |",
        "|---|---|---|---|---|---|",
    ]
    for i, s in enumerate(splits):
        lines.append(
            f"| {i} | {s['n_train']} ({s['n_train_fake']}) | {s['n_val']} ({s['n_val_fake']}) | "
            f"{s['n_test']} ({s['n_test_fake']}) | {s['n_test_videos']} | "
            f"{s['test_sources_in_train_or_val']} |"
        )
    return [*lines, ""]


def _environment(env: dict[str, Any]) -> list[str]:
    """The environment table: what must match for two reports to agree exactly."""
    cpu, rt = env["cpu"], env["torch"]
    flags = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in cpu["flags"].items())
    pinned = ", ".join(f"{k}={v}" for k, v in rt["env"].items() if v) or "none"
    rows = [
        ("code revision", env["code_revision"]),
        ("python", env["python"]),
        ("packages", ", ".join(f"{k} {v}" for k, v in env["packages"].items())),
        ("CPU", f"{cpu['model']} ({cpu['cores']} cores); {flags}"),
        ("float kernels in use", f"{rt['cpu_capability']}; oneDNN native bf16: {rt['mkldnn_bf16']}"),
        ("torch threads", f"{rt['threads']} intra-op, {rt['interop_threads']} inter-op; variables: {pinned}"),
        ("precision", ", ".join(f"{k} {v}" for k, v in env["precision"].items())),
        *((f"digest: {k}", v) for k, v in env["digests"].items()),
    ]
    return ["| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)]


def _robustness(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "Repetition 0's test videos, re-encoded and scored again by that repetition's extractor and head.",
        "",
        "| condition | videos | clips | clip ROC AUC |",
        "|---|---|---|---|",
    ]
    return lines + [
        f"| {r['condition']} | {r['videos']} | {r['clips']} | {fmt(r['roc_auc'])} |" for r in rows
    ]


def _auc_cell(cell: dict[str, Any]) -> str:
    low, high = cell.get("ci95") or (math.nan, math.nan)
    ci = "" if low is None or math.isnan(low) else f" [{fmt(low)}, {fmt(high)}]"
    return fmt(cell.get("roc_auc")) + ci


def chance_verdict(cell: dict[str, Any]) -> str:
    """Where an AUC's 95% interval lies relative to 0.5: above chance, below chance, or includes it."""
    low, high = cell.get("ci95") or (math.nan, math.nan)
    auc = cell.get("roc_auc")
    if auc is None or math.isnan(auc):
        return "not defined (the test clips hold one class)"
    if low is None or high is None or math.isnan(low):
        return "no interval (fewer than two source scenes), so not decided"
    if low > 0.5:
        return "above chance (the interval excludes 0.5)"
    if high < 0.5:
        return "below chance (the interval excludes 0.5; it ranks these fakes as real)"
    return "not distinguishable from chance (the interval includes 0.5)"


def cross_track_sentences(table: dict[str, Any] | None) -> list[str]:
    """One sentence per cross-track row (train track != test track), decided by each AUC's interval."""
    if not table:
        return []
    rows = table["rows"]
    out = []
    for row in rows:
        if row["train_track"] == row["test_track"]:
            continue
        track = row["train_track"]
        own = next((r for r in rows if r["train_track"] == track == r["test_track"]), None)
        main = table["main_head"]
        cells = "; ".join(
            f"`{h}` {_auc_cell(row['heads'][h])}: {chance_verdict(row['heads'][h])}"
            for h in table["heads"]
            if h != main
        )
        own_text = (
            f" On its own track the same `{main}` scored {_auc_cell(own['heads'][main])}." if own else ""
        )
        out.append(
            f"Trained on the {row['train_track']} track and tested on the {row['test_track']} one "
            f"({row['clips']} clips of {row['sources']} source scene{'' if row['sources'] == 1 else 's'}), "
            f"`{main}` scores clip ROC AUC "
            f"{_auc_cell(row['heads'][main])}: {chance_verdict(row['heads'][main])}."
            + (f" Other heads: {cells}." if cells else "")
            + own_text
        )
    return out


def _cross_track(table: dict[str, Any]) -> list[str]:
    heads = table["heads"]
    lines = [
        f"Repetition 0's model, trained on the {table['track']} track, scores all labelled clips of a fresh "
        f"{table['other_track']} set ({table['videos']} videos, generator seed {table['seed']}, otherwise "
        "the same settings)"
        + (
            f"; the reverse model is repetition 0's recipe trained once on that {table['other_track']} set "
            "(split like a repetition)."
            if table["reverse"]
            else "."
        )
        + " Cells: clip ROC AUC [95% bootstrap interval over source scenes]"
        + (f"; {table['seconds']:.0f} s in all." if "seconds" in table else "."),
        "",
        "| train -> test | test set | clips (videos) | " + " | ".join(f"`{h}`" for h in heads) + " |",
        "|---|---|---|" + "---|" * len(heads),
    ]
    for r in table["rows"]:
        cells = " | ".join(_auc_cell(r["heads"][h]) for h in heads)
        lines.append(
            f"| {r['train_track']} -> {r['test_track']} | {r['test_set']} | {r['clips']} ({r['videos']}) | "
            f"{cells} |"
        )
    return [*lines, "", *(f"- {s}" for s in cross_track_sentences(table))]


def _capped_card_text(temperature: float) -> str:
    where, bound = ("about 0.5", "e^7") if temperature > 1 else ("0 or 1", "e^-7")
    return (
        f", at the bound of the fit ({bound}): the held-out clips gave no usable scale, and the calibrated "
        f"probabilities are pushed to {where}."
    )


def _card(model: dict[str, Any]) -> list[str]:
    expected = (model.get("card") or {}).get("expected_auc")
    if not expected:
        return []
    return [
        "",
        f"Expected clip ROC AUC: {fmt(expected['clip_roc_auc'])}{_interval_text(expected)} (over "
        f"{expected['repetitions']} repetitions' test clips; the final model has no test set of its own). "
        f"Temperature {fmt(model.get('temperature'))}"
        + (_capped_card_text(float(model["temperature"])) if model.get("temperature_capped") else "."),
    ]


def render_markdown(payload: dict[str, Any], before_conclusions: list[str] | None = None) -> str:
    """The whole report.md; ``before_conclusions``: sections rendered (from the payload) elsewhere."""
    lines = ["# Deepfake detection experiment", "", "## Settings", "", *_settings(payload["settings"]), ""]
    lines += ["## Splits and leakage", "", *_splits(payload["splits"])]
    lines += [f"- {line}" for line in payload["leakage"]] + [""]
    lines += ["## Table 1: repeated random test splits", "", *_table1(payload["table1"])]
    lines += ["## Table 2: feature extractors", "", *_table2(payload["table2"])]
    lines += [
        "## Table 3: temporal vs order-blind heads",
        "",
        *_table3(payload["table3"], payload["comparison"]["dispersion_auc"]),
    ]
    lines += before_conclusions or []
    lines += ["## Conclusions (generated from the numbers above)", ""]
    lines += [f"- {s}" for s in payload.get("conclusions") or conclusions(payload)] + [""]
    lines += ["## Figures", ""] + [f"![{k}]({v})" for k, v in payload.get("figures", {}).items()] + [""]
    model = payload["model"]
    if model.get("dir"):
        lines += ["## Final model", "", f"`{model['dir']}`: {model['trained_on']}.", *_card(model), ""]
    if payload.get("robustness"):
        lines += ["## Robustness: re-encoded test videos", "", *_robustness(payload["robustness"]), ""]
    if payload.get("cross_track"):
        lines += ["## Robustness: across tracks", "", *_cross_track(payload["cross_track"]), ""]
    if payload.get("environment"):
        lines += ["## Environment", "", *_environment(payload["environment"]), ""]
    lines += ["## Wall time (s)", "", "| stage | seconds |", "|---|---|"]
    cpu = payload.get("cpu_s", {})
    lines[-2:] = ["| stage | seconds | CPU seconds |", "|---|---|---|"]
    lines += [f"| {k} | {v:.1f} | {fmt(cpu.get(k), 1)} |" for k, v in payload["timings_s"].items()] + [""]
    return "\n".join(lines)
