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

from dataclasses import dataclass, field
from typing import List, Optional

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

    Computed on the ``(n * 25, 3)`` array, as the reference does, so the float32 result is bit-identical.
    """
    return np.sum(np.var(joints.reshape(-1, 3), axis=0))


def group_bodies(name: str, records: SkeletonRecords) -> RawSample:
    """Group the body records of one parsed file by tracking id."""
    order: dict = {}
    for index, body_id in enumerate(records.body_ids):
        order.setdefault(body_id, []).append(index)
    bodies = [Body(body_id=body_id,
                   joints=np.ascontiguousarray(records.joints[indices]),
                   first_frame=int(records.record_frame[indices[0]]))
              for body_id, indices in order.items()]
    if len(bodies) > 1:
        for body in bodies:
            body.motion = body_motion(body.joints)
    return RawSample(name=name, raw_frames=records.raw_frames,
                     dropped_frames=records.dropped_frames, bodies=bodies)
