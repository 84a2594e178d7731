"""The ``.npy`` members of an ``.npz`` archive, read a block of rows at a time.

``np.load`` reads an npz member whole, and the padded arrays of the SGN-family files are 10 GB and
more. Here a member is opened as a stream inside the zip archive (stored or deflated alike), its
header is parsed with ``np.lib.format``, and rows are decoded as they are needed, so memory is a
block of rows whatever the size of the file.
"""
from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Tuple, Union

import numpy as np

from ..errors import SkeldataError


@dataclass(frozen=True)
class NpyHeader:
    """What the header of an ``.npy`` member says about its array."""

    shape: Tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool

    @property
    def row_bytes(self) -> int:
        """Bytes of one row (one index along the first axis)."""
        return int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize


class NpzArchive:
    """An ``.npz`` file opened for reading member by member, row block by row block.

    Usage::

        with NpzArchive("NTU60_CS.npz") as npz:
            npz.keys()                          # ['x_train', 'y_train', 'x_test', 'y_test']
            npz.header("x_train").shape         # (40091, 300, 150)
            for block in npz.iter_rows("x_train", 256):
                ...                             # (<= 256, 300, 150) float32

    Raises:
        SkeldataError: the file is not a zip archive, a member is not an ``.npy`` array, or a member
            ends before the rows its header announces.
    """

    def __init__(self, path: Union[str, Path]):
        self.path = Path(path)
        try:
            self._zip = zipfile.ZipFile(self.path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise SkeldataError(f"{self.path}: not an npz file ({exc})") from None

    def keys(self) -> List[str]:
        """The array names, in archive order (``np.savez`` order)."""
        return [name[:-len(".npy")] for name in self._zip.namelist() if name.endswith(".npy")]

    def header(self, key: str) -> NpyHeader:
        with self._zip.open(f"{key}.npy") as member:
            return self._read_header(key, member)

    def iter_rows(self, key: str, block_rows: int) -> Iterator[np.ndarray]:
        """The array ``key`` in blocks of at most ``block_rows`` rows, first axis first."""
        with self._zip.open(f"{key}.npy") as member:
            header = self._read_header(key, member)
            if header.fortran_order:
                raise SkeldataError(f"{self.path}: {key} is stored in Fortran order; rows can only be "
                                    f"streamed from a C-order array (np.savez of a C-contiguous array)")
            total = header.shape[0] if header.shape else 0
            for start in range(0, total, block_rows):
                rows = min(block_rows, total - start)
                data = self._read_exactly(member, rows * header.row_bytes, key, start, total)
                yield np.frombuffer(data, dtype=header.dtype).reshape((rows,) + header.shape[1:])

    def _read_header(self, key: str, member) -> NpyHeader:
        try:
            version = np.lib.format.read_magic(member)
            if version == (1, 0):
                shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(member)
            elif version == (2, 0):
                shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(member)
            else:
                raise ValueError(f"unsupported .npy format version {version[0]}.{version[1]}")
        except (ValueError, zipfile.BadZipFile) as exc:
            raise SkeldataError(f"{self.path}: member {key}.npy is not a numpy array ({exc})") from None
        if dtype.hasobject:
            raise SkeldataError(f"{self.path}: {key} holds Python objects; expected numbers")
        return NpyHeader(tuple(int(n) for n in shape), dtype, bool(fortran_order))

    def _read_exactly(self, member, size: int, key: str, start: int, total: int) -> bytes:
        chunks = []
        wanted = size
        try:
            while wanted:
                chunk = member.read(wanted)
                if not chunk:
                    raise SkeldataError(f"{self.path}: {key} ends inside row {start} of the {total} its header "
                                        f"announces (truncated file?)")
                chunks.append(chunk)
                wanted -= len(chunk)
        except zipfile.BadZipFile as exc:
            raise SkeldataError(f"{self.path}: {key} is damaged ({exc})") from None
        return b"".join(chunks)

    def close(self) -> None:
        self._zip.close()

    def __enter__(self) -> "NpzArchive":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
