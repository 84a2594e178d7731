"""The derived streams a store holds besides the joints: bones and motion.

Both are computed per sample on its own frames ``(T, M, V, C)``, so no padding enters them:

* ``bone``: ``x[..., child, :] - x[..., parent, :]`` for the layout's bone pairs (the CTR-GCN-family
  feeders' pairs; the root's self pair gives a zero bone);
* ``motion``: the forward difference over time, ``x[t + 1] - x[t]``, with the last frame zero.

(The training feeders compute bone and motion *after* cropping and resizing; those are produced by
``csre_models.data``. These stored streams are for analysis, export and training without resizing.)
"""
from __future__ import annotations

import numpy as np

from ..layouts import Layout

STREAMS = ("joint", "bone", "motion")


def bones(joints: np.ndarray, layout: Layout) -> np.ndarray:
    """Bone vectors of ``joints (T, M, V, C)``."""
    child, parent = layout.bone_index()
    if np.array_equal(child, np.arange(len(child))):  # one pair per joint, in joint order
        return joints - np.take(joints, parent, axis=2)
    out = np.empty_like(joints)
    out[:, :, child] = joints[:, :, child] - joints[:, :, parent]
    return out


def motion(joints: np.ndarray) -> np.ndarray:
    """Frame-to-frame differences of ``joints (T, ...)``; the last frame is zero."""
    out = np.zeros_like(joints)
    np.subtract(joints[1:], joints[:-1], out=out[:-1])
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
