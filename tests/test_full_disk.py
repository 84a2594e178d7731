"""A full disk (a real small tmpfs where the machine allows mounting one, and a simulated ENOSPC
everywhere) costs one line naming the path and the cause; the command's temporary file is removed and
every earlier output stays intact. Temporary files that killed runs left are removed by the next run."""
from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from conftest import FIXTURES

from cli.skeldata import main as skeldata_main
from csre_models.checkpoint import load_checkpoint
from csre_models.engine import train
from skeldata.output import OutputError, describe_write_error, remove_stale_temporaries
from test_engine import tiny

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def build_args(out: Path, *extra: str) -> list:
    return ["build", "--dataset", "ntu60", "--raw", str(FIXTURES / "ntu60"), "--out", str(out), "--quiet", *extra]


@pytest.fixture
def small_disk(tmp_path):
    """A 100 KiB tmpfs (the fixture store needs about 180 KiB); skipped where mounting is not allowed."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=100k", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("needs to mount a small tmpfs (root, and a kernel that allows it) for a real full disk")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


def test_build_on_a_full_disk_keeps_the_old_store(small_disk):
    out = small_disk / "ntu60.h5"
    out.write_bytes(b"the previous store")
    result = CliRunner().invoke(skeldata_main, build_args(out, "--overwrite"))
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1, result.output
    assert lines[0].startswith(f"skeldata: error: cannot write {out}: no space left on device, ")
    assert lines[0].endswith("free there; it was left as it was")
    assert out.read_bytes() == b"the previous store"
    assert sorted(p.name for p in small_disk.iterdir()) == ["ntu60.h5"]          # no temporary file left


def test_export_on_a_full_disk_writes_nothing(ntu_store, small_disk):
    out = small_disk / "NTU60_CS.npz"
    result = CliRunner().invoke(skeldata_main, ["export", str(ntu_store), "--format", "sgn-npz", "--benchmark", "xsub",
                                                "--out", str(out)])
    assert result.exit_code == 1
    assert f"cannot write {out}: no space left on device" in result.stderr and "nothing was written" in result.stderr
    assert list(small_disk.iterdir()) == []


def test_simulated_full_disk_during_a_build(tmp_path, monkeypatch):
    from skeldata.streamwriter import StreamWriter

    def full(self, keep):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(StreamWriter, "_write_ready", full)
    out = tmp_path / "ntu60.h5"
    result = CliRunner().invoke(skeldata_main, build_args(out))
    assert result.exit_code == 1 and f"cannot write {out}: no space left on device" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_during_training_keeps_the_last_checkpoint(ntu_store, tmp_path, monkeypatch):
    saves = []
    original = torch.save

    def filling(obj, handle, *args, **kwargs):
        saves.append(1)
        if len(saves) == 2:                                       # the second checkpoint finds the disk full
            raise RuntimeError("[enforce fail at inline_container.cc:626] . PytorchStreamWriter failed writing "
                               "file data/12: file write failed; errno = 28")
        return original(obj, handle, *args, **kwargs)

    monkeypatch.setattr(torch, "save", filling)
    with pytest.raises(OutputError) as failed:
        train(tiny(ntu_store, tmp_path, epochs=3))
    assert str(failed.value).startswith(f"cannot write {tmp_path / 'last.pt'}: no space left on device")
    assert str(failed.value).endswith("it was left as it was")
    assert load_checkpoint(tmp_path / "last.pt", "training")["position"]["epoch"] == 1      # the first one, intact
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_stale_temporaries_of_killed_runs_are_removed_and_reported(tmp_path):
    out = tmp_path / "ntu60.h5"
    dead, alive = tmp_path / ".ntu60.h5.tmp-999999999", tmp_path / f".ntu60.h5.tmp-{os.getppid()}"
    other = tmp_path / ".other.h5.tmp-999999999"
    for path in (dead, alive, other):
        path.write_bytes(b"left behind")
    result = CliRunner().invoke(skeldata_main, build_args(out))
    assert result.exit_code == 0, result.output
    assert (f"skeldata: removed 1 temporary file(s) that a killed run left for {out}: .ntu60.h5.tmp-999999999"
            in result.stderr)
    assert not dead.exists() and alive.exists() and other.exists()
    assert remove_stale_temporaries(out) == []


@pytest.mark.parametrize("error, words", [
    (OSError(errno.ENOSPC, "No space left on device"), "no space left on device"),
    (OSError("Can't write data (file write failed: time = Mon, filename = 'x', errno = 28, error message = 'No "
             "space left on device')"), "no space left on device"),
    (OSError(errno.EROFS, "Read-only file system"), "read-only file system"),
    (RuntimeError("PytorchStreamWriter failed writing file: Disk quota exceeded"), "disk quota exceeded"),
    (ValueError("something else"), None),
])
def test_write_errors_in_plain_words(error, words):
    assert describe_write_error(error) == words
