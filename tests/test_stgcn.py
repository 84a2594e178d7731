"""``skeldata build --pipeline stgcn`` and ``export --format stgcn-npy``: byte identity with the
ST-GCN-lineage scripts (2s-AGCN ``ntu_gendata.py`` + ``preprocess.py``, MS-G3D ``ntu120_gendata.py``).

* the bundled fixtures against the digests of the reference outputs in ``fixtures/golden/stgcn_*.json``
  (always run; made by ``bench/parity_stgcn.py``, see ``fixtures/README.md``);
* the shared parity sets (``../shared/parity/ntu/setA-*``) against ``expected-stgcn.tar.gz``.
"""
from __future__ import annotations

import hashlib
import json
import pickle
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cli.skeldata import main
from conftest import FIXTURES, shared_path
from skeldata.build import build
from skeldata.convert.export import export_sgn_npz, export_stgcn_npy
from skeldata.store import open_store
from skeldata.verify import verify

BENCHMARKS = {"ntu60": ("xsub", "xview"), "ntu120": ("xsub", "xset")}


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def labels_of(path: Path):
    with open(path, "rb") as handle:
        names, labels = pickle.load(handle)
    return list(names), [int(label) for label in labels]


# ----------------------------------------------------------------------------------- bundled fixtures

@pytest.fixture(scope="module", params=["ntu60", "ntu120"])
def fixture_store(request, tmp_path_factory):
    dataset = request.param
    out = tmp_path_factory.mktemp(f"stgcn-{dataset}") / "store.h5"
    summary = build([FIXTURES / dataset], out, dataset, jobs=1, pipeline="stgcn")
    return dataset, out, summary


def test_fixture_exports_equal_the_reference_outputs(fixture_store, tmp_path):
    dataset, out, summary = fixture_store
    # Only the all-empty file is left out: the ST-GCN scripts process the file SGN's denoising rejects.
    assert dict(summary.dropped) == {"no_body": 1} and not summary.errors
    golden = json.loads((FIXTURES / "golden" / f"stgcn_{dataset}.json").read_text())["benchmarks"]
    with open_store(out) as store:
        assert store.attrs["pipeline"]["name"] == "stgcn"
        for bench in BENCHMARKS[dataset]:
            folder = tmp_path / bench
            sizes = export_stgcn_npy(store, bench, folder)
            for part in ("train", "val"):
                expected = golden[bench][part]
                data = folder / f"{part}_data_joint.npy"
                array = np.load(data, mmap_mode="r")
                assert array.dtype == np.float32 and list(array.shape) == expected["shape"]
                assert sizes[part] == expected["shape"][0]
                assert hashlib.sha256(data.read_bytes()).hexdigest() == expected["sha256"], f"{bench} {part}"
                assert labels_of(folder / f"{part}_label.pkl") == (expected["names"], expected["labels"])


def test_a_stgcn_store_verifies_and_serves_the_training_data(fixture_store):
    dataset, out, _ = fixture_store
    assert verify(out).ok
    from csre_models.data.dataset import SkeletonDataset
    with open_store(out) as store:
        assert set(store.column("n_frames")) == {300}
        assert store.attrs["single_body_fill"] == "zero"
        x, label, _ = SkeletonDataset(store, BENCHMARKS[dataset][0], "train")[0]
        assert x.shape[0] == 3 and x.shape[-1] == 2
        assert store.sequence(0, "bone").shape == (300, 2, 25, 3)


def test_exports_refuse_a_store_of_the_other_pipeline(fixture_store, ntu_store, tmp_path):
    _, out, _ = fixture_store
    with open_store(out) as store, pytest.raises(ValueError, match="--pipeline stgcn"):
        export_sgn_npz(store, "xsub", tmp_path / "x.npz")
    with open_store(ntu_store) as store, pytest.raises(ValueError, match="built with --pipeline stgcn"):
        export_stgcn_npy(store, "xsub", tmp_path / "stgcn")


def test_the_command_line_builds_and_exports(tmp_path):
    store = tmp_path / "s.h5"
    result = run("build", "--dataset", "ntu60", "--raw", FIXTURES / "ntu60", "--pipeline", "stgcn",
                 "--out", store, "-q")
    assert result.exit_code == 0, result.output
    assert "samples               13" in result.output
    result = run("export", store, "--format", "stgcn-npy", "--benchmark", "xview", "--out", tmp_path / "xview")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "xview").iterdir()) == [
        "train_data_joint.npy", "train_label.pkl", "val_data_joint.npy", "val_label.pkl"]
    result = CliRunner().invoke(main, ["export", str(store), "--format", "stgcn-npy", "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and "--benchmark is required with --format stgcn-npy" in result.stderr
    for command in ("build", "export"):
        help_text = run(command, "--help").output
        assert "--pipeline stgcn" in help_text if command == "build" else "stgcn-npy" in help_text


def test_the_pipeline_option_is_checked_before_any_file_is_read(tmp_path):
    from skeldata.errors import SkeldataError
    with pytest.raises(SkeldataError, match="--pipeline stgcn is an NTU pipeline"):
        build([FIXTURES / "ntu60"], tmp_path / "u.h5", "ucla", pipeline="stgcn")
    with pytest.raises(SkeldataError, match="unknown pipeline 'foo'"):
        build([FIXTURES / "ntu60"], tmp_path / "u.h5", "ntu60", pipeline="foo")
    assert not list(tmp_path.iterdir())


def test_files_the_reference_cannot_hold_are_left_out_with_a_reason(tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(FIXTURES / "ntu60", raw)
    source = sorted(raw.glob("*.skeleton"))[0]
    lines = source.read_text().splitlines()
    frames = int(lines[0])
    repeats = 301 // frames + 1
    (raw / "S001C001P001R001A001.skeleton").write_text("\n".join([str(frames * repeats)] + lines[1:] * repeats) + "\n")
    summary = build([raw], tmp_path / "s.h5", "ntu60", pipeline="stgcn")
    assert summary.dropped["too_many_frames"] == 1 and not summary.errors
    assert summary.samples == 13


# ------------------------------------------------------------------------------------- shared sets

@pytest.mark.parametrize("set_name, dataset", [("setA-ntu60", "ntu60"), ("setA-ntu120", "ntu120")])
def test_shared_parity_sets_are_byte_identical(tmp_path, set_name, dataset):
    folder = shared_path("parity", "ntu", set_name)
    expected_archive = shared_path("parity", "ntu", set_name, "expected-stgcn.tar.gz")
    for archive in (folder / "raw.tar.gz", expected_archive):
        with tarfile.open(archive) as opened:
            opened.extractall(tmp_path, filter="data")
    summary = build([tmp_path / "skeletons"], tmp_path / "store.h5", dataset, jobs=2, pipeline="stgcn")
    missing = (folder / "missing.txt").read_text().split()
    assert dict(summary.dropped) == {"no_body": len(missing)} and not summary.errors
    with open_store(tmp_path / "store.h5") as store:
        assert sorted(store.dropped.name) == sorted(missing)
        for bench in BENCHMARKS[dataset]:
            ours, theirs = tmp_path / "ours" / bench, tmp_path / "expected-stgcn" / bench
            export_stgcn_npy(store, bench, ours)
            for part in ("train", "val"):
                data = f"{part}_data_joint.npy"
                assert (ours / data).read_bytes() == (theirs / data).read_bytes(), f"{bench} {data}"
                names, labels = labels_of(theirs / f"{part}_label.pkl")
                assert labels_of(ours / f"{part}_label.pkl") == ([Path(n).name for n in names], labels)


# ------------------------------------------------------------------------------ training recipes

def test_the_2s_agcn_feeder_gives_the_stored_300_frames(fixture_store):
    from csre_models.data.dataset import SkeletonDataset
    dataset, out, _ = fixture_store
    with open_store(out) as store:
        bench = BENCHMARKS[dataset][0]
        data = SkeletonDataset(store, bench, "train", train=True, window=300, crop=False, random_rot=False)
        first = int(store.split(bench, "train")[0])
        x, label, _ = data[0]
        assert x.shape == (3, 300, 25, 2) and label == int(store.column("label")[first])
        assert np.array_equal(np.asarray(x), store.sequence(first).transpose(3, 0, 2, 1))


def test_an_stgcn_recipe_trains_on_an_stgcn_store_only(ntu_store, tmp_path):
    from cli.train import train as train_command
    out = tmp_path / "stgcn.h5"
    build([FIXTURES / "ntu60"], out, "ntu60", pipeline="stgcn")
    # HCN's recipe: a step of it takes a fraction of a second (2s-AGCN's, on 300 frames, seconds).
    config = Path(__file__).resolve().parents[1] / "configs" / "hcn" / "ntu60-xsub-stgcn-joint.yaml"
    flags = ["--config", config, "--batch-size", "2", "--max-steps", "1", "--num-workers", "0", "--no-progress",
             "--device", "cpu"]
    refused = CliRunner().invoke(train_command, [str(f) for f in flags + ["--store", ntu_store,
                                                                         "--work-dir", tmp_path / "a"]])
    assert refused.exit_code != 0
    assert "built with --pipeline sgn" in refused.output + refused.stderr
    result = CliRunner().invoke(train_command, [str(f) for f in flags + ["--store", out, "--work-dir", tmp_path / "b"]])
    assert result.exit_code == 0, result.output
    assert "window 64" in (tmp_path / "b" / "log.txt").read_text()
