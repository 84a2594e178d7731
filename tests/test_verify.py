"""skeldata verify: it passes on every file the project writes, and each check that docs/inspect.md lists
for it fails on a copy of a fixture store damaged in exactly that way, naming the file, the dataset or
sample and the problem (the command exits 1 with the first problem as its one-line reason)."""
from __future__ import annotations

import dataclasses
import shutil

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from cli.skeldata import main
from skeldata._h5 import dataset_crc32
from skeldata.datasets import DATASETS
from skeldata.layouts import get_layout
from skeldata.pipeline.streams import derive
from skeldata.store import StoreWriter, compute_splits, open_store, sample_columns
from skeldata.verify import verify


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def problems_of(path) -> list:
    return [str(p) for p in verify(path).problems]


@pytest.fixture
def damaged(written_files, tmp_path):
    """A copy of the ntu60 fixture store to damage."""
    path = tmp_path / "damaged.h5"
    shutil.copy(written_files / "ntu60.h5", path)
    return path


@pytest.mark.parametrize("name, kind", [("ntu60.h5", "store"), ("ntu120.h5", "store"), ("ucla.h5", "store"),
                                        ("joint-only.h5", "store"), ("raw.h5", "raw"), ("denoised.h5", "denoised"),
                                        ("staged.h5", "store")])
def test_verify_passes_on_every_file_the_project_writes(written_files, name, kind):
    result = verify(written_files / name)
    assert result.ok, [str(p) for p in result.problems]
    assert result.kind == kind and result.checked


def test_verify_command_prints_what_it_checked(written_files):
    result = run("verify", written_files / "ntu60.h5")
    assert result.exit_code == 0
    assert "OK (ntu60 store, 12 samples, 448 frames)" in result.output
    assert "bone and motion equal to what the joints give" in result.output
    assert "published counts: not applicable (12 samples, the full ntu60 has 56,578)" in result.output


def flip_byte(path, dataset, position):
    """Invert one byte of a dataset's stored bytes (its first chunk when chunked), behind HDF5's back."""
    with h5py.File(path, "r") as h5:
        stored = h5[dataset]
        start = stored.id.get_chunk_info(0).byte_offset if stored.chunks else stored.id.get_offset()
    with open(path, "r+b") as raw:
        raw.seek(start + position)
        byte = raw.read(1)[0]
        raw.seek(start + position)
        raw.write(bytes([byte ^ 0xFF]))


def failure(path):
    """The one-line reason on stderr of a failing `skeldata verify`, which names the file."""
    result = run("verify", path)
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"skeldata: error: {path} failed verification: "), result.stderr
    return result.stderr


def test_a_corrupted_compressed_chunk_is_named(damaged):
    flip_byte(damaged, "streams/bone", 0)  # the lzf header of the chunk: decompression fails
    reason = failure(damaged)
    assert "streams/bone: the chunk of rows 0-447" in reason and "compressed data is corrupted" in reason


def test_a_flipped_byte_inside_a_chunk_is_caught_by_the_checksum(damaged):
    flip_byte(damaged, "streams/joint", 5000)  # decompresses, to other values
    problems = [str(p) for p in verify(damaged).problems]
    assert problems[0].startswith("streams/joint: content checksum differs")
    assert any(p.startswith("streams/bone: ") and "differ from the bone stream recomputed" in p for p in problems)


def test_a_flipped_byte_in_a_column(damaged):
    flip_byte(damaged, "samples/performer", 3)
    assert "samples/performer: content checksum differs" in failure(damaged)


def test_a_truncated_stream(damaged):
    with h5py.File(damaged, "r+") as h5:
        h5["streams/motion"].resize(400, axis=0)
    assert "streams/motion: has 400 frames, streams/joint has 448" in failure(damaged)


def test_an_edited_offset(damaged):
    with h5py.File(damaged, "r+") as h5:
        h5["samples/offset"][5] += 3
        h5["samples/offset"].attrs["crc32"] = dataset_crc32(h5["samples/offset"])  # only the structure tells
    reason = failure(damaged)
    assert "samples/offset: sample S004C002P009R001A013 spans 32 rows but samples/n_frames says 29" in reason


def test_an_overlapping_split(damaged):
    with h5py.File(damaged, "r+") as h5:
        test = h5["splits/xsub/test"][()]
        test[0] = h5["splits/xsub/train"][0]
        h5["splits/xsub/test"][...] = test
        h5["splits/xsub/test"].attrs["crc32"] = dataset_crc32(h5["splits/xsub/test"])
    assert "splits/xsub: train and test overlap: sample S014C001P004R002A023 is in both" in failure(damaged)


def test_a_split_out_of_the_published_order(damaged):
    with h5py.File(damaged, "r+") as h5:
        h5["splits/xview/train"][...] = np.sort(h5["splits/xview/train"][()])
        h5["splits/xview/train"].attrs["crc32"] = dataset_crc32(h5["splits/xview/train"])
    assert "splits/xview/train: is not in the published order: position 0 holds" in failure(damaged)


def test_a_non_finite_value_with_consistent_streams_and_checksums(damaged):
    with h5py.File(damaged, "r+") as h5:
        offset = h5["samples/offset"][()]
        lo, hi = offset[3], offset[4]
        joints = h5["streams/joint"][lo:hi]
        joints[2, 0, 4, 1] = np.nan
        for stream in ("joint", "bone", "motion"):  # derived streams and checksums follow the joints
            h5[f"streams/{stream}"][lo:hi] = derive(stream, joints, get_layout("ntu25"))
            h5[f"streams/{stream}"].attrs["crc32"] = dataset_crc32(h5[f"streams/{stream}"])
    problems = [str(p) for p in verify(damaged).problems]
    assert all("not finite" in p for p in problems)
    assert problems[0] == ("streams/joint: 1 row(s) hold a value that is not finite, first at frame 113 "
                           "(sample S003C001P016R001A059, its frame 2)")


def test_an_implausible_coordinate_with_consistent_streams_and_checksums(damaged):
    """Finite, consistent, checksummed, and still wrong: a coordinate of 1e29 m."""
    with h5py.File(damaged, "r+") as h5:
        offset = h5["samples/offset"][()]
        lo, hi = offset[3], offset[4]
        joints = h5["streams/joint"][lo:hi]
        joints[5, 0, 7, 2] = 1e29
        for stream in ("joint", "bone", "motion"):
            h5[f"streams/{stream}"][lo:hi] = derive(stream, joints, get_layout("ntu25"))
            h5[f"streams/{stream}"].attrs["crc32"] = dataset_crc32(h5[f"streams/{stream}"])
    problems = [str(p) for p in verify(damaged).problems]
    assert problems == ["streams/joint: 1 frame(s) hold a coordinate beyond 100 m (largest 1e+29), first at frame "
                        "116 (sample S003C001P016R001A059, its frame 5)"]


def rechunked_copy(source, path, chunk_frames):
    """The same store written with another chunk length."""
    with open_store(source) as store:
        spec = store.dataset
        attrs = {key: store.attrs[key] for key in ("pipeline", "sources")}
        with StoreWriter(path, spec, streams=store.stored_streams, columns=sample_columns(spec),
                         chunk_frames=chunk_frames, attrs=attrs) as writer:
            for i, row in enumerate(store.samples.to_dict("records")):
                writer.add_sample(row, store.sequence(i))
            dropped = store.dropped
            for name, reason, detail in zip(dropped.name, dropped.reason, dropped.detail):
                writer.add_dropped(name, reason, detail)
            attributes = {bench.attribute for bench in spec.benchmarks.values()}
            writer.commit(compute_splits(spec, {name: writer.column(name) for name in attributes}))


@pytest.mark.parametrize("frame", [13, 14, 447])
def test_streams_are_compared_across_block_boundaries(written_files, tmp_path, monkeypatch, frame):
    # Chunks of 7 frames read one at a time: the motion of a block's last frame needs the next block.
    monkeypatch.setattr("skeldata.verify.BLOCK_BYTES", 1)
    path = tmp_path / "chunked.h5"
    rechunked_copy(written_files / "ntu60.h5", path, chunk_frames=7)
    assert verify(path).ok
    with h5py.File(path, "r+") as h5:
        h5["streams/motion"][frame, 0, 0, 0] += 1
        h5["streams/motion"].attrs["crc32"] = dataset_crc32(h5["streams/motion"])
    problems = [str(p) for p in verify(path).problems]
    assert len(problems) == 1 and problems[0].startswith(
        f"streams/motion: 1 frame(s) differ from the motion stream recomputed from the joints, first at frame {frame} ")


def test_a_damaged_raw_file(written_files, tmp_path):
    path = tmp_path / "raw.h5"
    shutil.copy(written_files / "raw.h5", path)
    with h5py.File(path, "r+") as h5:
        h5["bodies/joint_offset"][3] -= 1
    problems = [str(p) for p in verify(path).problems]
    assert any(p.startswith("bodies/joint_offset: row 2 spans") for p in problems)


def test_published_counts_are_checked_on_a_full_data_set(written_files, monkeypatch):
    # Pretend the 12-sample fixture is the whole of NTU60: its splits then differ from the published ones.
    monkeypatch.setitem(DATASETS, "ntu60", dataclasses.replace(DATASETS["ntu60"], expected_samples=12))
    problems = [str(p) for p in verify(written_files / "ntu60.h5").problems]
    assert problems == ["splits/xsub: has 7 / 5 samples, the published split is 40,091 / 16,487",
                        "splits/xview: has 8 / 4 samples, the published split is 37,646 / 18,932"]


def test_not_a_store(tmp_path):
    (tmp_path / "x.h5").write_text("hello")
    assert "x.h5 failed verification: file: not an HDF5 file" in failure(tmp_path / "x.h5")


# ------------------------------------------------------------------- each check, damaged in exactly that way

def rewrite(h5, name, values):
    """Replace dataset ``name`` by ``values`` (any length) and record its checksum, so that only the check
    under test can tell."""
    del h5[name]
    h5[name] = values
    h5[name].attrs["crc32"] = dataset_crc32(h5[name])


def edit(position, value):
    """A damage that sets one element of a dataset and keeps its checksum consistent."""
    def damage(h5, name):
        values = h5[name][()]
        values[position] = value
        rewrite(h5, name, values)
    return damage


def swap_names(h5, name):
    values = h5[name][()]
    values[[2, 3]] = values[[3, 2]]
    rewrite(h5, name, values)


def swap_train_and_test(h5, name):
    train, test = h5[f"{name}/train"][()], h5[f"{name}/test"][()]
    train[0], test[0] = test[0], train[0]
    rewrite(h5, f"{name}/train", train)
    rewrite(h5, f"{name}/test", test)


def set_attribute(key, value):
    return lambda h5, _: h5.attrs.__setitem__(key, value)


CHECKS = {
    # root attributes
    "a missing attribute": ("/", lambda h5, _: h5.attrs.__delitem__("num_classes"), [
        "/: missing root attribute(s): num_classes", "/: attribute num_classes is None, expected 60 for ntu60"]),
    "an unknown data set": ("/", set_attribute("dataset", "kinetics"), [
        "/: attribute dataset 'kinetics' is not one of ntu60, ntu120, ucla"]),
    "another layout": ("/", set_attribute("layout", "ucla20"), ["/: attribute layout is 'ucla20'; ntu60 uses 'ntu25'"]),
    "another class count": ("/", set_attribute("num_classes", 120), [
        "/: attribute num_classes is 120, expected 60 for ntu60"]),
    "streams out of order": ("/", set_attribute("streams", '["bone", "joint"]'), [
        "/: attribute streams is ['bone', 'joint'], expected 'joint' and any of bone, motion, in that order",
        "streams/motion: is not listed in the streams attribute"]),
    "a wrong sample count": ("/", set_attribute("num_samples", 13), [
        "/: attributes num_samples, num_frames are 13, 448; the file holds 12, 448"]),
    # offsets
    "offsets not starting at 0": ("samples/offset", edit(0, 2), [
        "samples/offset: starts at 2, expected 0",
        "samples/offset: sample S001C001P022R001A060 spans 42 rows but samples/n_frames says 44 (1 disagree)"]),
    "decreasing offsets": ("samples/offset", edit(4, 110), [
        "samples/offset: decreases at sample S003C001P016R001A059: offset[3] = 111, offset[4] = 110 (1 place(s))",
        "samples/offset: sample S003C001P016R001A059 spans -1 rows but samples/n_frames says 33 (2 disagree)"]),
    "offsets ending early": ("samples/offset", edit(-1, 446), [
        "samples/offset: ends at 446, but the length of streams/joint is 448",
        "samples/offset: sample S017C003P024R001A026 spans 45 rows but samples/n_frames says 47 (1 disagree)"]),
    # sample columns
    "names out of order": ("samples/name", swap_names, [
        "samples/name: not sorted and unique: S002C002P014R002A045 (sample 3) follows S003C001P016R001A059"]),
    "a label outside the classes": ("samples/label", edit(4, 60), [
        "samples/label: sample S004C002P009R001A013 has label 60, outside 0..59"]),
    "too many bodies": ("samples/n_bodies", edit(4, 3), [
        "samples/n_bodies: sample S004C002P009R001A013 has 3 bodies, outside 1..2"]),
    "a column of another dtype": ("samples/label", lambda h5, name: rewrite(h5, name, h5[name][()].astype(np.float64)),
                                  ["samples/label: dtype is float64, expected int16"]),
    # checksums
    "a missing checksum": ("samples/label", lambda h5, name: h5[name].attrs.__delitem__("crc32"), [
        "samples/label: has no crc32 attribute"]),
    # splits
    "a benchmark missing": ("splits", lambda h5, name: h5[name].__delitem__("xview"), [
        "splits: benchmark xview is missing"]),
    "a sample in neither part": ("splits/xsub/train", lambda h5, name: rewrite(h5, name, h5[name][()][:-1]), [
        "splits/xsub: does not cover sample S017C002P019R002A035 (performer 19; 1 sample(s) missing)"]),
    "samples in the wrong part": ("splits/xsub", swap_train_and_test, [
        "splits/xsub/train: holds sample S001C001P022R001A060 (performer 22), which the xsub rule does not put "
        "in train (1 such)",
        "splits/xsub/test: holds sample S014C001P004R002A023 (performer 4), which the xsub rule does not put "
        "in test (1 such)"]),
    "a repeated index": ("splits/xsub/train", lambda h5, name: edit(1, h5[name][0])(h5, name), [
        "splits/xsub/train: sample S014C001P004R002A023 is listed 2 times"]),
    "an index out of range": ("splits/xsub/train", edit(1, 12), [
        "splits/xsub/train: position 1 holds 12, outside 0..11"]),
    # the dropped table
    "an unknown drop reason": ("dropped/reason", lambda h5, name: rewrite(h5, name, np.array([b"lost", b"no_body"])), [
        "dropped/reason: unknown reason(s): lost"]),
    "a dropped name that is a sample": ("dropped/name", lambda h5, name: rewrite(
        h5, name, np.array([h5["samples/name"][0], h5[name][1]])), [
        "dropped/name: S001C001P022R001A060 is both dropped and a sample (1 such name(s))"]),
    "dropped columns of unequal length": ("dropped/detail", lambda h5, name: rewrite(h5, name, h5[name][()][:1]), [
        "dropped: name, reason and detail do not have the same length"]),
}


@pytest.mark.parametrize("check", list(CHECKS))
def test_each_check_fails_on_its_damage(damaged, check):
    name, damage, expected = CHECKS[check]
    assert verify(damaged).ok
    with h5py.File(damaged, "r+") as h5:
        damage(h5, name)
    assert problems_of(damaged) == expected
    more = f" (and {len(expected) - 1} more problem(s) above)" if len(expected) > 1 else ""
    assert failure(damaged) == f"skeldata: error: {damaged} failed verification: {expected[0]}{more}\n"


def test_values_in_a_body_slot_beyond_n_bodies(damaged):
    """Sample 0 has one body; a value in its second slot, with bone, motion and checksums consistent."""
    with h5py.File(damaged, "r+") as h5:
        offset = h5["samples/offset"][()]
        assert h5["samples/n_bodies"][0] == 1
        joints = h5["streams/joint"][offset[0]:offset[1]]
        joints[1, 1] = 0.5
        for stream in ("joint", "bone", "motion"):
            h5[f"streams/{stream}"][offset[0]:offset[1]] = derive(stream, joints, get_layout("ntu25"))
            h5[f"streams/{stream}"].attrs["crc32"] = dataset_crc32(h5[f"streams/{stream}"])
    assert problems_of(damaged) == ["streams/joint: 1 frame(s) hold values in a body slot beyond n_bodies, first at "
                                    "frame 1 (sample S001C001P022R001A060, its frame 1)"]
