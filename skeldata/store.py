"""The skeldata store: one HDF5 file per data set, frames ragged (no padding).

Layout (``docs/store-format.md`` is the full specification)::

    /                       attributes: format, format_version, kind, complete, dataset, layout, ...
    /samples/<column>       one row per sample, in store order (sample names sorted)
    /samples/offset         (N + 1,) int64: sample i owns frames offset[i]:offset[i + 1]
    /streams/<stream>       (frames, bodies, joints, 3) float32, chunked and compressed
    /splits/<bench>/<part>  int64 indices into the samples, in the published order
    /dropped/<column>       the files left out: name, reason, detail

The same layout serves two kinds: ``denoised`` (output of ``skeldata denoise``: the selected
actors, not centred, joint stream only) and ``store`` (the final store: centred, with bone and
motion streams and the benchmark splits).
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from ._h5 import (DEFAULT_COMPRESSION, AtomicH5File, ColumnBuffer, LazyH5Reader, hdf5_versions, read_table,
                  write_column, write_strings)
from .datasets import DatasetSpec, get_dataset
from .layouts import PLAUSIBLE_COORDINATE, get_layout
from .pipeline.streams import STREAMS, derive
from .errors import StoreDataError
from .streamwriter import StreamWriter



def check_frames(frames: np.ndarray, damaged, bound: float = PLAUSIBLE_COORDINATE) -> None:
    """Raise ``damaged(what)`` when ``frames`` hold a value that is not finite or beyond ``bound``."""
    if not np.isfinite(frames).all():
        raise damaged("hold a value that is not finite")
    if frames.size and np.abs(frames).max() > bound:
        raise damaged(f"hold a coordinate of {float(np.abs(frames).max()):.3g} m (beyond {bound:g} m)")

DEFAULT_CHUNK_FRAMES = 512
#: Streams a store holds as datasets unless told otherwise. Bone and motion are functions of the
#: joints: storing them triples the size and the build time (measured in docs/design.md), and
#: Store.sequence serves them either way. ``skeldata build --streams joint,bone,motion`` stores all.
DEFAULT_STREAMS = ("joint",)

#: Per-sample columns of an NTU store, with their types. ``n_frames`` and ``n_bodies`` describe the
#: stored sequence; the rest records where it came from and what the pipeline did to it.
NTU_SAMPLE_COLUMNS = {
    "name": str,
    "label": np.int16,
    "setup": np.int16,
    "camera": np.int16,
    "performer": np.int16,
    "replication": np.int16,
    "n_frames": np.int32,
    "n_bodies": np.int8,
    "raw_frames": np.int32,
    "frames_dropped": np.int32,
    "bodies": np.int16,
    "removed_by_length": np.int16,
    "removed_by_spread": np.int16,
    "unassigned": np.int16,
    "rows_removed": np.int32,
}

#: Per-sample columns of an NW-UCLA store.
UCLA_SAMPLE_COLUMNS = {
    "name": str,
    "label": np.int16,
    "action": np.int16,
    "subject": np.int16,
    "take": np.int16,
    "view": np.int16,
    "n_frames": np.int32,
    "n_bodies": np.int8,
}


#: Per-sample columns of an NTU store made by ``skeldata import`` (``docs/formats.md``): the sample's
#: identity and shape, without the denoising counts of a pipeline run the imported formats do not record.
IMPORTED_NTU_COLUMNS = {name: NTU_SAMPLE_COLUMNS[name] for name in (
    "name", "label", "setup", "camera", "performer", "replication", "n_frames", "n_bodies")}


#: Per-sample columns of an NTU store built with ``--pipeline stgcn``: the identity, the stored shape
#: (always 300 frames), the raw frame counts and the body slots the file used.
STGCN_SAMPLE_COLUMNS = {name: NTU_SAMPLE_COLUMNS[name] for name in (
    "name", "label", "setup", "camera", "performer", "replication", "n_frames", "n_bodies", "raw_frames",
    "frames_dropped", "bodies")}


def pipeline_name(attrs: Mapping[str, object]) -> str:
    """``sgn`` or ``stgcn``: the ``skeldata build --pipeline`` that made a file, from its ``pipeline``
    attribute (stores written before the attribute named it are ``sgn``)."""
    attribute = attrs.get("pipeline")
    return attribute.get("name", "sgn") if isinstance(attribute, dict) else "sgn"


def sample_columns(spec: DatasetSpec, imported: bool = False, pipeline: str = "sgn") -> Dict[str, object]:
    """The per-sample columns of a store of this data set (``imported``: made by ``skeldata import``;
    ``pipeline``: the ``skeldata build --pipeline`` that made it)."""
    if spec.family == "ucla":
        return UCLA_SAMPLE_COLUMNS
    if pipeline == "stgcn":
        return STGCN_SAMPLE_COLUMNS
    return IMPORTED_NTU_COLUMNS if imported else NTU_SAMPLE_COLUMNS


#: Denoising counts summed over a store (``skeldata stats``, the build summary).
REPORT_COLUMNS = ("frames_dropped", "removed_by_length", "removed_by_spread", "unassigned", "rows_removed")


class StoreWriter:
    """Writes a store (or a denoised file) sample by sample, in store order, in bounded memory.

    Usage::

        with StoreWriter(path, spec, kind="store") as writer:
            for row, joints in samples:          # joints (T, bodies, joints, 3) float32
                writer.add_sample(row, joints)
            writer.add_dropped(name, "no_body", "all 27 frames have 0 bodies")
            writer.commit()                       # splits, tables, complete=True, rename

    Leaving the block without :meth:`commit` removes the temporary file. With a parallel ``pool``
    the chunks are compressed in its worker processes.
    """

    def __init__(self, path: Union[str, Path], spec: DatasetSpec, kind: str = "store",
                 streams: Sequence[str] = DEFAULT_STREAMS, columns: Mapping[str, object] = NTU_SAMPLE_COLUMNS,
                 compression: str = DEFAULT_COMPRESSION, chunk_frames: int = DEFAULT_CHUNK_FRAMES,
                 attrs: Optional[Mapping[str, object]] = None, pool=None):
        self.spec = spec
        self.layout = get_layout(spec.layout)
        self.kind = kind
        if "joint" not in streams or not set(streams) <= set(STREAMS):
            raise ValueError(f"streams must include 'joint' and be among {', '.join(STREAMS)}; got {', '.join(streams)}")
        self.stream_names = tuple(s for s in STREAMS if s in streams)
        root_attrs = {
            "dataset": spec.name,
            "layout": spec.layout,
            "num_classes": spec.num_classes,
            "max_bodies": spec.max_bodies,
            "num_joints": self.layout.num_joints,
            "single_body_fill": spec.single_body_fill,
            "streams": list(self.stream_names),
            "compression": compression,
            "chunk_frames": chunk_frames,
        }
        root_attrs.update(attrs or {})
        self._file = AtomicH5File(path, kind, root_attrs)
        h5 = self._file.file
        row_shape = (spec.max_bodies, self.layout.num_joints, 3)
        self._streams = StreamWriter(h5.create_group("streams"), self.stream_names, row_shape, spec.layout,
                                     chunk_frames, compression, pool)
        self._samples = ColumnBuffer(columns)
        self._offsets: List[int] = [0]
        self._dropped = ColumnBuffer({"name": str, "reason": str})
        self._dropped_details: List[str] = []

    def add_sample(self, row: Mapping[str, object], joints: np.ndarray) -> None:
        """Append one sample: its column values and its joints ``(T, bodies, joints, 3)``."""
        self._samples.append(row)
        self._streams.append(joints)
        self._offsets.append(self._offsets[-1] + len(joints))

    def add_dropped(self, name: str, reason: str, detail: str) -> None:
        """Record a file that yields no sample, with its reason code and a sentence for people."""
        self._dropped.append({"name": name, "reason": reason})
        self._dropped_details.append(detail)

    def __len__(self) -> int:
        return len(self._samples)

    def column(self, name: str) -> np.ndarray:
        return self._samples.column(name)

    def commit(self, splits: Optional[Mapping[str, Mapping[str, np.ndarray]]] = None) -> None:
        """Write the tables and the splits, mark the file complete and move it into place."""
        h5 = self._file.file
        self._streams.close()
        samples = h5.create_group("samples")
        self._samples.write(samples)
        write_column(samples, "offset", np.asarray(self._offsets, dtype=np.int64))
        split_group = h5.create_group("splits")
        for bench, parts in (splits or {}).items():
            group = split_group.create_group(bench)
            for part, indices in parts.items():
                write_column(group, part, np.asarray(indices, dtype=np.int64))
        dropped = h5.create_group("dropped")
        self._dropped.write(dropped)
        write_strings(dropped, "detail", self._dropped_details)
        h5.attrs["num_samples"] = len(self._samples)
        h5.attrs["num_frames"] = self._offsets[-1]
        self._file.commit()

    def __enter__(self) -> "StoreWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._file.__exit__(exc_type, exc, tb)


def compute_splits(spec: DatasetSpec, columns: Mapping[str, np.ndarray]) -> Dict[str, Dict[str, np.ndarray]]:
    """Index arrays of every benchmark part, from the per-sample attribute columns."""
    return {name: {part: bench.indices(columns[bench.attribute], part) for part in ("train", "test")}
            for name, bench in spec.benchmarks.items()}


class Store(LazyH5Reader):
    """Read-only access to a store. Safe to hand to DataLoader workers (fork or spawn): the HDF5
    file is opened lazily in each process and never pickled.

    Use :func:`open_store` to get one.
    """

    kind = "store"

    def __init__(self, path: Union[str, Path]):
        super().__init__(path)
        self.dataset = get_dataset(self.attrs["dataset"])
        self.layout = get_layout(self.attrs["layout"])
        self.offsets: np.ndarray = self._file()["samples/offset"][()]
        self._samples = None

    # -- contents --------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __repr__(self) -> str:
        benches = ", ".join(self.benchmarks) or "none"
        return (f"Store({str(self.path)!r}, dataset={self.dataset.name}, samples={len(self)}, "
                f"frames={int(self.offsets[-1])}, streams={','.join(self.streams)}, benchmarks={benches})")

    # -- typed root attributes (csre_models and other readers use these, never ``attrs[...]``) ------
    @property
    def num_classes(self) -> int:
        """Action classes of the data set (labels are ``0 .. num_classes - 1``)."""
        return int(self.attrs["num_classes"])

    @property
    def max_bodies(self) -> int:
        """Body slots of every frame (M)."""
        return int(self.attrs["max_bodies"])

    @property
    def num_joints(self) -> int:
        """Joints of every body (V)."""
        return int(self.attrs["num_joints"])

    @property
    def num_frames(self) -> int:
        """Frames stored over all samples (the rows of each stream)."""
        return int(self.attrs["num_frames"])

    @property
    def single_body_fill(self) -> str:
        """``zero`` or ``duplicate``: what the published arrays hold in the second slot of one-actor samples."""
        return str(self.attrs.get("single_body_fill", "zero"))

    @property
    def pipeline(self) -> str:
        """``sgn`` or ``stgcn``: the ``skeldata build --pipeline`` that made the store."""
        return pipeline_name(self.attrs)

    def fingerprint(self) -> Dict[str, object]:
        """What identifies the store's content: ``{"dataset", "num_samples", "digest"}``, the digest a hash of
        the CRC-32 attributes written on every stream, sample column and split. A rebuilt, identical store
        matches; a store with any other frame, label or split does not; the file name plays no part.
        Training checkpoints record it (``--resume`` compares it), so its value must never change."""
        h5 = self._file()
        checksums: List[str] = []
        for group in ("samples", "streams", "splits"):
            if group in h5:
                h5[group].visititems(lambda name, item, group=group: checksums.append(
                    f"{group}/{name}:{int(item.attrs['crc32'])}") if "crc32" in item.attrs else None)
        digest = hashlib.sha256("\n".join(sorted(checksums)).encode()).hexdigest()[:16]
        return {"dataset": str(self.attrs.get("dataset")), "num_samples": int(self.attrs.get("num_samples", -1)),
                "digest": digest}

    @property
    def stored_streams(self) -> Tuple[str, ...]:
        """The streams held as datasets in the file (``joint`` always; ``bone``/``motion`` when built so)."""
        return tuple(self.attrs.get("streams", ()))

    @property
    def streams(self) -> Tuple[str, ...]:
        """Every stream :meth:`sequence` serves: the stored ones, and those derived from the joints."""
        return STREAMS if "joint" in self.stored_streams else self.stored_streams

    @property
    def samples(self):
        """``pandas.DataFrame`` with one row per sample, in store order."""
        if self._samples is None:
            import pandas as pd
            columns = read_table(self._file()["samples"])
            columns.pop("offset", None)
            self._samples = pd.DataFrame(columns)
        return self._samples

    def column(self, name: str) -> np.ndarray:
        """One per-sample column as a numpy array (cheaper than :attr:`samples` for one column)."""
        return read_table(self._file()["samples"], [name])[name]

    @property
    def names(self) -> List[str]:
        return list(self.column("name"))

    def index_of(self, name: str) -> int:
        """Store index of the sample called ``name``."""
        matches = np.flatnonzero(self.column("name") == name)
        if not len(matches):
            raise KeyError(f"{self.path}: no sample named {name!r}")
        return int(matches[0])

    def sequence(self, i: int, stream: str = "joint") -> np.ndarray:
        """Frames of sample ``i``: float32 ``(T_i, bodies, joints, 3)``.

        ``bone`` and ``motion`` are read when the store holds them and otherwise computed from the
        joints (:mod:`skeldata.pipeline.streams`); both ways give the same values.
        """
        if stream not in self.streams:
            raise KeyError(f"{self.path} has no stream {stream!r}; it has {', '.join(self.streams)}")
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"sample index {i} out of range for a store of {n} samples")
        i %= n
        start, stop = self.offsets[i], self.offsets[i + 1]
        source = stream if stream in self.stored_streams else "joint"
        try:
            frames = self._object(f"streams/{source}")[start:stop]
        except OSError as exc:      # HDF5 could not read or decompress a chunk
            raise self._damaged(i, f"its {source} frames cannot be read ({str(exc).splitlines()[0]})") from None
        # Bone and motion values are differences of two joints: up to twice a joint's bound.
        check_frames(frames, lambda what: self._damaged(i, f"its {source} frames {what}"),
                     PLAUSIBLE_COORDINATE * (1 if source == "joint" else 2))
        return frames if source == stream else derive(stream, frames, self.layout)

    def _damaged(self, i: int, what: str) -> StoreDataError:
        return StoreDataError(f"{self.path}: sample {self.names[i]} (index {i}): {what}; the store is damaged: "
                              f"run skeldata verify {self.path}")

    @property
    def benchmarks(self) -> List[str]:
        return list(self._file().get("splits", {}))

    def split(self, benchmark: str, part: str) -> np.ndarray:
        """Indices of the samples in ``part`` (``train`` or ``test``) of ``benchmark``, in published order."""
        splits = self._file().get("splits", {})
        if benchmark not in splits:
            raise KeyError(f"{self.path} has no benchmark {benchmark!r}; it has {', '.join(splits) or 'none'}")
        if part not in splits[benchmark]:
            raise KeyError(f"benchmark {benchmark!r} has no part {part!r}; parts: {', '.join(splits[benchmark])}")
        return splits[benchmark][part][()]

    @property
    def dropped(self):
        """``pandas.DataFrame`` of the files left out: name, reason, detail."""
        import pandas as pd
        return pd.DataFrame(read_table(self._file()["dropped"], ["name", "reason", "detail"]))


def library_versions() -> Dict[str, str]:
    """Versions of the libraries that read and write stores (h5py and HDF5), for run records."""
    return hdf5_versions()


def open_store(path: Union[str, Path]) -> Store:
    """Open a store read-only. Raises :class:`StoreError` with the reason when it is not a complete store."""
    return Store(path)


class DenoisedFile(Store):
    """The output of ``skeldata denoise``: the store layout, joints not yet centred, no splits."""

    kind = "denoised"
