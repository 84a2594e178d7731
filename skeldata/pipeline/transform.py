"""Stage 3, transform: centre a denoised sample, as the SGN-family ``seq_transformation.py``
(``seq_translation``) does (``docs/references.md``, section 1.3), and lay it out as ``(T, bodies, 25, 3)``.

* The origin is joint 2 (SpineMid, index 1) of actor 1 in the first frame where actor 1 has a
  non-zero coordinate. It is subtracted from every joint of every frame, in float32.
* With two actors, the frames where an actor's coordinates summed to zero *before* centring are
  set back to zero for that actor (an absent actor stays all zero). With one actor there is no
  such reset, as in the reference.
"""
from __future__ import annotations

import numpy as np

from ..errors import SampleDropped
from ..layouts import NTU25
from .denoise import COLUMNS_PER_ACTOR

#: x, y, z of the joint the SGN-family scripts centre on (SpineMid, index 1), in a row of 75 values.
ORIGIN_COLUMNS = slice(3 * NTU25.origin_joint, 3 * NTU25.origin_joint + 3)


def centre(joints: np.ndarray) -> np.ndarray:
    """Centre ``joints (T, 75|150)`` float32 on actor 1's SpineMid in its first non-zero frame."""
    actor1 = joints[:, :COLUMNS_PER_ACTOR]
    present = np.any(actor1 != 0, axis=1)
    if not present.any():
        raise SampleDropped("no_actor_frame", f"actor 1 is all zero in all {len(joints)} frames")
    origin = joints[int(present.argmax()), ORIGIN_COLUMNS].copy()
    centred = joints - np.tile(origin, joints.shape[1] // 3)
    if joints.shape[1] == 2 * COLUMNS_PER_ACTOR:
        absent1 = actor1.sum(axis=1) == 0
        absent2 = joints[:, COLUMNS_PER_ACTOR:].sum(axis=1) == 0
        centred[absent1, :COLUMNS_PER_ACTOR] = 0
        centred[absent2, COLUMNS_PER_ACTOR:] = 0
    return centred


def to_bodies(joints: np.ndarray, max_bodies: int = 2) -> np.ndarray:
    """``(T, 75 * actors)`` -> ``(T, max_bodies, 25, 3)`` float32, absent bodies all zero."""
    frames, width = joints.shape
    actors = width // COLUMNS_PER_ACTOR
    out = np.zeros((frames, max_bodies, 25, 3), dtype=np.float32)
    out[:, :actors] = joints.reshape(frames, actors, 25, 3)
    return out
