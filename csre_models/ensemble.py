"""Score files, their weighted fusion (multi-stream ensembles) and honest ways to choose the weights.

A score file is an ``.npz`` with ``names`` (the store's sample names, in evaluation order), ``logits``
``(N, classes)`` float32 (raw classifier outputs, no softmax, as the reference ensembles add them) and
``labels`` ``(N,)``. ``csre-train`` writes one for the test part (``scores_test.npz``) and, with validation,
for the held-out samples (``scores_val.npz``); ``csre-eval`` for any part. Optional 0-d text arrays say what
the scores are: ``stream`` (joint, bone, ...), ``dataset`` (ntu60, ntu120, ucla) and ``part`` (test, val,
train); see :func:`metadata_arrays` and :func:`metadata`.

:func:`fuse` adds the logits of several files with given weights, ``sum_k w_k * logits_k``. The reference
``ensemble.py`` scripts search those weights on the test labels, which makes the reported accuracy
optimistic. Here the weights come from one of:

* :func:`tune_weights` on *validation* scores (an exhaustive, deterministic grid search that sees only the
  scores passed to it, so test labels cannot influence it);
* :data:`PRESETS`, weight sets published with CSRE, Hyperformer, PYSKL and 2s-AGCN;
* weights fixed by hand.

:func:`classification_report` and :func:`confusion_matrix` describe any scores (a stream or a fusion).
"""
from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from skeldata.actions import action_names, action_names_for_classes
from skeldata.output import replacing
from skeldata.pipeline.streams import TRAINING_STREAMS

from .errors import CSREModelsError

__all__ = ["Scores", "ScoresError", "save_scores", "load_scores", "fuse", "top_k_accuracy", "METADATA_KEYS",
           "metadata_arrays", "metadata", "with_metadata", "class_names_of", "confusion_matrix",
           "classification_report", "DEFAULT_GRID", "tune_weights", "STREAM_ORDER", "Preset", "PRESETS",
           "preset_weights", "check_tuning_parts", "average_clip_logits"]

PathLike = Union[str, Path]

#: The optional 0-d text arrays of a score file that say what its scores are.
METADATA_KEYS = ("stream", "dataset", "part")
#: The streams, in the order every published four-stream weight set lists them.
STREAM_ORDER = tuple(TRAINING_STREAMS)
#: Each weight's values in the default search: 0, 0.1, ..., 1.0.
DEFAULT_GRID = tuple(round(0.1 * k, 1) for k in range(11))
#: Bytes of fused logits :func:`tune_weights` forms at once: small enough to stay in the CPU cache, which
#: makes the search several times faster than large blocks, and a memory bound besides the inputs.
TUNING_CHUNK_BYTES = 256 << 10
#: Bytes of the class-against-class comparisons :func:`tune_weights` makes at once to find contenders.
CONTENDER_CHUNK_BYTES = 16 << 20


class ScoresError(CSREModelsError):
    """Score files that cannot be read or fused, with a one-line reason."""


@dataclass
class Scores:
    """Per-sample logits with the samples' names and labels; ``extra`` arrays are saved alongside."""

    names: np.ndarray
    logits: np.ndarray
    labels: np.ndarray
    extra: Dict[str, np.ndarray] = field(default_factory=dict)

    def accuracy(self, k: int = 1) -> float:
        return top_k_accuracy(self.logits, self.labels, k)


def top_k_accuracy(logits: np.ndarray, labels: np.ndarray, k: int = 1) -> float:
    """Fraction of rows whose label is among the ``k`` largest logits (NaN for no rows).

    Top-1 is the argmax (the first of equal largest logits), the prediction :func:`confusion_matrix` counts.
    """
    if len(labels) == 0:
        return float("nan")
    if k == 1:
        return float((np.argmax(logits, axis=1) == np.asarray(labels)).mean())
    k = min(k, logits.shape[1])
    top = np.argpartition(-logits, k - 1, axis=1)[:, :k]
    return float((top == np.asarray(labels)[:, None]).any(axis=1).mean())


def average_clip_logits(per_clip: Sequence[np.ndarray]) -> np.ndarray:
    """Multi-clip testing: the clips' logits ``(clips, N, classes)`` averaged as PYSKL does by default
    (``average_clips='prob'``: the mean of the clips' softmax probabilities), returned as the logarithm of
    those mean probabilities, float32.

    Their softmax is the averaged probabilities exactly and their ranking is PYSKL's, so top-k accuracies
    and reports are PYSKL's; a score file keeps one kind of number (log-probabilities are logits). Computed
    in float64 with the log-sum-exp shifts.
    """
    z = np.asarray(per_clip, dtype=np.float64)
    if z.ndim != 3 or len(z) == 0:
        raise ValueError(f"expected logits (clips, N, classes), got shape {z.shape}")
    log_probabilities = z - _log_sum_exp(z, axis=2)[..., None]
    return (_log_sum_exp(log_probabilities, axis=0) - math.log(len(z))).astype(np.float32)


def _log_sum_exp(values: np.ndarray, axis: int) -> np.ndarray:
    top = np.max(values, axis=axis, keepdims=True)
    return np.squeeze(top, axis=axis) + np.log(np.sum(np.exp(values - top), axis=axis))


# ------------------------------------------------------------------------------------------ metadata

def metadata_arrays(**values: Optional[str]) -> Dict[str, np.ndarray]:
    """The ``extra`` arrays that record ``stream``, ``dataset`` and ``part`` (0-d text; ``None`` left out)."""
    unknown = set(values) - set(METADATA_KEYS)
    if unknown:
        raise ValueError(f"unknown score metadata {sorted(unknown)}; known: {', '.join(METADATA_KEYS)}")
    return {key: np.asarray(str(value)) for key, value in values.items() if value is not None}


def metadata(scores: Scores, key: str) -> Optional[str]:
    """The recorded ``stream``, ``dataset`` or ``part`` of ``scores``, or ``None`` when not recorded."""
    value = scores.extra.get(key)
    return None if value is None or np.ndim(value) != 0 else str(value[()])


def with_metadata(scores: Scores, **values: Optional[str]) -> Scores:
    """``scores`` with ``stream``, ``dataset`` and ``part`` recorded (names, logits and labels unchanged)."""
    return dataclasses.replace(scores, extra={**scores.extra, **metadata_arrays(**values)})


def class_names_of(scores: Scores) -> Tuple[str, ...]:
    """Action names for the classes of ``scores``: its recorded data set's, else guessed from the class
    count (:func:`skeldata.actions.action_names_for_classes`)."""
    classes = scores.logits.shape[1]
    dataset = metadata(scores, "dataset")
    if dataset is not None:
        try:
            names = action_names(dataset)
        except KeyError:
            names = ()
        if len(names) == classes:
            return names
    return action_names_for_classes(classes)


# ------------------------------------------------------------------------------------------- files

def save_scores(path: PathLike, scores: Scores) -> None:
    """Write ``names``, ``logits`` (float32), ``labels`` (int64) and the extra arrays, atomically (a temporary
    file renamed over ``path``: an interrupted write leaves the previous file intact)."""
    with replacing(path) as temporary, open(temporary, "wb") as handle:
        # A handle: np.savez would add ".npz" to a bare name.
        np.savez(handle, names=np.asarray(scores.names, dtype=str), logits=np.asarray(scores.logits, dtype=np.float32),
                 labels=np.asarray(scores.labels, dtype=np.int64), **scores.extra)


def load_scores(path: PathLike) -> Scores:
    """Read a score file, checking its keys and shapes."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError) as exc:
        raise ScoresError(f"{path}: not a readable .npz score file ({exc})") from None
    missing = [key for key in ("names", "logits", "labels") if key not in arrays]
    if missing:
        raise ScoresError(f"{path}: not a score file (missing {', '.join(missing)})")
    scores = Scores(arrays.pop("names"), arrays.pop("logits"), arrays.pop("labels"), arrays)
    if scores.logits.ndim != 2 or len(scores.logits) != len(scores.names) or len(scores.labels) != len(scores.names):
        raise ScoresError(f"{path}: logits {scores.logits.shape}, names ({len(scores.names)},) and labels "
                          f"({len(scores.labels)},) do not describe the same samples")
    return scores


# ----------------------------------------------------------------------------------------- fusion

def fuse(parts: Sequence[Scores], weights: Optional[Sequence[float]] = None,
         sources: Optional[Sequence[str]] = None) -> Scores:
    """``sum_k weights[k] * parts[k].logits`` (all weights 1 by default).

    The parts must cover the same samples in the same order with the same labels and class count. The
    result records ``weights`` and ``sources`` (the files, when given) among its extra arrays, the parts'
    ``streams`` when every part records one, and their ``dataset`` and ``part`` when all agree.
    """
    if not parts:
        raise ScoresError("no score file to fuse")
    sources = _sources(parts, sources)
    weights = [1.0] * len(parts) if weights is None else [float(w) for w in weights]
    if len(weights) != len(parts):
        raise ScoresError(f"{len(weights)} weights for {len(parts)} score files; give one weight per file")
    _check_parts(parts, sources)
    first = parts[0]
    logits = sum(w * part.logits.astype(np.float64) for w, part in zip(weights, parts)).astype(np.float32)
    extra = {"weights": np.asarray(weights, dtype=np.float64), "sources": np.asarray(sources, dtype=str)}
    streams = [metadata(part, "stream") for part in parts]
    if None not in streams:
        extra["streams"] = np.asarray(streams, dtype=str)
    for key in ("dataset", "part"):
        values = {metadata(part, key) for part in parts}
        if len(values) == 1 and None not in values:
            extra.update(metadata_arrays(**{key: values.pop()}))
    return Scores(first.names, logits, first.labels, extra)


def _sources(parts: Sequence[Scores], sources: Optional[Sequence[str]]) -> List[str]:
    return list(sources) if sources is not None else [f"scores {k}" for k in range(len(parts))]


def _check_parts(parts: Sequence[Scores], sources: Sequence[str]) -> None:
    """Every part lists the samples, labels and classes of the first."""
    for source, part in zip(sources[1:], parts[1:]):
        _check_same_samples(sources[0], parts[0], source, part)


def _check_same_samples(first_source: str, first: Scores, source: str, part: Scores) -> None:
    if len(part.names) != len(first.names):
        raise ScoresError(f"{source} has {len(part.names)} samples, {first_source} has {len(first.names)}")
    differing: List[int] = np.flatnonzero(part.names != first.names).tolist()
    if differing:
        i = differing[0]
        raise ScoresError(f"{source} and {first_source} list other samples or another order "
                          f"({len(differing)} positions differ; first at {i}: {part.names[i]!r} vs "
                          f"{first.names[i]!r})")
    if not np.array_equal(part.labels, first.labels):
        raise ScoresError(f"{source} and {first_source} give other labels to the same samples")
    if part.logits.shape[1] != first.logits.shape[1]:
        raise ScoresError(f"{source} has {part.logits.shape[1]} classes, {first_source} has "
                          f"{first.logits.shape[1]}")


# ---------------------------------------------------------------------------------------- reports

def confusion_matrix(logits: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """``(num_classes, num_classes)`` int64 counts: row = true label, column = predicted label (the argmax,
    the first of equal largest logits)."""
    labels = np.asarray(labels, dtype=np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ScoresError(f"labels must lie in 0..{num_classes - 1}; found {labels.min()}..{labels.max()}")
    predicted = np.argmax(logits, axis=1) if len(labels) else np.zeros(0, dtype=np.int64)
    counts = np.bincount(labels * num_classes + predicted, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).astype(np.int64)


def classification_report(scores: Scores, class_names: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Accuracy of ``scores`` overall and per class, as plain JSON-ready values.

    Keys: ``num_samples``, ``top1``, ``top5``, ``mean_class_accuracy`` (the mean of the per-class recall
    over the classes present in the labels: every class weighs the same however many samples it has, so
    a rare class that is always missed shows) and ``per_class``, one ``{"label", "name", "accuracy",
    "count"}`` for every class ``0 .. C-1`` (``accuracy`` is ``None`` for a class without samples).
    Undefined numbers (no samples) are ``None``. ``class_names`` default: :func:`class_names_of`.
    """
    classes = scores.logits.shape[1]
    names = tuple(class_names) if class_names is not None else class_names_of(scores)
    if len(names) != classes:
        raise ScoresError(f"{len(names)} class names for {classes} classes")
    matrix = confusion_matrix(scores.logits, scores.labels, classes)
    counts = matrix.sum(axis=1)
    correct = np.diag(matrix)
    present = counts > 0
    recall = np.where(present, correct / np.maximum(counts, 1), np.nan)
    total = int(counts.sum())
    return {
        "num_samples": total,
        "top1": float(correct.sum() / total) if total else None,
        "top5": scores.accuracy(5) if total else None,
        "mean_class_accuracy": float(recall[present].mean()) if present.any() else None,
        "per_class": [{"label": k, "name": names[k], "accuracy": float(recall[k]) if present[k] else None,
                       "count": int(counts[k])} for k in range(classes)],
    }


# ------------------------------------------------------------------------------------ weight search

def tune_weights(parts: Sequence[Scores], grid: Optional[Sequence[float]] = None, *,
                 sources: Optional[Sequence[str]] = None,
                 chunk_bytes: int = TUNING_CHUNK_BYTES) -> Tuple[Tuple[float, ...], Dict[str, Any]]:
    """Weights for :func:`fuse` chosen by an exhaustive search on ``parts`` (validation scores).

    Candidates: every vector of ``len(parts)`` values from ``grid`` (default :data:`DEFAULT_GRID`, 0 to 1 by
    0.1) whose largest weight is the grid's largest value. The fused prediction's argmax does not change
    when all weights are scaled, so this keeps one vector per direction of the grid and drops the all-zero
    vector; it also fixes the scale that the cross-entropy below sees.

    Rule, in order: the highest top-1 on ``parts``; among those, the lowest mean cross-entropy of the
    softmax of the fused logits (float64, log-sum-exp with the row maximum subtracted), which prefers
    weights that are right with confidence; among exact ties, the lexicographically smallest vector.
    Nothing random, so the same scores always give the same weights.

    The search sees only ``parts``: pass validation scores and test labels cannot influence the choice.
    Fused logits are formed ``chunk_bytes`` at a time (blocks of candidates and of samples; for the
    cross-entropy, of candidates only), in float64 as :func:`fuse` forms them, so memory stays bounded for
    4 parts x 11^4 candidates x thousands of samples x 120 classes. Classes that no weighting can make
    the prediction are left out of the top-1 pass (:func:`_contenders`), which changes no result.

    Returns the weights and ``{"grid", "candidates", "val_top1", "val_cross_entropy",
    "ties_at_best_top1"}`` (the last: how many candidates reached the best top-1).
    """
    if not parts:
        raise ScoresError("no score file to tune weights on")
    sources = _sources(parts, sources)
    _check_parts(parts, sources)
    labels = np.asarray(parts[0].labels, dtype=np.int64)
    if len(labels) == 0:
        raise ScoresError(f"{sources[0]} holds no samples to tune weights on")
    stacked = np.stack([np.asarray(part.logits) for part in parts])
    if not np.isfinite(stacked).all():
        raise ScoresError(f"{', '.join(sources)}: the logits hold NaN or infinite values; weights cannot be tuned")
    values = _weight_grid(grid)
    candidates = _candidates(values, len(parts))
    contenders, target = _contenders(stacked, labels)
    correct = np.zeros(len(candidates), dtype=np.int64)
    for chosen, rows, fused in _fused_blocks(contenders, candidates, chunk_bytes):
        correct[chosen] += (fused.argmax(axis=2) == target[rows]).sum(axis=1)
    tied = np.flatnonzero(correct == correct.max())
    entropy = np.zeros(len(tied))
    for chosen, _, fused in _fused_blocks(stacked, candidates[tied], chunk_bytes, split_samples=False):
        entropy[chosen] = _mean_cross_entropies(fused, labels)
    best = tied[int(np.argmin(entropy))]       # candidates are in lexicographic order: argmin keeps the smallest
    weights = tuple(float(w) for w in candidates[best])
    return weights, {"grid": [float(v) for v in values], "candidates": int(len(candidates)),
                     "val_top1": float(correct[best] / len(labels)), "val_cross_entropy": float(entropy.min()),
                     "ties_at_best_top1": int(len(tied))}


def _weight_grid(grid: Optional[Sequence[float]]) -> np.ndarray:
    values = np.unique(np.asarray(DEFAULT_GRID if grid is None else grid, dtype=np.float64))
    if values.size == 0 or not np.isfinite(values).all() or values.min() < 0 or values.max() <= 0:
        raise ScoresError(f"weight grid {list(values)}: give finite values >= 0, at least one of them positive")
    return values


def _candidates(values: np.ndarray, count: int) -> np.ndarray:
    """``(M, count)``: the vectors over ``values`` whose largest entry is ``values.max()``, in lexicographic
    order."""
    every = np.array(list(itertools.product(values, repeat=count)), dtype=np.float64).reshape(-1, count)
    return every[every.max(axis=1) == values.max()]


def _contenders(stacked: np.ndarray, labels: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """The classes that can still be a sample's prediction, as ``(K, N, F)`` logits (``F`` the most any
    sample keeps, often a tenth of the classes or less) and, per sample, the position of its label among
    them (-1 when the label is never predicted).

    A class whose logit is below another class's in every part is below it in every fusion with
    non-negative weights that are not all zero (strictly, in float64 too: the gap of a float32 logit is far
    above double rounding), so it is never the argmax and is dropped. The kept classes stay in class order
    and rows are padded with repeats of their first kept class, which never wins an ``argmax`` (the first
    of equal maxima): the argmax over contenders is the argmax over all classes.
    """
    parts, samples, classes = stacked.shape
    keep = np.empty((samples, classes), dtype=bool)
    rows = int(max(1, CONTENDER_CHUNK_BYTES // (classes * classes * parts)))
    for start in range(0, samples, rows):
        block = np.moveaxis(stacked[:, start:start + rows], 0, -1)           # (n, C, K)
        beaten = (block[:, :, None, :] > block[:, None, :, :]).all(axis=3)   # [n, c, d]: c above d in every part
        keep[start:start + rows] = ~beaten.any(axis=1)
    counts = keep.sum(axis=1)
    width = int(counts.max())
    order = np.argsort(~keep, axis=1, kind="stable")[:, :width]
    order = np.where(np.arange(width)[None, :] < counts[:, None], order, order[:, :1])
    is_label = order == labels[:, None]
    target = np.where(is_label.any(axis=1), is_label.argmax(axis=1), -1)
    return np.take_along_axis(stacked, order[None], axis=2), target


def _fused_blocks(stacked: np.ndarray, candidates: np.ndarray, chunk_bytes: int, split_samples: bool = True):
    """Yield ``(candidate slice, sample slice, fused)``, ``fused[b, n] = sum_k candidates[b, k] *
    stacked[k, n]`` in float64 with the terms added in :func:`fuse`'s order, about ``chunk_bytes`` at a time
    (at least one candidate's samples at a time with ``split_samples=False``)."""
    parts, samples, classes = stacked.shape
    row_bytes = classes * 8
    rows = int(max(1, min(samples, chunk_bytes // row_bytes))) if split_samples else samples
    for start in range(0, samples, rows):
        block = stacked[:, start:start + rows]
        per_chunk = int(max(1, chunk_bytes // (block.shape[1] * row_bytes)))
        for first in range(0, len(candidates), per_chunk):
            weights = candidates[first:first + per_chunk, :, None, None]
            fused = weights[:, 0] * block[0]
            term = np.empty_like(fused)
            for k in range(1, parts):
                fused += np.multiply(weights[:, k], block[k], out=term)
            yield slice(first, first + len(weights)), slice(start, start + block.shape[1]), fused


def _mean_cross_entropies(fused: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``(B,)``: for each candidate, the mean over samples of ``-log softmax(fused)[label]``, stable (the
    row maximum subtracted before ``exp``) and summed exactly (``math.fsum``), so the value does not depend on
    how the candidates were split into blocks."""
    peak = fused.max(axis=2, keepdims=True)
    log_total = np.log(np.exp(fused - peak).sum(axis=2)) + peak[..., 0]
    losses = log_total - np.take_along_axis(fused, labels[None, :, None], axis=2)[..., 0]
    return np.array([math.fsum(row) / len(labels) for row in losses])


def check_tuning_parts(tuning: Sequence[Scores], tuning_sources: Sequence[str], test: Sequence[Scores],
                       test_sources: Sequence[str]) -> None:
    """Refuse tuning scores that could leak the test set: they must be other samples than ``test`` (no
    shared name), not record ``part`` ``test``, and match ``test`` file for file (count, classes, and the
    stream where both record one), so that the tuned weights mean the same on both."""
    if len(tuning) != len(test):
        raise ScoresError(f"--tune-on gives {len(tuning)} score files for {len(test)} test files; give one "
                          f"validation file per test file, in the same stream order")
    for source, part in zip(tuning_sources, tuning):
        if metadata(part, "part") == "test":
            raise ScoresError(f"{source} holds test-part scores; tune on validation scores (csre-eval --part val "
                              f"or a run's scores_val.npz), or say --tune-on-test")
    shared = np.intersect1d(tuning[0].names, test[0].names)
    if len(shared):
        raise ScoresError(f"{tuning_sources[0]} and {test_sources[0]} share {len(shared)} of "
                          f"{len(tuning[0].names)} sample names (first {shared[0]!r}): tuning on them would tune "
                          f"on the test set; give validation scores or say --tune-on-test")
    for k, (val_source, val, test_source, part) in enumerate(zip(tuning_sources, tuning, test_sources, test)):
        if val.logits.shape[1] != part.logits.shape[1]:
            raise ScoresError(f"{val_source} has {val.logits.shape[1]} classes, {test_source} has "
                              f"{part.logits.shape[1]}")
        val_stream, test_stream = metadata(val, "stream"), metadata(part, "stream")
        if None not in (val_stream, test_stream) and val_stream != test_stream:
            raise ScoresError(f"file {k + 1}: {val_source} is stream {val_stream}, {test_source} is stream "
                              f"{test_stream}; give the validation files in the test files' stream order")


# ---------------------------------------------------------------------------------------- presets

@dataclass(frozen=True)
class Preset:
    """A published weight set: one weight per stream of ``streams``, and where it was published."""

    streams: Tuple[str, ...]
    weights: Tuple[float, ...]
    source: str


_CSRE_SOURCE = ("CSRE release, ensemble.py: arg.alpha for {}, assigned but never used there (the script "
                "searches the weights on the test labels with skopt.gp_minimize instead)")
_HYPERFORMER_SOURCE = "Hyperformer (upstream), ensemble.py: the fixed four-stream weights for {}"
_PYSKL_SOURCE = "PYSKL, configs/stgcn++/README.md: {} fusion"

#: Published weight sets, by name. Stream order: joint, bone, joint_motion, bone_motion.
PRESETS: Dict[str, Preset] = {
    "csre-ntu": Preset(STREAM_ORDER, (0.6, 0.7, 0.35, 0.2), _CSRE_SOURCE.format("NTU")),
    "csre-ucla": Preset(STREAM_ORDER, (0.7, 0.5, 0.6, 0.2), _CSRE_SOURCE.format("NW-UCLA")),
    "hyperformer-ntu": Preset(STREAM_ORDER, (0.4, 0.6, 0.2, 0.2),
                              _HYPERFORMER_SOURCE.format("NTU RGB+D 60 and 120 (any --dataset ntu*)")),
    "hyperformer-ucla": Preset(STREAM_ORDER, (0.4, 0.4, 0.3, 0.2), _HYPERFORMER_SOURCE.format("NW-UCLA")),
    "pyskl-4s": Preset(STREAM_ORDER, (2.0, 2.0, 1.0, 1.0), _PYSKL_SOURCE.format("four-stream 2:2:1:1")),
    "pyskl-2s": Preset(STREAM_ORDER[:2], (1.0, 1.0), _PYSKL_SOURCE.format("two-stream 1:1 (joint, bone)")),
    "agcn-2s": Preset(STREAM_ORDER[:2], (1.0, 1.0),
                      "2s-AGCN, ensemble.py: joint + alpha * bone with --alpha 1 by default"),
}
#: Other names of the same sets (Hyperformer's NTU weights were first listed for NTU60 here).
PRESETS["hyperformer-ntu60"] = PRESETS["hyperformer-ntu"]


def preset_weights(name: str, streams: Sequence[Optional[str]]) -> Tuple[Tuple[float, ...], Optional[str]]:
    """The weights of preset ``name`` for score files whose recorded streams are ``streams`` (``None``
    where a file records none), and a note for the user or ``None``.

    When every file records its stream, each weight goes to its stream by name, whatever the files' order
    (and the files must be exactly the preset's streams). Otherwise the weights are taken in the preset's
    order (joint, bone, joint_motion, bone_motion), which the note says, and a recorded stream at the wrong
    position is refused.
    """
    if name not in PRESETS:
        raise ScoresError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    preset = PRESETS[name]
    if len(streams) != len(preset.weights) or (None not in streams and sorted(streams) != sorted(preset.streams)):
        given = ", ".join(s or "?" for s in streams)
        raise ScoresError(f"preset {name} weighs the streams {', '.join(preset.streams)}; the score files are "
                          f"{len(streams)} ({given})")
    by_stream = dict(zip(preset.streams, preset.weights))
    if None not in streams:
        return tuple(by_stream[stream] for stream in streams), None
    for k, (recorded, expected) in enumerate(zip(streams, preset.streams)):
        if recorded is not None and recorded != expected:
            raise ScoresError(f"preset {name}: file {k + 1} is stream {recorded} where the preset's order has "
                              f"{expected}; give the files in the order {', '.join(preset.streams)}")
    return preset.weights, (f"the score files do not all record their stream; preset {name} applied in the "
                            f"order given, as {', '.join(preset.streams)}")
