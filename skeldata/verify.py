"""Check that a skeldata file is intact and self-consistent: ``skeldata verify``.

:func:`verify` reads a store (or the ``denoised`` / ``raw`` file of a staged build) and returns a
:class:`Verification`: what was checked and every problem found, each naming the dataset or sample
and what is wrong. It checks

* structure: the root attributes, every required group and dataset with its dtype and shape, the
  offset tables (start at 0, non-decreasing, end at the stream length, equal to ``n_frames``);
* the streams, read block by block (bounded memory): every value finite, every joint coordinate within
  :data:`PLAUSIBLE_COORDINATE` metres of the origin (a Kinect sees about 0.5-4.5 m; a larger value is a
  corrupted or misread number even when finite), empty body slots zero, and
  ``bone`` and ``motion`` bit-identical to what :mod:`skeldata.pipeline.streams` computes from the joints;
* the content checksums recorded at write time (the ``crc32`` attribute of every column and stream);
  an unreadable (corrupted) compressed chunk is reported as such;
* the benchmark splits: in range, no repeats, disjoint, covering, and equal to the benchmark rule
  (:meth:`~skeldata.splits.Benchmark.indices`) in the published order;
* for a store holding a whole data set (``DatasetSpec.expected_samples``), the published split sizes;
* the ``dropped`` table: equal lengths, known reasons, no name that is also a sample.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Union

import h5py
import numpy as np

from ._h5 import dataset_crc32, decode_attr, open_checked
from .datasets import DATASETS
from .errors import DROP_REASONS, StoreError
from .layouts import get_layout
from .pipeline.streams import STREAMS, bones, motion_with_sample_ends
from .rawfile import BODY_COLUMNS
from .rawfile import SAMPLE_COLUMNS as RAW_SAMPLE_COLUMNS
from .splits import PARTS
from .store import PLAUSIBLE_COORDINATE, pipeline_name, sample_columns

KINDS = ("store", "denoised", "raw")

#: Train and test sizes of the standard benchmarks on the full data sets (the published lists).
PUBLISHED_SPLIT_SIZES = {
    "ntu60": {"xsub": (40091, 16487), "xview": (37646, 18932)},
    "ntu120": {"xsub": (63026, 50919), "xset": (54468, 59477)},
    "ucla": {"xview": (1020, 464)},
}

#: Root attributes of every skeldata file, and those a store or denoised file adds.
COMMON_ATTRIBUTES = ("format", "format_version", "kind", "complete", "created", "writer", "dataset", "layout",
                     "pipeline", "sources", "num_samples")
STORE_ATTRIBUTES = ("num_classes", "max_bodies", "num_joints", "single_body_fill", "streams", "compression",
                    "chunk_frames", "num_frames")

#: Bytes of one stream read at a time (rounded to whole chunks).
BLOCK_BYTES = 8 << 20


@dataclass(frozen=True)
class Problem:
    """One thing wrong: ``where`` (a dataset path, or a sample) and ``what``."""

    where: str
    what: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


@dataclass
class Verification:
    """The outcome of :func:`verify`: what was checked and the problems found (none when ``ok``)."""

    path: Path
    kind: str = ""
    dataset: str = ""
    samples: int = 0
    frames: int = 0
    checked: List[str] = field(default_factory=list)
    problems: List[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(path: Union[str, Path], scan_streams: bool = True) -> Verification:
    """Verify the skeldata file at ``path`` (a store, or a ``denoised`` or ``raw`` file).

    ``scan_streams=False`` checks everything but the frame data (structure, offsets, tables and their
    checksums, splits): seconds on NTU-120, which is what training and evaluation check at start; the frames
    are then checked as they are read (:meth:`~skeldata.store.Store.sequence`).
    """
    path = Path(path)
    result = Verification(path)
    kind = _peek_kind(path)
    try:
        h5 = open_checked(path, kind)
    except StoreError as exc:
        result.problems.append(Problem("file", str(exc).removeprefix(f"{path}: ")))
        return result
    with h5:
        result.kind = kind
        checker = RawChecker(h5, result) if kind == "raw" else StoreChecker(h5, result)
        checker.scan_streams = scan_streams
        checker.run()
    return result


def _peek_kind(path: Path) -> str:
    """The ``kind`` attribute of a skeldata file (``store`` when it cannot be read: opening it then says why)."""
    try:
        with h5py.File(path, "r") as h5:
            kind = decode_attr(h5.attrs.get("kind"))
    except OSError:
        return "store"
    return kind if kind in KINDS else "store"


# --------------------------------------------------------------------------------------- helpers

class FrameTally:
    """Counts the frames (rows) where something is wrong and remembers the first one."""

    def __init__(self):
        self.count = 0
        self.first: Optional[int] = None

    def add(self, start: int, bad_rows: np.ndarray) -> None:
        rows = np.flatnonzero(bad_rows)
        if len(rows):
            self.count += len(rows)
            if self.first is None:
                self.first = start + int(rows[0])


def _path(dataset: h5py.Dataset) -> str:
    """The dataset's path without the leading slash, as the problems name it."""
    return dataset.name.lstrip("/")


def _bits(values: np.ndarray) -> np.ndarray:
    """float32 values as their bit patterns, so that a comparison is exact (NaN, -0.0 included)."""
    return np.ascontiguousarray(values).view(np.uint32)


def _rows_differ(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.any((_bits(a) != _bits(b)).reshape(len(a), -1), axis=1)


class Checker:
    """What the checks of every kind share: the problem list, the tables, offsets, checksums, streams."""

    def __init__(self, h5: h5py.File, result: Verification):
        self.h5 = h5
        self.result = result
        self.attrs = {key: decode_attr(value) for key, value in h5.attrs.items()}
        self.names: np.ndarray = np.zeros(0, dtype=object)
        self.offsets: Optional[np.ndarray] = None  # set once the offset table has passed its checks
        self.spec = None  # the DatasetSpec and Layout, set by check_attributes
        self.scan_streams = True  # False: skip reading the frame data (verify(..., scan_streams=False))
        self.layout = None

    def problem(self, where: str, what: str) -> None:
        self.result.problems.append(Problem(where, what))

    def checked(self, what: str) -> None:
        self.result.checked.append(what)

    # -- attributes ------------------------------------------------------------------------------
    def check_attributes(self, names: Sequence[str]) -> bool:
        """Required root attributes present (format, version, kind and completeness were checked on
        opening), a known data set and its layout. False when reading can't go on."""
        missing = [name for name in names if name not in self.attrs]
        if missing:
            self.problem("/", f"missing root attribute(s): {', '.join(missing)}")
        spec = DATASETS.get(self.attrs.get("dataset"))
        if spec is None:
            self.problem("/", f"attribute dataset {self.attrs.get('dataset')!r} is not one of {', '.join(DATASETS)}")
            return False
        if self.attrs.get("layout") != spec.layout:
            self.problem("/", f"attribute layout is {self.attrs.get('layout')!r}; {spec.name} uses {spec.layout!r}")
            return False
        self.spec, self.layout = spec, get_layout(spec.layout)
        self.result.dataset = spec.name
        return True

    def describe_frame(self, frame: int) -> str:
        """``frame 130 (sample S001..., its frame 12)`` when the offsets locate it."""
        if self.offsets is None or not len(self.names) or not 0 <= frame < self.offsets[-1]:
            return f"frame {frame}"
        i = int(np.clip(np.searchsorted(self.offsets, frame, side="right") - 1, 0, len(self.names) - 1))
        return f"frame {frame} (sample {self.names[i]}, its frame {frame - int(self.offsets[i])})"

    def describe_rows(self, lo: int, hi: int) -> str:
        """``samples A .. B`` owning frames ``lo:hi`` when the offsets locate them."""
        if self.offsets is None or not len(self.names):
            return f"{hi - lo} rows"
        first, last = np.clip(np.searchsorted(self.offsets, [lo, hi - 1], side="right") - 1, 0, len(self.names) - 1)
        return f"samples {self.names[first]} .. {self.names[last]}"

    def sample(self, i: int) -> str:
        return f"sample {self.names[i]}" if 0 <= i < len(self.names) else f"sample {i}"

    # -- tables ----------------------------------------------------------------------------------
    def read_table(self, group_name: str, columns: Mapping[str, object],
                   lengths: Mapping[str, int]) -> Dict[str, np.ndarray]:
        """The columns of a table group, each checked for presence, dtype and length (``lengths``:
        column -> expected length); the ones that pass are returned."""
        group = self.h5.get(group_name)
        if not isinstance(group, h5py.Group):
            self.problem(group_name, "group is missing")
            return {}
        out = {}
        for name, dtype in columns.items():
            path = f"{group_name}/{name}"
            dataset = group.get(name)
            if not isinstance(dataset, h5py.Dataset):
                self.problem(path, "dataset is missing")
                continue
            if dtype is str:
                right_type = dataset.dtype.kind == "S"
                expected = "fixed-length ASCII"
            else:
                right_type = dataset.dtype == np.dtype(dtype)
                expected = np.dtype(dtype).name
            if not right_type:
                self.problem(path, f"dtype is {dataset.dtype}, expected {expected}")
                continue
            length = lengths.get(name)
            if dataset.ndim != 1 or (length is not None and dataset.shape[0] != length):
                self.problem(path, f"shape is {dataset.shape}, expected ({length},)" if length is not None
                             else f"shape is {dataset.shape}, expected one dimension")
                continue
            values = dataset[()]
            out[name] = values.astype(str) if dtype is str else values
        return out

    def check_offsets(self, path: str, offsets: np.ndarray, end: int, end_what: str,
                      lengths: Optional[np.ndarray] = None, lengths_path: str = "",
                      owner: Optional[Callable[[int], str]] = None) -> bool:
        """An offset table: starts at 0, never decreases, ends at ``end``, steps equal ``lengths``."""
        owner = owner or (lambda i: f"row {i}")
        ok = True
        if not len(offsets) or offsets[0] != 0:
            self.problem(path, f"starts at {offsets[0] if len(offsets) else 'nothing'}, expected 0")
            ok = False
        steps = np.diff(offsets)
        falling = np.flatnonzero(steps < 0)
        if len(falling):
            i = int(falling[0])
            self.problem(path, f"decreases at {owner(i)}: offset[{i}] = {offsets[i]}, offset[{i + 1}] = "
                               f"{offsets[i + 1]} ({len(falling)} place(s))")
            ok = False
        if len(offsets) and offsets[-1] != end:
            self.problem(path, f"ends at {offsets[-1]}, but {end_what} is {end}")
            ok = False
        if lengths is not None and len(lengths) == len(steps):
            wrong = np.flatnonzero(steps != lengths)
            if len(wrong):
                i = int(wrong[0])
                self.problem(path, f"{owner(i)} spans {steps[i]} rows but {lengths_path} says {lengths[i]} "
                                   f"({len(wrong)} disagree)")
                ok = False
        return ok

    # -- streams ---------------------------------------------------------------------------------
    def check_stream_shape(self, path: str, row_shape: Sequence[int]) -> Optional[h5py.Dataset]:
        dataset = self.h5.get(path)
        if not isinstance(dataset, h5py.Dataset):
            self.problem(path, "dataset is missing")
            return None
        if dataset.dtype != np.float32 or dataset.shape[1:] != tuple(row_shape):
            self.problem(path, f"is {dataset.dtype} {dataset.shape}, expected float32 (frames, "
                               f"{', '.join(str(n) for n in row_shape)})")
            return None
        return dataset

    def scan(self, datasets: Mapping[str, h5py.Dataset],
             on_block: Callable[[int, Dict[str, np.ndarray]], None]) -> None:
        """Read the datasets together block by block: checksum each, check every value is finite and
        hand each block (the readable ones) to ``on_block(start_row, blocks)``."""
        chunk = min(ds.chunks[0] if ds.chunks else 1 for ds in datasets.values())
        row_bytes = max(ds.dtype.itemsize * int(np.prod(ds.shape[1:])) for ds in datasets.values())
        block_rows = max(1, BLOCK_BYTES // (row_bytes * chunk)) * chunk
        crcs = {name: 0 for name in datasets}
        unreadable = set()
        non_finite = {name: FrameTally() for name in datasets}
        total = max(ds.shape[0] for ds in datasets.values())
        for start in range(0, total, block_rows):
            blocks = {}
            for name, dataset in datasets.items():
                stop = min(start + block_rows, dataset.shape[0])
                if start >= stop or name in unreadable:
                    continue
                block = self._read_rows(dataset, start, stop)
                if block is None:
                    unreadable.add(name)
                    continue
                crcs[name] = zlib.crc32(np.ascontiguousarray(block), crcs[name])
                non_finite[name].add(start, ~np.isfinite(block).reshape(len(block), -1).all(axis=1))
                blocks[name] = block
            on_block(start, blocks)
        for name, dataset in datasets.items():
            tally = non_finite[name]
            if tally.count:
                self.problem(_path(dataset), f"{tally.count} row(s) hold a value that is not finite, first at "
                                           f"{self.describe_frame(tally.first)}")
            if name not in unreadable:
                self._compare_crc(dataset, crcs[name])

    def _read_rows(self, dataset: h5py.Dataset, start: int, stop: int) -> Optional[np.ndarray]:
        """Rows ``start:stop``; on a read error, find and report the corrupted chunk(s) and return None."""
        try:
            return dataset[start:stop]
        except OSError:
            pass
        step = dataset.chunks[0] if dataset.chunks else stop - start
        for lo in range(start - start % step, stop, step):
            hi = min(lo + step, dataset.shape[0])
            try:
                dataset[lo:hi]
            except OSError as exc:
                self.problem(_path(dataset), f"the chunk of rows {lo}-{hi - 1} ({self.describe_rows(lo, hi)}) "
                                           f"cannot be read: its compressed data is corrupted ({exc})")
        return None

    # -- checksums -------------------------------------------------------------------------------
    def check_checksums(self, streams: Sequence[str]) -> None:
        """Every dataset but the ``streams`` (checksummed as they are scanned): recompute its CRC-32 and
        compare with the ``crc32`` attribute (variable-length text, which has none, excepted)."""
        datasets = []
        self.h5.visititems(lambda name, obj: datasets.append(obj) if isinstance(obj, h5py.Dataset) else None)
        count = 0
        for dataset in datasets:
            if _path(dataset) in streams or dataset.dtype.kind == "O":
                continue
            if "crc32" not in dataset.attrs:
                self.problem(_path(dataset), "has no crc32 attribute")
                continue
            try:
                crc = dataset_crc32(dataset)
            except OSError as exc:
                self.problem(_path(dataset), f"cannot be read: {exc}")
                continue
            self._compare_crc(dataset, crc)
            count += 1
        self.checked(f"crc32 of {count} columns and index arrays")

    def _compare_crc(self, dataset: h5py.Dataset, crc: int) -> None:
        if "crc32" not in dataset.attrs:
            self.problem(_path(dataset), "has no crc32 attribute")
        elif int(dataset.attrs["crc32"]) != crc:
            recorded = int(dataset.attrs["crc32"])
            self.problem(_path(dataset), f"content checksum differs: crc32 recorded {recorded:#010x}, "
                                         f"computed {crc:#010x} (the data changed after it was written)")

    # -- dropped ---------------------------------------------------------------------------------
    def check_dropped(self) -> None:
        table = self.read_table("dropped", {"name": str, "reason": str}, {})
        if len(table) < 2:
            return
        detail = self.h5["dropped"].get("detail")
        if detail is None or detail.shape != table["name"].shape or table["reason"].shape != table["name"].shape:
            self.problem("dropped", "name, reason and detail do not have the same length")
        unknown = sorted(set(table["reason"]) - set(DROP_REASONS))
        if unknown:
            self.problem("dropped/reason", f"unknown reason(s): {', '.join(unknown)}")
        both = np.intersect1d(table["name"], self.names)
        if len(both):
            self.problem("dropped/name", f"{both[0]} is both dropped and a sample ({len(both)} such name(s))")
        self.checked(f"dropped: {len(table['name']):,} entries, known reasons, none among the samples")


# ----------------------------------------------------------------------------------- store, denoised

class StoreChecker(Checker):
    """A store (kind ``store``) or the output of ``skeldata denoise`` (kind ``denoised``)."""

    def run(self) -> None:
        is_store = self.result.kind == "store"
        if not self.check_attributes(COMMON_ATTRIBUTES + STORE_ATTRIBUTES):
            return
        spec = self.spec
        expected_streams = self.stored_streams(is_store)
        for name, value in (("num_classes", spec.num_classes), ("max_bodies", spec.max_bodies),
                            ("num_joints", self.layout.num_joints)):
            if self.attrs.get(name) != value:
                self.problem("/", f"attribute {name} is {self.attrs.get(name)!r}, expected {value} for {spec.name}")
        self.checked(f"root attributes ({self.result.kind} of {spec.name}, layout {self.layout.name})")

        offset = self.read_table("samples", {"offset": np.int64}, {}).get("offset")
        n = len(offset) - 1 if offset is not None and len(offset) else int(self.attrs.get("num_samples", 0))
        imported = "source_format" in self.attrs  # made by skeldata import (docs/formats.md)
        expected_columns = sample_columns(spec, imported, pipeline=pipeline_name(self.attrs))
        columns = self.read_table("samples", expected_columns, {name: n for name in expected_columns})
        self.names = columns.get("name", np.zeros(0, dtype=object))
        self.result.samples = n
        self.check_samples(columns, n)
        self.check_checksums([f"streams/{name}" for name in expected_streams])

        row_shape = (spec.max_bodies, self.layout.num_joints, 3)
        streams = {name: self.check_stream_shape(f"streams/{name}", row_shape) for name in expected_streams}
        streams = {name: ds for name, ds in streams.items() if ds is not None}
        if offset is not None and "joint" in streams:
            frames = streams["joint"].shape[0]
            self.result.frames = frames
            for dataset in streams.values():
                if dataset.shape[0] != frames:
                    self.problem(_path(dataset), f"has {dataset.shape[0]:,} frames, streams/joint has {frames:,}")
            if self.check_offsets("samples/offset", offset, frames, "the length of streams/joint",
                                  columns.get("n_frames"), "samples/n_frames", self.sample):
                self.offsets = offset
            if self.attrs.get("num_frames") != frames or self.attrs.get("num_samples") != n:
                self.problem("/", f"attributes num_samples, num_frames are {self.attrs.get('num_samples')}, "
                                  f"{self.attrs.get('num_frames')}; the file holds {n}, {frames}")
            self.checked(f"offsets of {n:,} samples: from 0, non-decreasing, ending at {frames:,} frames, "
                         f"equal to n_frames")
        if streams and self.scan_streams:
            self.check_streams(streams, columns.get("n_bodies"))
        if is_store and len(columns) == len(expected_columns):
            self.check_splits(columns, imported)
            self.check_published_counts(n)
        self.check_dropped()

    def stored_streams(self, is_store: bool) -> Sequence[str]:
        """The streams the ``streams`` attribute lists (a store: ``joint`` and any of ``bone``,
        ``motion``; a denoised file: ``joint``), each of which must be a dataset, and nothing else."""
        listed = self.attrs.get("streams", [])
        allowed = [name for name in STREAMS if name in listed] if is_store else ["joint"]
        if not isinstance(listed, list) or listed != allowed or "joint" not in listed:
            self.problem("/", f"attribute streams is {listed!r}, expected 'joint' "
                              f"{'and any of bone, motion, in that order' if is_store else 'only'}")
        group = self.h5.get("streams")
        for name in sorted(set(group or ()) - set(allowed)):
            self.problem(f"streams/{name}", "is not listed in the streams attribute")
        return allowed

    def check_samples(self, columns: Mapping[str, np.ndarray], n: int) -> None:
        spec = self.spec
        names = columns.get("name")
        if names is not None and len(names) > 1:
            not_after = np.flatnonzero(names[1:] <= names[:-1])
            if len(not_after):
                i = int(not_after[0]) + 1
                self.problem("samples/name", f"not sorted and unique: {names[i]} (sample {i}) follows {names[i - 1]}")
        labels = columns.get("label")
        if labels is not None and len(labels) and not ((labels >= 0) & (labels < spec.num_classes)).all():
            i = int(np.flatnonzero((labels < 0) | (labels >= spec.num_classes))[0])
            self.problem("samples/label", f"{self.sample(i)} has label {labels[i]}, outside 0..{spec.num_classes - 1}")
        bodies = columns.get("n_bodies")
        if bodies is not None and len(bodies) and not ((bodies >= 1) & (bodies <= spec.max_bodies)).all():
            i = int(np.flatnonzero((bodies < 1) | (bodies > spec.max_bodies))[0])
            self.problem("samples/n_bodies", f"{self.sample(i)} has {bodies[i]} bodies, outside 1..{spec.max_bodies}")
        self.checked(f"{n:,} samples: {len(columns)} columns (dtypes, lengths), names sorted and unique, "
                     f"labels and body counts in range")

    def check_streams(self, streams: Mapping[str, h5py.Dataset], n_bodies: Optional[np.ndarray]) -> None:
        derived = DerivedStreams(self.layout, self.offsets)
        empty_slots = FrameTally()
        implausible = FrameTally()
        largest = [0.0]
        frame_bodies = (np.repeat(n_bodies, np.diff(self.offsets)) if self.offsets is not None
                        and n_bodies is not None else None)

        def on_block(start: int, blocks: Dict[str, np.ndarray]) -> None:
            joint = blocks.get("joint")
            if joint is not None:
                with np.errstate(invalid="ignore"):
                    magnitude = np.abs(np.where(np.isfinite(joint), joint, 0)).reshape(len(joint), -1).max(
                        axis=1, initial=0.0)
                implausible.add(start, magnitude > PLAUSIBLE_COORDINATE)
                largest[0] = max(largest[0], float(magnitude.max(initial=0.0)))
            if joint is not None and frame_bodies is not None:
                slots = np.arange(joint.shape[1])[None, :] >= frame_bodies[start:start + len(joint), None]
                empty_slots.add(start, np.any(np.any(joint != 0, axis=(2, 3)) & slots, axis=1))
            derived.check_block(start, blocks)

        self.scan(streams, on_block)
        derived.finish()
        for name, tally in derived.mismatches.items():
            if tally.count:
                self.problem(f"streams/{name}", f"{tally.count} frame(s) differ from the {name} stream recomputed "
                                                 f"from the joints, first at {self.describe_frame(tally.first)}")
        if implausible.count:
            self.problem("streams/joint", f"{implausible.count} frame(s) hold a coordinate beyond "
                                           f"{PLAUSIBLE_COORDINATE:g} m (largest {largest[0]:.3g}), first at "
                                           f"{self.describe_frame(implausible.first)}")
        if empty_slots.count:
            self.problem("streams/joint", f"{empty_slots.count} frame(s) hold values in a body slot beyond "
                                           f"n_bodies, first at {self.describe_frame(empty_slots.first)}")
        derived_names = [name for name in streams if name != "joint"]
        consistency = (f"; {' and '.join(derived_names)} equal to what the joints give" if derived_names else "")
        self.checked(f"streams {', '.join(streams)}: float32, crc32, finite, joints within "
                     f"{PLAUSIBLE_COORDINATE:g} m, empty body slots zero{consistency} "
                     f"(read in blocks)")

    def check_splits(self, columns: Mapping[str, np.ndarray], imported: bool) -> None:
        """An imported store holds the benchmarks its file gave, as the file gave them (its name
        fields may be unknown): those are checked for range, repeats and overlap only."""
        spec = self.spec
        group = self.h5.get("splits")
        present = set(group) if isinstance(group, h5py.Group) else set()
        if not imported:
            for name in sorted(set(spec.benchmarks) - present):
                self.problem("splits", f"benchmark {name} is missing")
        for name in sorted(present - set(spec.benchmarks)):
            self.problem(f"splits/{name}", f"is not a benchmark of {spec.name}")
        for name in sorted(set(spec.benchmarks) & present):
            self._check_benchmark(name, columns, imported)
        rule = ("as the imported file gave them" if imported
                else "covering, equal to the benchmark rule in the published order")
        self.checked(f"splits {', '.join(sorted(present)) or 'none'}: in range, no repeats, disjoint, {rule}")

    def _check_benchmark(self, name: str, columns: Mapping[str, np.ndarray], imported: bool) -> None:
        bench = self.spec.benchmarks[name]
        n = len(self.names)
        parts = {}
        for part in PARTS:
            path = f"splits/{name}/{part}"
            dataset = self.h5.get(path)
            if not isinstance(dataset, h5py.Dataset):
                self.problem(path, "dataset is missing")
                continue
            if dataset.dtype != np.int64 or dataset.ndim != 1:
                self.problem(path, f"is {dataset.dtype} {dataset.shape}, expected int64 (n,)")
                continue
            indices = dataset[()]
            outside = np.flatnonzero((indices < 0) | (indices >= n))
            if len(outside):
                self.problem(path, f"position {outside[0]} holds {indices[outside[0]]}, outside 0..{n - 1}")
                continue
            distinct, counts = np.unique(indices, return_counts=True)
            if (counts > 1).any():
                self.problem(path, f"{self.sample(int(distinct[counts > 1][0]))} is listed "
                                   f"{counts[counts > 1][0]} times")
                continue
            parts[part] = indices
        if len(parts) < len(PARTS):
            return
        overlap = np.intersect1d(parts["train"], parts["test"])
        if len(overlap):
            self.problem(f"splits/{name}", f"train and test overlap: {self.sample(int(overlap[0]))} is in both "
                                           f"({len(overlap)} sample(s))")
            return
        if imported:
            return
        values = columns[bench.attribute]
        wanted = np.isin(values, bench.train_ids + bench.test_ids)
        missing = np.setdiff1d(np.flatnonzero(wanted), np.concatenate(list(parts.values())))
        if len(missing):
            self.problem(f"splits/{name}", f"does not cover {self.sample(int(missing[0]))} ({bench.attribute} "
                                           f"{values[missing[0]]}; {len(missing)} sample(s) missing)")
            return
        for part, indices in parts.items():
            rule = bench.indices(values, part)
            if np.array_equal(indices, rule):
                continue
            path = f"splits/{name}/{part}"
            extra, missing = np.setdiff1d(indices, rule), np.setdiff1d(rule, indices)
            if len(extra):
                self.problem(path, f"holds {self.sample(int(extra[0]))} ({bench.attribute} {values[extra[0]]}), "
                                   f"which the {name} rule does not put in {part} ({len(extra)} such)")
            elif len(missing):
                self.problem(path, f"lacks {self.sample(int(missing[0]))} ({bench.attribute} {values[missing[0]]}), "
                                   f"which the {name} rule puts in {part} ({len(missing)} such)")
            else:
                position = int(np.flatnonzero(indices != rule)[0])
                self.problem(path, f"is not in the published order: position {position} holds "
                                   f"{self.sample(int(indices[position]))}, the rule puts "
                                   f"{self.sample(int(rule[position]))} there")

    def check_published_counts(self, n: int) -> None:
        spec = self.spec
        if n != spec.expected_samples:
            self.checked(f"published counts: not applicable ({n:,} samples, the full {spec.name} has "
                         f"{spec.expected_samples:,})")
            return
        sizes = []
        for bench, (train, test) in PUBLISHED_SPLIT_SIZES[spec.name].items():
            if bench not in self.h5.get("splits", {}):
                continue
            group = self.h5[f"splits/{bench}"]
            found = tuple(group[part].shape[0] for part in PARTS if part in group)
            if found != (train, test):
                self.problem(f"splits/{bench}", f"has {' / '.join(f'{c:,}' for c in found)} samples, "
                                                f"the published split is {train:,} / {test:,}")
            sizes.append(f"{bench} {train:,}/{test:,}")
        self.checked(f"published counts of the full {spec.name}: {n:,} samples, {', '.join(sizes)}")


class DerivedStreams:
    """Compares stored ``bone`` and ``motion`` blocks with those recomputed from the ``joint`` block.

    Motion at a frame needs the next frame's joints, so the last row of each block is carried over
    and compared when the next block arrives (or, at the end, against zero when it ends a sample).
    """

    def __init__(self, layout, offsets: Optional[np.ndarray]):
        self.layout = layout
        self.sample_ends = (offsets[1:][np.diff(offsets) > 0] - 1) if offsets is not None else None
        self.mismatches = {"bone": FrameTally(), "motion": FrameTally()}
        self.carry: Optional[tuple] = None  # (frame, joint row, motion row)

    def check_block(self, start: int, blocks: Mapping[str, np.ndarray]) -> None:
        joint = blocks.get("joint")
        if joint is None:
            self.carry = None
            return
        bone = blocks.get("bone")
        if bone is not None:
            rows = min(len(bone), len(joint))
            self.mismatches["bone"].add(start, _rows_differ(bones(joint[:rows], self.layout), bone[:rows]))
        stored = blocks.get("motion")
        if stored is None or self.sample_ends is None:
            self.carry = None
            return
        rows = min(len(stored), len(joint))
        joint, stored, first = joint[:rows], stored[:rows], start
        if self.carry is not None and self.carry[0] == start - 1:
            joint = np.concatenate([self.carry[1], joint])
            stored = np.concatenate([self.carry[2], stored])
            first = start - 1
        expected = self._expected_motion(first, joint)
        self.mismatches["motion"].add(first, _rows_differ(expected[:-1], stored[:-1]))
        self.carry = (first + len(joint) - 1, joint[-1:], stored[-1:])

    def finish(self) -> None:
        """The last carried row: compared when it ends a sample (its motion is then zero)."""
        if self.carry is not None and self.sample_ends is not None:
            frame, _, stored = self.carry
            if frame in self.sample_ends:
                self.mismatches["motion"].add(frame, _rows_differ(np.zeros_like(stored), stored))

    def _expected_motion(self, first: int, joint: np.ndarray) -> np.ndarray:
        """Motion of rows ``first ..``: the forward difference, zero on each sample's last frame."""
        last_frame = np.zeros(len(joint), dtype=bool)
        lo, hi = np.searchsorted(self.sample_ends, [first, first + len(joint)])
        last_frame[self.sample_ends[lo:hi] - first] = True
        return motion_with_sample_ends(joint, last_frame)


# ------------------------------------------------------------------------------------------------ raw

class RawChecker(Checker):
    """The output of ``skeldata extract`` (kind ``raw``): every body of every file."""

    def run(self) -> None:
        if not self.check_attributes(COMMON_ATTRIBUTES):
            return
        self.checked(f"root attributes (raw of {self.spec.name})")
        offsets = self.read_table("samples", {"body_offset": np.int64, "dropped_offset": np.int64,
                                              "dropped_frames": np.int32}, {})
        n = len(offsets["body_offset"]) - 1 if "body_offset" in offsets else int(self.attrs.get("num_samples", 0))
        self.result.samples = n
        columns = dict(RAW_SAMPLE_COLUMNS, frames_dropped=np.int32)
        samples = self.read_table("samples", columns, {name: n for name in columns})
        self.names = samples.get("name", np.zeros(0, dtype=object))
        body_offsets = self.read_table("bodies", {"joint_offset": np.int64}, {})
        n_bodies = len(body_offsets["joint_offset"]) - 1 if "joint_offset" in body_offsets else 0
        bodies = self.read_table("bodies", BODY_COLUMNS, {name: n_bodies for name in BODY_COLUMNS})
        joints = self.check_stream_shape("bodies/joints", (self.layout.num_joints, 3))
        self.check_checksums(["bodies/joints"])

        if "body_offset" in offsets and self.check_offsets("samples/body_offset", offsets["body_offset"], n_bodies,
                                                           "the number of bodies", owner=self.sample):
            owners = np.repeat(np.arange(n), np.diff(offsets["body_offset"]))
            if "sample" in bodies and not np.array_equal(owners, bodies["sample"]):
                wrong = int(np.flatnonzero(owners != bodies["sample"])[0])
                self.problem("bodies/sample", f"body {wrong} is said to be of sample {bodies['sample'][wrong]}, "
                                              f"samples/body_offset gives it to {self.sample(int(owners[wrong]))}")
        if "dropped_offset" in offsets and "dropped_frames" in offsets:
            self.check_offsets("samples/dropped_offset", offsets["dropped_offset"], len(offsets["dropped_frames"]),
                               "the length of samples/dropped_frames", samples.get("frames_dropped"),
                               "samples/frames_dropped", self.sample)
        if joints is not None:
            self.result.frames = joints.shape[0]
            if "joint_offset" in body_offsets:
                self.check_offsets("bodies/joint_offset", body_offsets["joint_offset"], joints.shape[0],
                                   "the length of bodies/joints", bodies.get("length"), "bodies/length")
            self.scan({"joints": joints}, lambda start, blocks: None)
        self.checked(f"{n:,} samples and {n_bodies:,} bodies: columns (dtypes, lengths); body, joint and "
                     f"dropped-frame offsets; joints float32, crc32 and finite (read in blocks)")
        self.check_dropped()
