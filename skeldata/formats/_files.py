"""Reading raw files: every way a path can fail to be a readable text file, as a plain per-file reason.

A build walks folders (or zip files, :mod:`._archives`) of tens of thousands of files. A folder or a
dangling link that happens to be named ``*.skeleton``, a file without read permission, a damaged zip
member, or a file saved in another text encoding must cost that one file (recorded with its reason),
never the build. Both readers (:mod:`.ntu`, :mod:`.ucla`) read through :func:`read_raw_bytes` and
:func:`check_text_encoding`.
"""
from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Union

import numpy as np

from ..errors import MalformedFileError
from ..layouts import PLAUSIBLE_COORDINATE
from ._archives import ArchiveMember, read_member

__all__ = ["RawSource", "raw_source", "read_raw_bytes", "check_text_encoding", "check_coordinates"]

#: Where a raw file is: a path, or a member of a zip file. Both have ``.name``; ``str()`` names it in messages.
RawSource = Union[Path, ArchiveMember]

#: Byte-order marks, longest first (UTF-32's start with UTF-16's), and the encodings they announce.
_BYTE_ORDER_MARKS = ((b"\xff\xfe\x00\x00", "UTF-32 (little-endian)"), (b"\x00\x00\xfe\xff", "UTF-32 (big-endian)"),
                     (b"\xef\xbb\xbf", "UTF-8 with a byte-order mark"), (b"\xff\xfe", "UTF-16 (little-endian)"),
                     (b"\xfe\xff", "UTF-16 (big-endian)"))


def raw_source(path: Union[str, Path, ArchiveMember]) -> RawSource:
    """``path`` as a :data:`RawSource`: a zip member stays one, anything else becomes a ``Path``."""
    return path if isinstance(path, ArchiveMember) else Path(path)


def read_raw_bytes(path: RawSource) -> bytes:
    """The bytes of ``path`` (a file or a zip member), or :class:`MalformedFileError` saying in plain words
    why it cannot be read."""
    if isinstance(path, ArchiveMember):
        return read_member(path)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise MalformedFileError(str(path), _unreadable(path, exc)) from None


def _unreadable(path: Path, exc: OSError) -> str:
    if path.is_dir():
        return "is a folder, not a file"
    if path.is_symlink() and not path.exists():
        return f"is a link to {os.readlink(path)}, which does not exist"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "cannot be read: permission denied"
    return f"cannot be read: {exc.strerror or exc}"


def check_text_encoding(data: bytes, source: str, expected: str) -> None:
    """Refuse text in an encoding other than ASCII / plain UTF-8, naming the encoding found."""
    for mark, encoding in _BYTE_ORDER_MARKS:
        if data.startswith(mark):
            raise MalformedFileError(source, f"is encoded as {encoding}; {expected} files are plain ASCII "
                                             f"(re-save it as ASCII, or UTF-8 without a byte-order mark)")
    if b"\x00" in data[:4096]:
        raise MalformedFileError(source, f"holds NUL bytes: a binary file, or UTF-16/UTF-32 text without a "
                                         f"byte-order mark; {expected} files are plain ASCII")


def check_coordinates(joints: np.ndarray, source: str, where=None) -> None:
    """Refuse coordinates that are not finite or beyond :data:`~skeldata.layouts.PLAUSIBLE_COORDINATE` once
    stored as float32 (``1e39`` is a finite float64 but an infinite float32). ``where(index)`` describes
    the flat position of the first bad value."""
    with np.errstate(invalid="ignore", over="ignore"):
        values = np.asarray(joints, dtype=np.float32)
        bad = ~(np.abs(values) <= PLAUSIBLE_COORDINATE)
    if bad.any():
        first = int(np.flatnonzero(bad.reshape(-1))[0])
        value = float(np.asarray(joints).reshape(-1)[first])
        place = f" ({where(first)})" if where is not None else ""
        size = f"of {value:.6g}" if np.isfinite(values.reshape(-1)[first]) else "too large for float32"
        raise MalformedFileError(source, f"a coordinate {size}{place} is not a distance in metres a Kinect can "
                                         f"report (at most {PLAUSIBLE_COORDINATE:g} m)")
