"""The store: the reading API, streams, splits, atomic writes and refusal of bad files."""
from __future__ import annotations

import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import FIXTURES
from skeldata import open_store
from skeldata.build import build
from skeldata.errors import StoreError
from skeldata.layouts import NTU25
from skeldata.pipeline import streams

ALL_STREAMS = ("joint", "bone", "motion")


@pytest.fixture(scope="module")
def store_path(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("store") / "ntu60.h5"
    build([FIXTURES / "ntu60"], out, "ntu60", streams=ALL_STREAMS)
    return out


def test_samples_table_and_sequences(store_path):
    with open_store(store_path) as store:
        assert len(store) == 12
        table = store.samples
        for column in ("name", "label", "setup", "camera", "performer", "replication", "n_frames", "n_bodies"):
            assert column in table.columns
        assert list(table.name) == sorted(table.name)
        assert (table.label == table.name.str[-3:].astype(int) - 1).all()
        for i in range(len(store)):
            joints = store.sequence(i)
            assert joints.dtype == np.float32 and joints.shape == (table.n_frames[i], 2, 25, 3)
            if table.n_bodies[i] == 1:
                assert not joints[:, 1].any()
        assert store.sequence(-1).shape == store.sequence(len(store) - 1).shape
        with pytest.raises(IndexError, match="out of range"):
            store.sequence(len(store))
        with pytest.raises(KeyError, match="no stream 'colour'"):
            store.sequence(0, "colour")


def test_stored_streams_are_consistent_with_the_joints(store_path):
    with open_store(store_path) as store:
        assert store.streams == ("joint", "bone", "motion")
        for i in range(len(store)):
            joints = store.sequence(i, "joint")
            assert np.array_equal(store.sequence(i, "bone"), streams.bones(joints, NTU25))
            assert np.array_equal(store.sequence(i, "motion"), streams.motion(joints))


def test_splits_cover_the_store_disjointly(store_path):
    with open_store(store_path) as store:
        assert store.benchmarks == ["xsub", "xview"]
        cameras = store.column("camera")
        for bench in store.benchmarks:
            train, test = store.split(bench, "train"), store.split(bench, "test")
            assert train.dtype == np.int64
            assert sorted(np.concatenate([train, test]).tolist()) == list(range(len(store)))
        assert set(cameras[store.split("xview", "test")]) == {1}
        with pytest.raises(KeyError, match="no benchmark 'xset'"):
            store.split("xset", "train")


def test_attributes_record_the_pipeline_and_versions(store_path):
    with open_store(store_path) as store:
        attrs = store.attrs
        assert attrs["format"] == "skeldata" and attrs["format_version"] == 1 and attrs["kind"] == "store"
        assert attrs["dataset"] == "ntu60" and attrs["layout"] == "ntu25" and attrs["complete"]
        assert attrs["pipeline"]["denoise"] == {"length_threshold": 11, "spread_x_over_y": 0.8,
                                                "spread_noise_ratio": 0.69754}
        assert set(attrs["writer"]) >= {"skeldata", "numpy", "h5py", "hdf5"}
        assert "Store(" in repr(store) and "samples=12" in repr(store)


def test_store_pickles_without_its_file_handle(store_path):
    with open_store(store_path) as store:
        first = store.sequence(0)
        clone = pickle.loads(pickle.dumps(store))
        assert clone._h5 is None
        assert np.array_equal(clone.sequence(0), first)


class SequenceSums:
    """A minimal map-style dataset over a store (module level, so that spawned workers can import it)."""

    def __init__(self, store):
        self.store = store

    def __len__(self):
        return len(self.store)

    def __getitem__(self, i):
        return float(self.store.sequence(i).sum())


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_dataloader_workers_read_the_store(store_path, context):
    from torch.utils.data import DataLoader

    with open_store(store_path) as store:
        store.sequence(0)  # the parent has an open handle before the workers start
        expected = [float(store.sequence(i).sum()) for i in range(len(store))]
        loader = DataLoader(SequenceSums(store), batch_size=3, num_workers=2, multiprocessing_context=context)
        got = [float(v) for batch in loader for v in batch]
    assert got == pytest.approx(expected)


def test_an_interrupted_build_leaves_no_store(tmp_path, monkeypatch):
    out = tmp_path / "ntu60.h5"
    from skeldata.process import PROCESSORS

    suffix, original = PROCESSORS["ntu"]
    calls = {"n": 0}

    def failing(item, dataset):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return original(item, dataset)

    monkeypatch.setitem(PROCESSORS, "ntu", (suffix, failing))
    with pytest.raises(KeyboardInterrupt):
        build([FIXTURES / "ntu60"], out, "ntu60")
    assert list(tmp_path.iterdir()) == []


def test_an_interrupted_build_keeps_the_previous_store(tmp_path, monkeypatch, store_path):
    out = tmp_path / "ntu60.h5"
    out.write_bytes(store_path.read_bytes())
    from skeldata.process import PROCESSORS

    def failing(item, dataset):
        raise KeyboardInterrupt

    monkeypatch.setitem(PROCESSORS, "ntu", (".skeleton", failing))
    with pytest.raises(KeyboardInterrupt):
        build([FIXTURES / "ntu60"], out, "ntu60")
    assert out.read_bytes() == store_path.read_bytes()
    assert len(open_store(out)) == 12


def test_incomplete_or_foreign_files_are_refused(tmp_path, store_path):
    incomplete = tmp_path / "incomplete.h5"
    incomplete.write_bytes(store_path.read_bytes())
    with h5py.File(incomplete, "r+") as h5:
        h5.attrs["complete"] = False
    with pytest.raises(StoreError, match="incomplete: the write that produced it did not finish"):
        open_store(incomplete)

    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as h5:
        h5["x"] = np.zeros(3)
    with pytest.raises(StoreError, match="not a skeldata file"):
        open_store(foreign)

    text = tmp_path / "text.h5"
    text.write_text("hello")
    with pytest.raises(StoreError, match="not an HDF5 file"):
        open_store(text)

    with pytest.raises(StoreError, match="no such file"):
        open_store(tmp_path / "missing.h5")

    newer = tmp_path / "newer.h5"
    newer.write_bytes(store_path.read_bytes())
    with h5py.File(newer, "r+") as h5:
        h5.attrs["format_version"] = 99
    with pytest.raises(StoreError, match="newer than this skeldata understands"):
        open_store(newer)


def test_compression_choices_hold_the_same_values(tmp_path, store_path):
    build([FIXTURES / "ntu60"], tmp_path / "gzip.h5", "ntu60", compression="gzip", streams=ALL_STREAMS)
    with open_store(store_path) as lzf, open_store(tmp_path / "gzip.h5") as gz:
        assert gz.attrs["compression"] == "gzip"
        for i in range(len(lzf)):
            assert lzf.sequence(i).tobytes() == gz.sequence(i).tobytes()


def test_streams_not_stored_are_derived_on_read(tmp_path, store_path):
    build([FIXTURES / "ntu60"], tmp_path / "joint_only.h5", "ntu60", jobs=2)  # the default: joints only
    with open_store(store_path) as full, open_store(tmp_path / "joint_only.h5") as lean:
        assert lean.stored_streams == ("joint",) and lean.streams == ("joint", "bone", "motion")
        with h5py.File(tmp_path / "joint_only.h5") as h5:
            assert list(h5["streams"]) == ["joint"]
        for i in range(len(full)):
            for stream in ("bone", "motion"):
                assert lean.sequence(i, stream).tobytes() == full.sequence(i, stream).tobytes()


def test_threaded_and_process_builds_write_the_same_store(tmp_path, store_path, monkeypatch):
    """With the compiled reader an SGN build parses in threads; without it, in processes. Same store either way."""
    from skeldata import build as build_module
    from skeldata._parallel import WorkerPool
    kinds = []

    class RecordingPool(WorkerPool):
        def __init__(self, jobs=1, threads=False):
            super().__init__(jobs, threads)
            kinds.append(self.threads)

    monkeypatch.setattr(build_module, "WorkerPool", RecordingPool)
    build([FIXTURES / "ntu60"], tmp_path / "threads.h5", "ntu60", jobs=2, streams=ALL_STREAMS)
    monkeypatch.setattr(build_module, "has_compiled_reader", lambda: False)
    build([FIXTURES / "ntu60"], tmp_path / "processes.h5", "ntu60", jobs=2, streams=ALL_STREAMS)
    from skeldata.formats.ntu import has_compiled_reader
    assert kinds == [has_compiled_reader(), False]
    with h5py.File(tmp_path / "threads.h5") as threaded, h5py.File(tmp_path / "processes.h5") as forked, \
            h5py.File(store_path) as serial:
        for name in ("joint", "bone", "motion"):
            for other in (forked, serial):
                assert np.array_equal(threaded["streams"][name][()], other["streams"][name][()])
                assert threaded["streams"][name].attrs["crc32"] == other["streams"][name].attrs["crc32"]
        assert np.array_equal(threaded["samples"]["name"][()], serial["samples"]["name"][()])


def test_parallel_chunk_compression_writes_what_hdf5_would(tmp_path, store_path):
    build([FIXTURES / "ntu60"], tmp_path / "parallel.h5", "ntu60", jobs=2, streams=ALL_STREAMS)
    with h5py.File(tmp_path / "parallel.h5") as parallel, h5py.File(store_path) as serial:
        for name in ("joint", "bone", "motion"):
            assert parallel["streams"][name].compression == "lzf" and parallel["streams"][name].shuffle
            assert np.array_equal(parallel["streams"][name][()], serial["streams"][name][()])
            assert parallel["streams"][name].attrs["crc32"] == serial["streams"][name].attrs["crc32"]


def test_typed_root_attributes(store_path):
    with open_store(store_path) as store:
        assert (store.num_classes, store.max_bodies, store.num_joints) == (60, 2, 25)
        assert store.num_frames == int(store.offsets[-1]) == int(store.column("n_frames").sum())
        assert (store.pipeline, store.single_body_fill) == ("sgn", "zero")
