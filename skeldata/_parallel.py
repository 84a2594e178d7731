"""Worker processes (joblib's loky executor) for parsing files and compressing chunks.

One pool serves both jobs of a build: the per-file pipeline, whose results must come back in file
order, and the compression of finished HDF5 chunks, whose results may come back in any order. With
one job there is no pool and everything runs in the calling process.
"""
from __future__ import annotations

import os
from collections import deque
from typing import Any, Callable, Iterator, List, Optional, Sequence, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def resolve_jobs(jobs: int) -> int:
    """The number of processes ``jobs`` stands for (joblib's convention: -1 all CPUs, -2 all but one)."""
    cpus = os.cpu_count() or 1
    return jobs if jobs > 0 else max(1, cpus + 1 + jobs)


def _import_modules(modules: Sequence[str]) -> None:
    import importlib
    for module in modules:
        importlib.import_module(module)


def _run_batch(fn: Callable[..., R], batch: Sequence[T], args: tuple) -> List[R]:
    return [fn(item, *args) for item in batch]


class _Done:
    """A finished result with the interface of a future, for the one-process case."""

    def __init__(self, value: Any):
        self.value = value

    def result(self) -> Any:
        return self.value

    def done(self) -> bool:
        return True


class WorkerPool:
    """``jobs`` worker processes, or none for ``jobs == 1``.

    Use as a context manager; the workers are joblib's reusable loky executor, so a second build in
    the same process reuses them.
    """

    def __init__(self, jobs: int = 1):
        self.jobs = resolve_jobs(jobs)
        self._executor = None
        if self.jobs > 1:
            from joblib.externals.loky import get_reusable_executor
            self._executor = get_reusable_executor(max_workers=self.jobs)

    def warm_up(self, *modules: str) -> None:
        """Have every worker import ``modules`` now, while the caller does other work."""
        if self._executor is not None:
            for _ in range(self.jobs):
                self._executor.submit(_import_modules, modules)

    @property
    def parallel(self) -> bool:
        return self._executor is not None

    def submit(self, fn: Callable[..., R], *args) -> Any:
        """Run ``fn(*args)`` in a worker (or right now without workers); returns a future."""
        if self._executor is None:
            return _Done(fn(*args))
        return self._executor.submit(fn, *args)

    def ordered(self, fn: Callable[..., R], items: Sequence[T], *args, batch: int = 4) -> Iterator[R]:
        """``fn(item, *args)`` for every item, in input order.

        Items go to the workers in batches of ``batch`` and at most ``4 * jobs`` batches are in
        flight, so memory stays bounded however many items there are.
        """
        if self._executor is None:
            for item in items:
                yield fn(item, *args)
            return
        batches = (items[i:i + batch] for i in range(0, len(items), batch))
        pending: deque = deque()
        for chunk in batches:
            pending.append(self._executor.submit(_run_batch, fn, chunk, args))
            if len(pending) >= 4 * self.jobs:
                yield from pending.popleft().result()
        while pending:
            yield from pending.popleft().result()

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc) -> None:
        self._executor = None  # the reusable executor stays alive for the next build in this process


def first_done(futures: Sequence[Any]) -> Optional[int]:
    """Index of a finished future in ``futures``, or ``None``."""
    for index, future in enumerate(futures):
        if future.done():
            return index
    return None
