"""Export to and import from the formats people already have: pyskl pickles and SGN-family npz files.

Round trips keep every value the format carries; bad files fail with a message that names the
problem; the pickle has the structure pyskl's ``PoseDataset`` reads.
"""
from __future__ import annotations

import json
import pickle
import weakref
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cli.skeldata import main
from conftest import FIXTURES
from skeldata import open_store
from skeldata.build import build
from skeldata.convert.importers import import_pyskl, import_sgn_npz
from skeldata.convert.pyskl import write_annotation_file
from skeldata.convert.export import _joints_in_store_order, export_pyskl, export_sgn_npz
from skeldata.stats import compute_stats
from skeldata.verify import verify

GOLDEN = FIXTURES / "golden"
NTU_BENCHMARKS = {"ntu60": ("xsub", "xview"), "ntu120": ("xsub", "xset")}
UCLA_NAMES = ("a01_s01_e00_v01", "a02_s02_e01_v01", "a03_s01_e02_v02", "a12_s03_e00_v02",
              "a04_s01_e00_v03", "a08_s02_e03_v03")


def run(*args) -> object:
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def write_ucla_sequence(folder: Path, name: str, frames: int, rng: np.random.Generator) -> None:
    skeletons = np.round(rng.normal(size=(frames, 20, 3)), 6).tolist()
    label = (1, 2, 3, 4, 5, 6, 8, 9, 11, 12).index(int(name[1:3])) + 1
    (folder / f"{name}.json").write_text(json.dumps({"file_name": name, "skeletons": skeletons, "label": label}))


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> dict:
    """Stores of the bundled NTU fixtures and of a small NW-UCLA set (one one-frame sequence)."""
    folder = tmp_path_factory.mktemp("stores")
    for dataset in NTU_BENCHMARKS:
        build([FIXTURES / dataset], folder / f"{dataset}.h5", dataset)
    raw = folder / "all_sqe"
    raw.mkdir()
    rng = np.random.default_rng(0)
    for frames, name in zip((5, 1, 7, 3, 4, 6), UCLA_NAMES):
        write_ucla_sequence(raw, name, frames, rng)
    build([raw], folder / "ucla.h5", "ucla")
    return {dataset: folder / f"{dataset}.h5" for dataset in ("ntu60", "ntu120", "ucla")}


def name_columns(store) -> list:
    return [c for c in ("setup", "camera", "performer", "replication", "action", "subject", "take", "view")
            if c in store.samples.columns]


# ------------------------------------------------------------------------------------------ round trips

@pytest.mark.parametrize("dataset", ["ntu60", "ntu120", "ucla"])
def test_store_to_pyskl_to_store_keeps_every_value(stores, tmp_path, dataset):
    assert_pyskl_round_trip(stores[dataset], dataset, tmp_path)


def test_the_real_nw_ucla_set_round_trips_through_pyskl(nw_ucla_store, tmp_path):
    assert_pyskl_round_trip(nw_ucla_store, "ucla", tmp_path)


def assert_pyskl_round_trip(store_path: Path, dataset: str, tmp_path: Path) -> None:
    """store -> pyskl -> store keeps names, labels, name fields, every stream, the splits; and the
    second store exports the same pickle."""
    with open_store(store_path) as original:
        export_pyskl(original, tmp_path / "a.pkl")
    summary = import_pyskl(tmp_path / "a.pkl", dataset, tmp_path / "back.h5")
    with open_store(store_path) as original, open_store(tmp_path / "back.h5") as back:
        assert summary.samples == len(original) == len(back)
        assert back.names == original.names
        for column in ["label", "n_frames", "n_bodies"] + name_columns(original):
            assert np.array_equal(back.column(column), original.column(column)), column
        for i in range(len(original)):
            for stream in original.streams:
                assert back.sequence(i, stream).tobytes() == original.sequence(i, stream).tobytes()
        assert back.benchmarks == original.benchmarks
        for bench in original.benchmarks:
            for part in ("train", "test"):
                assert np.array_equal(back.split(bench, part), original.split(bench, part))
        assert (back.attrs["source_format"], back.attrs["names"]) == ("pyskl", "frame_dir")
    assert_a_sound_store(tmp_path / "back.h5")
    with open_store(tmp_path / "back.h5") as back:
        export_pyskl(back, tmp_path / "b.pkl")
    assert_same_pickles(tmp_path / "a.pkl", tmp_path / "b.pkl")


def assert_same_pickles(a: Path, b: Path) -> None:
    with open(a, "rb") as fa, open(b, "rb") as fb:
        first, second = pickle.load(fa), pickle.load(fb)
    assert first["split"] == second["split"]
    assert len(first["annotations"]) == len(second["annotations"])
    for x, y in zip(first["annotations"], second["annotations"]):
        assert x.keys() == y.keys() and x["keypoint"].tobytes() == y["keypoint"].tobytes()
        assert [x[k] for k in x if k != "keypoint"] == [y[k] for k in y if k != "keypoint"]


@pytest.mark.parametrize("dataset, bench", [(d, b) for d, benches in NTU_BENCHMARKS.items() for b in benches])
def test_store_to_sgn_npz_to_store_keeps_every_value(stores, tmp_path, dataset, bench):
    with open_store(stores[dataset]) as original:
        export_sgn_npz(original, bench, tmp_path / "a.npz")
    summary = import_sgn_npz(tmp_path / "a.npz", dataset, bench, tmp_path / "back.h5")
    with open_store(stores[dataset]) as original, open_store(tmp_path / "back.h5") as back:
        order = np.concatenate([original.split(bench, "train"), original.split(bench, "test")])
        n_train = len(original.split(bench, "train"))
        assert summary.splits == {bench: {"train": n_train, "test": len(order) - n_train}}
        for column in ("label", "n_frames", "n_bodies"):
            assert np.array_equal(back.column(column), original.column(column)[order]), column
        for k, i in enumerate(order):
            assert back.sequence(k).tobytes() == original.sequence(int(i)).tobytes()
        assert back.benchmarks == [bench]
        assert np.array_equal(back.split(bench, "train"), np.arange(n_train))
        assert np.array_equal(back.split(bench, "test"), np.arange(n_train, len(order)))
        assert back.names[0] == "1_train_000000" and back.names[n_train] == "2_test_000000"
        assert (back.attrs["source_format"], back.attrs["names"]) == ("sgn-npz", "synthetic")
        assert (back.column("setup") == -1).all() and "raw_frames" not in back.samples.columns
        export_sgn_npz(back, bench, tmp_path / "b.npz")
    assert_same_npz(tmp_path / "a.npz", tmp_path / "b.npz")
    assert_a_sound_store(tmp_path / "back.h5")


def assert_a_sound_store(path: Path) -> None:
    """An imported store passes `skeldata verify` and `skeldata stats` describes it (no denoising counts)."""
    result = verify(path)
    assert result.ok, [str(p) for p in result.problems]
    with open_store(path) as store:
        stats = compute_stats(store)
    assert stats["samples"] == result.samples and stats["denoising"] is None


def assert_same_npz(expected: Path, produced: Path) -> None:
    with np.load(expected) as e, np.load(produced) as g:
        assert list(g.files) == list(e.files) == ["x_train", "y_train", "x_test", "y_test"]
        for key in e.files:
            assert (g[key].dtype, g[key].shape) == (e[key].dtype, e[key].shape), key
            assert g[key].tobytes() == e[key].tobytes(), f"{key} differs"


@pytest.mark.parametrize("golden", sorted(p.name for p in GOLDEN.glob("ntu*_x*.npz")))
def test_golden_npz_imported_then_exported_is_byte_identical(tmp_path, golden):
    dataset, bench = golden[:-len(".npz")].split("_")
    result = run("import", GOLDEN / golden, "--format", "sgn-npz", "--dataset", dataset, "--benchmark", bench,
                 "--out", tmp_path / "s.h5", "-q")
    assert result.exit_code == 0, result.output
    assert run("export", tmp_path / "s.h5", "--format", "sgn-npz", "--benchmark", bench,
               "--out", tmp_path / "x.npz").exit_code == 0
    assert_same_npz(GOLDEN / golden, tmp_path / "x.npz")


def test_ntu120_lone_actor_copy_becomes_one_body(tmp_path):
    with np.load(GOLDEN / "ntu120_xsub.npz") as golden:
        x = golden["x_train"]
    import_sgn_npz(GOLDEN / "ntu120_xsub.npz", "ntu120", "xsub", tmp_path / "s.h5")
    with open_store(tmp_path / "s.h5") as store:
        for i in np.flatnonzero(store.column("n_bodies")[:len(x)] == 1):
            joints = store.sequence(int(i))
            assert not joints[:, 1].any()
            assert np.array_equal(x[i, :len(joints), 75:], x[i, :len(joints), :75])


# ------------------------------------------------------------------------------ what pyskl reads

def test_block_reads_give_every_sample(stores):
    with open_store(stores["ntu60"]) as store:
        for block_frames in (1, 50, 10 ** 6):
            read = list(_joints_in_store_order(store, block_frames))
            assert len(read) == len(store)
            assert all(joints.tobytes() == store.sequence(i).tobytes() for i, joints in enumerate(read))


def test_pyskl_pickle_has_the_structure_pose_dataset_reads(stores, tmp_path):
    result = run("export", stores["ntu60"], "--format", "pyskl", "--out", tmp_path / "ntu60.pkl")
    assert result.exit_code == 0 and "xsub_train 7, xsub_val 5, xview_train 8, xview_val 4" in result.output
    found = set()

    class Recording(pickle.Unpickler):
        def find_class(self, module, name):
            found.add(f"{module}.{name}")
            return super().find_class(module, name)

    with open(tmp_path / "ntu60.pkl", "rb") as stream:
        assert stream.read(2) == b"\x80\x04"  # protocol 4
        stream.seek(0)
        data = Recording(stream).load()
    assert found == {"builtins.list", "builtins.bytearray", "numpy.ndarray"}  # loads with numpy 1 and 2
    assert list(data) == ["split", "annotations"]
    assert list(data["split"]) == ["xsub_train", "xsub_val", "xview_train", "xview_val"]
    with open_store(stores["ntu60"]) as store:
        names, table = store.names, store.samples
        assert data["split"]["xview_val"] == [names[i] for i in store.split("xview", "test")]
        annotations = data["annotations"]
        assert [a["frame_dir"] for a in annotations] == names
        for i, item in enumerate(annotations):
            assert list(item) == ["frame_dir", "label", "keypoint", "total_frames"]  # 3D: no keypoint_score
            keypoint = item["keypoint"]
            assert type(item["label"]) is int and item["label"] == table.label[i]
            assert keypoint.dtype == np.float32 and keypoint.flags.c_contiguous and keypoint.flags.writeable
            assert keypoint.shape == (table.n_bodies[i], table.n_frames[i], 25, 3)
            assert item["total_frames"] == keypoint.shape[1]  # PreNormalize3D asserts it
            assert np.array_equal(keypoint, store.sequence(i)[:, :keypoint.shape[0]].transpose(1, 0, 2, 3))
        assert 1 in table.n_bodies.values and 2 in table.n_bodies.values
    selected = set(data["split"]["xsub_train"])  # PoseDataset.load_pkl_annotations
    assert len([a for a in annotations if a["frame_dir"] in selected]) == 7


def test_the_pickle_is_written_without_keeping_what_it_wrote(tmp_path):
    refs, alive = [], []

    def annotations():
        for i in range(2000):
            keypoint = np.zeros((1, 3, 25, 3), dtype=np.float32)
            refs.append(weakref.ref(keypoint))
            alive.append(sum(ref() is not None for ref in refs))
            yield {"frame_dir": f"s{i}", "label": 0, "keypoint": keypoint, "total_frames": 3}

    write_annotation_file(tmp_path / "a.pkl", {}, annotations())
    assert max(alive) <= 2  # the pickler looks one item ahead, and keeps nothing it has written
    with open(tmp_path / "a.pkl", "rb") as stream:
        assert len(pickle.load(stream)["annotations"]) == 2000


def test_a_pickle_out_of_name_order_gives_a_store_in_name_order(stores, tmp_path):
    with open_store(stores["ucla"]) as store:
        export_pyskl(store, tmp_path / "a.pkl")
        names, test = store.names, [store.names[i] for i in store.split("xview", "test")]
    with open(tmp_path / "a.pkl", "rb") as stream:
        data = pickle.load(stream)
    data["annotations"].reverse()
    data["split"]["xview_val"].reverse()
    (tmp_path / "b.pkl").write_bytes(pickle.dumps(data, protocol=4))
    import_pyskl(tmp_path / "b.pkl", "ucla", tmp_path / "s.h5")
    with open_store(tmp_path / "s.h5") as imported:
        assert imported.names == names
        assert [names[i] for i in imported.split("xview", "test")] == test[::-1]  # the pickle's order
    assert verify(tmp_path / "s.h5").ok


def test_a_pickle_as_pyskl_writes_it_is_imported(stores, tmp_path):
    """pyskl's ntu_preproc.py: float16 keypoints, numpy's own array pickles, mmcv's protocol 2."""
    with open_store(stores["ntu60"]) as store:
        names = store.names
        annotations = [{"frame_dir": name, "label": int(store.column("label")[i]),
                        "keypoint": store.sequence(i)[:, :int(store.column("n_bodies")[i])]
                        .transpose(1, 0, 2, 3).astype(np.float16),
                        "total_frames": int(store.column("n_frames")[i])} for i, name in enumerate(names)]
        split = {"xsub_train": [names[i] for i in sorted(store.split("xsub", "train"))],
                 "xsub_val": [names[i] for i in sorted(store.split("xsub", "test"))]}
    with open(tmp_path / "ntu60_3danno.pkl", "wb") as stream:
        pickle.dump({"split": split, "annotations": annotations}, stream, protocol=2)
    result = run("import", tmp_path / "ntu60_3danno.pkl", "--format", "pyskl", "--dataset", "ntu60",
                 "--out", tmp_path / "s.h5", "-q")
    assert result.exit_code == 0 and "xsub           train 7, test 5" in result.output
    with open_store(tmp_path / "s.h5") as imported:
        assert imported.benchmarks == ["xsub"]
        assert [imported.names[i] for i in imported.split("xsub", "test")] == split["xsub_val"]
        for i, item in enumerate(annotations):
            joints = imported.sequence(i)
            assert np.array_equal(joints[:, :len(item["keypoint"])].transpose(1, 0, 2, 3),
                                  item["keypoint"].astype(np.float32))
            assert not joints[:, len(item["keypoint"]):].any()


# ------------------------------------------------------------------------------------------ bad input

def golden_arrays() -> dict:
    with np.load(GOLDEN / "ntu60_xsub.npz") as golden:
        return {key: golden[key] for key in golden.files}


def npz_with(**changes) -> dict:
    arrays = golden_arrays()
    for key, value in changes.items():
        if value is None:
            del arrays[key]
        else:
            arrays[key] = value(arrays[key]) if callable(value) else value
    return arrays


def one_hot_broken(y):
    y = y.copy()
    y[3, :2] = 1
    return y


def zero_sample(x):
    x = x.copy()
    x[2] = 0
    return x


BAD_NPZ = [
    ("missing key", npz_with(y_test=None), [], "no y_test in the archive"),
    ("2-D x", npz_with(x_train=lambda x: x[:, 0]), [], "x_train has shape (7, 150); expected (samples, frames, 150)"),
    ("narrow rows", npz_with(x_test=lambda x: x[..., :75]), [], "x_test rows are 75 values wide"),
    ("float64 x", npz_with(x_train=lambda x: x.astype(np.float64)), [], "x_train is float64; the SGN-family npz holds float32"),
    ("label count", npz_with(y_train=lambda y: y[:5]), [], "x_train has 7 samples but y_train has 5 labels"),
    ("ntu120 y as ntu60", npz_with(y_train=lambda y: np.zeros((7, 120)), y_test=lambda y: np.zeros((5, 120))), [],
     "y_train has 120 classes but --dataset ntu60 has 60 (a ntu120 file: use --dataset ntu120)"),
    ("not one-hot", npz_with(y_train=one_hot_broken), [], "y_train row 3 is not one-hot"),
    ("empty sample", npz_with(x_train=zero_sample), [], "x_train row 2 is all zero"),
    ("ntu60 as ntu120", npz_with(), ["--dataset", "ntu120"],
     "y_train has 60 classes but --dataset ntu120 has 120 (a ntu60 file: use --dataset ntu60)"),
    ("ucla", npz_with(), ["--dataset", "ucla"], "--dataset ucla is not an NTU data set"),
    ("benchmark of another data set", npz_with(), ["--benchmark", "xset"],
     "data set 'ntu60' has no benchmark 'xset'; its benchmarks are xsub, xview"),
]


@pytest.mark.parametrize("arrays, args, message", [case[1:] for case in BAD_NPZ], ids=[c[0] for c in BAD_NPZ])
def test_bad_npz_files_are_refused_with_a_precise_message(tmp_path, arrays, args, message):
    np.savez(tmp_path / "bad.npz", **arrays)
    options = {"--dataset": "ntu60", "--benchmark": "xsub"}
    options.update(zip(args[::2], args[1::2]))
    result = run("import", tmp_path / "bad.npz", "--format", "sgn-npz", *[v for kv in options.items() for v in kv],
                 "--out", tmp_path / "s.h5", "-q")
    assert result.exit_code == 1 and message in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1 and not list(tmp_path.glob("*.h5")) and not list(tmp_path.glob(".s.h5*"))


def test_truncated_and_non_npz_files(tmp_path):
    np.savez(tmp_path / "good.npz", **golden_arrays())
    data = (tmp_path / "good.npz").read_bytes()
    cut = data.index(b"y_train.npy")  # inside x_train, before the archive's directory
    (tmp_path / "cut.npz").write_bytes(data[:cut])
    for name, message in [("cut.npz", "not an npz file"), ("good.npz", None)]:
        result = run("import", tmp_path / name, "--format", "sgn-npz", "--dataset", "ntu60", "--benchmark", "xsub",
                     "--out", tmp_path / "s.h5", "-q")
        assert (result.exit_code, message is None or message in result.stderr) == (1 if message else 0, True)
    (tmp_path / "x.pkl").write_bytes(pickle.dumps([1]))
    result = run("import", tmp_path / "x.pkl", "--format", "sgn-npz", "--dataset", "ntu60", "--benchmark", "xsub",
                 "--out", tmp_path / "t.h5")
    assert result.exit_code == 1 and "x.pkl: not an npz file" in result.stderr


def annotation(name="S001C001P001R001A001", label=0, bodies=1, frames=4, joints=25, coords=3, **extra):
    item = {"frame_dir": name, "label": label,
            "keypoint": np.ones((bodies, frames, joints, coords), dtype=np.float32), "total_frames": frames}
    item.update(extra)
    return item


def pyskl_file(annotations=None, split=None):
    annotations = [annotation()] if annotations is None else annotations
    split = {"xsub_train": [a["frame_dir"] for a in annotations], "xsub_val": []} if split is None else split
    return {"split": split, "annotations": annotations}


class Evil:
    def __reduce__(self):
        import os
        return os.getcwd, ()


BAD_PICKLES = [
    ("a list", [annotation()], "holds a list; a pyskl annotation file holds a dict with 'split' and 'annotations'"),
    ("no annotations", {"split": {}}, "no 'annotations' key"),
    ("code", {"split": {}, "annotations": [Evil()]}, "refers to posix.getcwd"),
    ("no keypoint", pyskl_file([{"frame_dir": "S001C001P001R001A001", "label": 0}]),
     "annotation 0 (S001C001P001R001A001) has no keypoint"),
    ("no frame_dir", pyskl_file([{"label": 0}], split={}), "annotation 0 has no frame_dir"),
    ("not a dict", pyskl_file([[0]], split={}), "annotation 0 is a list; expected a dict"),
    ("2D keypoint", pyskl_file([annotation(coords=2)]), "keypoint has 2 coordinates per joint; skeldata stores 3D"),
    ("NW-UCLA joints", pyskl_file([annotation(joints=20)]), "keypoint has 20 joints; the data set's layout has 25"),
    ("three bodies", pyskl_file([annotation(bodies=3)]), "keypoint has 3 bodies; the data set holds 1 to 2"),
    ("total_frames", pyskl_file([annotation(total_frames=5)]), "total_frames is 5 but keypoint has 4 frames"),
    ("ntu120 label", pyskl_file([annotation("S018C001P001R001A061", label=60)]),
     "label 60 is outside 0..59 of a 60-class data set"),
    ("name and label", pyskl_file([annotation(label=3)]), "label 3 but the name says class 0"),
    ("ntu120 setup", pyskl_file([annotation("S018C001P001R001A001")]), "setup S018 is outside ntu60 (S001-S017)"),
    ("float64", pyskl_file([annotation(keypoint=np.full((1, 4, 25, 3), 0.1))]),
     "keypoint holds float64 values that float32 cannot represent exactly"),
    ("not finite", pyskl_file([annotation(keypoint=np.full((1, 4, 25, 3), np.nan, dtype=np.float32))]),
     "keypoint holds a value that is not finite"),
    ("twice", pyskl_file([annotation(), annotation()]), "frame_dir 'S001C001P001R001A001' is in annotations 0 and 1"),
    ("xset in ntu60", pyskl_file(split={"xset_train": [], "xset_val": []}),
     "split 'xset_train': ntu60 has no benchmark 'xset' (its benchmarks: xsub, xview)"),
    ("split name", pyskl_file(split={"train": []}), "split 'train' is not named <benchmark>_train or <benchmark>_val"),
    ("unknown name", pyskl_file(split={"xsub_train": ["S001C001P002R001A001"], "xsub_val": []}),
     "split 'xsub_train' lists 'S001C001P002R001A001', which has no annotation"),
    ("listed twice", pyskl_file(split={"xsub_train": ["S001C001P001R001A001"] * 2, "xsub_val": []}),
     "split 'xsub_train' lists 'S001C001P001R001A001' more than once"),
    ("one part", pyskl_file(split={"xsub_train": []}), "split has xsub_train but no xsub_val"),
]


@pytest.mark.parametrize("content, message", [case[1:] for case in BAD_PICKLES], ids=[c[0] for c in BAD_PICKLES])
def test_bad_pickles_are_refused_with_a_precise_message(tmp_path, content, message):
    (tmp_path / "bad.pkl").write_bytes(pickle.dumps(content, protocol=2))
    result = run("import", tmp_path / "bad.pkl", "--format", "pyskl", "--dataset", "ntu60", "--out", tmp_path / "s.h5")
    assert result.exit_code == 1 and message in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1 and not list(tmp_path.glob("*.h5")) and not list(tmp_path.glob(".s.h5*"))


@pytest.mark.parametrize("content, message", [
    (np.savez, "not a pickle of protocol 2 or later; it starts with b'PK' (a zip archive: an npz? use --format sgn-npz)"),
    (lambda path: path.write_bytes(pickle.dumps(pyskl_file())[:-40]), "the pickle ends early (truncated file?)"),
    (lambda path: path.write_bytes(b"just text"), "not a pickle of protocol 2 or later"),
])
def test_files_that_are_no_pickle(tmp_path, content, message):
    path = tmp_path / "bad.pkl"
    if content is np.savez:
        with open(path, "wb") as stream:
            np.savez(stream, x=np.zeros(3))
    else:
        content(path)
    result = run("import", path, "--format", "pyskl", "--dataset", "ntu60", "--out", tmp_path / "s.h5")
    assert result.exit_code == 1 and message in result.stderr, result.stderr


def test_benchmark_option_rules(stores, tmp_path):
    result = run("export", stores["ntu60"], "--format", "sgn-npz", "--out", tmp_path / "x.npz")
    assert result.exit_code == 1 and "--benchmark is required with --format sgn-npz" in result.stderr
    result = run("export", stores["ntu60"], "--format", "pyskl", "--benchmark", "xsub", "--out", tmp_path / "x.pkl")
    assert result.exit_code == 1 and "--benchmark is for --format sgn-npz only" in result.stderr
    result = run("import", GOLDEN / "ntu60_xsub.npz", "--format", "sgn-npz", "--dataset", "ntu60",
                 "--out", tmp_path / "s.h5")
    assert result.exit_code == 1 and "--benchmark is required with --format sgn-npz" in result.stderr
    result = run("export", stores["ucla"], "--format", "sgn-npz", "--benchmark", "xview", "--out", tmp_path / "u.npz")
    assert result.exit_code == 1 and "sgn-npz is an NTU format" in result.stderr
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("command", ["import", "export"])
def test_help_has_examples(command):
    result = run(command, "--help")
    assert result.exit_code == 0 and "Example:" in result.output and f"skeldata {command}" in result.output
    assert "pyskl" in result.output
