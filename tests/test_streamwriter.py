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


@pytest.mark.parametrize("jobs, threads, compression", [(1, False, "lzf"), (2, False, "lzf"), (2, True, "lzf"),
                                                        (1, False, "none"), (2, False, "gzip"), (2, True, "gzip")])
def test_stream_rows_equal_per_sample_streams_across_chunk_boundaries(tmp_path, jobs, threads, compression):
    rng = np.random.default_rng(jobs)
    lengths = [1, 7, 6, 1, 13, 2, 7, 20, 1, 3]  # samples ending exactly on, before and after chunk ends
    samples = [rng.standard_normal((n, 2, 25, 3)).astype(np.float32) for n in lengths]
    with h5py.File(tmp_path / "s.h5", "w") as h5, WorkerPool(jobs, threads=threads) as pool:
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


def _stored_by_hdf5(tmp_path, data: np.ndarray, encoded: bytes, mask: int) -> np.ndarray:
    """Write one encoded chunk into a shuffle + LZF dataset and read it back through h5py's filters."""
    with h5py.File(tmp_path / "chunk.h5", "w") as h5:
        dataset = h5.create_dataset("x", shape=data.shape, chunks=data.shape, dtype=data.dtype, compression="lzf",
                                    shuffle=True)
        dataset.id.write_direct_chunk((0,) * data.ndim, encoded, filter_mask=mask)
    with h5py.File(tmp_path / "chunk.h5") as h5:
        return h5["x"][()]


def _chunks_to_encode():
    rng = np.random.default_rng(0)
    joints = rng.standard_normal((512, 2, 25, 3)).astype(np.float32)
    joints[:, 1] = 0  # an absent second body: long zero runs in every byte plane
    periodic = np.tile(rng.integers(0, 256, 8190, dtype=np.uint8), 4)  # repeats at the longest distances
    return {
        "joints": joints,
        "zeros": np.zeros((4096, 3), np.float32),
        "random bytes": rng.integers(0, 256, 50_000, dtype=np.uint8),
        "random doubles": rng.standard_normal(3001),
        "periodic 8190": periodic,
        "periodic 8193": np.tile(rng.integers(0, 256, 8193, dtype=np.uint8), 3),
        "one value": np.full(1, 7, np.int16),
        "three values": np.arange(3, dtype=np.int32),
        "long run then noise": np.concatenate([np.zeros(1000, np.uint16), rng.integers(0, 2 ** 16, 333, dtype=np.uint16)]),
    }


@pytest.mark.parametrize("name", list(_chunks_to_encode()))
@pytest.mark.parametrize("encoder", ["compiled", "hdf5"])
def test_lzf_chunks_decode_to_their_values(tmp_path, monkeypatch, name, encoder):
    from skeldata import streamwriter
    if encoder == "compiled" and streamwriter._lzf_c is None:
        pytest.skip("the compiled LZF encoder was not built (no C compiler at install time)")
    if encoder == "hdf5":
        monkeypatch.setattr(streamwriter, "_lzf_c", None)
    data = _chunks_to_encode()[name]
    encoded, mask = streamwriter._compress(data, "lzf")
    assert mask in (0, streamwriter.LZF_SKIPPED)
    if name == "random bytes":
        assert mask == streamwriter.LZF_SKIPPED  # incompressible: stored shuffled, LZF marked as skipped
    if name in ("joints", "zeros", "periodic 8190"):
        assert mask == 0 and len(encoded) < data.nbytes * 0.7
    assert _stored_by_hdf5(tmp_path, data, encoded, mask).tobytes() == data.tobytes()


def test_compiled_lzf_stays_within_two_percent_of_hdf5s_size():
    from skeldata import streamwriter
    if streamwriter._lzf_c is None:
        pytest.skip("the compiled LZF encoder was not built (no C compiler at install time)")
    joints = _chunks_to_encode()["joints"]
    joints[:, 0] = np.round(joints[:, 0] * 1000) / 1000  # coordinates of a few significant digits, as NTU's
    ours = len(streamwriter._compress(joints, "lzf")[0])
    scratch = streamwriter._scratch_dataset(joints.shape, joints.dtype.str, "lzf")
    scratch[...] = joints
    theirs = len(scratch.id.read_direct_chunk((0,) * joints.ndim)[1])
    assert ours < theirs * 1.02, (ours, theirs)


def test_compiled_lzf_decodes_to_any_input():
    """Random mixtures of runs, repeats and noise, decoded by h5py's own LZF filter (in memory)."""
    from skeldata import streamwriter
    if streamwriter._lzf_c is None:
        pytest.skip("the compiled LZF encoder was not built (no C compiler at install time)")
    hypothesis = pytest.importorskip("hypothesis", reason="property tests need the test extra: pip install '.[test]'")
    from hypothesis import strategies as st
    import io

    piece = st.one_of(
        st.binary(min_size=1, max_size=300),
        st.tuples(st.integers(0, 255), st.integers(1, 2000)).map(lambda t: bytes([t[0]]) * t[1]),
        st.tuples(st.binary(min_size=3, max_size=40), st.integers(2, 300)).map(lambda t: t[0] * t[1]),
    )

    @hypothesis.settings(max_examples=150, deadline=None)
    @hypothesis.given(st.lists(piece, min_size=1, max_size=12), st.sampled_from([1, 2, 4, 8]))
    def round_trip(pieces, itemsize):
        raw = b"".join(pieces)
        raw = raw[:len(raw) // itemsize * itemsize] or bytes(itemsize)
        data = np.frombuffer(raw, dtype=f"u{itemsize}")
        encoded, mask = streamwriter._compress(data, "lzf")
        buffer = io.BytesIO()
        with h5py.File(buffer, "w") as h5:
            dataset = h5.create_dataset("x", shape=data.shape, chunks=data.shape, dtype=data.dtype, compression="lzf",
                                        shuffle=True)
            dataset.id.write_direct_chunk((0,), encoded, filter_mask=mask)
        # read in a new session: HDF5 (2.0.0 here) ignores the mask of a chunk written directly in the same one
        with h5py.File(buffer, "r") as h5:
            assert h5["x"][()].tobytes() == raw

    round_trip()


def test_thread_workers_keep_the_input_order_and_raise_the_workers_errors():
    with WorkerPool(2, threads=True) as pool:
        assert pool.parallel and pool.threads
        assert list(pool.ordered(lambda item, k: item * k, list(range(50)), 3, batch=3)) == [3 * i for i in range(50)]
        future = pool.submit(int, "not a number")
        with pytest.raises(ValueError, match="invalid literal"):
            future.result()
    assert not WorkerPool(1, threads=True).threads  # one job: no pool at all
