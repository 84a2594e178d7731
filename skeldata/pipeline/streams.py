"""The derived streams a store holds besides the joints: bones and motion.

Both are computed per sample on its own frames ``(T, M, V, C)``, so no padding enters them:

* ``bone``: ``x[..., child, :] - x[..., parent, :]`` for the layout's bone pairs (the CTR-GCN-family
  feeders' pairs; the root's self pair gives a zero bone);
* ``motion``: the forward difference over time, ``x[t + 1] - x[t]``, with the last frame zero.

(The training feeders compute bone and motion *after* cropping and resizing; those are produced by
``csre_models.data``. These stored streams are for analysis, export and training without resizing.)
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from ..layouts import Layout

#: The streams a store holds.
STREAMS = ("joint", "bone", "motion")

#: The four input streams of the multi-stream training recipes (``csre_models.data``), each as the
#: store stream it is computed from and whether its motion is taken: training ``joint_motion`` is the
#: store's ``motion`` (the motion of the joints), ``bone_motion`` the motion of the ``bone`` stream. The
#: training feeders compute them after cropping and resizing, with :func:`bones` and :func:`motion`.
TRAINING_STREAMS = {
    "joint": ("joint", False),
    "bone": ("bone", False),
    "joint_motion": ("joint", True),
    "bone_motion": ("bone", True),
}


def bones(joints: np.ndarray, layout: Layout) -> np.ndarray:
    """Bone vectors of ``joints``, whose joint axis is axis 2 (a store's ``(T, M, V, C)`` and the
    feeders' ``(C, T, V, M)`` alike); a joint that is no bone's child is zero."""
    child, parent = layout.bone_index()
    if np.array_equal(child, np.arange(joints.shape[2])):  # one pair per joint, in joint order
        return joints - np.take(joints, parent, axis=2)
    out = np.zeros_like(joints)
    out[:, :, child] = joints[:, :, child] - joints[:, :, parent]
    return out


def motion(joints: np.ndarray, axis: int = 0) -> np.ndarray:
    """Frame-to-frame differences of ``joints`` along the time ``axis`` (0 for a store's ``(T, ...)``,
    1 for the feeders' ``(C, T, V, M)``); the last frame is zero."""
    out = np.zeros_like(joints)
    head = (slice(None),) * axis
    np.subtract(joints[head + (slice(1, None),)], joints[head + (slice(None, -1),)], out=out[head + (slice(None, -1),)])
    return out


def motion_with_sample_ends(rows: np.ndarray, last_frame: np.ndarray,
                            next_row: Optional[np.ndarray] = None) -> np.ndarray:
    """The stored ``motion`` of consecutive joint rows ``(n, M, V, C)`` that may span several samples:
    the forward difference, zero on each sample's last frame (``last_frame``: ``(n,)`` bool), as
    :func:`motion` gives on each sample alone. ``next_row`` is the row after the run (``None``: the run's
    last row has no successor and its motion is zero)."""
    following = rows[1:] if next_row is None else np.concatenate([rows[1:], next_row[None]])
    out = np.zeros_like(rows)
    np.subtract(following, rows[:len(following)], out=out[:len(following)])
    out[last_frame] = 0
    return out


def derive(stream: str, joints: np.ndarray, layout: Layout) -> np.ndarray:
    """The named stream (``joint``, ``bone`` or ``motion``) of ``joints (T, M, V, C)``."""
    if stream == "joint":
        return joints
    if stream == "bone":
        return bones(joints, layout)
    if stream == "motion":
        return motion(joints)
    raise ValueError(f"unknown stream {stream!r}; known: {', '.join(STREAMS)}")
