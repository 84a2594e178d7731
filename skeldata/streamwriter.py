"""Writing a store's stream datasets chunk by chunk, with the heavy work in worker processes.

The writer process only cuts the joint rows into chunks (in store order) and copies bytes. Each
chunk is *encoded* by :func:`encode_chunk`, in a worker when there is a pool: the bone and motion
rows are derived from the joint rows, every stream's rows are compressed into exactly the bytes
HDF5 can decode for that chunk, and each is checksummed. The writer stores the bytes with HDF5's
direct chunk write and joins the checksums into the CRC-32 of each whole dataset
(``skeldata._crc``). The values are those of :func:`skeldata.pipeline.streams.derive` on each
sample: the motion of a sample's last frame is zero, and a chunk's last row looks one row ahead.
"""
from __future__ import annotations

import functools
import os
import threading
import zlib
from collections import deque
from typing import Deque, Dict, List, Optional, Sequence, Tuple

import h5py
import numpy as np

from ._crc import crc32_combine
from ._h5 import COMPRESSION, DEFAULT_COMPRESSION
from ._parallel import WorkerPool
from .layouts import get_layout
from .pipeline.streams import derive, motion_with_sample_ends

try:  # the compiled shuffle + LZF encoder; without it HDF5's own filters encode each chunk
    from . import _lzf_c
except ImportError:  # pragma: no cover - built at install time wherever a C compiler exists
    _lzf_c = None

#: stream -> (stored bytes, HDF5 filter mask, CRC-32 of the real rows)
Encoded = Dict[str, Tuple[bytes, int, int]]
#: The filter mask of a chunk whose optional LZF filter (second in the shuffle + LZF pipeline) was skipped.
LZF_SKIPPED = 0b10


def derive_chunk_rows(stream: str, joints: np.ndarray, last_frame: np.ndarray, next_row: Optional[np.ndarray],
                      layout_name: str) -> np.ndarray:
    """The rows of ``stream`` for a run of joint rows that may span several samples.

    Args:
        joints: ``(n, M, V, C)`` consecutive rows of the joint stream.
        last_frame: ``(n,)`` True where a row is the last frame of its sample.
        next_row: the joint row after the run, or ``None`` at the end of the stream.
    """
    if stream != "motion":  # joint and bone rows depend on their own frame only
        return derive(stream, joints, get_layout(layout_name))
    return motion_with_sample_ends(joints, last_frame, next_row)


def encode_chunk(joints: np.ndarray, last_frame: np.ndarray, next_row: Optional[np.ndarray],
                 streams: Sequence[str], layout_name: str, compression: str, chunk_rows: int) -> Encoded:
    """Every stream's stored bytes and CRC-32 (of the real rows) for one chunk. Runs in a worker."""
    encoded = {}
    for stream in streams:
        rows = np.ascontiguousarray(derive_chunk_rows(stream, joints, last_frame, next_row, layout_name))
        crc = zlib.crc32(rows)
        if len(rows) < chunk_rows:  # the last chunk is stored whole, zero filled, as HDF5 does
            rows = np.concatenate([rows, np.zeros((chunk_rows - len(rows),) + rows.shape[1:], dtype=rows.dtype)])
        encoded[stream] = _compress(rows, compression) + (crc,)
    return encoded


def _compress(chunk: np.ndarray, compression: str) -> Tuple[bytes, int]:
    """The bytes HDF5 stores for one whole chunk under ``compression``, and their filter mask.

    LZF goes through the compiled encoder (``skeldata/_lzf_c.c``): a different LZF stream from the
    one h5py's filter writes (about 1 % larger on joint coordinates, 3-4x faster to make) that every
    LZF decoder turns back into the same bytes. Anything else, or LZF without the compiled encoder,
    is encoded by HDF5 itself in a scratch dataset.
    """
    if not COMPRESSION[compression]:
        return chunk.tobytes(), 0
    if compression == "lzf" and _lzf_c is not None:
        data, compressed = _lzf_c.shuffle_lzf(np.ascontiguousarray(chunk), chunk.dtype.itemsize)
        return data, 0 if compressed else LZF_SKIPPED  # not smaller: stored shuffled, LZF marked skipped, as HDF5 does
    with _SCRATCH_LOCK:  # one scratch dataset per shape, shared by the threads of a threaded build
        scratch = _scratch_dataset(chunk.shape, chunk.dtype.str, compression)
        scratch[...] = chunk
        mask, data = scratch.id.read_direct_chunk((0,) * chunk.ndim)
    return data, mask


_SCRATCH_LOCK = threading.Lock()


@functools.lru_cache(maxsize=8)
def _scratch_dataset(shape: Tuple[int, ...], dtype: str, compression: str) -> h5py.Dataset:
    """A one-chunk dataset in an in-memory HDF5 file (no chunk cache: writes go straight through)."""
    name = f"skeldata-scratch-{os.getpid()}-{'x'.join(map(str, shape))}-{dtype}-{compression}"
    h5 = h5py.File(name, "w", driver="core", backing_store=False, rdcc_nbytes=0)
    return h5.create_dataset("chunk", shape=shape, chunks=shape, dtype=dtype, **COMPRESSION[compression])


class StreamWriter:
    """The ``/streams`` datasets of a store, written sample by sample in store order.

    The chunks are encoded in the workers of ``pool``, at most ``8 * jobs`` ahead, when it has threads
    (encoding releases the GIL) or, for processes, when there are derived streams to store.
    """

    def __init__(self, group: h5py.Group, streams: Sequence[str], row_shape: Tuple[int, ...], layout_name: str,
                 chunk_rows: int, compression: str = DEFAULT_COMPRESSION, pool: Optional[WorkerPool] = None):
        if compression not in COMPRESSION:
            raise ValueError(f"unknown compression {compression!r}; choose one of {', '.join(COMPRESSION)}")
        self.streams = tuple(streams)
        self.row_shape = tuple(row_shape)
        self.row_bytes = int(np.prod(row_shape)) * 4
        self.layout_name = layout_name
        self.chunk_rows = chunk_rows
        self.compression = compression
        # With the joint stream alone, the round trip of its rows to a worker process costs about as much as
        # compressing them here (measured: a 1,000-file build is 0.2-0.3 s faster this way); derived
        # streams are worth the trip. Threads share the rows: no trip.
        self.pool = pool if pool is not None and (len(self.streams) > 1 or pool.threads) else WorkerPool(1)
        self.datasets = {name: group.create_dataset(name, shape=(0,) + self.row_shape, maxshape=(None,) + self.row_shape,
                                                    dtype=np.float32, chunks=(chunk_rows,) + self.row_shape,
                                                    **COMPRESSION[compression])
                         for name in self.streams}
        self.crcs = {name: 0 for name in self.streams}
        self._extent = 0  # rows the datasets hold room for; grown geometrically, trimmed by close()
        self._rows_written = 0
        self._rows: List[np.ndarray] = []
        self._last: List[np.ndarray] = []
        self._pending = 0
        self._chunks = 0
        self._in_flight: Deque[Tuple[int, int, object]] = deque()

    def append(self, joints: np.ndarray) -> None:
        """Add one sample's joint rows ``(T, M, V, C)``."""
        last = np.zeros(len(joints), dtype=bool)
        last[-1:] = True
        self._rows.append(joints)
        self._last.append(last)
        self._pending += len(joints)
        if self._pending > self.chunk_rows:  # a whole chunk and the row after it
            rows, last_frame = np.concatenate(self._rows), np.concatenate(self._last)
            whole = (len(rows) - 1) // self.chunk_rows * self.chunk_rows
            for start in range(0, whole, self.chunk_rows):
                self._dispatch(rows[start:start + self.chunk_rows], last_frame[start:start + self.chunk_rows],
                               rows[start + self.chunk_rows])
            self._rows, self._last = [rows[whole:]], [last_frame[whole:]]
            self._pending = len(rows) - whole

    def _dispatch(self, rows: np.ndarray, last_frame: np.ndarray, next_row: Optional[np.ndarray]) -> None:
        args = (np.ascontiguousarray(rows), last_frame, next_row, self.streams, self.layout_name,
                self.compression, self.chunk_rows)
        self._in_flight.append((self._chunks, len(rows), self.pool.submit(encode_chunk, *args)))
        self._chunks += 1
        self._write_ready(keep=8 * self.pool.jobs if self.pool.parallel else 0)

    def _write_ready(self, keep: int) -> None:
        """Store the encoded chunks that are ready, waiting while more than ``keep`` are in flight."""
        while self._in_flight and (len(self._in_flight) > keep or self._in_flight[0][2].done()):
            index, n_rows, future = self._in_flight.popleft()
            encoded = future.result()
            end = index * self.chunk_rows + n_rows
            offset = (index * self.chunk_rows,) + (0,) * len(self.row_shape)
            if end > self._extent:  # a resize per chunk cost 0.2 s of a 1,000-file build; double instead
                self._extent = max(end, 2 * self._extent, 64 * self.chunk_rows)
                for dataset in self.datasets.values():
                    dataset.resize(self._extent, axis=0)
            self._rows_written = end  # chunks are stored in order
            for name, dataset in self.datasets.items():
                data, mask, crc = encoded[name]
                dataset.id.write_direct_chunk(offset, data, filter_mask=mask)
                self.crcs[name] = crc32_combine(self.crcs[name], crc, n_rows * self.row_bytes)

    def close(self) -> None:
        """Encode what is left, wait for every chunk, record the checksums."""
        if self._pending:
            rows, last_frame = np.concatenate(self._rows), np.concatenate(self._last)
            for start in range(0, len(rows), self.chunk_rows):
                stop = start + self.chunk_rows
                self._dispatch(rows[start:stop], last_frame[start:stop], rows[stop] if stop < len(rows) else None)
            self._rows, self._last, self._pending = [], [], 0
        self._write_ready(keep=0)
        for name, dataset in self.datasets.items():
            dataset.resize(self._rows_written, axis=0)
            dataset.attrs["crc32"] = self.crcs[name]

