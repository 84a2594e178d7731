"""The report of a study: ``report.json``, ``report.md`` and ``curves.png`` in the study dir.

Everything here reads what the runs wrote and nothing else, so a report can be made on any machine that
sees the work dirs, while runs are still going (unfinished runs are listed, not counted):

* a run's number is the top-1 of its own ``scores_test.npz`` (the weights its ``result.json`` says were
  selected: the best validation epoch with ``--val-fraction``, else the last epoch); its curve is the
  per-epoch ``test_acc`` of its ``metrics.jsonl`` (reported every epoch, never used to choose);
* per arm: ``n``, mean, sample standard deviation;
* the paired difference csre - baseline over the seeds finished in both arms, with the Student-t and the
  bootstrap 95 % intervals (:mod:`csre_models.statistics`);
* with several streams, each stream is a metric of its own, and the ensemble of a seed's streams, with
  weights tuned on the validation scores (:func:`csre_models.ensemble.tune_weights`), is one more.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

from skeldata.output import replacing

from .workdir import read_result
from .ensemble import ScoresError, fuse, load_scores
from .statistics import (BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, bootstrap_interval, paired_t_interval,
                         summarize)
from .study import StudyRun

__all__ = ["collect_run", "summarize_metric", "ensemble_entries", "build_report", "render_markdown",
           "plot_curves", "write_report", "ENSEMBLE"]

#: The name of the fused metric of a multi-stream study.
ENSEMBLE = "ensemble"


def _metrics(work_dir: Path) -> List[Dict[str, Any]]:
    path = Path(work_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def collect_run(run: StudyRun, study_dir: Path) -> Dict[str, Any]:
    """One run's entry of ``report.json``: its identity, whether it finished, the selected epoch and how,
    its test top-1 (from ``scores_test.npz``) and its per-epoch curves."""
    metrics = [line for line in _metrics(run.work_dir) if line.get("complete", True)]
    result = read_result(run.work_dir)
    entry: Dict[str, Any] = {
        "arm": run.arm, "seed": run.seed, "stream": run.stream,
        "work_dir": os.path.relpath(run.work_dir, study_dir), "complete": result is not None,
        "epochs_done": len(metrics),
        "selection": None, "selected_epoch": None, "test_top1": None, "test_top5": None, "val_top1": None,
        "curve": [line["test_acc"] for line in metrics],
        "val_curve": [line.get("val_acc") for line in metrics] if any("val_acc" in m for m in metrics) else None,
    }
    entry["environment"] = _environment(run.work_dir)
    if result is None:
        return entry
    scores_path = run.work_dir / "scores_test.npz"
    try:
        scores = load_scores(scores_path)
    except ScoresError:
        entry["complete"] = False
        entry["problem"] = f"{scores_path} is missing or unreadable"
        return entry
    entry.update(selection=result["selection"], selected_epoch=result["selected_epoch"],
                 test_top1=scores.accuracy(1), test_top5=scores.accuracy(5), val_top1=result.get("val_top1"))
    return entry


def _environment(work_dir: Path) -> Optional[Dict[str, Any]]:
    """What the run's ``env.json`` says about the code and the machine (of its first start)."""
    path = Path(work_dir) / "env.json"
    try:
        env = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    git = env.get("git") or {}
    commit = (git.get("commit") or "")[:10] + ("+changes" if git.get("dirty") else "") if git else "unknown"
    return {"commit": commit, "torch": env.get("versions", {}).get("torch"), "device": env.get("device"),
            "device_name": env.get("device_name"), "threads": env.get("torch_threads"),
            "resumes": len(env.get("resumes", []))}


def environments(entries: Sequence[Mapping[str, Any]]) -> List[Dict[str, Any]]:
    """The distinct (commit, torch, device) the runs were made with, each with its runs: a study whose runs
    ran other code or on other hardware says so."""
    groups: Dict[tuple, List[str]] = {}
    for entry in entries:
        env = entry.get("environment")
        if env:
            key = (env["commit"], env["torch"], env["device"], env["device_name"], env["threads"])
            groups.setdefault(key, []).append(entry["work_dir"])
    return [{"commit": key[0], "torch": key[1], "device": key[2], "device_name": key[3], "threads": key[4],
             "runs": runs} for key, runs in groups.items()]


def summarize_metric(entries: Sequence[Mapping[str, Any]], key: str = "test_top1") -> Dict[str, Any]:
    """Per-arm summaries and the paired difference (csre - baseline) of ``key`` over finished entries."""
    arms: Dict[str, Dict[str, Any]] = {}
    by_arm: Dict[str, Dict[int, float]] = {}
    for entry in entries:
        if entry.get(key) is not None:
            by_arm.setdefault(entry["arm"], {})[entry["seed"]] = float(entry[key])
    for arm in sorted({entry["arm"] for entry in entries}, key=lambda a: (a != "csre", a)):
        values = by_arm.get(arm, {})
        seeds = sorted(values)
        arms[arm] = {**summarize([values[s] for s in seeds]), "seeds": seeds, "values": [values[s] for s in seeds]}
    paired = None
    if "csre" in arms and "baseline" in arms:
        seeds = sorted(set(by_arm.get("csre", {})) & set(by_arm.get("baseline", {})))
        differences = [by_arm["csre"][s] - by_arm["baseline"][s] for s in seeds]
        paired = {**summarize(differences), "seeds": seeds, "values": differences,
                  "ci95_t": paired_t_interval(differences), "ci95_bootstrap": bootstrap_interval(differences)}
    return {"arms": arms, "paired_difference": paired}


def ensemble_entries(runs: Sequence[StudyRun], study_dir: Path, streams: Sequence[str]) -> List[Dict[str, Any]]:
    """For every (arm, seed) whose streams all finished: the fused test top-1 with weights tuned on the
    streams' validation scores (``tuned_on: val``), or equal weights when the runs hold no validation
    scores (``tuned_on: fixed``)."""
    from .ensemble import tune_weights

    groups: Dict[tuple, Dict[str, StudyRun]] = {}
    for run in runs:
        groups.setdefault((run.arm, run.seed), {})[run.stream] = run
    entries = []
    for (arm, seed), members in groups.items():
        ordered = [members[stream] for stream in streams if stream in members]
        entry: Dict[str, Any] = {"arm": arm, "seed": seed, "stream": ENSEMBLE, "streams": list(streams),
                                 "complete": False, "test_top1": None, "weights": None, "tuned_on": None}
        if len(ordered) != len(streams) or any(read_result(run.work_dir) is None for run in ordered):
            entries.append(entry)
            continue
        test = [load_scores(run.work_dir / "scores_test.npz") for run in ordered]
        val_paths = [run.work_dir / "scores_val.npz" for run in ordered]
        if all(path.exists() for path in val_paths):
            weights, info = tune_weights([load_scores(path) for path in val_paths])
            entry.update(tuned_on="val", val_top1=info.get("val_top1"))
        else:
            weights = tuple(1.0 for _ in ordered)
            entry["tuned_on"] = "fixed"
        fused = fuse(test, weights)
        entry.update(complete=True, weights=[float(w) for w in weights], test_top1=fused.accuracy(1),
                     test_top5=fused.accuracy(5))
        entries.append(entry)
    return entries


def build_report(runs: Sequence[StudyRun], study_dir: Path, description: Mapping[str, Any]) -> Dict[str, Any]:
    """The whole ``report.json`` (schema in ``docs/study.md``)."""
    study_dir = Path(study_dir)
    entries = [collect_run(run, study_dir) for run in runs]
    streams = description.get("streams")
    selections = sorted({e["selection"] for e in entries if e["selection"]})
    report: Dict[str, Any] = {
        "metric": "test_top1",
        "selection": selections[0] if len(selections) == 1 else (selections or None),
        "study_dir": str(study_dir),
        "description": dict(description),
        "runs_finished": sum(e["complete"] for e in entries),
        "runs_planned": len(entries),
        "environments": environments(entries),
    }
    if streams and len(streams) > 1:
        fused = ensemble_entries(runs, study_dir, streams)
        report["metrics"] = {stream: summarize_metric([e for e in entries if e["stream"] == stream])
                             for stream in streams}
        report["metrics"][ENSEMBLE] = summarize_metric(fused)
        report.update(metric=f"{ENSEMBLE}_test_top1", **report["metrics"][ENSEMBLE])
        entries = entries + fused
    else:
        report.update(summarize_metric(entries))
    report["bootstrap"] = {"resamples": BOOTSTRAP_RESAMPLES, "seed": BOOTSTRAP_SEED, "method": "percentile"}
    report["runs"] = entries
    return report


# ================================================================================================ output

def _percent(value: Optional[float], digits: int = 2) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.{digits}f}"


def _interval(interval: Optional[Sequence[float]]) -> str:
    if interval is None:
        return "- (needs 2 paired seeds)"
    return f"[{100 * interval[0]:+.2f}, {100 * interval[1]:+.2f}]"


def _verdict(paired: Optional[Mapping[str, Any]]) -> str:
    if not paired or paired["n"] < 2 or paired["ci95_t"] is None:
        return "Too few paired seeds for an interval: finish at least two seeds in both arms."
    low, high = paired["ci95_t"]
    n = paired["n"]
    if low > 0:
        return (f"The 95 % t interval lies above zero: over these {n} seeds CSRE raised test top-1 by "
                f"{100 * paired['mean']:+.2f} points on average.")
    if high < 0:
        return (f"The 95 % t interval lies below zero: over these {n} seeds CSRE lowered test top-1 by "
                f"{100 * -paired['mean']:.2f} points on average.")
    return (f"The 95 % t interval includes zero: with {n} seeds this study cannot tell CSRE from the baseline "
            f"(mean difference {100 * paired['mean']:+.2f} points). More seeds narrow the interval.")


def _summary_table(summary: Mapping[str, Any]) -> List[str]:
    lines = ["| arm | n | mean top-1 % | sd (points) | values % |", "|---|---|---|---|---|"]
    for arm, stats in summary["arms"].items():
        lines.append(f"| {arm} | {stats['n']} | {_percent(stats['mean'])} | {_percent(stats['std'])} | "
                     f"{', '.join(_percent(v) for v in stats['values']) or '-'} |")
    paired = summary["paired_difference"]
    if paired is not None:
        mean = "-" if paired["mean"] is None else f"{100 * paired['mean']:+.2f}"
        lines += ["", f"Paired difference csre - baseline over seeds {paired['seeds']}: mean {mean}"
                      f" points, sd {_percent(paired['std'])}; 95 % interval (Student t, {max(paired['n'] - 1, 0)} "
                      f"df) {_interval(paired['ci95_t'])}; bootstrap {_interval(paired['ci95_bootstrap'])}.",
                  "", _verdict(paired)]
    return lines


def render_markdown(report: Mapping[str, Any], curves: Optional[str]) -> str:
    """``report.md``: what was run, the runs, the arms, the paired difference and what it means."""
    description = report["description"]
    selection = report["selection"]
    how = {"val": "the epoch of best validation accuracy (--val-fraction); test accuracy never chose anything",
           "last": "the last epoch (no --val-fraction, so nothing was selected)"}
    lines = ["# CSRE study report", "",
             f"Recipe: `{description.get('config')}` on `{description.get('store')}`"
             f" (store fingerprint {description.get('store_fingerprint', {}).get('digest', '?')}); "
             f"seeds {description.get('seeds')}, arms {description.get('arms')}"
             + (f", streams {description.get('streams')}" if description.get("streams") else "") + ".",
             "", "Command:", "", "```", description.get("command", ""), "```", "",
             f"Runs finished: {report['runs_finished']} of {report['runs_planned']}. Each run's number is the "
             f"test top-1 of its own `scores_test.npz`, at "
             f"{how.get(selection, f'per-run selections {selection}') if selection else 'no run finished yet'}.", ""]
    if "metrics" in report:
        for name, summary in report["metrics"].items():
            title = ("Ensemble of the streams (weights tuned on validation scores)" if name == ENSEMBLE
                     else f"Stream {name}")
            lines += [f"## {title}", "", *_summary_table(summary), ""]
    else:
        lines += ["## Arms", "", *_summary_table(report), ""]
    lines += ["With few seeds the bootstrap interval can only resample those seeds and is too narrow; the "
              "t interval is the one to read.", ""]
    if report.get("environments"):
        lines += ["Made with (from each run's env.json):", ""]
        for env in report["environments"]:
            lines.append(f"- code {env['commit']}, torch {env['torch']}, {env['device']} ({env['device_name']}), "
                         f"{env['threads']} thread(s): {', '.join(env['runs'])}")
        lines.append("")
    lines += ["## Runs", "",
              "| run | stream | finished | selected epoch | test top-1 % | val top-1 % | test top-1 % by epoch |",
              "|---|---|---|---|---|---|---|"]
    for entry in report["runs"]:
        curve = ", ".join(_percent(v, 1) for v in entry.get("curve", [])) if entry.get("curve") else "-"
        lines.append(f"| {entry['arm']}-seed{entry['seed']} | {entry['stream'] or '-'} | "
                     f"{'yes' if entry['complete'] else 'no'} | {entry.get('selected_epoch') or '-'} | "
                     f"{_percent(entry.get('test_top1'))} | {_percent(entry.get('val_top1'))} | {curve} |")
    if curves:
        lines += ["", f"![test accuracy per epoch]({curves})"]
    else:
        lines += ["", "(No curves.png: matplotlib is not installed; `pip install '.[plot]'`.)"]
    return "\n".join(lines) + "\n"


def plot_curves(report: Mapping[str, Any], path: Path) -> bool:
    """``curves.png``: per stream, each arm's mean test top-1 per epoch with its min-max band over seeds.
    Returns ``False`` (and writes nothing) when matplotlib is not installed."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        return False
    runs = [entry for entry in report["runs"] if entry.get("curve")]
    streams = sorted({entry["stream"] for entry in runs}, key=lambda s: (s is None, str(s)))
    if not streams:
        streams = [None]
    figure, axes = plt.subplots(1, len(streams), figsize=(6 * len(streams), 4.2), squeeze=False)
    colours = {"csre": "tab:red", "baseline": "tab:blue"}
    for axis, stream in zip(axes[0], streams):
        for arm in ("csre", "baseline"):
            curves = [entry["curve"] for entry in runs if entry["arm"] == arm and entry["stream"] == stream]
            if not curves:
                continue
            length = max(len(c) for c in curves)
            table = np.full((len(curves), length), np.nan)
            for row, curve in enumerate(curves):
                table[row, :len(curve)] = curve
            epochs = np.arange(1, length + 1)
            with np.errstate(all="ignore"):
                mean = np.nanmean(table, axis=0) * 100
            axis.plot(epochs, mean, marker="o", color=colours[arm], label=f"{arm} (mean of {len(curves)} seeds)")
            axis.fill_between(epochs, np.nanmin(table, axis=0) * 100, np.nanmax(table, axis=0) * 100,
                              color=colours[arm], alpha=0.2, label=f"{arm} min-max")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_xlabel("epoch")
        axis.set_ylabel("test top-1 (%)")
        axis.set_title(f"stream {stream}" if stream else "test top-1 per epoch")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return True


def write_report(report: Mapping[str, Any], study_dir: Path) -> List[Path]:
    """Write ``report.json``, ``curves.png`` (when matplotlib is installed) and ``report.md``."""
    study_dir = Path(study_dir)
    written = [study_dir / "report.json"]
    _write_text(written[0], json.dumps(report, indent=2, allow_nan=False) + "\n")
    curves = "curves.png" if plot_curves(report, study_dir / "curves.png") else None
    if curves:
        written.append(study_dir / curves)
    written.append(study_dir / "report.md")
    _write_text(written[-1], render_markdown(report, curves))
    return written


def _write_text(path: Path, text: str) -> None:
    with replacing(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
