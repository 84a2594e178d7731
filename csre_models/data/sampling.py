"""What a run trains and evaluates on, and in which order: the validation draw, the datasets of a run
(:func:`build_data`), the per-epoch batches of every rank (:class:`EpochBatches`), the items keyed by
``(position, epoch)`` whose random draws depend on nothing else (:class:`SeededTrainingItems`) and the test
clips of multi-clip testing (:class:`TestClip`).

Data order and augmentation are functions of (seed, epoch): the order is ``DistributedSampler``'s
permutation for ``seed + epoch``; the random draws of the item at position ``p`` in epoch ``e`` come from
``numpy.random.default_rng([seed, e, p])``. Nothing depends on worker count or on what was drawn before, so
a run resumed at any batch continues exactly as if it had not stopped.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, List, Optional, Tuple

import numpy as np
from torch.utils.data import Dataset, DistributedSampler, Sampler

from ..config import ConfigError, TrainConfig
from ..distributed import WorldInfo
from .dataset import SkeletonDataset

__all__ = ["VALIDATION_STREAM", "validation_samples", "SeededTrainingItems", "EpochBatches", "TestClip",
           "RunData", "build_data"]

#: Entropy word that separates the validation draw from every other use of the seed.
VALIDATION_STREAM = 0x5EED_0FA1


def validation_samples(num_samples: int, fraction: float, seed: int) -> np.ndarray:
    """The sorted sample numbers (``0 .. num_samples - 1`` of the training part) held out for validation:
    ``round(fraction * num_samples)`` of them (at least one), drawn with ``seed``."""
    if fraction <= 0:
        return np.zeros(0, dtype=np.int64)
    count = max(1, int(round(fraction * num_samples)))
    if count >= num_samples:
        raise ConfigError(f"--val-fraction {fraction} leaves no training sample out of {num_samples}")
    rng = np.random.default_rng([seed, VALIDATION_STREAM])
    return np.sort(rng.choice(num_samples, size=count, replace=False)).astype(np.int64)


class SeededTrainingItems(Dataset):
    """Training items keyed by ``(position, epoch)``: the random draws of each come from
    ``default_rng([seed, epoch, position])``, independent of workers and of every other item."""

    def __init__(self, dataset: SkeletonDataset, seed: int):
        self.dataset, self.seed = dataset, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: Tuple[int, int]):
        position, epoch = key
        return self.dataset.item(position, np.random.default_rng([self.seed, epoch, position]))


class EpochBatches(Sampler):
    """This rank's training batches of one epoch, as lists of ``(position, epoch)`` keys.

    The order is :class:`~torch.utils.data.DistributedSampler`'s (shuffled by ``seed + epoch``, sharded
    over the ranks); incomplete batches at the end are dropped, as the reference loaders do.
    :meth:`set_epoch` selects the epoch and how many of its batches were already done (resuming).

    Args:
        positions: dataset positions to train on (the training part without the validation samples).
        batch_size: batch of this rank (the global batch divided by the world size).
        world: this process's place in the job.
        seed: seed of the order.
    """

    def __init__(self, positions: np.ndarray, batch_size: int, world: WorldInfo, seed: int):
        self.positions = positions
        self.batch_size = batch_size
        self.sampler = DistributedSampler(positions, num_replicas=world.world_size, rank=world.rank,
                                          shuffle=True, seed=seed, drop_last=False)
        self.epoch, self.skip = 0, 0

    @property
    def batches_per_epoch(self) -> int:
        return len(self.sampler) // self.batch_size

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.sampler.set_epoch(epoch)
        self.epoch, self.skip = epoch, skip

    def __len__(self) -> int:
        return self.batches_per_epoch - self.skip

    def __iter__(self) -> Iterator[List[Tuple[int, int]]]:
        order = list(self.sampler)
        for b in range(self.skip, self.batches_per_epoch):
            yield [(int(self.positions[i]), self.epoch) for i in order[b * self.batch_size:(b + 1) * self.batch_size]]


@dataclass
class RunData:
    """The data sets of a run: training (augmented), validation (held out of training, test-time
    transforms) and test."""

    train: SkeletonDataset
    train_positions: np.ndarray
    test: SkeletonDataset
    val: Optional[SkeletonDataset]
    val_positions: np.ndarray


def build_data(config: TrainConfig, joint_input: bool) -> RunData:
    """The datasets of ``config``. Training gives every NW-UCLA repeat its own bank slot, as the released
    CSRE code does (otherwise its ~100 samples per class stay under the 128 hard positives and the
    contrastive term never starts)."""
    options = dict(stream=config.stream, window=config.window, spine_relative=config.spine_relative,
                   return_joint=joint_input, crop=config.crop)
    # random_rot None: the dataset's own rule (NTU rotates in training; NW-UCLA takes no explicit value).
    train = SkeletonDataset(config.store, config.benchmark, "train", train=True, slot_per_copy=True,
                            random_rot=None if config.random_rot else False, **options)
    test = SkeletonDataset(config.store, config.benchmark, "test", train=False, **options)
    held_out = validation_samples(train.num_samples, config.val_fraction, config.seed)
    positions = np.arange(len(train))
    train_positions = positions[~np.isin(positions % train.num_samples, held_out)]
    val = SkeletonDataset(config.store, config.benchmark, "train", train=False, **options) if len(held_out) else None
    return RunData(train, train_positions, test, val, held_out)


class TestClip(Dataset):
    """Test clip ``clip`` of every item of a test-time dataset (multi-clip testing)."""

    def __init__(self, dataset: SkeletonDataset, clip: int):
        self.dataset, self.clip = dataset, clip

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, position: int):
        return self.dataset.item(position, clip=self.clip)
