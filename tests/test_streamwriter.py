"""Chunk encoding of the stream datasets: values, checksums and chunk boundaries."""
from __future__ import annotations

import os
import zlib

import h5py
import numpy as np
import pytest

from skeldata._crc import crc32_combine
from skeldata._h5 import dataset_crc32
from skeldata._parallel import WorkerPool
from skeldata.layouts import NTU25
from skeldata.pipeline.streams import derive
from skeldata.streamwriter import StreamWriter


@pytest.mark.parametrize("a, b", [(0, 5), (5, 0), (1, 1), (100, 3000), (4096, 4096), (12345, 999)])
def test_crc32_combine_equals_the_crc_of_the_concatenation(a, b):
    left, right = os.urandom(a), os.urandom(b)
    assert crc32_combine(zlib.crc32(left), zlib.crc32(right), b) == zlib.crc32(left + right)


@pytest.mark.parametrize("jobs, compression", [(1, "lzf"), (2, "lzf"), (1, "none"), (2, "gzip")])
def test_stream_rows_equal_per_sample_streams_across_chunk_boundaries(tmp_path, jobs, compression):
    rng = np.random.default_rng(jobs)
    lengths = [1, 7, 6, 1, 13, 2, 7, 20, 1, 3]  # samples ending exactly on, before and after chunk ends
    samples = [rng.standard_normal((n, 2, 25, 3)).astype(np.float32) for n in lengths]
    with h5py.File(tmp_path / "s.h5", "w") as h5, WorkerPool(jobs) as pool:
        writer = StreamWriter(h5.create_group("streams"), ("joint", "bone", "motion"), (2, 25, 3), "ntu25",
                              chunk_rows=7, compression=compression, pool=pool)
        for joints in samples:
            writer.append(joints)
        writer.close()
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    with h5py.File(tmp_path / "s.h5") as h5:
        for stream in ("joint", "bone", "motion"):
            dataset = h5["streams"][stream]
            assert dataset.shape == (sum(lengths), 2, 25, 3) and dataset.chunks == (7, 2, 25, 3)
            assert dataset.attrs["crc32"] == dataset_crc32(dataset)
            for i, joints in enumerate(samples):
                stored = dataset[offsets[i]:offsets[i + 1]]
                assert stored.tobytes() == derive(stream, joints, NTU25).tobytes(), (stream, i)
