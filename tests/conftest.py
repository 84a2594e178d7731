"""Shared test fixtures: where the project and the steering data (``../shared``) live."""
from __future__ import annotations

from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED = PROJECT_ROOT.parent / "shared"
FIXTURES = PROJECT_ROOT / "fixtures"


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
        pytest.skip(f"needs the steering data {path} (the ../shared folder beside the project), "
                    f"which this checkout does not have")
    return path


@pytest.fixture(scope="session")
def ntu_store(tmp_path_factory) -> Path:
    """The NTU-60 store of the bundled fixture files (xsub: 7 training and 5 test samples); read-only."""
    from skeldata.build import build

    path = tmp_path_factory.mktemp("stores") / "ntu60.h5"
    build([FIXTURES / "ntu60"], path, "ntu60")
    return path


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
