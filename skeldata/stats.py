"""Data-set statistics of a store: what ``skeldata stats`` prints, writes as JSON and plots.

:func:`compute_stats` is a pure function from an open :class:`~skeldata.store.Store` to a plain dict
of numbers (its keys are documented in ``docs/inspect.md`` and stay stable; ``schema_version`` changes
when they do). :func:`format_report` turns that dict into a one-screen text report and
:func:`plot_stats` into a figure (matplotlib, the optional ``plot`` extra).

Classes are named by their action code (``A001`` for NTU, ``a01`` for NW-UCLA), which the sample
names carry; the store holds no action titles.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Mapping, Sequence, Union

import numpy as np

from ._plotting import import_pyplot
from .actions import action_code
from .splits import PARTS
from .store import REPORT_COLUMNS, Store

SCHEMA_VERSION = 1

#: Percentiles of the frame-length distributions.
PERCENTILES = (5, 25, 75, 95)

#: Most histogram bins of a frame-length distribution; the bin width is a round number.
MAX_BINS = 30

#: Per-sample columns counted value by value, per data-set family.
RECORDING_COLUMNS = {"ntu": ("setup", "camera", "performer", "replication"),
                     "ucla": ("subject", "view", "take")}


# ------------------------------------------------------------------------------------------ numbers

def compute_stats(store: Store) -> Dict[str, object]:
    """Every statistic of ``store`` as a JSON-ready dict (keys in ``docs/inspect.md``)."""
    table = store.samples
    spec = store.dataset
    lengths = table["n_frames"].to_numpy(dtype=np.int64)
    labels = table["label"].to_numpy(dtype=np.int64)
    edges = histogram_edges(lengths)
    dropped = store.dropped
    return {
        "schema_version": SCHEMA_VERSION,
        "store": str(store.path),
        "dataset": spec.name,
        "layout": store.layout.name,
        "num_classes": spec.num_classes,
        "max_bodies": spec.max_bodies,
        "samples": int(len(table)),
        "frames": int(lengths.sum()),
        "frame_length": length_distribution(lengths, edges),
        "benchmarks": {bench: {part: _part_stats(store.split(bench, part), lengths, labels, edges,
                                                 spec.num_classes)
                               for part in PARTS}
                       for bench in store.benchmarks},
        "classes": [{"label": label, "action": action_code(spec.family, label), "samples": int(count)}
                    for label, count in enumerate(np.bincount(labels, minlength=spec.num_classes))],
        "bodies": _value_counts(table["n_bodies"].to_numpy()),
        "recording": {column: _value_counts(table[column].to_numpy())
                      for column in RECORDING_COLUMNS[spec.family]},
        "dropped": {"total": int(len(dropped)),
                    "by_reason": {str(reason): int(count)
                                  for reason, count in dropped["reason"].value_counts().sort_index().items()}},
        "denoising": ({column: int(table[column].sum()) for column in REPORT_COLUMNS}
                      if set(REPORT_COLUMNS) <= set(table.columns) else None),  # none in NW-UCLA, imported stores
    }


def histogram_edges(lengths: np.ndarray) -> np.ndarray:
    """Bin edges shared by every frame-length histogram of a store: a round width (1, 2, 5, 10, 20,
    ...), at most :data:`MAX_BINS` bins; bin ``k`` counts the lengths in ``[edges[k], edges[k + 1])``."""
    if not len(lengths):
        return np.array([0, 1], dtype=np.int64)
    lo, hi = int(lengths.min()), int(lengths.max())
    width = 1
    while (hi // width - lo // width + 1) > MAX_BINS:
        width = _next_round_width(width)
    first, last = lo // width * width, hi // width * width + width
    return np.arange(first, last + 1, width, dtype=np.int64)


def _next_round_width(width: int) -> int:
    """1, 2, 5, 10, 20, 50, 100, ..."""
    leading = int(str(width)[0])
    return width * 2 if leading in (1, 5) else width // 2 * 5


def length_distribution(lengths: np.ndarray, edges: np.ndarray) -> Dict[str, object]:
    """min, max, mean, median, percentiles and histogram of frame counts (``None`` values when empty)."""
    counts = np.histogram(lengths, bins=edges)[0] if len(lengths) else np.zeros(len(edges) - 1, np.int64)
    histogram = {"edges": [int(e) for e in edges], "counts": [int(c) for c in counts]}
    if not len(lengths):
        empty = {key: None for key in ("min", "max", "mean", "median")}
        return dict(empty, percentiles={str(p): None for p in PERCENTILES}, histogram=histogram)
    return {
        "min": int(lengths.min()),
        "max": int(lengths.max()),
        "mean": float(lengths.mean()),
        "median": float(np.median(lengths)),
        "percentiles": {str(p): float(v) for p, v in zip(PERCENTILES, np.percentile(lengths, PERCENTILES))},
        "histogram": histogram,
    }


def _part_stats(indices: np.ndarray, lengths: np.ndarray, labels: np.ndarray, edges: np.ndarray,
                num_classes: int) -> Dict[str, object]:
    part_lengths = lengths[indices]
    return {"samples": int(len(indices)),
            "frames": int(part_lengths.sum()),
            "frame_length": length_distribution(part_lengths, edges),
            "per_class": [int(c) for c in np.bincount(labels[indices], minlength=num_classes)]}


def _value_counts(values: np.ndarray) -> Dict[str, int]:
    """Samples per distinct value, keys the values as text, in ascending value order."""
    distinct, counts = np.unique(values, return_counts=True)
    return {str(int(v)): int(c) for v, c in zip(distinct, counts)}


# --------------------------------------------------------------------------------------------- text

_RECORDING_LABELS = {"setup": "setups", "camera": "cameras", "performer": "performers",
                     "replication": "replications", "subject": "subjects", "view": "views", "take": "takes"}

#: Values listed one by one when a column has at most this many; otherwise a summary.
_LIST_LIMIT = 10
_CLASSES_PER_ROW = 10


def format_report(stats: Mapping[str, object]) -> str:
    """The stats as an aligned text report of about one screen."""
    lines = [f"skeldata stats: {stats['store']}",
             f"  data set      {stats['dataset']} (layout {stats['layout']}, {stats['num_classes']} classes, "
             f"up to {_bodies(stats['max_bodies'])})",
             f"  samples       {stats['samples']:,}   ({stats['frames']:,} frames)",
             f"  frame length  {_distribution_line(stats['frame_length'])}",
             ""]
    lines += _benchmark_table(stats["benchmarks"])
    lines += [""] + _class_lines(stats["classes"])
    lines.append("")
    bodies = ", ".join(f"{_bodies(int(n))}: {count:,}" for n, count in stats["bodies"].items())
    lines.append(f"  bodies        {bodies}")
    for column, counts in stats["recording"].items():
        lines.append(f"  {_RECORDING_LABELS[column]:<13} {_counts_line(counts)}")
    dropped = stats["dropped"]
    reasons = ", ".join(f"{reason} {count:,}" for reason, count in dropped["by_reason"].items())
    lines.append(f"  dropped       {dropped['total']:,}" + (f"   ({reasons})" if reasons else ""))
    if stats["denoising"] is not None:
        d = stats["denoising"]
        lines.append(f"  denoising     frames: {d['frames_dropped']:,} without a body, "
                     f"{d['rows_removed']:,} zero-sum removed")
        lines.append(f"                bodies: {d['removed_by_length']:,} removed by length, "
                     f"{d['removed_by_spread']:,} by spread, {d['unassigned']:,} unassigned")
    return "\n".join(lines)


def _bodies(n: int) -> str:
    return f"{n} body" if n == 1 else f"{n} bodies"


def _number(value: float) -> str:
    """A statistic to one decimal, without a trailing ``.0``."""
    return f"{round(value, 1):g}"


def _distribution_line(dist: Mapping[str, object]) -> str:
    if dist["min"] is None:
        return "no samples"
    p = dist["percentiles"]
    return (f"min {dist['min']}  p5 {_number(p['5'])}  median {_number(dist['median'])}  "
            f"mean {_number(dist['mean'])}  p95 {_number(p['95'])}  max {dist['max']}")


def _benchmark_table(benchmarks: Mapping[str, Mapping[str, Mapping]]) -> List[str]:
    if not benchmarks:
        return ["  benchmarks    none"]
    lines = [f"  {'benchmark':<10}{'part':<7}{'samples':>9}{'frames':>11}{'min':>6}{'median':>8}"
             f"{'mean':>8}{'p95':>7}{'max':>6}"]
    for bench, parts in benchmarks.items():
        for i, (part, entry) in enumerate(parts.items()):
            dist = entry["frame_length"]
            numbers = ("" if dist["min"] is None else
                       f"{dist['min']:>6}{_number(dist['median']):>8}{_number(dist['mean']):>8}"
                       f"{_number(dist['percentiles']['95']):>7}{dist['max']:>6}")
            lines.append(f"  {bench if i == 0 else '':<10}{part:<7}{entry['samples']:>9,}{entry['frames']:>11,}"
                         + numbers)
    return lines


def _class_lines(classes: Sequence[Mapping[str, object]]) -> List[str]:
    counts = np.array([c["samples"] for c in classes])
    fewest, most = classes[int(counts.argmin())], classes[int(counts.argmax())]
    lines = [f"  per class     min {fewest['samples']:,} ({fewest['action']})  median {_number(np.median(counts))}  "
             f"max {most['samples']:,} ({most['action']})"]
    width = len(f"{counts.max():,}")
    for start in range(0, len(classes), _CLASSES_PER_ROW):
        row = classes[start:start + _CLASSES_PER_ROW]
        lines.append("    " + "  ".join(f"{c['action']} {c['samples']:>{width},}" for c in row))
    return lines


def _counts_line(counts: Mapping[str, int]) -> str:
    """``3: 1 500, 2 520, 3 464`` for a few values; a summary for many."""
    if len(counts) <= _LIST_LIMIT:
        return f"{len(counts):<4} " + "  ".join(f"{value}: {count:,}" for value, count in counts.items())
    values = list(counts)
    numbers = np.array(list(counts.values()))
    low, high = values[int(numbers.argmin())], values[int(numbers.argmax())]
    return (f"{len(counts):<4} ids {values[0]}..{values[-1]}; samples each: min {counts[low]:,} (id {low}), "
            f"median {_number(np.median(numbers))}, max {counts[high]:,} (id {high})")


# -------------------------------------------------------------------------------------------- plots

def plot_stats(stats: Mapping[str, object], out: Union[str, Path]) -> None:
    """Write a figure: one frame-length histogram per benchmark (its parts overlaid) above the
    samples per class (stacked by the parts of the first benchmark). Needs matplotlib."""
    plt = import_pyplot("--plot")
    benchmarks = stats["benchmarks"] or {"all samples": None}
    fig = plt.figure(figsize=(max(7.0, 3.6 * len(benchmarks)), 6.4), layout="constrained")
    grid = fig.add_gridspec(2, len(benchmarks), height_ratios=(1, 1))
    for column, (bench, parts) in enumerate(benchmarks.items()):
        _plot_lengths(fig.add_subplot(grid[0, column]), bench, parts, stats["frame_length"])
    _plot_classes(fig.add_subplot(grid[1, :]), stats)
    fig.suptitle(f"{stats['dataset']}: {stats['samples']:,} samples, {stats['frames']:,} frames", fontsize=11)
    fig.savefig(out, dpi=150)
    plt.close(fig)


_PART_COLOURS = {"train": "#1f77b4", "test": "#ff7f0e"}


def _plot_lengths(ax, bench: str, parts, overall: Mapping[str, object]) -> None:
    """Frame-length histogram of each part of a benchmark (or of all samples), as step outlines."""
    entries = parts.items() if parts else [("all", {"frame_length": overall, "samples": None})]
    for part, entry in entries:
        hist = entry["frame_length"]["histogram"]
        edges, counts = np.asarray(hist["edges"]), np.asarray(hist["counts"])
        colour = _PART_COLOURS.get(part, "#444444")
        label = part if entry["samples"] is None else f"{part} ({entry['samples']:,})"
        ax.stairs(counts, edges, color=colour, alpha=0.25, fill=True)
        ax.stairs(counts, edges, color=colour, linewidth=1.4, label=label)
        if entry["frame_length"]["median"] is not None:
            ax.axvline(entry["frame_length"]["median"], color=colour, linestyle="--", linewidth=0.9)
    ax.set_title(bench, fontsize=10)
    ax.set_xlabel("frames per sample")
    ax.set_ylabel("samples")
    ax.margins(x=0)
    ax.legend(frameon=False, fontsize=8, title="dashed: median", title_fontsize=7)
    _tidy(ax)


def _plot_classes(ax, stats: Mapping[str, object]) -> None:
    """Samples per class, stacked by the parts of the first benchmark when there is one."""
    labels = np.arange(stats["num_classes"])
    if stats["benchmarks"]:
        bench, parts = next(iter(stats["benchmarks"].items()))
        bottom = np.zeros(len(labels))
        for part, entry in parts.items():
            counts = np.asarray(entry["per_class"])
            ax.bar(labels, counts, bottom=bottom, width=0.8, color=_PART_COLOURS.get(part, "#444444"),
                   label=f"{bench} {part}")
            bottom += counts
        ax.legend(frameon=False, fontsize=8, ncol=2, loc="upper right")
        ax.set_ylim(0, max(bottom.max(), 1) * 1.15)
    else:
        ax.bar(labels, [c["samples"] for c in stats["classes"]], width=0.8, color="#444444")
    codes = [c["action"] for c in stats["classes"]]
    step = 1 if len(labels) <= 20 else 5 if len(labels) <= 60 else 10
    ax.set_xticks(labels[::step], codes[::step], fontsize=7)
    ax.set_xlim(-0.6, len(labels) - 0.4)
    ax.set_xlabel("class (action code)")
    ax.set_ylabel("samples")
    _tidy(ax)


def _tidy(ax) -> None:
    from matplotlib.ticker import MaxNLocator
    ax.yaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10]))
    ax.spines[["top", "right"]].set_visible(False)
    ax.tick_params(labelsize=8)
