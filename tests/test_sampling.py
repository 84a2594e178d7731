"""csre_models.data.sampling: the validation draw, the datasets of a run and the per-epoch batches."""
from __future__ import annotations

import numpy as np
import pytest

from csre_models.config import prepare_config
from csre_models.data.sampling import EpochBatches, build_data, validation_samples
from csre_models.distributed import WorldInfo
from test_engine import tiny

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_validation_draw_is_seeded():
    first = validation_samples(100, 0.05, seed=3)
    assert len(first) == 5 and np.array_equal(first, validation_samples(100, 0.05, seed=3))
    assert not np.array_equal(first, validation_samples(100, 0.05, seed=4))
    assert len(validation_samples(100, 0.0, seed=3)) == 0


def test_random_rotation_switch(ntu_store, tmp_path):
    assert build_data(prepare_config(tiny(ntu_store, tmp_path)), False).train.random_rot
    assert not build_data(prepare_config(tiny(ntu_store, tmp_path, random_rot=False)), False).train.random_rot


def test_epoch_batches_shard_shuffle_and_skip():
    positions = np.arange(100, 110)
    ranks = [EpochBatches(positions, 2, WorldInfo(rank=r, world_size=2), seed=5) for r in range(2)]
    for sampler in ranks:
        sampler.set_epoch(3)
    epoch3 = [list(sampler) for sampler in ranks]
    keys = [key for batches in epoch3 for batch in batches for key in batch]
    # 5 positions per rank, 2 whole batches of 2 each: 8 distinct positions in all.
    assert len(keys) == 8 and len({p for p, _ in keys}) == 8 and all(100 <= p < 110 for p, _ in keys)
    assert all(epoch == 3 for _, epoch in keys) and all(len(b) == 2 for batches in epoch3 for b in batches)
    ranks[0].set_epoch(3, skip=1)
    assert list(ranks[0]) == epoch3[0][1:] and len(ranks[0]) == len(epoch3[0]) - 1
    ranks[0].set_epoch(4)
    assert list(ranks[0]) != epoch3[0]
