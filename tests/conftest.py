"""Shared test fixtures: where the project and the shared data (``../shared``) live, the stores several
modules read (each built once per session), and CI's strict mode.

Strict mode: a skipped test is reported as a failure, unless its reason names CUDA or a GPU. It is on
where ``../shared`` sits beside the project (CI, and the team's machines), so there an optional piece that
did not install (the C reader, matplotlib, hypothesis, tensorboard) or a missing ``../shared`` folder
fails the run instead of quietly skipping its tests. Elsewhere (a user's clone without ``../shared``) the
tests that need it skip, naming the folder. ``SKELDATA_STRICT_TESTS=1`` or ``0`` forces it on or off.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED = PROJECT_ROOT.parent / "shared"
FIXTURES = PROJECT_ROOT / "fixtures"

#: 1 or 0: strict mode on or off, whether or not ``../shared`` is there.
STRICT_ENV = "SKELDATA_STRICT_TESTS"
#: Skip reasons allowed in strict mode: the tests that need a CUDA device.
ALLOWED_IN_STRICT = re.compile(r"\b(CUDA|GPU)\b")

#: What each folder of ``../shared`` holds, for the skip reason of a test that needs it.
SHARED_CONTENTS = {
    ("data", "nw-ucla"): "the NW-UCLA data set: all_sqe/, one JSON file of joints per sequence",
    ("parity", "ntu"): "the NTU parity sets: synthetic raw .skeleton files and what the published scripts "
                       "write for them",
    ("reference", "encoders"): "the official encoders' perturbed weights, inputs and logits, per setting",
    ("reference", "csre_loss"): "the official CSRE loss's inputs and outputs",
    ("reference", "feeders_test_outputs.npz"): "the published feeders' test-time outputs",
}


def strict() -> bool:
    """Whether a skip that is not for want of CUDA fails (see the module docstring)."""
    forced = os.environ.get(STRICT_ENV, "")
    return SHARED.is_dir() if forced == "" else forced != "0"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In strict mode, turn a skip whose reason does not name CUDA or a GPU into a failure."""
    outcome = yield
    report = outcome.get_result()
    if not strict() or not report.skipped or hasattr(report, "wasxfail"):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    if not ALLOWED_IN_STRICT.search(reason):
        report.outcome = "failed"
        report.longrepr = (f"skipped, which strict mode (on where ../shared is present, as in CI; "
                           f"{STRICT_ENV}=0 turns it off) does not allow: {reason}")


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a test module on one torch thread (the test machine is shared), then restore the count.
    Use it with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def shared_path(*parts: str) -> Path:
    """Path under ``../shared``; skips the calling test with a clear reason when it is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        holds = next((what for folder, what in SHARED_CONTENTS.items() if parts[:len(folder)] == folder), None)
        missing = path
        while not missing.parent.exists() and missing.parent != SHARED.parent:
            missing = missing.parent
        pytest.skip(f"needs ../shared/{'/'.join(parts)}{f' ({holds})' if holds else ''} beside the project; "
                    f"{missing} does not exist")
    return path


@pytest.fixture(scope="session")
def ntu_store(tmp_path_factory) -> Path:
    """The NTU-60 store of the bundled fixture files (xsub: 7 training and 5 test samples); read-only."""
    from skeldata.build import build

    path = tmp_path_factory.mktemp("stores") / "ntu60.h5"
    build([FIXTURES / "ntu60"], path, "ntu60")
    return path


@pytest.fixture(scope="session")
def written_files(tmp_path_factory) -> Path:
    """A folder of every kind of file the project writes, from the bundled fixtures, built once per session;
    read-only: ``ntu60.h5``, ``ntu120.h5`` (all three streams), ``joint-only.h5``, ``raw.h5``,
    ``denoised.h5``, ``staged.h5`` (the staged commands) and ``ucla.h5`` (three synthetic sequences)."""
    import json

    import numpy as np

    from skeldata.build import build, denoise_file, extract, transform_file

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


@pytest.fixture(scope="session")
def nw_ucla_store(tmp_path_factory) -> Path:
    """The store of the whole real NW-UCLA set (``../shared/data/nw-ucla/all_sqe``, 1,484 sequences), built
    once per session; read-only."""
    from skeldata.build import build

    raw = shared_path("data", "nw-ucla", "all_sqe")
    path = tmp_path_factory.mktemp("nw-ucla") / "ucla.h5"
    build([raw], path, "ucla", jobs=2)
    return path


@pytest.fixture(scope="session")
def ucla_store(tmp_path_factory) -> Path:
    """Twelve real NW-UCLA sequences: 8 training (views 1 and 2), 4 test (view 3), actions a01 and a02;
    built once per session; read-only."""
    return ucla_subset_store(tmp_path_factory.mktemp("ucla"), ("a01", "a02"))

def ucla_subset_store(folder: Path, actions, takes=("e00", "e01"), views=("v01", "v02", "v03")) -> Path:
    """A store of the real NW-UCLA sequences ``<action>_s01_<take>_<view>`` (subject 1), linked into
    ``folder/all_sqe`` and built to ``folder/ucla.h5``; skips without ``../shared``."""
    from skeldata.build import build

    source = shared_path("data", "nw-ucla", "all_sqe")
    raw = folder / "all_sqe"
    raw.mkdir()
    for action in actions:
        for take in takes:
            for view in views:
                name = f"{action}_s01_{take}_{view}.json"
                (raw / name).symlink_to(source / name)
    path = folder / "ucla.h5"
    build([raw], path, "ucla")
    return path


def assert_same_samples(built_path: Path, reference_path: Path):
    """The store at ``built_path`` holds the samples of ``reference_path``, array for array; returns its
    dropped table."""
    import numpy as np

    from skeldata import open_store

    with open_store(built_path) as built, open_store(reference_path) as reference:
        assert built.names == reference.names
        for i in range(len(reference)):
            assert np.array_equal(built.sequence(i), reference.sequence(i))
        return built.dropped
