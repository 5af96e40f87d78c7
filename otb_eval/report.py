"""Score result folders and write the report: performance.json, tables and plots.

``performance.json`` follows got10k's schema (``{tracker: {overall: {...}, seq_wise: {seq:
{...}}}}``) with extra keys: ``normalized_precision_score``, ``fps`` (frames / total time, the
honest speed; ``speed_fps`` is got10k's mean of per-frame 1/t), ``frames``, and per-attribute
summaries under ``attributes``.
"""
from __future__ import annotations

import csv
import io
import json
import os
from typing import Any, Mapping, Sequence as SequenceType

import numpy as np

from foundation.errors import UserError
from foundation.fileio import atomic_write_text

from .datasets import OTBDataset, attribute_names
from .experiment import results_folder, run_plan
from .metrics import POLICIES, Scores, frame_errors, mean_scores, pooled_scores, score_sequence, speed_fps
from .results import find_tracker_results, read_boxes, result_path, time_path, tracker_folders


def _scores_dict(scores: Scores) -> dict:
    return {
        "success_curve": scores.success_curve.tolist(),
        "precision_curve": scores.precision_curve.tolist(),
        "success_score": scores.success_score,
        "precision_score": scores.precision_score,
        "success_rate": scores.success_rate,
        "normalized_precision_curve": scores.norm_precision_curve.tolist(),
        "normalized_precision_score": scores.norm_precision_score,
    }


def _run_scores(dataset: OTBDataset, results_dir: str, tracker: str, policy: str,
                protocol: str):
    """Per sequence: (scores, times or None). OPE reads any toolkit's layout; TRE and SRE read
    ours and pool each sequence's runs (successes summed over frames of all its runs)."""
    if protocol == "ope":
        found = find_tracker_results(results_dir, tracker, dataset.seq_names)
        missing = [s for s in dataset.seq_names if s not in found.files]
        if missing:
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            raise UserError(f"tracker {tracker}: no results for {len(missing)} of {len(dataset)} "
                            f"sequences in {found.folder} ({shown})")
        for seq in dataset:
            yield seq, score_sequence(found.boxes(seq), seq.anno, policy), found.times(seq)
        return
    folder = results_folder(tracker, protocol)
    for seq in dataset:
        errors, times = [], []
        for key, start in run_plan(protocol, seq):
            path = result_path(results_dir, folder, key)
            if not os.path.isfile(path):
                raise UserError(f"tracker {tracker}: no {protocol.upper()} result {path}; "
                                f"run `metatrack eval --protocol {protocol}` first")
            boxes = read_boxes(path)
            if len(boxes) != len(seq) - start:
                raise UserError(f"{path}: {len(boxes)} boxes for a run of {len(seq) - start} frames")
            errors.append(frame_errors(boxes, seq.anno[start:], policy))
            tpath = time_path(results_dir, folder, key)
            if os.path.isfile(tpath):
                times.append(np.loadtxt(tpath, ndmin=1))
        yield seq, pooled_scores(errors), (np.concatenate(times) if times else None)


def evaluate_tracker(dataset: OTBDataset, results_dir: str, tracker: str,
                     policy: str = "got10k", protocol: str = "ope") -> dict:
    """One tracker's entry of performance.json for one protocol."""
    if policy not in POLICIES:
        raise UserError(f"unknown policy {policy!r}; choose one of {', '.join(POLICIES)}")
    per_seq: dict[str, Scores] = {}
    seq_wise: dict[str, dict] = {}
    speeds, total_frames, total_time = [], 0, 0.0
    for seq, scores, times in _run_scores(dataset, results_dir, tracker, policy, protocol):
        per_seq[seq.name] = scores
        entry = _scores_dict(scores)
        mean_inv, fps = speed_fps(times) if times is not None else (-1.0, -1.0)
        if times is not None and np.sum(times) > 0:
            total_frames += len(times)
            total_time += float(np.sum(times))
        speeds.append(mean_inv if mean_inv > 0 else 0.0)
        entry.update({"speed_fps": mean_inv, "fps": fps, "frames": len(seq)})
        seq_wise[seq.name] = entry
    overall = _scores_dict(mean_scores(list(per_seq.values())))
    speeds_arr = np.asarray(speeds)
    overall.update({
        # got10k: the mean over sequences of each sequence's mean 1/t
        "speed_fps": float(speeds_arr.sum() / np.count_nonzero(speeds_arr)) if np.any(speeds_arr) else -1.0,
        "fps": total_frames / total_time if total_time > 0 else -1.0,
        "frames": int(sum(len(s) for s in dataset)),
        "sequences": len(dataset),
    })
    attributes = {}
    for attr, names in dataset.attributes().items():
        attributes[attr] = _scores_dict(mean_scores([per_seq[n] for n in names]))
        attributes[attr]["sequences"] = len(names)
    return {"overall": overall, "seq_wise": seq_wise, "attributes": attributes}


def evaluate(dataset: OTBDataset, results_dir: str, trackers: SequenceType[str] | None = None,
             policy: str = "got10k", protocol: str = "ope") -> dict:
    """performance.json's content for ``trackers`` (default: every folder in ``results_dir``)."""
    names = list(trackers) if trackers else tracker_folders(results_dir)
    if not names:
        raise UserError(f"no tracker folders in {results_dir}")
    return {name: evaluate_tracker(dataset, results_dir, name, policy, protocol) for name in names}


def available_protocols(results_dir: str, trackers: SequenceType[str]) -> list[str]:
    """OPE, plus TRE and SRE when every tracker has a folder of their results."""
    extra = [p for p in ("tre", "sre")
             if trackers and all(os.path.isdir(os.path.join(results_dir, t, p)) for t in trackers)]
    return ["ope"] + extra


def ranking(performance: dict, key: str = "success_score", attribute: str | None = None) -> list[str]:
    """Tracker names sorted by a score, best first (ties keep the given order)."""
    def score(name: str) -> float:
        block = performance[name]["overall"] if attribute is None else performance[name]["attributes"][attribute]
        return block[key]
    return sorted(performance, key=lambda n: -score(n))


def markdown_table(performance: dict, policy: str = "got10k", protocol: str = "ope") -> str:
    """A table of the overall scores, best AUC first."""
    lines = [f"{protocol.upper()} on {next(iter(performance.values()))['overall']['sequences']} sequences:", "",
             "| tracker | AUC | precision@20px | success@0.5 | norm. precision@0.2 | fps (frames/s) | fps (got10k mean 1/t) |",
             "|---|---|---|---|---|---|---|"]
    for name in ranking(performance):
        o = performance[name]["overall"]
        lines.append(f"| {name} | {o['success_score']:.3f} | {o['precision_score']:.3f} | "
                     f"{o['success_rate']:.3f} | {o['normalized_precision_score']:.3f} | "
                     f"{_fmt_fps(o['fps'])} | {_fmt_fps(o['speed_fps'])} |")
    attrs = _attribute_union(performance)
    if attrs:
        full = attribute_names()
        lines += ["", "AUC per attribute (sequences in brackets):", "",
                  "| tracker | " + " | ".join(f"{a} ({_attr_count(performance, a)})" for a in attrs) + " |",
                  "|---|" + "---|" * len(attrs)]
        for name in ranking(performance):
            cells = [f"{performance[name]['attributes'][a]['success_score']:.3f}"
                     if a in performance[name]["attributes"] else "" for a in attrs]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines += ["", ", ".join(f"{a}: {full.get(a, a)}" for a in attrs)]
    lines += ["", f"Invalid-ground-truth policy: `{policy}`."]
    return "\n".join(lines) + "\n"


def _fmt_fps(value: float) -> str:
    return f"{value:.1f}" if value and value > 0 else "n/a"


def _attribute_union(performance: dict) -> list[str]:
    seen: list[str] = []
    for entry in performance.values():
        for attr in entry.get("attributes", {}):
            if attr not in seen:
                seen.append(attr)
    return seen


def _attr_count(performance: dict, attr: str) -> int:
    for entry in performance.values():
        if attr in entry.get("attributes", {}):
            return entry["attributes"][attr]["sequences"]
    return 0


def csv_table(performance: dict) -> str:
    """One row per tracker and sequence (and an ``OVERALL`` row), for spreadsheets."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["tracker", "sequence", "auc", "precision_20px", "success_rate_0.5",
                     "norm_precision_0.2", "fps", "speed_fps_got10k"])
    for name in ranking(performance):
        entry = performance[name]
        rows = [("OVERALL", entry["overall"])] + list(entry["seq_wise"].items())
        for seq, s in rows:
            writer.writerow([name, seq, f"{s['success_score']:.6f}", f"{s['precision_score']:.6f}",
                             f"{s['success_rate']:.6f}", f"{s['normalized_precision_score']:.6f}",
                             f"{s['fps']:.3f}", f"{s['speed_fps']:.3f}"])
    return out.getvalue()


def write_report(performance: dict, out_dir: str, policy: str = "got10k",
                 protocol: str = "ope", plots: bool = True,
                 colors: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Write performance.json, table.md, table.csv and the plots of one protocol into
    ``out_dir``; TRE and SRE files carry a ``_tre`` / ``_sre`` suffix beside OPE's. ``colors``
    maps tracker names to matplotlib colours (the rest take matplotlib's cycle)."""
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot create report folder {out_dir}: {err.strerror}") from None
    suffix = "" if protocol == "ope" else f"_{protocol}"
    paths = {
        f"performance{suffix}": os.path.join(out_dir, f"performance{suffix}.json"),
        f"markdown{suffix}": os.path.join(out_dir, f"table{suffix}.md"),
        f"csv{suffix}": os.path.join(out_dir, f"table{suffix}.csv"),
    }
    atomic_write_text(paths[f"performance{suffix}"], json.dumps(performance, indent=2))
    atomic_write_text(paths[f"markdown{suffix}"], markdown_table(performance, policy, protocol))
    atomic_write_text(paths[f"csv{suffix}"], csv_table(performance))
    if plots:
        from .plots import plot_attribute_curves, plot_curves

        colors = dict(colors or {})
        title = protocol.upper()
        paths.update(plot_curves(performance, out_dir, title=title, suffix=suffix, colors=colors))
        if protocol == "ope":
            paths.update(plot_attribute_curves(performance, os.path.join(out_dir, "attributes"),
                                               title=title, colors=colors))
    return paths
