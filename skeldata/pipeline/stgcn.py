"""The ST-GCN-lineage NTU pipeline: what 2s-AGCN's ``ntu_gendata.py`` + ``preprocess.py`` (NTU60) and
MS-G3D's ``ntu120_gendata.py`` (NTU120) make of one ``.skeleton`` file (``docs/references.md``, section 2).

One sample at a time, in bounded memory, with numpy operations over whole frames and bodies instead
of the references' per-joint Python loops. The result is float32 ``(300, 2, 25, 3)`` (frames, body
slots, joints, xyz), equal byte for byte to the reference's ``(3, 300, 25, 2)`` row after transposing.

Rules:

1. **Slots.** Body slot ``m`` of a frame is the body's position in that frame's list (not its
   tracking id); slots 4 and above are ignored. Frames without a body stay in place as zeros. The
   coordinates are held in float64, as the reference reads them.
2. **Choice by motion.** Energy of a slot: over its frames whose coordinates do not sum to zero,
   ``std(x) + std(y) + std(z)`` (float64); 0 for an empty slot. The two slots of largest energy are
   kept, ties highest slot first (a stable ascending sort, reversed). The frames go into a zero
   ``300``-frame float32 array.
3. **Pad.** For each body with a non-zero sum: if its frame 0 sums to zero, its non-zero frames are
   moved to the front. Then the first zero-sum frame ``f`` after which everything is zero starts
   the tail, which is filled by repeating frames ``0 .. f - 1``. Interior zero frames stay zero.
4. **Centre.** Joint 1 (SpineMid) of body 0, frame by frame, is subtracted from every non-zero
   body; joints whose xyz sum to zero stay zero (multiplied by the mask, so ``-0.0`` can appear).
5. **Rotate** (float64 matrices, float32 storage): the SpineBase->SpineMid vector of body 0 in frame
   0 onto +z, then ShoulderLeft->ShoulderRight onto +x; applied to every non-zero frame of every
   non-zero body.

The float32 sums deciding "zero" are computed on views with the reference's memory layout (a
``(3, 300, 25, 2)`` array seen as ``(2, 300, 25, 3)``) so that they round as the reference's do.
The per-joint matrix products are evaluated elementwise in float64; after the float32 store they
equal numpy's ``dot`` (zero results are +0, as ``dot`` gives).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Tuple

import numpy as np

from ..errors import SampleDropped
from ..formats.ntu import SkeletonRecords
from ..limits import MAX_FRAMES

KINECT_BODIES = 4
BODIES = 2
JOINTS = 25
#: The (from, to) joints of the vectors the rotations align: SpineBase -> SpineMid onto +z,
#: ShoulderLeft -> ShoulderRight onto +x.
Z_AXIS_JOINTS = (0, 1)
X_AXIS_JOINTS = (4, 8)
CENTRE_JOINT = 1

#: The rules as recorded in a store's ``pipeline`` attribute.
PARAMETERS = {
    "frames": MAX_FRAMES,
    "kinect_bodies_read": KINECT_BODIES,
    "bodies_kept": BODIES,
    "z_axis_joints": list(Z_AXIS_JOINTS),
    "x_axis_joints": list(X_AXIS_JOINTS),
    "centre_joint": CENTRE_JOINT,
}


@dataclass
class StgcnReport:
    """Counts for the store's columns.

    Attributes:
        slots_used: body slots holding a body in some frame (1..4, more bodies in a frame are ignored).
        n_bodies: 2 when the second kept slot holds a value, else 1.
    """

    slots_used: int
    n_bodies: int


def slot_array(records: SkeletonRecords) -> np.ndarray:
    """float64 ``(4, raw_frames, 25, 3)``: each body record at its frame and its position in that frame."""
    data = np.zeros((KINECT_BODIES, records.raw_frames, JOINTS, 3), dtype=np.float64)
    n = len(records.body_ids)
    if not n:
        return data
    record_frame = np.asarray(records.record_frame, dtype=np.int64)
    slot = np.arange(n) - np.searchsorted(record_frame, record_frame, side="left")
    with_body = np.delete(np.arange(records.raw_frames), np.asarray(records.dropped_frames, dtype=np.int64))
    frame = with_body[record_frame]
    keep = slot < KINECT_BODIES
    data[slot[keep], frame[keep]] = records.joints[keep]
    return data


def slot_energy(slot: np.ndarray) -> float:
    """Sum over x, y, z of the std of a slot's joints in its frames that do not sum to zero (float64)."""
    frames = slot[slot.sum(-1).sum(-1) != 0]
    if not len(frames):
        return 0.0
    return frames[:, :, 0].std() + frames[:, :, 1].std() + frames[:, :, 2].std()


def _frame_sums(body: np.ndarray) -> np.ndarray:
    """float32 sum of every frame of ``body (T, V, C)``, rounded as a per-frame ``frame.sum()``.

    ``frame.sum()`` on the reference's view adds the 75 values in (C, V) order; summing the frame
    any other way (``sum(axis=(1, 2))``) rounds differently in three frames of four (random data).
    """
    frames = np.ascontiguousarray(body.transpose(0, 2, 1))
    return frames.reshape(len(frames), -1).sum(-1)


def _pad(s: np.ndarray) -> None:
    """Rule 3, in place on ``s (M, T, V, C)``."""
    for m in range(s.shape[0]):
        person = s[m]
        if person.sum() == 0:
            continue
        if person[0].sum() == 0:
            kept = person[person.sum(-1).sum(-1) != 0].copy()
            person *= 0
            person[:len(kept)] = kept
        zero = np.flatnonzero(_frame_sums(person) == 0)
        for f in zero:
            if person[f:].sum() == 0:
                if f == 0:  # the reference divides by zero here; only a body whose frame 0 sums to 0
                    raise SampleDropped("zero_first_frame",
                                        f"body slot {m} has coordinates, but its first frame sums to zero")
                rest = len(person) - f
                person[f:] = person[np.arange(rest) % f]
                break


def _centre(s: np.ndarray) -> None:
    """Rule 4, in place."""
    centre = s[0][:, CENTRE_JOINT:CENTRE_JOINT + 1, :].copy()
    for m in range(s.shape[0]):
        person = s[m]
        if person.sum() == 0:
            continue
        mask = (person.sum(-1) != 0)[..., None]
        s[m] = (person - centre) * mask


def _angle_between(v: np.ndarray, target: np.ndarray) -> float:
    if np.abs(v).sum() < 1e-6 or np.abs(target).sum() < 1e-6:
        return 0.0
    v_unit = v / np.linalg.norm(v)              # float32, as the reference normalises a float32 vector
    t_unit = target / np.linalg.norm(target)    # float64
    return float(np.arccos(np.clip(np.dot(v_unit, t_unit), -1.0, 1.0)))


def rotation_to(v: np.ndarray, target: Tuple[int, int, int]) -> np.ndarray:
    """float64 3x3 matrix turning ``v`` (float32) towards ``target`` about their common normal (Euler-Rodrigues)."""
    target = np.asarray(target, dtype=np.int64)
    axis = np.cross(v, target)
    theta = _angle_between(v, target)
    if np.abs(axis).sum() < 1e-6 or np.abs(theta) < 1e-6:
        return np.eye(3)
    axis = axis / math.sqrt(np.dot(axis, axis))
    a = math.cos(theta / 2.0)
    b, c, d = -axis * math.sin(theta / 2.0)
    aa, bb, cc, dd = a * a, b * b, c * c, d * d
    bc, ad, ac, ab, bd, cd = b * c, a * d, a * c, a * b, b * d, c * d
    return np.array([[aa + bb - cc - dd, 2 * (bc + ad), 2 * (bd - ac)],
                     [2 * (bc - ad), aa + cc - bb - dd, 2 * (cd + ab)],
                     [2 * (bd + ac), 2 * (cd - ab), aa + dd - bb - cc]])


def _rotate(s: np.ndarray, joints: Tuple[int, int], target: Tuple[int, int, int]) -> None:
    """Rule 5 for one axis, in place: every non-zero frame of every non-zero body."""
    matrix = rotation_to(s[0, 0, joints[1]] - s[0, 0, joints[0]], target)
    for m in range(s.shape[0]):
        person = s[m]
        if person.sum() == 0:
            continue
        frames = np.flatnonzero(_frame_sums(person) != 0)
        if not len(frames):
            continue
        x = person[frames].astype(np.float64)
        rotated = (x[..., 0:1] * matrix[:, 0] + x[..., 1:2] * matrix[:, 1] + x[..., 2:3] * matrix[:, 2]) + 0.0
        person[frames] = rotated


def stgcn_sample(records: SkeletonRecords) -> Tuple[np.ndarray, StgcnReport]:
    """The reference's output row for one parsed file: float32 ``(300, 2, 25, 3)`` and the counts.

    Raises:
        SampleDropped: ``too_many_frames`` (more than 300 frames: the reference fails to broadcast),
        ``zero_first_frame`` (a division by zero in the reference's padding).
    """
    if records.raw_frames > MAX_FRAMES:
        raise SampleDropped("too_many_frames",
                            f"{records.raw_frames} frames; the ST-GCN-lineage scripts hold {MAX_FRAMES}")
    data = slot_array(records)
    energy = np.array([slot_energy(slot) for slot in data])
    chosen = np.argsort(energy, kind="stable")[::-1][:BODIES]
    slots_used = int((np.abs(data).reshape(KINECT_BODIES, -1).max(axis=1) > 0).sum())
    fp = np.zeros((3, MAX_FRAMES, JOINTS, BODIES), dtype=np.float32)   # the reference's row layout
    fp[:, :records.raw_frames] = data[chosen].transpose(3, 1, 2, 0)
    s = fp.transpose(3, 1, 2, 0)                                        # (M, T, V, C) view
    _pad(s)
    if s.sum() != 0:
        _centre(s)
        _rotate(s, Z_AXIS_JOINTS, (0, 0, 1))
        _rotate(s, X_AXIS_JOINTS, (1, 0, 0))
    n_bodies = 2 if np.any(s[1] != 0) else 1
    report = StgcnReport(slots_used=slots_used, n_bodies=n_bodies)
    return np.ascontiguousarray(fp.transpose(1, 3, 2, 0)), report
