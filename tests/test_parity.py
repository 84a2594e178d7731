"""Bit-identity with the published SGN-family scripts.

* the bundled fixtures against the reference outputs stored in ``fixtures/golden`` (always run);
* the shared parity sets (``../shared/parity/ntu``): every benchmark npz, the denoised arrays
  sample by sample, the frame counts of every stage, and the sets the reference crashes on.
"""
from __future__ import annotations

import importlib.util
import json
import sys
import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from conftest import FIXTURES, shared_path
from skeldata.build import build, denoise_file, extract, transform_file
from skeldata.convert.export import export_sgn_npz
from skeldata.store import DenoisedFile, open_store
from skeldata.synthetic import write_set

GOLDEN = FIXTURES / "golden"
BENCHMARKS = {"ntu60": {"xsub": "NTU60_CS.npz", "xview": "NTU60_CV.npz"},
              "ntu120": {"xsub": "NTU120_CSub.npz", "xset": "NTU120_CSet.npz"}}


def assert_same_npz(expected: Path, produced: Path) -> None:
    with np.load(expected) as e, np.load(produced) as g:
        assert list(g.files) == ["x_train", "y_train", "x_test", "y_test"]
        assert list(e.files) == list(g.files)
        for key in e.files:
            assert (g[key].dtype, g[key].shape) == (e[key].dtype, e[key].shape), key
            assert g[key].tobytes() == e[key].tobytes(), f"{key} differs"


def denoised_arrays(path: Path) -> dict:
    """name -> the denoised joints as the reference lays them out, (T, 75) or (T, 150)."""
    with DenoisedFile(path) as denoised:
        table = denoised.samples
        return {name: np.ascontiguousarray(denoised.sequence(i)[:, :int(table.n_bodies[i])]).reshape(int(table.n_frames[i]), -1)
                for i, name in enumerate(table.name)}


# ----------------------------------------------------------------------------------- bundled fixtures

@pytest.fixture(scope="module", params=["ntu60", "ntu120"])
def fixture_store(request, tmp_path_factory):
    dataset = request.param
    out = tmp_path_factory.mktemp(dataset) / "store.h5"
    summary = build([FIXTURES / dataset], out, dataset, jobs=2 if dataset == "ntu60" else 1)
    return dataset, out, summary


def test_fixture_exports_equal_the_reference_outputs(fixture_store, tmp_path):
    dataset, out, _ = fixture_store
    with open_store(out) as store:
        for bench in BENCHMARKS[dataset]:
            export_sgn_npz(store, bench, tmp_path / f"{bench}.npz")
            assert_same_npz(GOLDEN / f"{dataset}_{bench}.npz", tmp_path / f"{bench}.npz")


#: what the build must do with a fixture file of each scenario of the generator that leaves it out
LEFT_OUT_SCENARIOS = {"empty": "no_body", "all_short": "all_bodies_short"}


def fixture_plan(dataset: str, folder: Path) -> dict:
    """``{name: scenario}`` of the bundled fixture set, from its generator (``fixtures/make_fixtures.py``),
    not from our build; checks that the generator still writes the bundled bytes."""
    spec = importlib.util.spec_from_file_location("make_fixtures", FIXTURES / "make_fixtures.py")
    make_fixtures = importlib.util.module_from_spec(spec)
    saved_path = list(sys.path)
    try:
        spec.loader.exec_module(make_fixtures)
    finally:
        sys.path[:] = saved_path
    plan = write_set(folder, **make_fixtures.SETS[dataset])
    for name in plan:
        assert (folder / f"{name}.skeleton").read_bytes() == (FIXTURES / dataset / f"{name}.skeleton").read_bytes()
    assert sorted(plan) == sorted(p.stem for p in (FIXTURES / dataset).glob("*.skeleton"))
    return plan


def test_fixture_left_out_files_are_found_by_content(fixture_store, tmp_path):
    dataset, out, summary = fixture_store
    plan = fixture_plan(dataset, tmp_path)
    expected = {name: LEFT_OUT_SCENARIOS[s] for name, s in plan.items() if s in LEFT_OUT_SCENARIOS}
    assert sorted(expected.values()) == {"ntu60": ["all_bodies_short", "no_body"], "ntu120": ["no_body"]}[dataset]
    assert not summary.errors
    assert dict(summary.dropped) == dict(Counter(expected.values()))
    with open_store(out) as store, np.load(GOLDEN / f"{dataset}_denoised.npz") as golden:
        assert dict(zip(store.dropped.name, store.dropped.reason)) == expected
        assert store.names == sorted(set(plan) - set(expected)) == sorted(golden.files)


def test_staged_commands_equal_the_reference_denoising_and_the_one_pass_build(fixture_store, tmp_path):
    dataset, out, _ = fixture_store
    extract([FIXTURES / dataset], tmp_path / "raw.h5", dataset, jobs=2)
    denoise_file(tmp_path / "raw.h5", tmp_path / "denoised.h5")
    transform_file(tmp_path / "denoised.h5", tmp_path / "store.h5")
    with np.load(GOLDEN / f"{dataset}_denoised.npz") as golden:
        ours = denoised_arrays(tmp_path / "denoised.h5")
        assert sorted(ours) == sorted(golden.files)
        for name, joints in ours.items():
            assert joints.tobytes() == golden[name].tobytes() and joints.shape == golden[name].shape, name
    with open_store(out) as one_pass, open_store(tmp_path / "store.h5") as staged:
        assert staged.names == one_pass.names
        for i in range(len(staged)):
            assert staged.sequence(i).tobytes() == one_pass.sequence(i).tobytes()
        for bench in staged.benchmarks:
            assert np.array_equal(staged.split(bench, "train"), one_pass.split(bench, "train"))
        assert list(staged.dropped.name) == list(one_pass.dropped.name)


# ------------------------------------------------------------------------------------- shared sets

@pytest.fixture(scope="module")
def unpacked(tmp_path_factory):
    cache = {}

    def unpack(set_name: str) -> Path:
        if set_name not in cache:
            folder = shared_path("parity", "ntu", set_name)
            dest = tmp_path_factory.mktemp(set_name)
            with tarfile.open(folder / "raw.tar.gz") as archive:
                archive.extractall(dest, filter="data")
            cache[set_name] = dest / "skeletons"
        return cache[set_name]

    return unpack


@pytest.mark.parametrize("set_name, dataset", [("setA-ntu60", "ntu60"), ("setA-ntu120", "ntu120")])
def test_shared_parity_sets_are_bit_identical(unpacked, tmp_path, set_name, dataset):
    raw = unpacked(set_name)
    folder = shared_path("parity", "ntu", set_name)
    summary = build([raw], tmp_path / "store.h5", dataset, jobs=2)
    names = (folder / "names.txt").read_text().split()
    missing = (folder / "missing.txt").read_text().split()
    assert summary.samples == len(names) and dict(summary.dropped) == {"no_body": len(missing)}
    with open_store(tmp_path / "store.h5") as store:
        assert store.names == names
        assert sorted(store.dropped.name) == sorted(missing)
        for bench, npz in BENCHMARKS[dataset].items():
            export_sgn_npz(store, bench, tmp_path / npz)
            assert_same_npz(folder / "expected" / npz, tmp_path / npz)
        frames = json.loads((folder / "expected" / "frames.json").read_text())
        table = store.samples.set_index("name")
        for name, info in frames.items():
            row = table.loc[name]
            assert row.raw_frames == info["raw_frames"] and row.frames_dropped == info["n_dropped"]
            assert row.n_frames == info["final_frames"] and row.n_bodies == info["actors"], name


@pytest.mark.parametrize("set_name, dataset", [("setA-ntu60", "ntu60"), ("setA-ntu120", "ntu120")])
def test_shared_parity_sets_stage_by_stage(unpacked, tmp_path, set_name, dataset):
    extract([unpacked(set_name)], tmp_path / "raw.h5", dataset)
    denoise_file(tmp_path / "raw.h5", tmp_path / "denoised.h5")
    expected = np.load(shared_path("parity", "ntu", set_name, "expected", "denoised.npz"))
    ours = denoised_arrays(tmp_path / "denoised.h5")
    assert sorted(ours) == sorted(expected.files)
    for name in expected.files:
        assert ours[name].shape == expected[name].shape and ours[name].tobytes() == expected[name].tobytes(), name


def test_sets_the_reference_crashes_on_are_handled(unpacked, tmp_path):
    raw = unpacked("setA-crash")
    ntu60 = unpacked("setA-ntu60")
    build([ntu60], tmp_path / "alone.h5", "ntu60")
    summary = build([raw, ntu60], tmp_path / "with_crash.h5", "ntu60", jobs=2)
    assert not summary.errors
    assert dict(summary.dropped) == {"no_body": 3, "all_bodies_short": 1}
    with open_store(tmp_path / "with_crash.h5") as store, open_store(tmp_path / "alone.h5") as reference:
        dropped = dict(zip(store.dropped.name, store.dropped.reason))
        assert dropped["S010C003P021R002A016"] == "all_bodies_short"
        assert dropped["S010C001P004R001A036"] == "no_body"
        assert store.names == reference.names  # every other file's output is unchanged
        for i in range(len(store)):
            assert store.sequence(i).tobytes() == reference.sequence(i).tobytes()
