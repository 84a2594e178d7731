"""Files people already have, into a store (``skeldata import``).

* ``sgn-npz``: an SGN-family ``NTU60_CS.npz``-style file (:mod:`.sgn_npz`). It holds one benchmark and
  no sample names: the user names the data set and the benchmark; the store holds the train part then
  the test part, in file order, under synthetic names that sort in that order (``1_train_000000``,
  ..., ``2_test_000000``, ...); the benchmark's parts are those index ranges. Read a block of rows at
  a time: bounded memory.
* ``pyskl``: a pyskl / mmaction2 annotation pickle (:mod:`.pyskl`). Names come from ``frame_dir``
  (the store is in name order, as every store is), labels and bodies from each annotation, the
  benchmarks from ``split`` in its order (``<bench>_val`` becomes the ``test`` part). A pickle is
  loaded whole.

Name fields (setup, camera, performer, replication for NTU; action, subject, take, view for NW-UCLA)
come from names of the data set's form and are -1 otherwise. The build's denoising counts
(``raw_frames``, ``removed_by_length``, ...) describe a pipeline run these formats do not record, so
an imported NTU store has no such columns. The root attributes ``source_format`` and ``names``
(``synthetic`` or ``frame_dir``) say where the samples came from.
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Mapping, Union

import numpy as np

from .._h5 import DEFAULT_COMPRESSION
from ..datasets import DatasetSpec, get_dataset
from ..errors import SkeldataError
from ..formats.ntu import parse_name
from ..formats.ucla import parse_ucla_name
from ..layouts import get_layout
from ..splits import PARTS, get_benchmark
from ..store import StoreWriter, sample_columns
from . import pyskl
from .sgn_npz import SgnNpzReader

PathLike = Union[str, Path]
Progress = Callable[[int], None]

#: A name field the source does not give.
UNKNOWN = -1

_NAME_FIELDS = {"ntu": ("setup", "camera", "performer", "replication"),
                "ucla": ("action", "subject", "take", "view")}


@dataclass
class ImportSummary:
    """What an import wrote, for the command's report and for tests."""

    source: str
    format: str
    dataset: str
    output: str
    samples: int = 0
    frames: int = 0
    splits: Dict[str, Dict[str, int]] = field(default_factory=dict)
    seconds: float = 0.0


def import_sgn_npz(path: PathLike, dataset: str, benchmark: str, out: PathLike, compression: str = DEFAULT_COMPRESSION,
                   progress: Progress = lambda n: None) -> ImportSummary:
    """An SGN-family npz of ``benchmark`` of ``dataset`` into a store at ``out``."""
    started = time.perf_counter()
    spec = get_dataset(dataset)
    with SgnNpzReader(path, spec) as reader:
        get_benchmark(spec.name, benchmark)
        with _writer(out, spec, path, "sgn-npz", "synthetic", compression) as writer:
            digits = max(6, len(str(max(reader.counts.values()))))
            for sample in reader.samples():
                row = _unknown_fields(spec)
                row.update(name=_synthetic_name(sample.part, sample.index, digits), label=sample.label,
                           n_frames=len(sample.joints), n_bodies=sample.n_bodies)
                writer.add_sample(row, sample.joints)
                progress(1)
            n_train = reader.counts["train"]
            splits = {benchmark: {"train": np.arange(n_train), "test": np.arange(n_train, len(writer))}}
            summary = _summarise(writer, splits, path, "sgn-npz", spec, out)
            writer.commit(splits)
    summary.seconds = time.perf_counter() - started
    return summary


def import_pyskl(path: PathLike, dataset: str, out: PathLike, compression: str = DEFAULT_COMPRESSION,
                 progress: Progress = lambda n: None) -> ImportSummary:
    """A pyskl / mmaction2 annotation pickle of ``dataset`` into a store at ``out``."""
    started = time.perf_counter()
    path = Path(path)
    spec = get_dataset(dataset)
    layout = get_layout(spec.layout)
    split, annotations = pyskl.read_annotation_file(path)
    names = pyskl.frame_dirs(annotations, path)
    order = sorted(range(len(names)), key=names.__getitem__)
    splits = _pyskl_splits(split, {names[i]: position for position, i in enumerate(order)}, spec, path)
    with _writer(out, spec, path, "pyskl", "frame_dir", compression) as writer:
        for i in order:
            label, keypoint = pyskl.check_annotation(annotations[i], i, path, layout.num_joints, spec.max_bodies,
                                                     spec.num_classes)
            n_bodies, n_frames = keypoint.shape[:2]
            joints = np.zeros((n_frames, spec.max_bodies) + keypoint.shape[2:], dtype=np.float32)
            joints[:, :n_bodies] = keypoint.transpose(1, 0, 2, 3)
            row = _name_fields(spec, names[i], label, f"{path}: annotation {i} ({names[i]})")
            row.update(name=names[i], label=label, n_frames=n_frames, n_bodies=n_bodies)
            writer.add_sample(row, joints)
            progress(1)
        summary = _summarise(writer, splits, path, "pyskl", spec, out)
        writer.commit(splits)
    summary.seconds = time.perf_counter() - started
    return summary


def _writer(out: PathLike, spec: DatasetSpec, source: PathLike, fmt: str, names: str,
            compression: str) -> StoreWriter:
    attrs = {"sources": [str(Path(source).resolve())], "source_format": fmt, "names": names,
             "pipeline": {"reference": f"not recorded: imported from a {fmt} file, which does not say how "
                                       f"it was made"}}
    return StoreWriter(out, spec, kind="store", columns=sample_columns(spec, imported=True), compression=compression,
                       attrs=attrs)


def _summarise(writer: StoreWriter, splits: Mapping[str, Mapping[str, np.ndarray]], source: PathLike,
               fmt: str, spec: DatasetSpec, out: PathLike) -> ImportSummary:
    return ImportSummary(source=str(source), format=fmt, dataset=spec.name, output=str(out),
                         samples=len(writer),
                         frames=int(writer.column("n_frames").sum()) if len(writer) else 0,
                         splits={bench: {part: len(indices) for part, indices in parts.items()}
                                 for bench, parts in splits.items()})


def _synthetic_name(part: str, index: int, digits: int) -> str:
    """``1_train_000000``, ..., ``2_test_000000``, ...: row ``index`` of ``x_<part>``, named so that the
    names sort in file order (train, then test), as a store's names must."""
    return f"{PARTS.index(part) + 1}_{part}_{index:0{digits}d}"


def _unknown_fields(spec: DatasetSpec) -> dict:
    return dict.fromkeys(_NAME_FIELDS[spec.family], UNKNOWN)


def _name_fields(spec: DatasetSpec, name: str, label: int, where: str) -> dict:
    """The fields a sample name of the data set's form gives (checked against the label and the data
    set), or -1 for each when the name has another form."""
    parse = parse_ucla_name if spec.family == "ucla" else parse_name
    try:
        fields = parse(name)
    except ValueError:
        return _unknown_fields(spec)
    if fields.label != label:
        raise SkeldataError(f"{where}: label {label} but the name says class {fields.label}")
    if spec.family == "ntu" and fields.setup > spec.max_setup:
        raise SkeldataError(f"{where}: setup S{fields.setup:03d} is outside {spec.name} "
                            f"(S001-S{spec.max_setup:03d})")
    return {key: getattr(fields, key) for key in _NAME_FIELDS[spec.family]}


def _pyskl_splits(split: Mapping[str, list], index: Mapping[str, int], spec: DatasetSpec,
                  path: Path) -> Dict[str, Dict[str, np.ndarray]]:
    """The pickle's ``split`` as store index arrays, in the pickle's order."""
    splits: Dict[str, Dict[str, np.ndarray]] = {}
    for key, benchmark, part, names in pyskl.iter_split(split, path):
        if benchmark not in spec.benchmarks:
            raise SkeldataError(f"{path}: split {key!r}: {spec.name} has no benchmark {benchmark!r} "
                                f"(its benchmarks: {', '.join(spec.benchmarks)})")
        if part in splits.get(benchmark, {}):
            raise SkeldataError(f"{path}: split {key!r} is a second {benchmark} {part} part")
        unknown = [name for name in names if name not in index]
        if unknown:
            raise SkeldataError(f"{path}: split {key!r} lists {unknown[0]!r}, which has no annotation"
                                + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""))
        repeated = [name for name, count in Counter(names).items() if count > 1]
        if repeated:
            raise SkeldataError(f"{path}: split {key!r} lists {repeated[0]!r} more than once")
        splits.setdefault(benchmark, {})[part] = np.array([index[name] for name in names], dtype=np.int64)
    for benchmark, parts in splits.items():
        for part in PARTS:
            if part not in parts:
                present = pyskl.split_key(benchmark, next(iter(parts)))
                raise SkeldataError(f"{path}: split has {present} but no {pyskl.split_key(benchmark, part)}")
    return splits
