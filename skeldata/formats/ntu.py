"""NTU RGB+D ``.skeleton`` files (Kinect v2 text format) and their names.

Grammar, one record per line, tokens separated by spaces, lines ending in CRLF or LF::

    <numFrames>
    numFrames times:
        <numBodies>                                   0 = a frame without any skeleton
        numBodies times:
            <bodyID> + 9 tokens                       body line, 10 tokens
            <numJoints>                               always 25
            25 times: <x> <y> <z> + 9 tokens          joint line, 12 tokens

Only what the published pipeline uses is kept: the frames without a body, and for every body seen
in a frame its tracking id and the camera-space ``x, y, z`` of its 25 joints (float32, through a
correctly rounded double, exactly as the reference reads them). The other fields are checked for
shape (token counts) and characters but not stored.

A file is parsed by a fast path: the compiled reader ``_ntu_c`` when it was built at install time
(it is optional), else a vectorised numpy reader. Whenever the fast path sees anything unusual
(other whitespace, a stray character, a wrong count) the file goes through :func:`_parse_strict`,
a line-by-line parser that gives the same values and, on bad input, the line and what was
expected. All three give bit-identical records; set ``SKELDATA_NO_C_READER=1`` to use the numpy one.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import MalformedFileError
from ._archives import ArchiveMember
from ._files import check_coordinates, check_text_encoding, raw_source, read_raw_bytes
from ._decimal import MAX_TOKEN_CHARS, parse_plain_decimals

NUM_JOINTS = 25
BODY_TOKENS = 10
JOINT_TOKENS = 12
LINES_PER_BODY = 2 + NUM_JOINTS

_NUMERIC_CHARACTERS = b"0123456789.+-eE \t\r\n"

NAME_PATTERN = re.compile(r"^S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})$")


@dataclass(frozen=True)
class SampleName:
    """The fields of an NTU sample name ``SsssCcccPpppRrrrAaaa`` (all 1-based, as in the name)."""

    name: str
    setup: int
    camera: int
    performer: int
    replication: int
    action: int

    @property
    def label(self) -> int:
        """0-based class label (``action - 1``)."""
        return self.action - 1


def parse_name(name: str) -> SampleName:
    """Parse ``S001C002P003R002A013`` (with or without ``.skeleton``) into its fields.

    Raises:
        ValueError: the name does not have the form ``SsssCcccPpppRrrrAaaa``.
    """
    stem = name[:-len(".skeleton")] if name.endswith(".skeleton") else name
    match = NAME_PATTERN.match(stem)
    if match is None:
        raise ValueError(f"name {stem!r} does not match SsssCcccPpppRrrrAaaa (for example S001C002P003R002A013)")
    setup, camera, performer, replication, action = (int(g) for g in match.groups())
    return SampleName(stem, setup, camera, performer, replication, action)


@dataclass
class SkeletonRecords:
    """Everything the pipeline needs from one ``.skeleton`` file.

    Attributes:
        raw_frames: the frame count on the file's first line (frames without a body included).
        dropped_frames: 0-based indices of the frames without a body, ascending.
        body_ids: the tracking id of every body record, in file order (kept as text, like the reference).
        record_frame: for every body record, the index of its frame among the frames that have a body.
        joints: float32 ``(records, 25, 3)``, camera-space x, y, z in metres.
        body_index: int64 ``(records,)``, the rank of each record's tracking id by first appearance
            (``None`` until asked for: the compiled reader fills it in as it reads).
    """

    raw_frames: int
    dropped_frames: np.ndarray
    body_ids: List[str]
    record_frame: np.ndarray
    joints: np.ndarray
    body_index: Optional[np.ndarray] = None

    def tracking_ranks(self) -> np.ndarray:
        """``body_index``, computed from ``body_ids`` when the reader did not give it."""
        if self.body_index is None:
            ranks: dict = {}
            self.body_index = np.array([ranks.setdefault(body_id, len(ranks)) for body_id in self.body_ids],
                                       dtype=np.int64)
        return self.body_index

    @property
    def valid_frames(self) -> int:
        """Frames that hold at least one body."""
        return self.raw_frames - len(self.dropped_frames)


def read_skeleton(path: Union[str, Path, ArchiveMember]) -> SkeletonRecords:
    """Read and parse one ``.skeleton`` file (or zip member). Raises :class:`MalformedFileError` naming it."""
    source = raw_source(path)
    return parse_skeleton(read_raw_bytes(source), str(source))


def parse_skeleton(data: bytes, source: str = "<bytes>") -> SkeletonRecords:
    """Parse the bytes of a ``.skeleton`` file; ``source`` names it in error messages."""
    check_text_encoding(data, source, "NTU .skeleton")
    fast = _parse_compiled(data) if _compiled is not None else _parse_fast(data)
    records = fast if fast is not None else _parse_strict(data, source)
    check_coordinates(records.joints, source, lambda flat: _describe_value(records, flat))
    return records


def _describe_value(records: "SkeletonRecords", flat: int) -> str:
    """Where the ``flat``-th joint value of ``records`` is: frame, body record, joint and axis."""
    record, rest = divmod(flat, 25 * 3)
    joint, axis = divmod(rest, 3)
    frame = int(records.record_frame[record]) if len(records.record_frame) > record else record
    return f"body record {record + 1} (frame {frame + 1} of those with a body), joint {joint + 1}, {'xyz'[axis]}"


def _load_compiled_reader():
    if os.environ.get("SKELDATA_NO_C_READER"):
        return None
    try:
        from . import _ntu_c
    except ImportError:
        return None
    return _ntu_c


_compiled = _load_compiled_reader()


def has_compiled_reader() -> bool:
    """Whether files are parsed by the compiled reader (built at install time, not disabled by
    ``SKELDATA_NO_C_READER``), which parses without holding the GIL."""
    return _compiled is not None


def _parse_compiled(data: bytes) -> Optional[SkeletonRecords]:
    """The compiled reader; ``None`` when the file needs the strict parser."""
    parsed = _compiled.parse(data)
    if parsed is None:
        return None
    raw_frames, dropped, body_ids, record_frame, joints, body_index = parsed
    return SkeletonRecords(
        raw_frames=raw_frames,
        dropped_frames=np.frombuffer(dropped, dtype=np.int64),
        body_ids=body_ids,
        record_frame=np.frombuffer(record_frame, dtype=np.int64),
        joints=np.frombuffer(joints, dtype=np.float32).reshape(-1, NUM_JOINTS, 3),
        body_index=np.frombuffer(body_index, dtype=np.int64),
    )


# --------------------------------------------------------------------------------------------- fast path

def _parse_fast(data: bytes) -> Optional[SkeletonRecords]:
    """Vectorised parse of a well-formed file; ``None`` when anything needs the strict parser."""
    if not data:
        return None
    buf = np.frombuffer(data + b" " * MAX_TOKEN_CHARS, dtype=np.uint8)
    size = len(data)
    newlines = np.flatnonzero(buf[:size] == 10)
    line_starts = np.concatenate(([0], newlines + 1))
    line_ends = np.concatenate((newlines, [size]))
    n_lines = len(line_starts)
    starts = line_starts.tolist()
    ends = line_ends.tolist()

    # Walk the headers in Python: a few lines per frame; the joint lines are handled in bulk below.
    try:
        raw_frames = int(data[starts[0]:ends[0]])
        line = 1
        valid = -1
        dropped: List[int] = []
        body_lines: List[int] = []
        body_ids: List[str] = []
        record_frame: List[int] = []
        for frame in range(raw_frames):
            n_bodies = int(data[starts[line]:ends[line]])
            line += 1
            if n_bodies == 0:
                dropped.append(frame)
                continue
            if n_bodies < 0:
                return None
            valid += 1
            for _ in range(n_bodies):
                if int(data[starts[line + 1]:ends[line + 1]]) != NUM_JOINTS:
                    return None
                start = starts[line]
                body_ids.append(data[start:data.index(b" ", start, ends[line])].decode("ascii"))
                body_lines.append(line)
                record_frame.append(valid)
                line += LINES_PER_BODY
    except (ValueError, IndexError):
        return None
    if raw_frames < 0 or line > n_lines:
        return None
    if line < n_lines and data[starts[line]:].strip():
        return None  # trailing data

    if data.translate(None, _NUMERIC_CHARACTERS):
        return None  # a character that cannot be part of a number
    spaces = np.flatnonzero(buf[:size] == 32)
    if np.any(np.diff(spaces) == 1) or np.any(buf[line_starts[line_starts < size]] == 32):
        return None  # an empty token: two spaces in a row, or a line that starts with a space
    body_lines_arr = np.asarray(body_lines, dtype=np.int64)
    joint_lines = (body_lines_arr[:, None] + np.arange(2, 2 + NUM_JOINTS)).ravel()
    if not _token_counts_are(spaces, line_starts, line_ends, joint_lines, JOINT_TOKENS):
        return None
    if not _token_counts_are(spaces, line_starts, line_ends, body_lines_arr, BODY_TOKENS):
        return None

    first_space = np.searchsorted(spaces, line_starts[joint_lines])
    token_starts = np.empty((len(joint_lines), 3), dtype=np.int64)
    token_ends = np.empty((len(joint_lines), 3), dtype=np.int64)
    token_starts[:, 0] = line_starts[joint_lines]
    token_ends[:, 0] = spaces[first_space]
    token_starts[:, 1] = token_ends[:, 0] + 1
    token_ends[:, 1] = spaces[first_space + 1]
    token_starts[:, 2] = token_ends[:, 1] + 1
    token_ends[:, 2] = spaces[first_space + 2]
    token_starts = token_starts.ravel()
    token_ends = token_ends.ravel()
    values, handled = parse_plain_decimals(buf, token_starts, token_ends)
    if not handled.all():
        try:
            for i in np.flatnonzero(~handled).tolist():
                values[i] = float(data[token_starts[i]:token_ends[i]])
        except ValueError:
            return None
    if not np.isfinite(values).all():
        return None

    return SkeletonRecords(
        raw_frames=raw_frames,
        dropped_frames=np.asarray(dropped, dtype=np.int64),
        body_ids=body_ids,
        record_frame=np.asarray(record_frame, dtype=np.int64),
        joints=values.astype(np.float32).reshape(-1, NUM_JOINTS, 3),
    )


def _token_counts_are(spaces: np.ndarray, line_starts: np.ndarray, line_ends: np.ndarray,
                      lines: np.ndarray, n_tokens: int) -> bool:
    """True when each of ``lines`` holds ``n_tokens`` tokens (the caller has ruled out empty tokens)."""
    lo = np.searchsorted(spaces, line_starts[lines])
    hi = np.searchsorted(spaces, line_ends[lines])
    return bool(np.all(hi - lo == n_tokens - 1))


# ------------------------------------------------------------------------------------------- strict path

class _Lines:
    """Line reader that knows where it is, for error messages."""

    def __init__(self, data: bytes, source: str):
        self.lines = data.decode("ascii", errors="replace").splitlines()
        self.source = source
        self.index = 0

    def error(self, message: str, line: Optional[int] = None) -> MalformedFileError:
        return MalformedFileError(self.source, message, line=(self.index if line is None else line) + 1)

    def next_tokens(self, what: str, expected: int) -> Tuple[List[str], int]:
        if self.index >= len(self.lines):
            raise MalformedFileError(self.source, f"file ends early: expected {what}",
                                     line=len(self.lines) + 1)
        tokens = self.lines[self.index].split()
        if len(tokens) != expected:
            raise self.error(f"expected {what} ({expected} value{'s' if expected > 1 else ''}), "
                             f"found {len(tokens)} value{'s' if len(tokens) != 1 else ''}")
        self.index += 1
        return tokens, self.index - 1

    def next_count(self, what: str) -> int:
        (token,), line = self.next_tokens(what, 1)
        try:
            value = int(token)
        except ValueError:
            raise self.error(f"expected {what} (an integer), found {token!r}", line) from None
        if value < 0:
            raise self.error(f"expected {what} (an integer >= 0), found {value}", line)
        return value


def _number(lines: _Lines, token: str, line: int, what: str) -> float:
    try:
        value = float(token)
    except ValueError:
        raise lines.error(f"expected {what} (a number), found {token!r}", line) from None
    if not np.isfinite(value):
        raise lines.error(f"{what} is not finite: {token!r}", line)
    return value


def _parse_strict(data: bytes, source: str) -> SkeletonRecords:
    """Line-by-line parser: the same result as the fast path, and precise errors."""
    lines = _Lines(data, source)
    if not data.strip():
        raise MalformedFileError(source, "file is empty: expected the frame count on line 1", line=1)
    raw_frames = lines.next_count("the frame count")
    dropped: List[int] = []
    body_ids: List[str] = []
    record_frame: List[int] = []
    joints: List[Sequence[float]] = []
    valid = -1
    for frame in range(raw_frames):
        n_bodies = lines.next_count(f"the body count of frame {frame + 1}")
        if n_bodies == 0:
            dropped.append(frame)
            continue
        valid += 1
        for body in range(n_bodies):
            where = f"frame {frame + 1}, body {body + 1}"
            tokens, line = lines.next_tokens(f"the body line of {where}", BODY_TOKENS)
            for token in tokens[1:]:
                _number(lines, token, line, f"a body field of {where}")
            body_ids.append(tokens[0])
            record_frame.append(valid)
            n_joints = lines.next_count(f"the joint count of {where}")
            if n_joints != NUM_JOINTS:
                raise lines.error(f"expected {NUM_JOINTS} joints for {where}, found {n_joints}", lines.index - 1)
            for joint in range(NUM_JOINTS):
                tokens, line = lines.next_tokens(f"joint {joint + 1} of {where}", JOINT_TOKENS)
                values = [_number(lines, token, line, f"a value of joint {joint + 1} of {where}")
                          for token in tokens]
                joints.append(values[:3])
    for rest in range(lines.index, len(lines.lines)):
        if lines.lines[rest].strip():
            raise lines.error(f"unexpected data after the last of the {raw_frames} frames: "
                              f"{lines.lines[rest].strip()[:40]!r}", rest)
    return SkeletonRecords(
        raw_frames=raw_frames,
        dropped_frames=np.asarray(dropped, dtype=np.int64),
        body_ids=body_ids,
        record_frame=np.asarray(record_frame, dtype=np.int64),
        joints=np.asarray(joints, dtype=np.float64).astype(np.float32).reshape(-1, NUM_JOINTS, 3),
    )
