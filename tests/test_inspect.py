"""skeldata stats, verify and show: exact statistics of the fixture stores, verify passing on every
file the project writes and failing with a precise reason on damaged ones, and the drawings."""
from __future__ import annotations

import dataclasses
import json
import shutil
import sys

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from cli.skeldata import main
from conftest import FIXTURES, shared_path
from skeldata import open_store
from skeldata._h5 import dataset_crc32
from skeldata.build import build, denoise_file, extract, transform_file
from skeldata.datasets import DATASETS
from skeldata.layouts import get_layout
from skeldata.pipeline.streams import derive
from skeldata.stats import compute_stats, histogram_edges
from skeldata.store import StoreWriter, compute_splits, sample_columns
from skeldata.verify import verify

MISSING_MATPLOTLIB = "needs matplotlib: pip install 'skeldata[plot]'"


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def needs_matplotlib():
    pytest.importorskip("matplotlib", reason="the image tests need the optional extra: pip install 'skeldata[plot]'")


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """The fixture stores and the staged outputs, built once for the module."""
    folder = tmp_path_factory.mktemp("stores")
    all_streams = ("joint", "bone", "motion")  # stored, so that verify has derived streams to check
    build([FIXTURES / "ntu60"], folder / "ntu60.h5", "ntu60", streams=all_streams)
    build([FIXTURES / "ntu120"], folder / "ntu120.h5", "ntu120", streams=all_streams)
    build([FIXTURES / "ntu60"], folder / "joint-only.h5", "ntu60", streams=("joint",))
    extract([FIXTURES / "ntu60"], folder / "raw.h5", "ntu60")
    denoise_file(folder / "raw.h5", folder / "denoised.h5")
    transform_file(folder / "denoised.h5", folder / "staged.h5", streams=all_streams)
    raw = folder / "all_sqe"
    raw.mkdir()
    rng = np.random.default_rng(0)
    for name, frames in (("a01_s01_e00_v01", 5), ("a02_s02_e01_v02", 1), ("a12_s03_e02_v03", 7)):
        label = {"a01": 1, "a02": 2, "a12": 10}[name[:3]]
        skeletons = rng.normal(size=(frames, 20, 3)).round(4).tolist()
        (raw / f"{name}.json").write_text(json.dumps({"file_name": name, "skeletons": skeletons, "label": label}))
    build([raw], folder / "ucla.h5", "ucla")
    return folder


@pytest.fixture
def damaged(stores, tmp_path):
    """A copy of the ntu60 fixture store to damage."""
    path = tmp_path / "damaged.h5"
    shutil.copy(stores / "ntu60.h5", path)
    return path


# --------------------------------------------------------------------------------------------- stats

def test_stats_of_the_ntu60_fixture_store(stores):
    with open_store(stores / "ntu60.h5") as store:
        stats = compute_stats(store)
    assert (stats["dataset"], stats["samples"], stats["frames"]) == ("ntu60", 12, 448)
    assert {(b, p): stats["benchmarks"][b][p]["samples"] for b in ("xsub", "xview") for p in ("train", "test")} == {
        ("xsub", "train"): 7, ("xsub", "test"): 5, ("xview", "train"): 8, ("xview", "test"): 4}
    assert stats["benchmarks"]["xview"]["test"]["frames"] == 44 + 33 + 48 + 33  # the camera-1 samples
    length = stats["frame_length"]
    assert (length["min"], length["max"], length["median"]) == (23, 48, 36.5)
    assert length["mean"] == pytest.approx(448 / 12)
    assert sum(length["histogram"]["counts"]) == 12
    assert stats["benchmarks"]["xsub"]["test"]["frame_length"]["min"] == 23
    per_class = {c["action"]: c["samples"] for c in stats["classes"] if c["samples"]}
    assert per_class == {code: 1 for code in ("A007", "A013", "A023", "A026", "A031", "A035", "A037", "A045",
                                              "A046", "A052", "A059", "A060")}
    assert len(stats["classes"]) == 60 and sum(stats["benchmarks"]["xsub"]["train"]["per_class"]) == 7
    assert stats["bodies"] == {"1": 7, "2": 5}
    assert stats["recording"]["camera"] == {"1": 4, "2": 4, "3": 4}
    assert stats["recording"]["setup"] == {"1": 2, "2": 1, "3": 1, "4": 2, "6": 1, "10": 2, "14": 1, "17": 2}
    assert stats["dropped"] == {"total": 2, "by_reason": {"all_bodies_short": 1, "no_body": 1}}
    assert stats["denoising"] == {"frames_dropped": 15, "removed_by_length": 3, "removed_by_spread": 2,
                                  "unassigned": 1, "rows_removed": 11}


def test_stats_of_the_ntu120_and_ucla_stores(stores):
    with open_store(stores / "ntu120.h5") as store:
        stats = compute_stats(store)
    assert (stats["samples"], stats["frames"], stats["num_classes"]) == (9, 305, 120)
    assert [stats["benchmarks"]["xset"][p]["samples"] for p in ("train", "test")] == [4, 5]
    assert [stats["benchmarks"]["xsub"][p]["samples"] for p in ("train", "test")] == [5, 4]
    assert stats["dropped"]["by_reason"] == {"no_body": 1}
    assert stats["denoising"] == {"frames_dropped": 9, "removed_by_length": 1, "removed_by_spread": 2,
                                  "unassigned": 1, "rows_removed": 10}
    with open_store(stores / "ucla.h5") as store:
        stats = compute_stats(store)
    assert (stats["samples"], stats["frames"], stats["denoising"]) == (3, 13, None)
    assert {c["action"]: c["samples"] for c in stats["classes"] if c["samples"]} == {"a01": 1, "a02": 1, "a12": 1}
    assert stats["recording"] == {"subject": {"1": 1, "2": 1, "3": 1}, "view": {"1": 1, "2": 1, "3": 1},
                                  "take": {"0": 1, "1": 1, "2": 1}}
    assert [stats["benchmarks"]["xview"][p]["samples"] for p in ("train", "test")] == [2, 1]


def test_histogram_bins_have_round_widths():
    assert list(histogram_edges(np.array([3, 7]))) == [3, 4, 5, 6, 7, 8]
    edges = histogram_edges(np.array([1, 201]))
    assert (edges[0], edges[1] - edges[0], edges[-1]) == (0, 10, 210)
    assert len(histogram_edges(np.array([32, 300]))) - 1 <= 30


def test_stats_text_report_and_json_keys(stores):
    result = run("stats", stores / "ntu60.h5")
    assert result.exit_code == 0, result.output
    for line in ("samples       12   (448 frames)", "cameras       3    1: 4  2: 4  3: 4",
                 "dropped       2   (all_bodies_short 1, no_body 1)",
                 "bodies: 3 removed by length, 2 by spread, 1 unassigned"):
        assert line in result.output
    assert "  xview     train          8        290" in result.output
    result = run("stats", stores / "ntu60.h5", "--json")
    stats = json.loads(result.output)
    assert list(stats) == ["schema_version", "store", "dataset", "layout", "num_classes", "max_bodies", "samples",
                           "frames", "frame_length", "benchmarks", "classes", "bodies", "recording", "dropped",
                           "denoising"]
    assert list(stats["frame_length"]) == ["min", "max", "mean", "median", "percentiles", "histogram"]
    assert list(stats["frame_length"]["percentiles"]) == ["5", "25", "75", "95"]
    assert list(stats["benchmarks"]["xsub"]["train"]) == ["samples", "frames", "frame_length", "per_class"]
    assert list(stats["classes"][0]) == ["label", "action", "samples"]


def test_stats_plot_writes_a_png(stores, tmp_path):
    needs_matplotlib()
    result = run("stats", stores / "ntu120.h5", "--plot", tmp_path / "stats.png")
    assert result.exit_code == 0 and f"wrote {tmp_path / 'stats.png'}" in result.output
    assert (tmp_path / "stats.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_missing_matplotlib_is_named_with_the_install_command(stores, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now raises ImportError
    result = run("stats", stores / "ntu60.h5", "--plot", tmp_path / "stats.png")
    assert result.exit_code == 1 and f"--plot {MISSING_MATPLOTLIB}" in result.stderr
    assert not (tmp_path / "stats.png").exists()
    result = run("show", stores / "ntu60.h5", "S001C001P022R001A060", "--out", tmp_path / "s.png")
    assert result.exit_code == 1 and MISSING_MATPLOTLIB in result.stderr
    assert run("stats", stores / "ntu60.h5").exit_code == 0  # the text report needs no extra


# ---------------------------------------------------------------------------------------------- show

def test_show_draws_a_strip_and_an_animation(stores, tmp_path):
    needs_matplotlib()
    from PIL import Image
    result = run("show", stores / "ntu60.h5", "S006C001P018R001A031", "--out", tmp_path / "s.png", "--frames", "5")
    assert result.exit_code == 0 and "(5 frames)" in result.output
    assert Image.open(tmp_path / "s.png").format == "PNG"
    result = run("show", stores / "ucla.h5", "a12_s03_e02_v03", "--out", tmp_path / "s.gif")
    assert result.exit_code == 0 and "(7 frames)" in result.output
    assert Image.open(tmp_path / "s.gif").n_frames == 7


def test_show_errors(stores, tmp_path):
    result = run("show", stores / "ntu60.h5", "S999C001P001R001A001", "--out", tmp_path / "s.png")
    assert result.exit_code == 1 and "no sample named 'S999C001P001R001A001'" in result.stderr
    result = run("show", stores / "ntu60.h5", "S006C001P018R001A031", "--out", tmp_path / "s.jpg")
    assert result.exit_code == 1 and "give a .png" in result.stderr


# -------------------------------------------------------------------------------------------- verify

@pytest.mark.parametrize("name, kind", [("ntu60.h5", "store"), ("ntu120.h5", "store"), ("ucla.h5", "store"),
                                        ("joint-only.h5", "store"), ("raw.h5", "raw"), ("denoised.h5", "denoised"),
                                        ("staged.h5", "store")])
def test_verify_passes_on_every_file_the_project_writes(stores, name, kind):
    result = verify(stores / name)
    assert result.ok, [str(p) for p in result.problems]
    assert result.kind == kind and result.checked


def test_verify_command_prints_what_it_checked(stores):
    result = run("verify", stores / "ntu60.h5")
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
    """The one-line reason on stderr of a failing `skeldata verify`."""
    result = run("verify", path)
    assert result.exit_code == 1
    assert len(result.stderr.strip().splitlines()) == 1
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
def test_streams_are_compared_across_block_boundaries(stores, tmp_path, monkeypatch, frame):
    # Chunks of 7 frames read one at a time: the motion of a block's last frame needs the next block.
    monkeypatch.setattr("skeldata.verify.BLOCK_BYTES", 1)
    path = tmp_path / "chunked.h5"
    rechunked_copy(stores / "ntu60.h5", path, chunk_frames=7)
    assert verify(path).ok
    with h5py.File(path, "r+") as h5:
        h5["streams/motion"][frame, 0, 0, 0] += 1
        h5["streams/motion"].attrs["crc32"] = dataset_crc32(h5["streams/motion"])
    problems = [str(p) for p in verify(path).problems]
    assert len(problems) == 1 and problems[0].startswith(
        f"streams/motion: 1 frame(s) differ from the motion stream recomputed from the joints, first at frame {frame} ")


def test_a_damaged_raw_file(stores, tmp_path):
    path = tmp_path / "raw.h5"
    shutil.copy(stores / "raw.h5", path)
    with h5py.File(path, "r+") as h5:
        h5["bodies/joint_offset"][3] -= 1
    problems = [str(p) for p in verify(path).problems]
    assert any(p.startswith("bodies/joint_offset: row 2 spans") for p in problems)


def test_published_counts_are_checked_on_a_full_data_set(stores, monkeypatch):
    # Pretend the 12-sample fixture is the whole of NTU60: its splits then differ from the published ones.
    monkeypatch.setitem(DATASETS, "ntu60", dataclasses.replace(DATASETS["ntu60"], expected_samples=12))
    problems = [str(p) for p in verify(stores / "ntu60.h5").problems]
    assert problems == ["splits/xsub: has 7 / 5 samples, the published split is 40,091 / 16,487",
                        "splits/xview: has 8 / 4 samples, the published split is 37,646 / 18,932"]


def test_not_a_store(tmp_path):
    (tmp_path / "x.h5").write_text("hello")
    assert "x.h5 failed verification: file: not an HDF5 file" in failure(tmp_path / "x.h5")


@pytest.mark.parametrize("command", ["stats", "verify", "show"])
def test_every_inspect_command_has_help_with_an_example(command):
    result = run(command, "--help")
    assert result.exit_code == 0 and "Example:" in result.output and f"skeldata {command}" in result.output


# ---------------------------------------------------------------------------------- the real NW-UCLA

def test_the_real_nw_ucla_store(tmp_path):
    raw = shared_path("data", "nw-ucla", "all_sqe")
    build([raw], tmp_path / "ucla.h5", "ucla", jobs=2)
    stats = json.loads(run("stats", tmp_path / "ucla.h5", "--json").output)
    assert stats["samples"] == 1484
    assert [stats["benchmarks"]["xview"][p]["samples"] for p in ("train", "test")] == [1020, 464]
    assert (stats["frame_length"]["min"], stats["frame_length"]["max"]) == (1, 201)
    result = run("verify", tmp_path / "ucla.h5")
    assert result.exit_code == 0
    assert "published counts of the full ucla: 1,484 samples, xview 1,020/464" in result.output
