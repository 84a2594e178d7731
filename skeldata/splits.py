"""Benchmark splits: which samples train and which test, in the published sample order.

The SGN-family scripts build each part by concatenating, for each id of the benchmark's list *in list
order*, the samples with that id in name order. So ``xsub`` train of NTU60 is all samples of performer
1, then performer 2, then 4, ... The index arrays a store holds follow exactly that order, which is
the order of ``x_train`` / ``x_test`` in the published npz files.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

import numpy as np

PARTS = ("train", "test")


@dataclass(frozen=True)
class Benchmark:
    """A benchmark: the sample attribute it splits on and the ordered ids of each part."""

    name: str
    attribute: str
    train_ids: Tuple[int, ...]
    test_ids: Tuple[int, ...]
    description: str

    def ids(self, part: str) -> Tuple[int, ...]:
        if part == "train":
            return self.train_ids
        if part == "test":
            return self.test_ids
        raise KeyError(f"unknown part {part!r} of benchmark {self.name!r}; parts are {', '.join(PARTS)}")

    def indices(self, values: np.ndarray, part: str) -> np.ndarray:
        """Indices of the samples in ``part``, grouped by id in list order, in store order within an id."""
        values = np.asarray(values)
        order = np.argsort(values, kind="stable")
        sorted_values = values[order]
        chunks = []
        for ident in self.ids(part):
            lo, hi = np.searchsorted(sorted_values, [ident, ident + 1])
            chunks.append(order[lo:hi])
        return np.concatenate(chunks).astype(np.int64) if chunks else np.zeros(0, dtype=np.int64)


_NTU60_XSUB_TRAIN = (1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38)
_NTU120_XSUB_TRAIN = _NTU60_XSUB_TRAIN + (
    45, 46, 47, 49, 50, 52, 53, 54, 55, 56, 57, 58, 59, 70, 74, 78, 80, 81, 82, 83, 84, 85, 86, 89, 91, 92,
    93, 94, 95, 97, 98, 100, 103)

BENCHMARKS: Dict[str, Dict[str, Benchmark]] = {
    "ntu60": {
        "xsub": Benchmark("xsub", "performer", _NTU60_XSUB_TRAIN,
                          tuple(i for i in range(1, 41) if i not in _NTU60_XSUB_TRAIN),
                          "cross-subject: 20 training performers, 20 test performers"),
        "xview": Benchmark("xview", "camera", (2, 3), (1,),
                           "cross-view: cameras 2 and 3 train, camera 1 tests"),
    },
    "ntu120": {
        "xsub": Benchmark("xsub", "performer", _NTU120_XSUB_TRAIN,
                          tuple(i for i in range(1, 107) if i not in _NTU120_XSUB_TRAIN),
                          "cross-subject: 53 training performers, 53 test performers"),
        "xset": Benchmark("xset", "setup", tuple(range(2, 33, 2)), tuple(range(1, 33, 2)),
                          "cross-setup: even setups train, odd setups test"),
    },
    "ucla": {
        "xview": Benchmark("xview", "view", (1, 2), (3,),
                           "cross-view: views 1 and 2 train, view 3 tests"),
    },
}


def get_benchmark(dataset: str, name: str) -> Benchmark:
    """The benchmark ``name`` of ``dataset``, with a message listing the known ones otherwise."""
    try:
        benchmarks = BENCHMARKS[dataset]
    except KeyError:
        raise KeyError(f"unknown data set {dataset!r}; known: {', '.join(BENCHMARKS)}") from None
    try:
        return benchmarks[name]
    except KeyError:
        raise KeyError(f"data set {dataset!r} has no benchmark {name!r}; "
                       f"its benchmarks are {', '.join(benchmarks)}") from None
