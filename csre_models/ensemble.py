"""Score files and their weighted fusion (multi-stream ensembles).

A score file is an ``.npz`` with ``names`` (the store's sample names, in evaluation order), ``logits``
``(N, classes)`` float32 (raw classifier outputs, no softmax, as the reference ensembles add them) and
``labels`` ``(N,)``. ``csre-train`` writes one for the test part (``scores_test.npz``), ``csre-eval`` for
any part.

:func:`fuse` adds the logits of several files with fixed weights, ``sum_k w_k * logits_k``. It does not
search weights: the reference ``ensemble.py`` tunes them on the test labels, which makes the reported
accuracy optimistic. Choose weights beforehand (the encoders' published ones) or on validation scores.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np

__all__ = ["Scores", "ScoresError", "save_scores", "load_scores", "fuse", "top_k_accuracy"]

PathLike = Union[str, Path]


class ScoresError(ValueError):
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
    """Fraction of rows whose label is among the ``k`` largest logits (NaN for no rows)."""
    if len(labels) == 0:
        return float("nan")
    k = min(k, logits.shape[1])
    top = np.argpartition(-logits, k - 1, axis=1)[:, :k]
    return float((top == np.asarray(labels)[:, None]).any(axis=1).mean())


def save_scores(path: PathLike, scores: Scores) -> None:
    """Write ``names``, ``logits`` (float32), ``labels`` (int64) and the extra arrays."""
    np.savez(path, names=np.asarray(scores.names, dtype=str), logits=np.asarray(scores.logits, dtype=np.float32),
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


def fuse(parts: Sequence[Scores], weights: Optional[Sequence[float]] = None,
         sources: Optional[Sequence[str]] = None) -> Scores:
    """``sum_k weights[k] * parts[k].logits`` (all weights 1 by default).

    The parts must cover the same samples in the same order with the same labels and class count. The
    result records ``weights`` and, when given, ``sources`` (the files) among its extra arrays.
    """
    sources = list(sources) if sources is not None else [f"scores {k}" for k in range(len(parts))]
    if not parts:
        raise ScoresError("no score file to fuse")
    weights = [1.0] * len(parts) if weights is None else [float(w) for w in weights]
    if len(weights) != len(parts):
        raise ScoresError(f"{len(weights)} weights for {len(parts)} score files; give one weight per file")
    first = parts[0]
    for source, part in zip(sources[1:], parts[1:]):
        _check_same_samples(sources[0], first, source, part)
    logits = sum(w * part.logits.astype(np.float64) for w, part in zip(weights, parts)).astype(np.float32)
    extra = {"weights": np.asarray(weights, dtype=np.float64), "sources": np.asarray(sources, dtype=str)}
    return Scores(first.names, logits, first.labels, extra)


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
