"""csre_models.checkpoint: the store fingerprint a checkpoint records; and checkpoints that bound what a
killed run loses (every N steps, every M minutes, on SIGTERM and SIGINT), resuming from any of them
bit-identically to a run that was never stopped."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import PROJECT_ROOT

from cli.train import train as train_command
from csre_models.checkpoint import CheckpointError, check_fingerprint, load_checkpoint, store_fingerprint
from csre_models.engine import Trainer, TrainingInterrupted, train
from test_engine import metrics, run_cli, tiny, tiny_flags

pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: What csre_models.checkpoint.store_fingerprint gave for the bundled NTU-60 fixture store when it walked the
#: HDF5 file itself (before skeldata's Store.fingerprint): checkpoints written then must still resume.
FIXTURE_FINGERPRINT = {"dataset": "ntu60", "num_samples": 12, "digest": "40f0b393a495bc58"}


def test_the_fingerprint_is_the_one_earlier_checkpoints_recorded(ntu_store, tmp_path):
    from skeldata import open_store

    with open_store(ntu_store) as store:
        assert store.fingerprint() == FIXTURE_FINGERPRINT
    assert store_fingerprint(ntu_store) == FIXTURE_FINGERPRINT
    copy = tmp_path / "another-name.h5"                       # the file name plays no part
    copy.write_bytes(ntu_store.read_bytes())
    assert store_fingerprint(copy) == FIXTURE_FINGERPRINT
    check_fingerprint(FIXTURE_FINGERPRINT, store_fingerprint(copy), copy)
    with pytest.raises(CheckpointError, match="not the store this run was trained on"):
        check_fingerprint({**FIXTURE_FINGERPRINT, "digest": "0" * 16}, store_fingerprint(copy), copy)


@pytest.fixture(scope="module")
def uninterrupted(ntu_store, tmp_path_factory) -> Path:
    """Three epochs of 3 steps, never stopped."""
    work_dir = tmp_path_factory.mktemp("runs") / "uninterrupted"
    train(tiny(ntu_store, work_dir, epochs=3))
    return work_dir


def same_result(a: Path, b: Path) -> bool:
    first, second = (load_checkpoint(d / "last.pt", "training") for d in (a, b))
    if first["position"] != second["position"]:
        return False
    return all(torch.equal(first["model"][k], second["model"][k]) for k in first["model"])


def same_metrics(a: Path, b: Path) -> bool:
    strip = lambda lines: [{k: v for k, v in line.items() if k != "seconds"} for line in lines]  # noqa: E731
    return strip(metrics(a)) == strip(metrics(b))


def _signal_at_step(monkeypatch, step: int, signum: int) -> None:
    """Send ``signum`` to this process while the step after ``step`` runs."""
    original = Trainer.train_step

    def signalling(self, batch):
        if self.position.global_step == step:
            os.kill(os.getpid(), signum)
        return original(self, batch)

    monkeypatch.setattr(Trainer, "train_step", signalling)


def test_sigterm_mid_epoch_saves_then_resumes_bit_identically(ntu_store, uninterrupted, tmp_path, monkeypatch):
    _signal_at_step(monkeypatch, 3, signal.SIGTERM)           # during the second step of epoch 2
    with pytest.raises(TrainingInterrupted) as stopped:
        train(tiny(ntu_store, tmp_path, epochs=3))
    assert stopped.value.exit_code == 143 and "stopped by SIGTERM at step 4 (epoch 2, batch 1)" in str(stopped.value)
    assert load_checkpoint(tmp_path / "last.pt", "training")["position"] == {"epoch": 1, "batch": 1, "global_step": 4}
    assert not (tmp_path / "result.json").exists()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL      # the handler is gone after the run
    monkeypatch.undo()
    train(tiny(ntu_store, tmp_path, epochs=3), resume=True)
    assert same_result(tmp_path, uninterrupted) and same_metrics(tmp_path, uninterrupted)


def test_sigint_exits_130_through_the_command_line(ntu_store, tmp_path, monkeypatch):
    _signal_at_step(monkeypatch, 1, signal.SIGINT)
    result = run_cli(train_command, tiny_flags(ntu_store, tmp_path))
    assert result.exit_code == 130
    assert "stopped by SIGINT at step 2 (epoch 1, batch 2); last.pt saved" in result.stderr
    assert "--resume" in result.stderr


def test_checkpoint_every_bounds_what_a_crash_loses(ntu_store, uninterrupted, tmp_path, monkeypatch):
    class Crash(BaseException):
        pass

    original = Trainer.train_step

    def crashing(self, batch):
        if self.position.global_step == 5:
            raise Crash                                       # as abrupt as SIGKILL: nothing is saved
        return original(self, batch)

    monkeypatch.setattr(Trainer, "train_step", crashing)
    with pytest.raises(Crash):
        train(tiny(ntu_store, tmp_path, epochs=3, checkpoint_every=2))
    # Saved at the end of epoch 1 (step 3), then 2 steps later, mid-epoch 2: the crash cost nothing.
    assert load_checkpoint(tmp_path / "last.pt", "training")["position"] == {"epoch": 1, "batch": 2, "global_step": 5}
    monkeypatch.undo()
    train(tiny(ntu_store, tmp_path, epochs=3, checkpoint_every=2), resume=True)
    assert same_result(tmp_path, uninterrupted) and same_metrics(tmp_path, uninterrupted)


def test_checkpoint_minutes_saves_by_time(ntu_store, tmp_path, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr("csre_models.engine.time.monotonic", lambda: clock[0])
    original = Trainer.train_step
    saved_at = []

    def ticking(self, batch):
        clock[0] += 40.0                                      # every step takes 40 "seconds"
        return original(self, batch)

    original_save = Trainer.save

    def recording(self, name):
        saved_at.append((name, self.position.global_step, self.position.batch))
        return original_save(self, name)

    monkeypatch.setattr(Trainer, "train_step", ticking)
    monkeypatch.setattr(Trainer, "save", recording)
    train(tiny(ntu_store, tmp_path, epochs=1, checkpoint_minutes=1.0))
    # 80 s after the start the clock has passed a minute: a mid-epoch last.pt, then the epoch end's.
    assert saved_at == [("last.pt", 2, 2), ("last.pt", 3, 0)]


def _subprocess_run(ntu_store, work_dir: Path, *extra: str) -> subprocess.Popen:
    flags = tiny_flags(ntu_store, work_dir) + ["--threads", "1", *extra]
    flags[flags.index("--epochs") + 1] = "12"
    flags[flags.index("--lr") + 1] = "0.001"
    return subprocess.Popen([sys.executable, "-m", "cli.train", *map(str, flags)], cwd=PROJECT_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_epochs(work_dir: Path, count: int, process: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        path = work_dir / "metrics.jsonl"
        if path.exists() and len(path.read_text().splitlines()) >= count:
            return
        time.sleep(0.02)
    pytest.fail(f"the run did not reach {count} epochs (exit status {process.poll()})")


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL])
def test_a_real_process_killed_mid_run_resumes_bit_identically(ntu_store, tmp_path, signum):
    """A csre-train process is sent SIGTERM (it saves and exits 143) or SIGKILL (it just dies; with
    --checkpoint-every 1 the last step is on disk) at an arbitrary step, then resumed to the end."""
    reference = tmp_path / "reference"
    train(tiny(ntu_store, reference, epochs=12, lr=0.001, checkpoint_every=1))
    work_dir = tmp_path / "killed"
    process = _subprocess_run(ntu_store, work_dir, "--checkpoint-every", "1")
    _wait_for_epochs(work_dir, 2, process)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    if signum == signal.SIGTERM:
        assert process.returncode == 143, stderr
        assert "stopped by SIGTERM at step" in stderr
    else:
        assert process.returncode == -signal.SIGKILL
    stopped_at = load_checkpoint(work_dir / "last.pt", "training")["position"]
    assert 3 <= stopped_at["global_step"] < 36 and not (work_dir / "result.json").exists()
    resumed = subprocess.run([sys.executable, "-m", "cli.train", "--work-dir", str(work_dir), "--resume",
                              "--threads", "1"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert same_result(work_dir, reference) and same_metrics(work_dir, reference)
    assert json.loads((work_dir / "result.json").read_text())["global_step"] == 36


def test_checkpoint_flags_are_checked(ntu_store, tmp_path):
    for flags, expected in ((["--checkpoint-every", "0"], "--checkpoint-every must be at least 1, got 0"),
                            (["--checkpoint-minutes", "-1"], "--checkpoint-minutes must be 0 (off) or more")):
        result = run_cli(train_command, tiny_flags(ntu_store, tmp_path) + flags)
        assert result.exit_code == 1 and expected in result.stderr
