"""Stage 1, extract: group a file's body records by tracking id, as the SGN-family
``get_raw_skes_data.py`` does.

Rules (``docs/references.md``, section 1.1):

* Frames without a body are removed from the timeline; the remaining frames are numbered
  ``0 .. valid_frames - 1``.
* A body's samples are its appearances in file order, packed one after another. Its interval
  starts at the frame of its first appearance and has one entry per appearance, so a body that
  vanishes and comes back is time-shifted to follow on without the gap (a quirk every published
  result was computed with). ``first_frame`` and ``len(joints)`` describe the interval fully.
* Bodies keep the order of their first appearance.
* ``motion`` (only when the file has more than one body) is the sum over x, y, z of the variance
  of all its joint positions, in float32.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Callable, List, Optional

import numpy as np

from ..formats.ntu import SkeletonRecords


@dataclass
class Body:
    """One tracking id of a file.

    Attributes:
        body_id: the tracking id, as text.
        joints: float32 ``(appearances, 25, 3)``.
        first_frame: index (among frames with a body) of its first appearance.
        motion: float32 spread-and-motion measure; ``None`` in a file with a single body.
    """

    body_id: str
    joints: np.ndarray
    first_frame: int
    motion: Optional[np.float32] = None

    @property
    def length(self) -> int:
        """Number of appearances (the reference's ``len(interval)``)."""
        return len(self.joints)

    @property
    def last_frame(self) -> int:
        """Last entry of the reference's interval."""
        return self.first_frame + len(self.joints) - 1


@dataclass
class RawSample:
    """A parsed file, its bodies grouped: the output of the extract stage.

    Attributes:
        name: sample name (``SsssCcccPpppRrrrAaaa``).
        raw_frames: frame count of the file.
        dropped_frames: 0-based indices of the frames without a body.
        bodies: bodies in order of first appearance.
    """

    name: str
    raw_frames: int
    dropped_frames: np.ndarray
    bodies: List[Body] = field(default_factory=list)

    @property
    def num_frames(self) -> int:
        """Frames that hold a body (the reference's ``num_frames``)."""
        return self.raw_frames - len(self.dropped_frames)


def body_motion(joints: np.ndarray) -> np.float32:
    """Sum of the per-axis variance of all joint positions, ``joints (..., 3)`` float32.

    Computed on the ``(n * 25, 3)`` array, as the reference does, so the float32 result is bit-identical:
    by numpy itself, or by the compiled reader's ``body_motion`` where that gives numpy's bits here.
    """
    compiled = _compiled_body_motion()
    if compiled is not None:
        return np.float32(compiled(np.ascontiguousarray(joints, dtype=np.float32)))
    return np.sum(np.var(joints.reshape(-1, 3), axis=0))


@functools.lru_cache(maxsize=None)
def _compiled_body_motion() -> Optional[Callable[[np.ndarray], float]]:
    """The compiled ``body_motion`` if it agrees with this numpy bit for bit on arrays chosen to tell the
    orders of summation apart, else ``None`` (checked once per process; numpy's float32 reductions are
    not promised to stay the same across versions)."""
    from ..formats import ntu
    compiled = getattr(ntu._compiled, "body_motion", None)
    if compiled is None:
        return None
    rng = np.random.default_rng(20261130)
    for rows in (1, 2, 25, 26, 150, 1000, 7525):
        for scale in (0.01, 1.0, 300.0):
            x = (rng.standard_normal((rows, 3)) * scale * np.array([0.3, 1.7, 4.0]) + rng.uniform(-3, 3, 3))
            x = x.astype(np.float32)
            if np.float32(compiled(x)).tobytes() != np.sum(np.var(x, axis=0)).tobytes():
                return None
    return compiled


def group_bodies(name: str, records: SkeletonRecords) -> RawSample:
    """Group the body records of one parsed file by tracking id."""
    ranks = records.tracking_ranks()
    _, firsts = np.unique(ranks, return_index=True)  # the first record of each body, ranks 0, 1, ... in order
    bodies = []
    for rank, first in enumerate(firsts):
        members = np.flatnonzero(ranks == rank) if len(firsts) > 1 else np.arange(len(ranks))
        bodies.append(Body(body_id=records.body_ids[first], joints=records.joints[members],  # a copy, writable
                           first_frame=int(records.record_frame[first])))
    if len(bodies) > 1:
        for body in bodies:
            body.motion = body_motion(body.joints)
    return RawSample(name=name, raw_frames=records.raw_frames,
                     dropped_frames=records.dropped_frames, bodies=bodies)
