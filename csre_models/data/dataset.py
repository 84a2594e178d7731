"""``SkeletonDataset``: training and test inputs read from a skeldata store, as the reference feeders
make them.

::

    ds = SkeletonDataset("ntu60.h5", benchmark="xsub", part="train", stream="joint", train=True,
                         window=64, spine_relative=False)
    x, label, index = ds[i]       # x float32 (C, T, V, M); label int; index = bank slot

For the engine and the command line:

* **Transforms** follow the store's layout. ``ntu25``: valid-frame crop (train ``p ~ U[0.5, 1]`` with
  a random start, test the centre 0.95), float32 linear resize to ``window`` (default 64), random
  rotation up to 0.3 rad per axis in training. ``ucla20``: the NW-UCLA feeder (centring, view rotation
  and scale in training, min-max to [-1, 1], ``window`` frames, default 52), computed from the JSON
  files' float64 numbers, which :func:`~csre_models.data.transforms.ucla_json_values` recovers
  exactly from the store's float32. ``train`` switches every augmentation on; ``train=False`` is
  deterministic and equals the published feeders' test inputs bit for bit.
* **Variants**: ``spine_relative=False`` is CTR-GCN's feeder (also 2s-AGCN and HCN in this project);
  ``spine_relative=True`` is the CSRE / Hyperformer / BlockGCN feeder (joints relative to the spine
  joint with its trajectory kept; the bone stream keeps the spine trajectory). BlockGCN's NW-UCLA
  feeder has no spine step: use ``spine_relative=False`` there.
* **HCN-pytorch's feeder** (``feeder="hcn"``, the default on a ``--pipeline stgcn`` store with ``crop``):
  the arrays moved to the first body's SpineMid in every frame (``origin_transfer: 0``; a no-op on that
  store, which ``pre_normalization`` centred so), then the crop and resize above over the first
  ``raw_frames`` frames (the ``.skeleton`` file's frame count, HCN's ``num_frame.npy``) instead of over
  as many frames as are non-zero: the stgcn store repeats each sequence to 300 frames, which HCN's
  ``valid_crop_resize`` never sees. 2s-AGCN's feeder on the same store is ``crop=False``, window 300.
* **Multi-clip testing**: ``item(position, clip=k)`` is test clip ``k`` of a test-time item: clip 0 the
  input above, clip ``k > 0`` a temporal window drawn as in training (NTU: a crop of 50-100 % of the
  valid frames at a random start; NW-UCLA: a sorted draw of frames) from a generator seeded by
  ``(255, k)`` (:func:`~csre_models.data.transforms.clip_generator`), without rotation or view
  change, so every evaluation sees the same clips.
* **BlockGCN's joint input**: ``return_joint=True`` appends a fourth element, the joint positions
  after crop, resize and rotation (NTU) or after the NW-UCLA transform, neither spine-relative nor
  bone nor motion, whatever ``stream`` is: what the official BlockGCN feeder returns first and passes
  as ``model(x, joint=...)``.
* **Bank slots**: ``index`` is the sample's position in the benchmark part (``0 .. bank_size - 1``,
  the part's published order); the CSRE bank has one slot per training sample, and
  :attr:`bank_labels` gives each slot's label. NW-UCLA training repeats the part ``repeat`` times
  (default 5, as the feeder): ``len(ds) == 5 * N`` and ``index = position % N``, so the copies share
  their sample's slot. ``slot_per_copy=True`` gives every copy a slot of its own (``5 * N`` slots),
  as the official CSRE code sizes its bank; the released recipe needs it on NW-UCLA, whose classes
  have about 100 training samples, fewer than the loss's 128 hard positives.
* **Randomness**: each training item draws one seed from torch's global generator and runs its
  transforms on a ``numpy.random.Generator`` made from it. DataLoader workers seed that generator
  with ``base_seed + worker_id``, a base seed drawn afresh for each epoch from the loader's
  ``generator``, so every worker and every epoch has its own stream and no ``worker_init_fn`` is
  needed. Reproducible epochs: ``torch.manual_seed(seed)`` and
  ``DataLoader(..., generator=torch.Generator().manual_seed(seed))``; with ``num_workers=0`` the
  items then follow torch's global generator, so saving and restoring ``torch.get_rng_state()``
  resumes the augmentation stream exactly. :meth:`item` takes an explicit generator instead, e.g.
  ``default_rng([seed, epoch, position])`` for draws that depend on neither workers nor order.
* **Workers**: the store opens its HDF5 file lazily in each process, so the dataset works in
  DataLoader workers under fork and spawn. ``in_memory=True`` reads the part's frames (unpadded) into
  RAM once; under spawn each worker then receives its own copy of them.
* **NTU120 one-actor samples**: ``single_body_fill`` (default: the store's ``single_body_fill``
  attribute, ``duplicate`` for NTU120, ``zero`` otherwise) puts a copy of the actor into the second
  body slot, as the published NTU120 npz files the reference feeders read do.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from skeldata.errors import StoreError
from skeldata.store import Store, open_store
from skeldata.verify import verify

from ..encoders._registry import DEFAULT_WINDOWS
from . import transforms as T

#: Stores whose frames take at most this many bytes are checksummed whole before training (a second or two).
SCAN_LIMIT_BYTES = 1 << 30

#: Default crop fractions of the NTU feeder: a random crop in training, the centre at test time.
TRAIN_P_INTERVAL = (0.5, 1.0)
TEST_P_INTERVAL = (0.95,)
#: NW-UCLA training copies per epoch (the feeder's ``repeat``).
UCLA_TRAIN_REPEAT = 5
SINGLE_BODY_FILLS = ("zero", "duplicate")
#: NTU crop variants: CTR-GCN's (valid frames counted as the non-zero ones) and HCN-pytorch's (origin on
#: the first body's SpineMid, valid frames = the file's frame count; ``--pipeline stgcn`` stores only).
FEEDERS = ("ctrgcn", "hcn")


class SkeletonDataset(Dataset):
    """One benchmark part of a store as model inputs ``(x, label, index)`` (see the module docstring).

    Args:
        store: path of a skeldata store, or an open :class:`skeldata.store.Store`.
        benchmark: ``xsub``/``xview`` (NTU60), ``xsub``/``xset`` (NTU120), ``xview`` (NW-UCLA).
        part: ``train`` or ``test``.
        stream: ``joint``, ``bone``, ``joint_motion`` or ``bone_motion``.
        train: apply the training augmentation (random crop and rotation; NW-UCLA view, scale and
            frame sampling). ``False`` gives the deterministic test-time inputs.
        window: frames per input; ``None`` for the layout's default (64 NTU, 52 NW-UCLA).
        spine_relative: the CSRE / Hyperformer / BlockGCN feeder variant.
        repeat: copies of the part per epoch; ``None`` for 5 on NW-UCLA training, else 1.
        p_interval: NTU crop fractions, ``(p,)`` for a centre crop or ``(low, high)`` for a random one;
            ``None`` for ``(0.5, 1.0)`` in training and ``(0.95,)`` at test time.
        random_rot: NTU random rotation; ``None`` for on exactly when ``train``.
        single_body_fill: ``zero`` or ``duplicate`` for the second body of one-actor samples;
            ``None`` for the store's rule.
        return_joint: append BlockGCN's joint input to each item.
        slot_per_copy: with ``repeat > 1``, one bank slot per copy instead of per sample.
        in_memory: read the part's frames into RAM once, at construction.
        crop: NTU only. ``False``: no crop and no resize, the first ``window`` frames as stored (zero
            padded when shorter): 2s-AGCN's feeder (``window_size: -1``) on a ``--pipeline stgcn``
            store, whose samples are all 300 frames. Test clips are then all the same input.
        feeder: with ``crop``, ``ctrgcn`` or ``hcn`` (see the module docstring); ``None`` for ``hcn`` on a
            ``--pipeline stgcn`` store and ``ctrgcn`` otherwise.
    """

    def __init__(self, store: Union[str, Path, Store], benchmark: str, part: str, stream: str = "joint",
                 train: bool = False, window: Optional[int] = None, spine_relative: bool = False,
                 repeat: Optional[int] = None, *, p_interval: Optional[Sequence[float]] = None,
                 random_rot: Optional[bool] = None, single_body_fill: Optional[str] = None,
                 return_joint: bool = False, slot_per_copy: bool = False, in_memory: bool = False,
                 crop: bool = True, feeder: Optional[str] = None):
        self.store = store if isinstance(store, Store) else open_store(store)
        self.layout = self.store.layout
        if self.layout.name == "ucla20" and (p_interval is not None or random_rot is not None):
            raise ValueError("p_interval and random_rot are NTU feeder options; the NW-UCLA transforms "
                             "are chosen by train alone")
        self.benchmark, self.part = benchmark, part
        self.stream = stream
        self.train = bool(train)
        self.window = window if window is not None else DEFAULT_WINDOWS[self.layout.name]
        self.spine_relative = bool(spine_relative)
        self.repeat = repeat if repeat is not None else self._default_repeat()
        self.p_interval = tuple(p_interval) if p_interval is not None else (
            TRAIN_P_INTERVAL if self.train else TEST_P_INTERVAL)
        self.random_rot = self.train if random_rot is None else bool(random_rot)
        self.single_body_fill = single_body_fill or self.store.single_body_fill
        self.return_joint = bool(return_joint)
        self.slot_per_copy = bool(slot_per_copy)
        self.crop = bool(crop)
        self.pipeline = self.store.pipeline
        self.feeder = feeder if feeder is not None else (
            "hcn" if self.crop and self.layout.name == "ntu25" and self.pipeline == "stgcn" else "ctrgcn")
        self._check_options()
        #: whether items take random draws (training, or a random crop or rotation asked for explicitly)
        self.random = self.train or self.random_rot or len(self.p_interval) == 2

        self.sample_indices = self.store.split(benchmark, part)
        self.labels = self.store.column("label")[self.sample_indices].astype(np.int64)
        self._n_bodies = self.store.column("n_bodies")[self.sample_indices]
        self._raw_frames = (self.store.column("raw_frames")[self.sample_indices].astype(np.int64)
                            if self.feeder == "hcn" else None)
        self._frames = _PartInMemory(self.store, self.sample_indices) if in_memory else None

    def _default_repeat(self) -> int:
        return UCLA_TRAIN_REPEAT if self.layout.name == "ucla20" and self.train else 1

    def _check_options(self) -> None:
        if self.stream not in T.STREAMS:
            raise ValueError(f"unknown stream {self.stream!r}; known: {', '.join(T.STREAMS)}")
        if self.part not in ("train", "test"):
            raise ValueError(f"part must be 'train' or 'test', not {self.part!r}")
        if self.window < 1:
            raise ValueError(f"window must be at least 1 frame, not {self.window}")
        if self.repeat < 1:
            raise ValueError(f"repeat must be at least 1, not {self.repeat}")
        if len(self.p_interval) not in (1, 2) or not all(0 < p <= 1 for p in self.p_interval):
            raise ValueError(f"p_interval must be (p,) or (low, high) with values in (0, 1], "
                             f"not {self.p_interval}")
        if not self.crop and self.layout.name != "ntu25":
            raise ValueError("crop=False is for NTU stores; the NW-UCLA transform always samples frames")
        if self.feeder not in FEEDERS:
            raise ValueError(f"feeder must be one of {FEEDERS}, not {self.feeder!r}")
        if self.feeder == "hcn" and not (self.crop and self.layout.name == "ntu25" and self.pipeline == "stgcn"):
            raise ValueError("feeder='hcn' crops HCN's ST-GCN arrays: it needs crop=True and an NTU store built "
                             f"with --pipeline stgcn ({self.store.path} was built with --pipeline {self.pipeline})")
        if self.single_body_fill not in SINGLE_BODY_FILLS:
            raise ValueError(f"single_body_fill must be one of {SINGLE_BODY_FILLS}, "
                             f"not {self.single_body_fill!r}")

    # -- size and bank ----------------------------------------------------------------------------
    @property
    def num_samples(self) -> int:
        """Samples in the benchmark part (without the repeats)."""
        return len(self.sample_indices)

    def __len__(self) -> int:
        return self.num_samples * self.repeat

    @property
    def bank_size(self) -> int:
        """Number of distinct ``index`` values: the CSRE memory-bank slots this dataset fills."""
        return len(self) if self.slot_per_copy else self.num_samples

    @property
    def bank_labels(self) -> np.ndarray:
        """Label of every bank slot, int64 ``(bank_size,)``."""
        return np.tile(self.labels, self.bank_size // self.num_samples)

    @property
    def num_classes(self) -> int:
        return self.store.num_classes

    @property
    def num_person(self) -> int:
        return self.store.max_bodies

    @property
    def names(self) -> list:
        """Sample names of the part, in order (one per sample, not per repeat)."""
        return list(self.store.column("name")[self.sample_indices])

    def __repr__(self) -> str:
        copies = f" ({self.num_samples} samples x repeat {self.repeat})" if self.repeat > 1 else ""
        variant = "spine-relative (CSRE/Hyperformer)" if self.spine_relative else "plain (CTR-GCN)"
        if self.feeder == "hcn":
            variant += ", HCN-pytorch crop (file frame count)"
        elif not self.crop:
            variant += ", no crop (2s-AGCN)"
        lines = [
            f"Dataset {type(self).__name__}",
            f"    Number of datapoints: {len(self)}{copies}",
            f"    Store location: {self.store.path}{' (in memory)' if self._frames is not None else ''}",
            f"    Benchmark: {self.store.dataset.name} {self.benchmark}, part: {self.part}",
            f"    Stream: {self.stream}, variant: {variant}, window: {self.window}",
            f"    Transforms: {'train' if self.train else 'test'}, "
            f"{'random augmentation' if self.random else 'deterministic'}",
        ]
        return "\n".join(lines)

    # -- items ------------------------------------------------------------------------------------
    def __getitem__(self, position: int):
        return self.item(position, _torch_seeded_generator() if self.random else None)

    def item(self, position: int, rng: Optional[np.random.Generator] = None, clip: int = 0):
        """Item ``position`` with the random draws taken from ``rng`` (required when :attr:`random`).

        ``clip`` (test-time items only) selects one of the deterministic temporal windows of multi-clip
        testing: 0 is the usual test input; ``k > 0`` crops (NTU) or samples frames (NW-UCLA) as training
        does, with the draws of :func:`~csre_models.data.transforms.clip_generator` ``(k)`` and no
        rotation or view change.
        """
        if not -len(self) <= position < len(self):
            raise IndexError(f"position {position} out of range for a dataset of {len(self)} items")
        if self.random and rng is None:
            raise ValueError("a training item needs a numpy Generator for its random draws")
        if clip and self.random:
            raise ValueError("test clips are test-time items: train=False, no random crop or rotation")
        position %= len(self)
        k = position % self.num_samples
        recorded = int(self._raw_frames[k]) if self._raw_frames is not None else None
        positions = self._positions(self._sequence(k), rng, T.clip_generator(clip), recorded)
        x = T.stream(positions, self.stream, self.layout, self.spine_relative).astype(np.float32)
        slot = position if self.slot_per_copy else k
        if self.return_joint:
            return x, int(self.labels[k]), slot, positions.astype(np.float32)
        return x, int(self.labels[k]), slot

    def _sequence(self, k: int) -> np.ndarray:
        """Frames ``(T, M, V, C)`` of the part's ``k``-th sample, with the single-body rule applied."""
        if self._frames is not None:
            sequence = self._frames.sequence(k)
        else:
            sequence = self.store.sequence(int(self.sample_indices[k]), "joint")
        if self.single_body_fill == "duplicate" and self._n_bodies[k] == 1:
            sequence = T.duplicate_first_body(sequence)
        return sequence

    def _positions(self, sequence: np.ndarray, rng: Optional[np.random.Generator],
                   clip_rng: Optional[np.random.Generator] = None, recorded: Optional[int] = None) -> np.ndarray:
        """Cropped, resized (and in training augmented) joint positions ``(C, window, V, M)``; ``clip_rng``:
        the draws of a test clip's window (multi-clip testing); ``recorded``: the file's frame count, which
        HCN's feeder crops (``feeder="hcn"``)."""
        if self.layout.name == "ucla20":
            return T.ucla_positions(T.ucla_json_values(sequence[:, 0]), self.window, rng if self.train else None,
                                    frames_rng=clip_rng)
        data = T.to_feeder_layout(sequence)
        if not self.crop:
            positions = np.zeros(data.shape[:1] + (self.window,) + data.shape[2:], dtype=np.float32)
            frames = min(self.window, data.shape[1])
            positions[:, :frames] = data[:, :frames]
            if self.random_rot:
                positions = T.rotate(positions, T.random_rotation_matrix(rng))
            return positions
        if recorded is not None:
            data = T.first_body_origin(data)
            valid = recorded
        else:
            valid = T.valid_frame_count(data)
        if clip_rng is not None:
            start, stop = T.random_crop_bounds(valid, clip_rng, TRAIN_P_INTERVAL)
        elif len(self.p_interval) == 1:
            start, stop = T.centre_crop_bounds(valid, self.p_interval[0])
        else:
            start, stop = T.random_crop_bounds(valid, rng, self.p_interval)
        positions = (T.resize_hcn if recorded is not None else T.resize)(data[:, start:stop], self.window)
        if self.random_rot:
            positions = T.rotate(positions, T.random_rotation_matrix(rng))
        return positions


def _torch_seeded_generator() -> np.random.Generator:
    """A numpy generator seeded by one draw from torch's global generator (per worker under a
    DataLoader, see the module docstring)."""
    return np.random.default_rng(int(torch.randint(0, 2 ** 63 - 1, ())))


class _PartInMemory:
    """The joint frames of a benchmark part held in RAM: one unpadded float32 array and offsets."""

    def __init__(self, store: Store, sample_indices: np.ndarray):
        order = np.argsort(sample_indices, kind="stable")   # read in store order: sequential chunks
        lengths = store.column("n_frames")[sample_indices].astype(np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(lengths)])
        row_shape = (store.max_bodies, store.num_joints, 3)
        self.frames = np.empty((int(self.offsets[-1]),) + row_shape, dtype=np.float32)
        for k in order:
            self.frames[self.offsets[k]:self.offsets[k + 1]] = store.sequence(int(sample_indices[k]), "joint")

    def sequence(self, k: int) -> np.ndarray:
        return self.frames[self.offsets[k]:self.offsets[k + 1]]


def check_store(path: Union[str, Path], scan_limit_bytes: Optional[int] = None) -> bool:
    """Refuse a damaged store before any training or evaluation, with one line that names the problem and
    ``skeldata verify``. Always: structure, offsets, tables and their checksums, splits (seconds on
    NTU-120). When the stored frames are at most ``scan_limit_bytes`` (NW-UCLA: 11 MB), also every frame
    against its stream's checksum, which catches a flipped byte that still decodes to plausible numbers;
    larger stores are checked frame by frame as they are read (:meth:`skeldata.store.Store.sequence`:
    finite and plausible values, readable chunks). Returns whether the frames were scanned."""
    with open_store(path) as store:
        frame_bytes = store.num_frames * store.max_bodies * store.num_joints * 3 * 4
        stream_bytes = frame_bytes * len(store.stored_streams)
    scan = stream_bytes <= (SCAN_LIMIT_BYTES if scan_limit_bytes is None else scan_limit_bytes)
    result = verify(path, scan_streams=scan)
    if not result.ok:
        more = len(result.problems) - 1
        others = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        raise StoreError(f"{path} is damaged: {result.problems[0]}{others}; run skeldata verify {path}")
    return scan
