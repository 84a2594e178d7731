"""HDF5 plumbing shared by every file skeldata writes: atomic creation, chunk-aligned appends with a
running checksum, and column tables.

Atomicity: a file is written under a temporary name beside its destination, its root attribute
``complete`` is set last, and only then is it renamed over the destination. An interrupted write
leaves at most the temporary file (removed on the way out when Python can), never a file that opens
as a store under the requested name.
"""
from __future__ import annotations

import json
import os
import platform
import zlib
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import h5py
import numpy as np

from ._version import __version__
from .output import temporary_path, write_failure

FORMAT_NAME = "skeldata"
FORMAT_VERSION = 1

#: Compression choices: name -> h5py dataset keyword arguments.
COMPRESSION = {
    "lzf": {"compression": "lzf", "shuffle": True},
    "gzip": {"compression": "gzip", "compression_opts": 4, "shuffle": True},
    "none": {},
}
#: The compression a writer uses unless told otherwise.
DEFAULT_COMPRESSION = "lzf"


def hdf5_versions() -> Dict[str, str]:
    """Versions of h5py and of the HDF5 library it was built with."""
    return {"h5py": h5py.__version__, "hdf5": h5py.version.hdf5_version}


def writer_versions() -> Dict[str, str]:
    """Versions of what writes a file, recorded in its attributes."""
    return {"skeldata": __version__, "numpy": np.__version__, **hdf5_versions(),
            "python": platform.python_version()}


class AtomicH5File:
    """An HDF5 file created under a temporary name and moved into place by :meth:`commit`.

    Use as a context manager: leaving the block without :meth:`commit` (an exception, Ctrl-C)
    deletes the temporary file and leaves any existing file at ``path`` untouched.
    """

    def __init__(self, path: Union[str, Path], kind: str, attrs: Mapping[str, object]):
        self.path = Path(path)
        if self.path.is_dir():
            raise IsADirectoryError(f"{self.path} is a directory; give the path of the .h5 file to write")
        if not self.path.parent.exists():
            raise FileNotFoundError(f"cannot write {self.path}: folder {self.path.parent} does not exist")
        self.tmp_path = temporary_path(self.path)
        self.file = h5py.File(self.tmp_path, "w")
        root = self.file.attrs
        root["format"] = FORMAT_NAME
        root["format_version"] = FORMAT_VERSION
        root["kind"] = kind
        root["complete"] = False
        root["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        root["writer"] = json.dumps(writer_versions())
        for key, value in attrs.items():
            root[key] = json.dumps(value) if isinstance(value, (dict, list, tuple)) else value

    def commit(self) -> None:
        """Mark the file complete, close it and move it to its destination."""
        self.file.attrs["complete"] = True
        self.file.close()
        os.replace(self.tmp_path, self.path)

    def discard(self) -> None:
        """Close and remove the temporary file; on a full disk closing fails too, and it is removed anyway."""
        try:
            if self.file.id.valid:
                self.file.close()
        except Exception:  # noqa: BLE001 - HDF5 flushes on close; the file is being thrown away
            pass
        try:
            self.tmp_path.unlink()
        except FileNotFoundError:
            pass

    def __enter__(self) -> "AtomicH5File":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.tmp_path.exists():
            self.discard()
        if isinstance(exc, (OSError, RuntimeError)):
            failure = write_failure(self.path, exc)
            if failure is not None:
                raise failure from None


class FrameAppender:
    """Append ``(rows, *row_shape)`` blocks to a growable chunked dataset, in whole chunks.

    Rows are buffered until a full chunk is ready, so every chunk is compressed once, and a CRC-32
    of the row bytes in order is kept and stored as the dataset's ``crc32`` attribute on close.
    """

    def __init__(self, group: h5py.Group, name: str, row_shape: Tuple[int, ...], dtype,
                 chunk_rows: int, compression: str = DEFAULT_COMPRESSION):
        try:
            filters = COMPRESSION[compression]
        except KeyError:
            raise ValueError(f"unknown compression {compression!r}; choose one of {', '.join(COMPRESSION)}") from None
        self.dataset = group.create_dataset(name, shape=(0,) + tuple(row_shape), maxshape=(None,) + tuple(row_shape),
                                            dtype=dtype, chunks=(chunk_rows,) + tuple(row_shape), **filters)
        self.chunk_rows = chunk_rows
        self.pending: List[np.ndarray] = []
        self.pending_rows = 0
        self.rows = 0
        self.crc = 0

    def append(self, block: np.ndarray) -> None:
        self.pending.append(block)
        self.pending_rows += len(block)
        if self.pending_rows >= self.chunk_rows:
            self._flush(whole_chunks_only=True)

    def _flush(self, whole_chunks_only: bool) -> None:
        if not self.pending_rows:
            return
        data = np.concatenate(self.pending) if len(self.pending) > 1 else self.pending[0]
        take = (len(data) // self.chunk_rows) * self.chunk_rows if whole_chunks_only else len(data)
        if take:
            block = np.ascontiguousarray(data[:take], dtype=self.dataset.dtype)
            self.crc = zlib.crc32(block, self.crc)
            self.dataset.resize(self.rows + take, axis=0)
            self.dataset[self.rows:self.rows + take] = block
            self.rows += take
        rest = data[take:]
        self.pending = [rest] if len(rest) else []
        self.pending_rows = len(rest)

    def close(self) -> None:
        self._flush(whole_chunks_only=False)
        self.dataset.attrs["crc32"] = self.crc


def dataset_crc32(dataset: h5py.Dataset, block_rows: int = 1 << 16) -> int:
    """CRC-32 of a dataset's bytes in row order, read block by block."""
    crc = 0
    for start in range(0, dataset.shape[0], block_rows):
        crc = zlib.crc32(np.ascontiguousarray(dataset[start:start + block_rows]), crc)
    return crc


class ColumnBuffer:
    """Per-sample columns gathered in memory (a few bytes per sample) and written as one table."""

    def __init__(self, dtypes: Mapping[str, object]):
        self.dtypes = dict(dtypes)
        self.values: Dict[str, List] = {name: [] for name in self.dtypes}

    def append(self, row: Mapping[str, object]) -> None:
        for name, column in self.values.items():
            column.append(row[name])

    def __len__(self) -> int:
        return len(next(iter(self.values.values()))) if self.values else 0

    def column(self, name: str) -> np.ndarray:
        return _as_column(self.values[name], self.dtypes[name])

    def write(self, group: h5py.Group) -> None:
        for name in self.values:
            write_column(group, name, self.column(name))


def _as_column(values: Sequence, dtype) -> np.ndarray:
    if dtype is str:
        width = max((len(v) for v in values), default=1)
        return np.array([v.encode("utf-8") for v in values], dtype=f"S{max(width, 1)}")
    return np.asarray(values, dtype=dtype)


def write_column(group: h5py.Group, name: str, values: np.ndarray) -> None:
    dataset = group.create_dataset(name, data=values)
    dataset.attrs["crc32"] = zlib.crc32(np.ascontiguousarray(values))


def write_strings(group: h5py.Group, name: str, values: Iterable[str]) -> None:
    """Variable-length UTF-8 text column (free text such as reasons)."""
    group.create_dataset(name, data=list(values), dtype=h5py.string_dtype("utf-8"))


def read_table(group: h5py.Group, names: Optional[Sequence[str]] = None) -> Dict[str, np.ndarray]:
    """Columns of a table group as numpy arrays; fixed-width byte strings become ``str`` objects."""
    out = {}
    for name in names or list(group):
        values = group[name][()]
        if values.dtype.kind == "S":
            values = values.astype(str).astype(object)
        elif values.dtype.kind == "O":
            values = np.array([v.decode("utf-8") if isinstance(v, bytes) else v for v in values], dtype=object)
        out[name] = values
    return out


class LazyH5Reader:
    """Base of the read-only file classes: the HDF5 handle is opened on first use in each process and
    dropped when pickled, so an instance can be handed to DataLoader workers under fork or spawn."""

    kind = ""

    def __init__(self, path: Union[str, Path]):
        self.path = Path(path)
        self._h5: Optional[h5py.File] = None
        self._pid: Optional[int] = None
        self._objects: Dict[str, object] = {}
        self.attrs: Dict[str, object] = {key: decode_attr(value) for key, value in self._file().attrs.items()}

    def _file(self) -> h5py.File:
        if self._h5 is None or self._pid != os.getpid():
            # After a fork the parent's handle must not be used (nor closed) here: open our own.
            self._h5 = open_checked(self.path, self.kind)
            self._pid = os.getpid()
            self._objects = {}
        return self._h5

    def _object(self, name: str):
        """The HDF5 object at ``name``, looked up once per process (lookups cost tens of microseconds)."""
        h5 = self._file()
        if name not in self._objects:
            self._objects[name] = h5[name]
        return self._objects[name]

    def close(self) -> None:
        if self._h5 is not None and self._pid == os.getpid():
            self._h5.close()
        self._h5 = None
        self._objects = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_h5"] = None
        state["_pid"] = None
        state["_objects"] = {}
        return state


def open_checked(path: Path, kind: str) -> h5py.File:
    """Open a skeldata file read-only, checking that it is complete, of ``kind`` and of a known version."""
    from .errors import StoreError

    if not path.exists():
        raise StoreError(f"{path}: no such file")
    try:
        h5 = h5py.File(path, "r")
    except OSError as exc:
        raise StoreError(f"{path}: not an HDF5 file or unreadable ({exc})") from None
    attrs = h5.attrs
    problem = None
    if decode_attr(attrs.get("format")) != FORMAT_NAME:
        problem = "not a skeldata file (no 'format' attribute)"
    elif int(attrs.get("format_version", -1)) > FORMAT_VERSION:
        problem = (f"format version {int(attrs['format_version'])} is newer than this skeldata "
                   f"understands ({FORMAT_VERSION}); upgrade skeldata")
    elif not bool(attrs.get("complete", False)):
        problem = "incomplete: the write that produced it did not finish"
    elif decode_attr(attrs.get("kind")) != kind:
        problem = f"is a {decode_attr(attrs.get('kind'))!r} file, expected a {kind!r} file"
    if problem:
        h5.close()
        raise StoreError(f"{path}: {problem}")
    return h5


def decode_attr(value):
    """An attribute as Python: text decoded, JSON lists and objects parsed, numpy scalars unwrapped."""
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    if isinstance(value, np.generic):
        return value.item()
    return value
