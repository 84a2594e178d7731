"""The reference feeders' transforms as pure functions (arrays in, arrays out, no I/O).

They reproduce what CTR-GCN's ``feeders/feeder_ntu.py`` / ``feeder_ucla.py`` and ``tools.py`` do, and
the CSRE / Hyperformer / BlockGCN variants of those feeders (``docs/references.md``
sections 1.4 and 3). Arrays are in the feeders' layout ``(C, T, V, M)`` unless a docstring says
otherwise; a store sequence ``(T, M, V, C)`` becomes one with :func:`to_feeder_layout`. Bone and motion are skeldata's own
(:func:`skeldata.pipeline.streams.bones` and :func:`~skeldata.pipeline.streams.motion`, on this layout's
joint axis 2 and time axis 1).

Every random draw goes through a :class:`numpy.random.Generator` passed in, so a transform is a
function of its inputs and the generator's state.

NTU (window 64 in every published recipe)::

    data = to_feeder_layout(sequence)                       # (C, T, V, M) float32
    start, stop = centre_crop_bounds(valid_frame_count(data), 0.95)          # test
    start, stop = random_crop_bounds(valid_frame_count(data), rng, (0.5, 1)) # train
    positions = resize(data[:, start:stop], 64)
    positions = rotate(positions, random_rotation_matrix(rng))               # train

NW-UCLA (52 frames)::

    positions = ucla_positions(ucla_json_values(sequence[:, 0]))   # test; pass rng to augment

HCN-pytorch's feeder on ST-GCN arrays (a ``--pipeline stgcn`` store; ``feeder="hcn"`` of the dataset)::

    data = first_body_origin(to_feeder_layout(sequence))    # origin_transfer 0 (a no-op on that store)
    start, stop = centre_crop_bounds(raw_frames, 0.95)      # valid_crop_resize with num_frame.npy: the
                                                            # file's frame count, not a count of non-zero frames
    positions = resize_hcn(data[:, start:stop], 64)         # train: random_crop_bounds(raw_frames, rng, (0.5, 1))

Multi-clip testing: clip 0 is the test input above; clip ``k > 0`` draws its temporal window as training
does (NTU: ``random_crop_bounds(valid, rng, (0.5, 1))``; NW-UCLA: ``ucla_positions(..., frames_rng=rng)``)
from ``rng = clip_generator(k)``, with no rotation, view change or scaling.

Then, for both, ``stream(positions, "bone_motion", layout, spine_relative_joints=True)``.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from skeldata.layouts import Layout
from skeldata.pipeline.streams import TRAINING_STREAMS, bones, motion

#: The four input streams of the multi-stream recipes (what each is made of:
#: :data:`skeldata.pipeline.streams.TRAINING_STREAMS`).
STREAMS = tuple(TRAINING_STREAMS)
#: Time axis of the feeders' layout ``(C, T, V, M)``.
TIME_AXIS = 1

#: Shortest crop of the NTU training crop, in frames: a constant of ``tools.valid_crop_resize``
#: (written there as 64, whatever the window).
MIN_CROP_FRAMES = 64
#: HCN-pytorch's origin (``origin_transfer: 0``): joint 1 (SpineMid) of the first body, per frame.
HCN_ORIGIN_JOINT = 1
#: Largest angle of the NTU training rotation about each axis, in radians (``tools.random_rot``).
ROTATION_THETA = 0.3
#: NW-UCLA: joint whose frame-0 position is the origin (0-based; Kinect v1 "Spine").
UCLA_CENTRE_JOINT = 1
#: NW-UCLA training view augmentation: angles about x and y in whole degrees, and a scale range.
UCLA_MAX_DEGREES = 60
UCLA_SCALE_RANGE = (0.5, 1.5)
#: NW-UCLA training frame sampling draws from every frame index repeated this many times.
UCLA_FRAME_REPEATS = 100
#: Seed of the extra clips of multi-clip testing (:func:`clip_generator`): PYSKL's
#: ``UniformSample`` test-time seed.
TEST_CLIP_SEED = 255


# ------------------------------------------------------------------------------------------- layout

def to_feeder_layout(sequence: np.ndarray) -> np.ndarray:
    """A store sequence ``(T, M, V, C)`` as the feeders' ``(C, T, V, M)`` (a view, no copy).

    The view has the strides the reference feeders' arrays have (they transpose the npz's
    ``(N, T, M, V, C)`` rows the same way), so reductions over it add in the same order.
    """
    return sequence.transpose(3, 0, 2, 1)


def duplicate_first_body(sequence: np.ndarray) -> np.ndarray:
    """A copy of ``sequence (T, M, V, C)`` whose second body slot repeats the first: what the NTU120
    ``seq_transformation.py`` writes for a one-actor sample (``hstack(ske, ske)``)."""
    out = sequence.copy()
    out[:, 1] = sequence[:, 0]
    return out


# ---------------------------------------------------------------------------------------- NTU crop

def valid_frame_count(data: np.ndarray) -> int:
    """Frames of ``data (C, T, V, M)`` whose coordinates do not sum to zero (the feeders' count)."""
    return int(np.sum(data.sum(0).sum(-1).sum(-1) != 0))


def centre_crop_bounds(valid: int, p: float = 0.95) -> Tuple[int, int]:
    """Test-time crop ``[bias, valid - bias)`` keeping the middle fraction ``p`` of ``valid`` frames."""
    _check_valid(valid)
    bias = int((1 - p) * valid / 2)
    return bias, valid - bias


def random_crop_bounds(valid: int, rng: np.random.Generator, p_range: Sequence[float] = (0.5, 1.0),
                       min_length: int = MIN_CROP_FRAMES) -> Tuple[int, int]:
    """Training crop: a fraction ``p ~ U[p_range)`` of the ``valid`` frames (at least ``min_length``,
    at most ``valid``) starting at a uniformly drawn frame."""
    _check_valid(valid)
    low, high = p_range
    p = rng.uniform(low, high)
    length = min(max(int(np.floor(valid * p)), min_length), valid)
    start = int(rng.integers(0, valid - length + 1))
    return start, start + length


def clip_generator(clip: int) -> Optional[np.random.Generator]:
    """The random draws of test clip ``clip`` (multi-clip testing): ``None`` for clip 0, the deterministic
    test input, and ``default_rng([TEST_CLIP_SEED, clip])`` for the others, so clip ``k`` of a sample is
    the same in every evaluation, whatever the number of clips, the batch or the worker."""
    if clip < 0:
        raise ValueError(f"clip must be 0 or more, not {clip}")
    return None if clip == 0 else np.random.default_rng([TEST_CLIP_SEED, clip])


def first_body_origin(data: np.ndarray, joint: int = HCN_ORIGIN_JOINT) -> np.ndarray:
    """HCN-pytorch's ``origin_transfer: 0``: every body of ``data (C, T, V, M)`` minus ``joint`` (1,
    SpineMid) of the first body in the same frame, absent bodies included (they become minus that joint).

    On a ``--pipeline stgcn`` store it changes nothing: ``pre_normalization`` already centred every frame
    on that joint, which is exactly zero there (and zero frames stay zero)."""
    return data - data[:, :, joint:joint + 1, 0:1]


def _check_valid(valid: int) -> None:
    if valid < 1:
        raise ValueError("the sequence has no frame with a non-zero coordinate: nothing to crop")


def resize(data: np.ndarray, window: int) -> np.ndarray:
    """Linear resampling of ``data (C, L, V, M)`` to ``window`` frames, float32.

    The feeders' own operation: a float32 bilinear ``F.interpolate`` (``align_corners=False``) over the
    ``(C*V*M, L)`` map, whose first axis keeps its size.
    """
    channels, length, joints, bodies = data.shape
    rows = np.ascontiguousarray(data.transpose(0, 2, 3, 1), dtype=np.float32).reshape(-1, length)
    resized = F.interpolate(torch.from_numpy(rows)[None, None], size=(rows.shape[0], window),
                            mode="bilinear", align_corners=False)[0, 0].numpy()
    return np.ascontiguousarray(resized.reshape(channels, joints, bodies, window).transpose(0, 3, 1, 2))


def resize_hcn(data: np.ndarray, window: int) -> np.ndarray:
    """:func:`resize` as HCN-pytorch's ``valid_crop_resize`` lays the map out: ``(1, C*V*M, L, 1)`` resized
    to ``(window, 1)``, time on the height axis. Both are linear interpolation, but torch's CPU kernels
    round differently along the two axes (up to 1.2e-7 apart on the fixtures), so each feeder gets its own."""
    channels, length, joints, bodies = data.shape
    rows = np.ascontiguousarray(data.transpose(0, 2, 3, 1), dtype=np.float32).reshape(-1, length)
    resized = F.interpolate(torch.from_numpy(rows)[None, :, :, None], size=(window, 1),
                            mode="bilinear", align_corners=False)[0, :, :, 0].numpy()
    return np.ascontiguousarray(resized.reshape(channels, joints, bodies, window).transpose(0, 3, 1, 2))


# ------------------------------------------------------------------------------------ NTU rotation

def rotation_matrix(angles: Sequence[float]) -> np.ndarray:
    """``Rz · Ry · Rx`` for angles ``(a_x, a_y, a_z)`` in radians, as ``tools._rot`` builds it
    (applied to column vectors ``(x, y, z)``)."""
    (cx, cy, cz), (sx, sy, sz) = np.cos(angles), np.sin(angles)
    rx = np.array([[1, 0, 0], [0, cx, sx], [0, -sx, cx]])
    ry = np.array([[cy, 0, -sy], [0, 1, 0], [sy, 0, cy]])
    rz = np.array([[cz, sz, 0], [-sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def random_rotation_matrix(rng: np.random.Generator, theta: float = ROTATION_THETA) -> np.ndarray:
    """The training rotation: one angle per axis, each uniform in ``[-theta, theta)``."""
    return rotation_matrix(rng.uniform(-theta, theta, size=3))


def rotate(data: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Every point of ``data (C=3, T, V, M)`` rotated by ``matrix``, in ``data``'s dtype."""
    points = np.ascontiguousarray(data).reshape(3, -1)
    return (matrix.astype(data.dtype) @ points).reshape(data.shape)


# ----------------------------------------------------------------------------------------- NW-UCLA

def view_transform(value: np.ndarray, agx: float, agy: float, scale: float) -> np.ndarray:
    """``feeder_ucla.rand_view_transform``: points ``(..., 3)`` as row vectors times
    ``Ry · (Rx · s I)`` for angles in degrees."""
    ax, ay = math.radians(agx), math.radians(agy)
    rx = np.array([[1, 0, 0], [0, math.cos(ax), math.sin(ax)], [0, -math.sin(ax), math.cos(ax)]])
    ry = np.array([[math.cos(ay), 0, -math.sin(ay)], [0, 1, 0], [math.sin(ay), 0, math.cos(ay)]])
    return np.dot(value.reshape(-1, 3), np.dot(ry, np.dot(rx, scale * np.eye(3)))).reshape(value.shape)


def random_view(rng: np.random.Generator) -> Tuple[int, int, float]:
    """The training view augmentation ``(agx, agy, scale)``: whole degrees in [-60, 60] (both ends
    included, as ``random.randint``) and a scale uniform in [0.5, 1.5)."""
    agx, agy = rng.integers(-UCLA_MAX_DEGREES, UCLA_MAX_DEGREES + 1, size=2)
    return int(agx), int(agy), float(rng.uniform(*UCLA_SCALE_RANGE))


def min_max_normalise(value: np.ndarray) -> np.ndarray:
    """Each coordinate of ``value (..., 3)`` mapped to [-1, 1] by its minimum and maximum over all
    frames and joints."""
    points = value.reshape(-1, 3)
    low, high = points.min(axis=0), points.max(axis=0)
    return ((points - low) / (high - low) * 2 - 1).reshape(value.shape)


def evenly_spaced_frames(length: int, steps: int) -> np.ndarray:
    """Test-time frame indices: ``linspace(0, length - 1, steps)`` truncated to integers."""
    return np.linspace(0, length - 1, steps).astype(np.int64)


def random_frames(length: int, steps: int, rng: np.random.Generator) -> np.ndarray:
    """Training frame indices: ``steps`` draws without replacement from ``list(range(length)) * 100``,
    sorted (so frames may repeat, and any sequence of at least one frame works)."""
    draws = rng.choice(length * UCLA_FRAME_REPEATS, size=steps, replace=False)
    return np.sort(draws % length)


def ucla_json_values(value: np.ndarray, digits: int = 6) -> np.ndarray:
    """The float64 numbers an NW-UCLA ``all_sqe`` JSON file holds, from the store's float32 copy.

    The files write ``digits`` (6) significant decimal digits, which a float32 keeps unambiguously:
    rounding to that many digits and dividing by the power of ten gives exactly the float64 the
    feeders parse (checked on all 1,484 files: none of the 3,512,040 numbers differs). The feeders
    compute in float64 from these; starting from the float32 values instead moves min-max
    normalised motion by up to about 1.3e-6.
    """
    value = value.astype(np.float64)
    magnitude = np.floor(np.log10(np.abs(value), where=value != 0, out=np.zeros_like(value)))
    places = digits - 1 - magnitude          # decimal places of the last significant digit
    scale = 10.0 ** np.abs(places)
    return np.where(places >= 0, np.round(value * scale) / scale, np.round(value / scale) * scale)


def ucla_positions(value: np.ndarray, steps: int = 52, rng: Optional[np.random.Generator] = None,
                   frames_rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """The NW-UCLA feeder's joint positions from one body's frames ``(T, V, 3)``, as float64
    ``(3, steps, V, 1)``.

    Centred on joint 1 of frame 0, view-transformed (identity at test time; random angles and scale
    when ``rng`` is given), min-max normalised to [-1, 1] per coordinate, then ``steps`` frames
    (evenly spaced at test time, a sorted random draw with repetition when ``rng`` is given).
    ``frames_rng`` (used only without ``rng``) draws the frames as in training but leaves the view alone:
    the extra clips of multi-clip testing.
    """
    value = value.astype(np.float64)
    value = value - value[0, UCLA_CENTRE_JOINT]
    view = random_view(rng) if rng is not None else (0, 0, 1.0)
    value = min_max_normalise(view_transform(value, *view))
    draws = rng if rng is not None else frames_rng
    frames = random_frames(len(value), steps, draws) if draws is not None else evenly_spaced_frames(len(value), steps)
    return value[frames].transpose(2, 0, 1)[..., None]


# ----------------------------------------------------------------------------------------- streams

def spine_relative(data: np.ndarray, spine: int) -> np.ndarray:
    """Joints relative to the ``spine`` joint of the same frame and body, the spine joint itself keeping
    its own trajectory (the CSRE / Hyperformer / BlockGCN joint stream)."""
    out = data - data[:, :, spine:spine + 1]
    out[:, :, spine] = data[:, :, spine]
    return out


def stream(positions: np.ndarray, name: str, layout: Layout, spine_relative_joints: bool = False) -> np.ndarray:
    """The input stream ``name`` (:data:`STREAMS`) from cropped and resized joint positions
    ``(C, T, V, M)``, as the feeders compute it: bone and motion after the crop, resize and rotation.

    With ``spine_relative_joints`` (the CSRE / Hyperformer variant) the joint stream is
    :func:`spine_relative` and the bone stream keeps the spine joint's trajectory in the spine slot
    (where the plain bone stream has the root's zero bone); the motion streams differentiate those.
    """
    if name not in STREAMS:
        raise ValueError(f"unknown stream {name!r}; known: {', '.join(STREAMS)}")
    base, of_motion = TRAINING_STREAMS[name]
    spine = layout.spine_joint
    if base == "bone":
        out = bones(positions, layout)
        if spine_relative_joints:
            out[:, :, spine] = positions[:, :, spine]
    elif spine_relative_joints:
        out = spine_relative(positions, spine)
    else:
        out = positions
    return motion(out, axis=TIME_AXIS) if of_motion else out
