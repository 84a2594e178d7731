"""Ordered parallel map over files with joblib, falling back to a plain loop for one job."""
from __future__ import annotations

from typing import Callable, Iterator, Sequence, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def ordered_map(fn: Callable[..., R], items: Sequence[T], jobs: int = 1, *args) -> Iterator[R]:
    """Yield ``fn(item, *args)`` for every item, in input order, using ``jobs`` worker processes.

    Results are consumed as they arrive, and joblib only dispatches a few batches ahead, so memory
    stays bounded however many items there are. ``jobs <= 0`` means one worker per CPU (joblib's
    convention: -1 all CPUs, -2 all but one).
    """
    if jobs == 1 or len(items) <= 1:
        return (fn(item, *args) for item in items)
    from joblib import Parallel, delayed

    parallel = Parallel(n_jobs=jobs, return_as="generator", batch_size="auto", pre_dispatch="2*n_jobs")
    return iter(parallel(delayed(fn)(item, *args) for item in items))


def resolve_jobs(jobs: int) -> int:
    """The number of processes ``jobs`` stands for (joblib's negative convention resolved)."""
    import os
    cpus = os.cpu_count() or 1
    if jobs > 0:
        return jobs
    return max(1, cpus + 1 + jobs)
