"""Exceptions with messages that name the file and what was wrong."""
from __future__ import annotations

from typing import Optional

from .limits import LENGTH_THRESHOLD, MAX_FRAMES


class SkeldataError(Exception):
    """Base class of the errors skeldata raises on bad input."""


class MalformedFileError(SkeldataError):
    """A raw file that does not follow its format.

    Attributes:
        path: the file.
        line: 1-based line number where the problem is, when known.
        reason: what was expected and what was found.
    """

    def __init__(self, path: str, reason: str, line: Optional[int] = None):
        self.path = str(path)
        self.line = line
        self.reason = reason
        where = f"{self.path}, line {line}" if line is not None else self.path
        super().__init__(f"{where}: {reason}")


class StoreError(SkeldataError):
    """A store that cannot be opened or used: missing, incomplete, of another kind or version."""


class StoreDataError(StoreError):
    """A sample whose frames cannot be read or hold impossible values: the store is damaged."""


class SampleDropped(SkeldataError):
    """A file that was read correctly but yields no sample, and why.

    Attributes:
        code: a short machine-readable reason (see ``DROP_REASONS``).
        detail: one sentence for people.
    """

    def __init__(self, code: str, detail: str):
        if code not in DROP_REASONS:
            raise ValueError(f"unknown drop reason {code!r}")
        self.code = code
        self.detail = detail
        super().__init__(f"{code}: {detail}")


#: Why a file can be left out of a store. ``malformed`` is an error (it makes ``build`` exit non-zero
#: unless ``--allow-errors``); the others are expected outcomes of the published rules.
DROP_REASONS = {
    "malformed": "the file does not follow its format",
    "no_body": "no frame holds a skeleton (the published missing-skeleton lists)",
    "all_bodies_short": f"several bodies, each seen in {LENGTH_THRESHOLD} frames or fewer: all noise by the length rule",
    "body_overflow": "a body is seen more often than there are frames (a tracking id repeated within a frame)",
    "no_actor_frame": "actor 1 has no frame with a non-zero coordinate to centre on",
    "too_many_frames": f"more than {MAX_FRAMES} frames, which the ST-GCN-lineage scripts cannot hold (--pipeline stgcn)",
    "zero_first_frame": "a body whose first frame sums to zero after its frames are moved to the front: the "
                        "ST-GCN-lineage padding divides by zero (--pipeline stgcn)",
    "not_in_dataset": "the name is outside the data set's setups or actions",
}

#: The same reasons as short labels, for the summary a command prints.
DROP_LABELS = {
    "no_body": "no skeleton in any frame",
    "all_bodies_short": f"every body {LENGTH_THRESHOLD} frames or shorter",
    "body_overflow": "tracking id repeated within a frame",
    "no_actor_frame": "actor 1 all zero",
    "too_many_frames": f"over {MAX_FRAMES} frames (stgcn)",
    "zero_first_frame": "first frame sums to zero (stgcn)",
    "not_in_dataset": "outside the data set",
    "malformed": "malformed (errors)",
}
