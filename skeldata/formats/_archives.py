"""Raw files inside zip archives, read in place: listing the members a build reads, and reading one.

``--raw`` takes zip files as well as folders: ``nturgbd_skeletons_s001_to_s017.zip`` as downloaded, or
a zip of NW-UCLA's ``all_sqe`` folder. Nothing is unpacked and nothing is copied to disk. The parent
lists the members once (:func:`archive_entries`); each work item names its member with an
:class:`ArchiveMember` (two strings: cheap to pickle); each process opens an archive once, on its
first member, and keeps it open for the rest (:func:`read_member`). A member that cannot be read
(a CRC-32 mismatch, damaged or cut-short data, a compression method Python lacks, a password) costs
that one sample, recorded with its reason like an unreadable file; a zip whose index cannot be read
stops the command before anything is written.
"""
from __future__ import annotations

import os
import stat
import threading
import zipfile
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import List, Tuple

from ..errors import MalformedFileError, SkeldataError

try:
    from lzma import LZMAError
except ImportError:  # pragma: no cover - Python built without lzma
    class LZMAError(Exception):
        pass

__all__ = ["ArchiveMember", "archive_entries", "read_member", "close_archives"]

#: Folder that macOS's Archive Utility adds to zips it makes: resource-fork metadata (``._NAME``), not data.
MACOS_METADATA = "__MACOSX/"
#: Archives one process keeps open at a time (a build reads one or two).
MAX_OPEN_ARCHIVES = 8
#: Zip compression methods by number (APPNOTE 4.4.5), for messages.
METHOD_NAMES = {0: "no compression", 1: "shrink", 6: "implode", 8: "deflate", 9: "deflate64", 12: "bzip2",
                14: "lzma", 93: "zstandard", 95: "xz", 96: "jpeg", 97: "wavpack", 98: "ppmd"}


@dataclass(frozen=True)
class ArchiveMember:
    """One member of a zip file: the archive as given to ``--raw`` and the member's name in it (a folder's
    name ends with ``/``). ``str()`` is how messages name it."""

    archive: str
    member: str

    @property
    def name(self) -> str:
        """The member's base name (``S001C001P001R001A001.skeleton``), like ``Path.name``."""
        return self.member.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]

    def __str__(self) -> str:
        return f"{self.archive}, member {self.member}"


# -------------------------------------------------------------------------------------------- listing

def archive_entries(path: Path, suffix: str) -> List[Tuple[str, ArchiveMember]]:
    """The members of the zip at ``path`` named ``*suffix``, as ``(sample name, member)`` in archive order.

    As in a folder, other members and folders are ignored, and a folder named like a data file (an
    entry of its own, or implied by the paths of the members in it) is listed so that it is recorded
    as one. macOS's ``__MACOSX/`` metadata is skipped.

    Raises:
        SkeldataError: the file is not a zip, or its index (the central directory) cannot be read.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            members = [(info.filename, info.is_dir()) for info in archive.infolist()]
    except zipfile.BadZipFile as exc:
        raise SkeldataError(f"--raw {path}: {_unreadable_archive(exc)}") from None
    except OSError as exc:
        raise SkeldataError(f"--raw {path}: cannot be read: {exc.strerror or exc}") from None
    archive_name = str(path)
    entries: List[Tuple[str, ArchiveMember]] = []
    folders = OrderedDict()
    for member, is_dir in members:
        normal = member.replace("\\", "/")
        if normal.startswith(MACOS_METADATA):
            continue
        parts = normal.rstrip("/").split("/")
        for depth in range(1, len(parts)):                      # the folders the member is in
            folders.setdefault("/".join(parts[:depth]) + "/", None)
        if is_dir:
            folders.setdefault(normal if normal.endswith("/") else normal + "/", None)
        elif parts[-1].endswith(suffix):
            entries.append((parts[-1][:-len(suffix)], ArchiveMember(archive_name, member)))
    for folder in folders:
        base = folder.rstrip("/").rsplit("/", 1)[-1]
        if base.endswith(suffix):
            entries.append((base[:-len(suffix)], ArchiveMember(archive_name, folder)))
    return entries


def _unreadable_archive(exc: zipfile.BadZipFile) -> str:
    if str(exc) == "File is not a zip file":
        return ("not a folder or a zip file (no end-of-archive record: another kind of file, or a zip cut short, "
                "e.g. an incomplete download)")
    return f"a damaged zip file: its index (central directory) cannot be read ({exc}); was the download complete?"


# -------------------------------------------------------------------------------------------- reading

#: The archives this process has open, least recently used first.
_open_archives: "OrderedDict[str, zipfile.ZipFile]" = OrderedDict()
#: Held while the cache changes or a member is read: a build may read members in threads, and the cache
#: closes the least recently used archive when it is full.
_archives_lock = threading.RLock()


def _forget_archives() -> None:
    # A forked child shares the parent's file offsets: reading through the parent's handles would race
    # with it, so the child opens its own.
    _open_archives.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_archives)


def _archive(path: str) -> zipfile.ZipFile:
    archive = _open_archives.get(path)
    if archive is not None:
        _open_archives.move_to_end(path)
        return archive
    archive = zipfile.ZipFile(path)
    _open_archives[path] = archive
    while len(_open_archives) > MAX_OPEN_ARCHIVES:
        _open_archives.popitem(last=False)[1].close()
    return archive


def close_archives() -> None:
    """Close the archives this process has open (the next read opens them again)."""
    with _archives_lock:
        while _open_archives:
            _open_archives.popitem()[1].close()


def read_member(source: ArchiveMember) -> bytes:
    """The bytes of one member, or :class:`MalformedFileError` saying in plain words why it cannot be read."""
    with _archives_lock:
        return _read_member(source)


def _read_member(source: ArchiveMember) -> bytes:
    where = str(source)
    if source.member.endswith("/"):
        raise MalformedFileError(where, "is a folder, not a file")
    try:
        archive = _archive(source.archive)
        info = archive.getinfo(source.member)
    except (OSError, zipfile.BadZipFile, KeyError) as exc:
        raise MalformedFileError(where, f"cannot be read: the zip file changed or went away during the build "
                                        f"({exc.strerror if isinstance(exc, OSError) else exc})") from None
    if info.flag_bits & 0x1:
        raise MalformedFileError(where, "is encrypted (the zip has a password); skeldata reads unencrypted zips: "
                                        "unpack it with the password and pass the folder")
    if info.compress_type not in _readable_methods():
        method = METHOD_NAMES.get(info.compress_type, "an unknown method")
        raise MalformedFileError(where, f"is compressed with {method} (zip method {info.compress_type}), which "
                                        f"Python's zipfile cannot read; re-create the zip with deflate, or unpack "
                                        f"it with a tool that can and pass the folder")
    if info.create_system == 3 and stat.S_ISLNK(info.external_attr >> 16):
        raise MalformedFileError(where, "is a symbolic link stored in the zip, not a file; re-create the zip "
                                        "without storing links")
    try:
        return archive.read(info)
    except (zipfile.BadZipFile, zlib.error, LZMAError, EOFError, OSError, NotImplementedError, RuntimeError,
            ValueError) as exc:
        raise MalformedFileError(where, _damaged(exc, info)) from None


def _readable_methods() -> Tuple[int, ...]:
    methods = [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]
    for method, module in ((zipfile.ZIP_BZIP2, "bz2"), (zipfile.ZIP_LZMA, "lzma")):
        if getattr(zipfile, module, None) is not None:
            methods.append(method)
    return tuple(methods)


def _damaged(exc: Exception, info: zipfile.ZipInfo) -> str:
    if isinstance(exc, zipfile.BadZipFile) and str(exc).startswith("Bad CRC-32"):
        return ("is damaged in the zip: its bytes do not match the CRC-32 checksum the zip records for it "
                "(a corrupted download or disk?)")
    if isinstance(exc, EOFError):
        return (f"is cut short in the zip: its data ends before the {info.compress_size:,} bytes the zip "
                f"records for it")
    if isinstance(exc, (zlib.error, LZMAError)) or (isinstance(exc, OSError) and exc.errno is None):
        return f"is damaged in the zip: its compressed data cannot be decompressed ({exc})"
    if isinstance(exc, OSError):
        return f"cannot be read from the zip: {exc.strerror or exc}"
    if isinstance(exc, (NotImplementedError, RuntimeError)):
        return f"uses a zip feature Python's zipfile cannot read ({exc}); unpack it and pass the folder"
    return f"is damaged in the zip: {exc}"
