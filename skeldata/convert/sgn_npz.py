"""The SGN-family npz (``NTU60_CS.npz``, ``NTU120_CSub.npz``, ...) read back into samples.

The layout (``docs/references.md``, section 1.3; :func:`skeldata.convert.export.export_sgn_npz` writes it): members
``x_train``, ``y_train``, ``x_test``, ``y_test``; ``x`` float32 ``(N, T, 150)``, one row per frame
holding two bodies of 25 joints (x, y, z), the rows after a sample's last frame zero; ``y`` one-hot
``(N, classes)``. A one-actor sample has zeros in columns 75:150 (NTU60 script) or a copy of actor 1
there (NTU120 script).

A sample is recovered from its row of ``x`` as follows; every test is on the bytes, so that writing
the sample back gives the same bytes:

* frames: up to the last frame with a non-zero byte. This assumes that a sample never ends with an
  all-zero frame, which holds for every file of the published pipeline: denoising removes the frames
  whose coordinates sum to zero, and centring cannot turn a real skeleton into zeros.
* bodies: one when columns 75:150 are all zero bytes or, for a data set whose script copies a lone
  actor (``single_body_fill == "duplicate"``, ntu120), equal to columns 0:75 byte for byte; two
  otherwise. The store keeps the second slot of a one-body sample at zero, as a build does, and
  export puts the copy back.
* label: the column holding the row's single 1 in ``y``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, Union

import numpy as np

from ..datasets import DATASETS, DatasetSpec
from ..errors import SkeldataError
from ..splits import PARTS
from .npz import NpzArchive

KEYS = ("x_train", "y_train", "x_test", "y_test")
ROWS_PER_BLOCK = 64
BODIES = 2
COLUMNS_PER_BODY = 25 * 3


@dataclass(frozen=True)
class SgnSample:
    """One sample recovered from a row of an SGN-family npz."""

    part: str
    index: int
    label: int
    joints: np.ndarray  # float32 (T, 2, 25, 3); the second slot zero when n_bodies == 1
    n_bodies: int


class SgnNpzReader:
    """Reads an SGN-family npz of data set ``spec`` sample by sample, train part then test part.

    The layout is checked when the reader is created (:class:`SkeldataError` naming the member and
    what was expected); rows are checked as they are read.
    """

    def __init__(self, path: Union[str, Path], spec: DatasetSpec):
        self.path = Path(path)
        self.spec = spec
        if spec.layout != "ntu25":
            raise SkeldataError(f"sgn-npz holds NTU skeletons (2 bodies of 25 joints); --dataset {spec.name} "
                                f"is not an NTU data set (import it from a pyskl pickle instead)")
        self._npz = NpzArchive(self.path)
        try:
            self.counts: Dict[str, int] = self._check_layout()
        except SkeldataError:
            self._npz.close()
            raise

    def __len__(self) -> int:
        return sum(self.counts.values())

    def _check_layout(self) -> Dict[str, int]:
        keys = self._npz.keys()
        missing = [key for key in KEYS if key not in keys]
        if missing:
            raise SkeldataError(f"{self.path}: no {', '.join(missing)} in the archive; an SGN-family npz holds "
                                f"{', '.join(KEYS)} (this one holds {', '.join(keys) or 'no array'})")
        counts = {}
        for part in PARTS:
            x, y = self._npz.header(f"x_{part}"), self._npz.header(f"y_{part}")
            if len(x.shape) != 3:
                raise SkeldataError(f"{self.path}: x_{part} has shape {x.shape}; expected (samples, frames, 150)")
            if x.shape[2] != BODIES * COLUMNS_PER_BODY:
                raise SkeldataError(f"{self.path}: x_{part} rows are {x.shape[2]} values wide; an NTU frame is "
                                    f"150 (2 bodies x 25 joints x 3)")
            if x.dtype.kind != "f" or x.dtype.itemsize != 4:
                raise SkeldataError(f"{self.path}: x_{part} is {x.dtype}; the SGN-family npz holds float32")
            if len(y.shape) != 2:
                raise SkeldataError(f"{self.path}: y_{part} has shape {y.shape}; expected one-hot (samples, classes)")
            if y.dtype.kind not in "biuf":
                raise SkeldataError(f"{self.path}: y_{part} is {y.dtype}; expected one-hot numbers")
            if y.shape[0] != x.shape[0]:
                raise SkeldataError(f"{self.path}: x_{part} has {x.shape[0]} samples but y_{part} has "
                                    f"{y.shape[0]} labels")
            if y.shape[1] != self.spec.num_classes:
                raise SkeldataError(f"{self.path}: y_{part} has {y.shape[1]} classes but --dataset {self.spec.name} "
                                    f"has {self.spec.num_classes}{_dataset_hint(y.shape[1])}")
            counts[part] = x.shape[0]
        return counts

    def samples(self) -> Iterator[SgnSample]:
        """Every sample, in file order: the train part, then the test part."""
        duplicate = self.spec.single_body_fill == "duplicate"
        for part in PARTS:
            blocks = zip(self._npz.iter_rows(f"x_{part}", ROWS_PER_BLOCK),
                         self._npz.iter_rows(f"y_{part}", ROWS_PER_BLOCK))
            start = 0
            for x_block, y_block in blocks:
                labels = self._labels(y_block, part, start)
                x_block = x_block.astype(np.float32, copy=False)
                for row, label in enumerate(labels):
                    index = start + row
                    joints, n_bodies = self._sample(x_block[row], part, index, duplicate)
                    yield SgnSample(part, index, int(label), joints, n_bodies)
                start += len(labels)

    def _labels(self, y_block: np.ndarray, part: str, start: int) -> np.ndarray:
        ones = y_block == 1
        one_hot = (ones.sum(axis=1) == 1) & ((y_block == 0) | ones).all(axis=1)
        if not one_hot.all():
            row = start + int(np.argmin(one_hot))
            raise SkeldataError(f"{self.path}: y_{part} row {row} is not one-hot (expected a single 1 and zeros)")
        return ones.argmax(axis=1)

    def _sample(self, frames: np.ndarray, part: str, index: int, duplicate: bool):
        bits = frames.view(np.uint32)
        filled = np.flatnonzero(bits.any(axis=1))
        if not len(filled):
            raise SkeldataError(f"{self.path}: x_{part} row {index} is all zero: a sample without frames")
        n_frames = int(filled[-1]) + 1
        frames, bits = frames[:n_frames], bits[:n_frames]
        if not np.isfinite(frames).all():
            raise SkeldataError(f"{self.path}: x_{part} row {index} holds a value that is not finite")
        first, second = bits[:, :COLUMNS_PER_BODY], bits[:, COLUMNS_PER_BODY:]
        one_body = not second.any() or (duplicate and np.array_equal(first, second))
        joints = frames.reshape(n_frames, BODIES, 25, 3).copy()
        if one_body:
            joints[:, 1] = 0
        return joints, 1 if one_body else 2

    def close(self) -> None:
        self._npz.close()

    def __enter__(self) -> "SgnNpzReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _dataset_hint(classes: int) -> str:
    others = [spec.name for spec in DATASETS.values() if spec.num_classes == classes and spec.layout == "ntu25"]
    return f" (a {others[0]} file: use --dataset {others[0]})" if others else ""
