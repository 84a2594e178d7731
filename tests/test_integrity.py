"""A damaged store never trains or evaluates silently: csre-train and csre-eval check it at start and every
sample as it is read, and stop with one line naming the store, the sample and `skeldata verify`; a
non-finite loss says whether the inputs were finite."""
from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from cli.train import evaluate as evaluate_command
from cli.train import train as train_command
from csre_models.engine import train
from skeldata._h5 import dataset_crc32
from skeldata.store import open_store
from test_engine import one_line_error, run_cli, tiny, tiny_flags

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def store_copy(ntu_store, tmp_path) -> Path:
    path = tmp_path / "copy.h5"
    shutil.copy(ntu_store, path)
    return path


def first_training_sample(path: Path) -> tuple:
    with open_store(path) as store:
        i = int(store.split("xsub", "train")[0])
        return i, store.names[i], store.offsets[i]


def poison_frames(path: Path, value: float) -> str:
    """Put ``value`` into a training sample's joints and keep the checksum consistent (as a bad build
    would): only the values tell."""
    i, name, start = first_training_sample(path)
    with h5py.File(path, "r+") as h5:
        h5["streams/joint"][start + 1, 0, 3, 0] = value
        h5["streams/joint"].attrs["crc32"] = dataset_crc32(h5["streams/joint"])
    return name


def test_a_flipped_byte_in_a_chunk_is_refused_at_start(ntu_store, store_copy, tmp_path):
    # The damaged chunk still decodes, to plausible numbers: only the checksum tells.
    with h5py.File(store_copy, "r") as h5:
        chunk = h5["streams/joint"].id.get_chunk_info(0)
    with open(store_copy, "r+b") as handle:
        handle.seek(chunk.byte_offset + chunk.size // 2)
        handle.write(b"\xff" * 64)
    message = one_line_error(run_cli(train_command, tiny_flags(store_copy, tmp_path / "run")), "csre-train")
    assert f"{store_copy} is damaged: streams/joint: content checksum differs" in message
    assert message.endswith(f"run skeldata verify {store_copy}")
    assert not (tmp_path / "run" / "last.pt").exists()
    train(tiny(ntu_store, tmp_path / "good", max_steps=1))
    message = one_line_error(run_cli(evaluate_command, ["--checkpoint", tmp_path / "good" / "encoder.pt", "--store",
                                                        store_copy, "--out", tmp_path / "s.npz"]), "csre-eval")
    assert f"{store_copy} is damaged: streams/joint: content checksum differs" in message
    assert not (tmp_path / "s.npz").exists()


def test_a_changed_label_is_refused_at_start(store_copy, tmp_path):
    with h5py.File(store_copy, "r+") as h5:
        h5["samples/label"][0] = (h5["samples/label"][0] + 1) % 60
    message = one_line_error(run_cli(train_command, tiny_flags(store_copy, tmp_path)), "csre-train")
    assert f"--store: {store_copy} is damaged: samples/label: content checksum differs" in message


@pytest.mark.parametrize("workers", ["0", "2"])
def test_a_nan_sample_stops_training_at_its_first_read(store_copy, tmp_path, monkeypatch, workers):
    name = poison_frames(store_copy, np.nan)
    monkeypatch.setattr("csre_models.data.dataset.SCAN_LIMIT_BYTES", 0)      # as for a store too big to scan
    flags = tiny_flags(store_copy, tmp_path)
    flags[flags.index("--num-workers") + 1] = workers
    result = run_cli(train_command, flags)           # the run's log comes first; the error is the last line
    assert result.exit_code == 1
    message = result.stderr.strip().splitlines()[-1]
    assert message == (f"csre-train: error: {store_copy}: sample {name} (index "
                       f"{first_training_sample(store_copy)[0]}): its joint frames hold a value that is not finite; "
                       f"the store is damaged: run skeldata verify {store_copy}")
    assert not (tmp_path / "last.pt").exists() and not (tmp_path / "scores_test.npz").exists()


def test_an_implausible_sample_is_refused_by_the_start_scan(store_copy, tmp_path):
    name = poison_frames(store_copy, 1e29)
    message = one_line_error(run_cli(train_command, tiny_flags(store_copy, tmp_path)), "csre-train")
    assert "streams/joint: 1 frame(s) hold a coordinate beyond 100 m (largest 1e+29)" in message
    assert f"sample {name}" in message


def test_a_diverging_run_names_the_step_and_the_samples(ntu_store, tmp_path):
    with pytest.raises(FloatingPointError) as diverged:
        train(tiny(ntu_store, tmp_path, lr=1e12, csre=False, epochs=3))
    message = str(diverged.value)
    assert message.startswith("the loss is nan at step ") or message.startswith("the loss is inf at step ")
    assert "every input of the batch (S0" in message and message.endswith("was finite: the run diverged; lower --lr")
