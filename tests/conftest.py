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
