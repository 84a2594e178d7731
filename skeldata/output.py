"""Writing output files so that nothing earlier is lost: temporary names, atomic replacement, plain
reasons for a full disk, and the clean-up of what killed runs left behind.

Every file the project writes (stores, exports, score files, checkpoints, reports) is written under
:func:`temporary_path` beside its destination and renamed over it only once complete, so an existing file
is replaced whole or not at all. When the disk fills up (or the folder is read-only, or a quota is hit)
the temporary file is removed and the error says so in one line naming the destination
(:class:`OutputError`). A killed process cannot remove its temporary file; :func:`remove_stale_temporaries`
finds those of the same destination whose process is gone.
"""
from __future__ import annotations

import errno
import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, List, Optional, Union

from .errors import SkeldataError

__all__ = ["OutputError", "temporary_path", "describe_write_error", "replacing", "remove_stale_temporaries"]

PathLike = Union[str, Path]

#: errno values that mean "the destination cannot take the data", with the words for them.
_WRITE_ERRNOS = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded",
                 errno.EFBIG: "file too large for this file system", errno.EROFS: "read-only file system",
                 errno.EACCES: "permission denied", errno.EPERM: "permission denied",
                 errno.EIO: "input/output error"}
#: HDF5 and torch report the operating system's error inside their own text.
_ERRNO_IN_TEXT = re.compile(r"errno\s*=\s*(\d+)|\[Errno (\d+)\]")
_WORDS_IN_TEXT = {"no space left on device": errno.ENOSPC, "disk quota exceeded": errno.EDQUOT,
                  "read-only file system": errno.EROFS, "permission denied": errno.EACCES}


class OutputError(SkeldataError):
    """An output that could not be written; the destination was left as it was."""


def temporary_path(path: PathLike) -> Path:
    """``.<name>.tmp-<pid>`` beside ``path``: hidden, and owned by this process."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def describe_write_error(exc: BaseException) -> Optional[str]:
    """Plain words for an error that means the destination could not take the data (a full disk, a
    quota, a read-only or unwritable folder), or ``None`` for any other error."""
    code = getattr(exc, "errno", None)
    if code in _WRITE_ERRNOS:
        return _WRITE_ERRNOS[code]
    text = str(exc)
    for match in _ERRNO_IN_TEXT.finditer(text):
        found = int(match.group(1) or match.group(2))
        if found in _WRITE_ERRNOS:
            return _WRITE_ERRNOS[found]
    lowered = text.lower()
    for words, found in _WORDS_IN_TEXT.items():
        if words in lowered:
            return _WRITE_ERRNOS[found]
    return None


def _free_space(folder: Path) -> str:
    try:
        stats = os.statvfs(folder)
    except OSError:
        return ""
    free = stats.f_bavail * stats.f_frsize
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if free < 1024 or unit == "TiB":
            return f", {free:.0f} {unit} free there" if unit == "B" else f", {free:.1f} {unit} free there"
        free /= 1024
    return ""


def write_failure(path: PathLike, exc: BaseException) -> Optional[OutputError]:
    """The :class:`OutputError` to raise for ``exc`` while writing ``path``, or ``None`` when ``exc`` is not
    a write failure."""
    reason = describe_write_error(exc)
    if reason is None:
        return None
    path = Path(path)
    space = _free_space(path.parent) if reason == "no space left on device" else ""
    state = "it was left as it was" if path.exists() else "nothing was written"
    return OutputError(f"cannot write {path}: {reason}{space}; {state}")


@contextmanager
def replacing(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path to write ``path``'s new content to; on success it replaces ``path``
    atomically, on any failure it is removed and ``path`` is untouched (a write failure is raised as a
    one-line :class:`OutputError`)."""
    path = Path(path)
    temporary = temporary_path(path)
    try:
        yield temporary
        os.replace(temporary, path)
    except BaseException as exc:
        _remove_quietly(temporary)
        failure = write_failure(path, exc) if isinstance(exc, (OSError, RuntimeError)) else None
        if failure is not None:
            raise failure from None
        raise


def _remove_quietly(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError:
        pass        # nothing more can be done; remove_stale_temporaries finds it later


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(path: PathLike) -> List[Path]:
    """Remove the temporary files of ``path`` (``.<name>.tmp-<pid>``) whose process no longer runs, as a
    killed run leaves them; return what was removed. Files of other destinations and of live processes
    are left alone."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    pattern = re.compile(re.escape(f".{path.name}.tmp-") + r"(\d+)$")
    removed = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = pattern.match(entry.name)
        if match and int(match.group(1)) != os.getpid() and not _process_alive(int(match.group(1))):
            try:
                entry.unlink()
                removed.append(entry)
            except OSError:
                pass
    return removed
