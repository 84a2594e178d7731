"""The statistics of a paired study, as pure functions of the per-run numbers.

A study trains each seed with and without CSRE; the two runs of one seed share the encoder's initial
weights, the batch order and the augmentations, so their difference isolates CSRE from the seed's luck.
The question "does CSRE help?" is then about the mean of the paired differences ``d_s = csre_s -
baseline_s``:

* :func:`paired_t_interval` is the textbook 95 % interval ``mean(d) +- t_{0.975, n-1} * sd(d) / sqrt(n)``
  (Student t with ``n - 1`` degrees of freedom; it assumes the differences are roughly normal, which few
  seeds cannot check);
* :func:`bootstrap_interval` is the percentile bootstrap of the mean (10,000 resamples with a fixed
  generator, so a report is reproducible). It assumes nothing about the shape, but with 3-5 seeds it can
  only resample those few values and is too narrow: read it beside the t interval, not instead of it.

:func:`t_quantile` is exact for the integer degrees of freedom a paired study has (no SciPy needed).
"""
from __future__ import annotations

import math
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

__all__ = ["t_cdf_two_sided", "t_quantile", "summarize", "paired_t_interval", "bootstrap_interval",
           "BOOTSTRAP_RESAMPLES", "BOOTSTRAP_SEED"]

BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0


def t_cdf_two_sided(t: float, df: int) -> float:
    """``P(|T| <= t)`` for Student's t with ``df`` (a positive integer) degrees of freedom.

    The closed forms for integer ``df`` (Abramowitz and Stegun 26.7.3-4): with ``theta = atan(t / sqrt(df))``,
    odd ``df``: ``(2/pi) * (theta + sin(theta) * (cos(theta) + 2/3 cos^3 + 2*4/(3*5) cos^5 + ...))`` up to
    ``cos^(df-2)``; even ``df``: ``sin(theta) * (1 + 1/2 cos^2 + 1*3/(2*4) cos^4 + ...)`` up to ``cos^(df-2)``.
    """
    if df < 1 or int(df) != df:
        raise ValueError(f"degrees of freedom must be a positive integer, got {df}")
    t = abs(float(t))
    theta = math.atan(t / math.sqrt(df))
    sin, cos = math.sin(theta), math.cos(theta)
    if df % 2 == 1:
        total, term = 0.0, cos
        for k in range(1, (df - 1) // 2 + 1):
            if k > 1:
                term *= cos * cos * (2 * k - 2) / (2 * k - 1)
            total += term
        return (2 / math.pi) * (theta + sin * total) if df > 1 else (2 / math.pi) * theta
    total, term = 1.0, 1.0
    for k in range(1, df // 2):
        term *= cos * cos * (2 * k - 1) / (2 * k)
        total += term
    return sin * total


def t_quantile(probability: float, df: int) -> float:
    """The ``probability`` quantile of Student's t with integer ``df`` (e.g. 0.975 for a 95 % interval),
    found by bisection on :func:`t_cdf_two_sided` to 1e-12."""
    if not 0.5 <= probability < 1:
        raise ValueError(f"probability must be in [0.5, 1), got {probability}")
    coverage = 2 * probability - 1  # P(|T| <= q)
    low, high = 0.0, 1.0
    while t_cdf_two_sided(high, df) < coverage:
        high *= 2
    while high - low > 1e-12 * max(1.0, high):
        middle = (low + high) / 2
        if t_cdf_two_sided(middle, df) < coverage:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def summarize(values: Sequence[float]) -> Dict[str, Optional[float]]:
    """``n``, ``mean`` and sample standard deviation ``std`` (``ddof=1``; ``None`` below two values)."""
    array = np.asarray(values, dtype=np.float64)
    n = len(array)
    return {"n": n, "mean": float(array.mean()) if n else None,
            "std": float(array.std(ddof=1)) if n > 1 else None}


def paired_t_interval(differences: Sequence[float], confidence: float = 0.95) -> Optional[Tuple[float, float]]:
    """The Student-t interval of the mean of ``differences`` (``None`` below two values)."""
    d = np.asarray(differences, dtype=np.float64)
    if len(d) < 2:
        return None
    half = t_quantile(0.5 + confidence / 2, len(d) - 1) * float(d.std(ddof=1)) / math.sqrt(len(d))
    return float(d.mean() - half), float(d.mean() + half)


def bootstrap_interval(differences: Sequence[float], confidence: float = 0.95,
                       resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED
                       ) -> Optional[Tuple[float, float]]:
    """The percentile bootstrap interval of the mean of ``differences`` (``None`` below two values):
    ``resamples`` draws of ``n`` values with replacement from a generator seeded with ``seed``."""
    d = np.asarray(differences, dtype=np.float64)
    if len(d) < 2:
        return None
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), size=(resamples, len(d)))].mean(axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)
