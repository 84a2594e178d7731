"""The data sets skeldata knows: their joint layout, classes, name ranges and export conventions."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Mapping

from .splits import BENCHMARKS, Benchmark


@dataclass(frozen=True)
class DatasetSpec:
    """A data set.

    Attributes:
        name: ``ntu60``, ``ntu120`` or ``ucla``.
        layout: joint layout name (see :mod:`skeldata.layouts`).
        num_classes: number of actions.
        max_setup: highest setup number in the data set (NTU).
        max_bodies: bodies per sample in the store.
        single_body_fill: what the published SGN-family npz holds in the second body slot of a
            one-actor sample: ``zero`` (NTU60 script) or ``duplicate`` (NTU120 script, a copy of actor 1).
        sgn_npz_names: benchmark -> the name of the published npz file it corresponds to.
        expected_samples: samples of the full published data set.
    """

    name: str
    layout: str
    num_classes: int
    max_setup: int
    max_bodies: int
    single_body_fill: str
    sgn_npz_names: Mapping[str, str]
    expected_samples: int

    @property
    def family(self) -> str:
        """``ntu`` or ``ucla``: which raw format and pipeline the data set uses."""
        return "ucla" if self.layout == "ucla20" else "ntu"

    @property
    def benchmarks(self) -> Dict[str, Benchmark]:
        return BENCHMARKS[self.name]


DATASETS: Dict[str, DatasetSpec] = {
    "ntu60": DatasetSpec("ntu60", "ntu25", 60, 17, 2, "zero",
                         {"xsub": "NTU60_CS.npz", "xview": "NTU60_CV.npz"}, 56578),
    "ntu120": DatasetSpec("ntu120", "ntu25", 120, 32, 2, "duplicate",
                          {"xsub": "NTU120_CSub.npz", "xset": "NTU120_CSet.npz"}, 113945),
    "ucla": DatasetSpec("ucla", "ucla20", 10, 0, 1, "zero", {}, 1484),
}


def get_dataset(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except KeyError:
        raise KeyError(f"unknown data set {name!r}; known: {', '.join(DATASETS)}") from None
