"""Workers for parsing files and encoding chunks: joblib's process pool, or threads.

One pool serves both jobs of a build: the per-file pipeline, whose results must come back in file
order, and the encoding of finished HDF5 chunks, whose results may come back in any order. With
one job there is no pool and everything runs in the calling process.

The pool is joblib's ``MemmappingPool`` (the pool behind its ``multiprocessing`` backend), with
memory mapping off. It starts its workers with the platform's default method: on Linux they are
forked, which takes about 0.07 s, where joblib's loky executor spawns fresh interpreters that
import everything again (about 0.8 s for two workers, measured on this project's 2-core machine:
a third of a 1,000-file build). The pool is created before the output file is opened, so no HDF5
file is open in the parent when the workers are forked.

With ``threads=True`` the workers are threads of this process instead: for work that releases the
GIL (the compiled .skeleton reader, the compiled chunk encoder), nothing is pickled between processes
and the writer receives the arrays themselves. Workers never touch the output file.
"""
from __future__ import annotations

import os
from collections import deque
from typing import Any, Callable, Iterator, List, Sequence, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


def resolve_jobs(jobs: int) -> int:
    """The number of processes ``jobs`` stands for (joblib's convention: -1 all CPUs, -2 all but one)."""
    cpus = os.cpu_count() or 1
    return jobs if jobs > 0 else max(1, cpus + 1 + jobs)


def _run_batch(fn: Callable[..., Result], batch: Sequence[Item], args: tuple) -> List[Result]:
    return [fn(item, *args) for item in batch]


class _Done:
    """A finished result, for the one-process case."""

    def __init__(self, value: Any):
        self.value = value

    def result(self) -> Any:
        return self.value

    def done(self) -> bool:
        return True


class _Pending:
    """A worker's result (a multiprocessing ``AsyncResult``) behind the same two methods."""

    def __init__(self, async_result):
        self.async_result = async_result

    def result(self) -> Any:
        return self.async_result.get()

    def done(self) -> bool:
        return self.async_result.ready()


class WorkerPool:
    """``jobs`` worker processes (or threads, with ``threads``), or none for ``jobs == 1``. Use as a context
    manager."""

    def __init__(self, jobs: int = 1, threads: bool = False):
        self.jobs = resolve_jobs(jobs)
        self.threads = threads and self.jobs > 1
        self._pool = None
        if self.threads:
            from concurrent.futures import ThreadPoolExecutor
            self._pool = ThreadPoolExecutor(self.jobs, thread_name_prefix="skeldata-worker")
        elif self.jobs > 1:
            from joblib.pool import MemmappingPool
            self._pool = MemmappingPool(self.jobs, max_nbytes=None)

    @property
    def parallel(self) -> bool:
        return self._pool is not None

    def submit(self, fn: Callable[..., Result], *args) -> Any:
        """Run ``fn(*args)`` in a worker (or right now without workers). The returned object has
        ``done()`` and ``result()``."""
        if self._pool is None:
            return _Done(fn(*args))
        if self.threads:
            return self._pool.submit(fn, *args)  # a Future: done() and result()
        return _Pending(self._pool.apply_async(fn, args))

    def ordered(self, fn: Callable[..., Result], items: Sequence[Item], *args, batch: int = 4) -> Iterator[Result]:
        """``fn(item, *args)`` for every item, in input order.

        Items go to the workers in batches of ``batch`` and at most ``4 * jobs`` batches are in
        flight, so memory stays bounded however many items there are.
        """
        if self._pool is None:
            for item in items:
                yield fn(item, *args)
            return
        pending: deque = deque()
        for start in range(0, len(items), batch):
            pending.append(self.submit(_run_batch, fn, items[start:start + batch], args))
            if len(pending) >= 4 * self.jobs:
                yield from pending.popleft().result()
        while pending:
            yield from pending.popleft().result()

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._pool is None:
            return
        if self.threads:
            self._pool.shutdown(wait=True, cancel_futures=exc_type is not None)
        else:
            self._pool.close() if exc_type is None else self._pool.terminate()
            self._pool.join()
        self._pool = None
