"""Stage 2, denoise: choose up to two actors among a file's bodies, as the SGN-family
``get_raw_denoised_data.py`` does (``docs/references.md``, section 1.2).

A file with a single body is taken as it is (75 columns, nothing removed). A file with several
bodies goes through:

1. **length**: drop every body seen in ``LENGTH_THRESHOLD`` (11) frames or fewer;
2. **spread**: in first-appearance order, and only while more than one body is left, drop a body
   whose share of "noisy" frames (x extent above ``SPREAD_X_OVER_Y`` (0.8) times the y extent) is at
   least ``SPREAD_NOISE_RATIO`` (0.69754); otherwise lower its motion to that of its valid frames;
3. **rank** the rest by motion, largest first (ties keep first-appearance order);
4. **merge**: the first is actor 1; each next body goes into the actor-1 slot if its interval does
   not overlap actor 1's (sharing one frame counts as no overlap), else into the actor-2 slot if it
   does not overlap actor 2's (which starts as the virtual interval ``[0, 0]``), else it is dropped;
5. remove every frame whose coordinates **sum** to zero (a float32 sum, not an all-zero test).

With one actor left the result has 75 columns, with two 150, exactly as the reference. The
float32 arithmetic is done on arrays of the reference's shapes so that every sum rounds the same.

Where the reference crashes, the sample is dropped with a reason (:class:`SampleDropped`):
``all_bodies_short`` (every body of a multi-body file is 11 frames or shorter: IndexError in the
reference) and ``body_overflow`` (a body seen more often than there are frames: a broadcast error).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Tuple

import numpy as np

from ..errors import SampleDropped
from .extract import Body, RawSample, body_motion
from ..limits import LENGTH_THRESHOLD

SPREAD_X_OVER_Y = 0.8
SPREAD_NOISE_RATIO = 0.69754

#: The thresholds as recorded in a store's attributes.
PARAMETERS = {
    "length_threshold": LENGTH_THRESHOLD,
    "spread_x_over_y": SPREAD_X_OVER_Y,
    "spread_noise_ratio": SPREAD_NOISE_RATIO,
}

COLUMNS_PER_ACTOR = 75


@dataclass
class DenoiseReport:
    """What denoising did to one sample (all counts, for the store and ``skeldata stats``).

    Attributes:
        bodies: tracking ids in the file.
        removed_by_length: bodies dropped by the length rule.
        removed_by_spread: bodies dropped by the spread rule.
        unassigned: bodies that overlapped both actors and were dropped by the merge.
        actors: 1 or 2.
        rows_removed: frames removed because their coordinates summed to zero.
    """

    bodies: int = 0
    removed_by_length: int = 0
    removed_by_spread: int = 0
    unassigned: int = 0
    actors: int = 1
    rows_removed: int = 0


@dataclass
class DenoisedSample:
    """Output of the denoise stage: float32 ``joints (T, 75)`` (one actor) or ``(T, 150)`` (two)."""

    name: str
    joints: np.ndarray
    report: DenoiseReport

    @property
    def actors(self) -> int:
        return self.joints.shape[1] // COLUMNS_PER_ACTOR


def denoise(sample: RawSample) -> DenoisedSample:
    """Apply the reference denoising rules to one extracted sample."""
    bodies = sample.bodies
    if not bodies:
        raise SampleDropped("no_body", f"all {sample.raw_frames} frames have 0 bodies")
    report = DenoiseReport(bodies=len(bodies))
    if len(bodies) == 1:
        return DenoisedSample(sample.name, _one_actor(bodies[0], sample.num_frames), report)

    actors = _select_bodies(bodies, report)
    if len(actors) == 1:
        joints = _one_actor(actors[0], sample.num_frames)
    else:
        joints = _merge_actors(actors, sample.num_frames, report)
        report.actors = 2
    joints, report.rows_removed = remove_zero_sum_rows(joints)
    return DenoisedSample(sample.name, joints, report)


def _select_bodies(bodies: List[Body], report: DenoiseReport) -> List[Body]:
    """Length filter, spread filter and motion ranking; returns the bodies to merge, best first."""
    kept = [body for body in bodies if body.length > LENGTH_THRESHOLD]
    report.removed_by_length = len(bodies) - len(kept)
    if not kept:
        raise SampleDropped("all_bodies_short",
                            f"all {len(bodies)} bodies are seen in {LENGTH_THRESHOLD} frames or fewer")
    if len(kept) == 1:
        return kept

    motions = {id(body): body.motion for body in kept}
    survivors = list(kept)
    for body in kept:
        if len(survivors) == 1:
            break
        valid = valid_frames_by_spread(body.joints)
        n_noisy = body.length - int(valid.sum())
        if n_noisy == 0:
            continue
        if n_noisy / float(body.length) >= SPREAD_NOISE_RATIO:
            survivors.remove(body)
            report.removed_by_spread += 1
        else:
            motions[id(body)] = min(motions[id(body)], body_motion(body.joints[valid]))
    if len(survivors) == 1:
        return survivors
    return sorted(survivors, key=lambda body: motions[id(body)], reverse=True)


def valid_frames_by_spread(joints: np.ndarray) -> np.ndarray:
    """Boolean mask of the frames of ``joints (n, 25, 3)`` whose x extent is at most 0.8 times the y extent."""
    x, y = joints[:, :, 0], joints[:, :, 1]
    x_extent = x.max(axis=1) - x.min(axis=1)
    y_extent = y.max(axis=1) - y.min(axis=1)
    return x_extent <= np.float32(SPREAD_X_OVER_Y) * y_extent


def _write_body(joints: np.ndarray, body: Body, columns: slice) -> None:
    """Copy a body's appearances into its interval rows; the reference crashes where this raises."""
    if body.last_frame >= len(joints):
        raise SampleDropped("body_overflow",
                            f"body {body.body_id} is seen {body.length} times from frame {body.first_frame}, "
                            f"but the sample has {len(joints)} frames with a body")
    joints[body.first_frame:body.last_frame + 1, columns] = body.joints.reshape(body.length, COLUMNS_PER_ACTOR)


def _one_actor(body: Body, num_frames: int) -> np.ndarray:
    joints = np.zeros((num_frames, COLUMNS_PER_ACTOR), dtype=np.float32)
    _write_body(joints, body, slice(None))
    return joints


def _merge_actors(ranked: List[Body], num_frames: int, report: DenoiseReport) -> np.ndarray:
    """Place the ranked bodies into the actor-1 and actor-2 column blocks by the reference's overlap rules."""
    joints = np.zeros((num_frames, 2 * COLUMNS_PER_ACTOR), dtype=np.float32)
    actor1, actor2 = slice(0, COLUMNS_PER_ACTOR), slice(COLUMNS_PER_ACTOR, 2 * COLUMNS_PER_ACTOR)
    first = ranked[0]
    _write_body(joints, first, actor1)
    span1: Tuple[int, int] = (first.first_frame, first.last_frame)
    span2: Tuple[int, int] = (0, 0)
    for body in ranked[1:]:
        start, end = body.first_frame, body.last_frame
        if min(span1[1], end) - max(span1[0], start) <= 0:
            _write_body(joints, body, actor1)
            span1 = (min(start, span1[0]), max(end, span1[1]))
        elif min(span2[1], end) - max(span2[0], start) <= 0:
            _write_body(joints, body, actor2)
            span2 = (min(start, span2[0]), max(end, span2[1]))
        else:
            report.unassigned += 1
    return joints


def remove_zero_sum_rows(joints: np.ndarray) -> Tuple[np.ndarray, int]:
    """Drop the rows of ``joints (T, 75|150)`` whose float32 sum is exactly zero; returns (rows kept, count removed)."""
    keep = joints.sum(axis=1) != 0
    removed = int(len(keep) - keep.sum())
    return (joints[keep] if removed else joints), removed
