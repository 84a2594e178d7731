"""Every registered encoder trains with and without CSRE, on an NTU store and on an NW-UCLA store, through
the engine and through ``csre-train``.

The stores are tiny: the NTU-60 fixture store (xsub: 7 training and 5 test samples, two bodies) and twelve
synthetic NW-UCLA sequences written here (8 training, 4 test, one body). Runs use 16 frames (HCN's
smallest window), batch 2, one thread, no weight decay (so a weight that moves was moved by a gradient)
and CSRE with 1 hard positive and 2 negatives per anchor, so that its contrastive term is active within
three steps.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import FIXTURES, PROJECT_ROOT

from cli.train import train as train_command
from csre_models import list_encoders
from csre_models.checkpoint import build_encoder, load_checkpoint
from csre_models.config import TrainConfig, load_config_file, resolve_config
from csre_models.encoders.blockgcn import BlockGCN
from csre_models.engine import train
from skeldata.build import build
from skeldata.formats.ucla import parse_ucla_name

ENCODERS = ("ctrgcn", "agcn", "hcn", "hyperformer", "blockgcn")
#: Encoders published with the spine-relative feeder (joints relative to the spine, its trajectory kept).
SPINE_RELATIVE = ("hyperformer", "blockgcn")
STEPS = 3
#: Share of an encoder's parameter tensors that three SGD steps must move. Not all: CTR-GCN's refinement
#: convolutions sit behind a gate that starts at 0, and their first updates can round to nothing.
MOVED_SHARE = 0.9


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> dict:
    """``{dataset: (store path, benchmark)}`` for the NTU-60 fixture store and a synthetic NW-UCLA store."""
    folder = tmp_path_factory.mktemp("stores")
    build([FIXTURES / "ntu60"], folder / "ntu60.h5", "ntu60")
    raw = folder / "all_sqe"
    raw.mkdir()
    rng = np.random.default_rng(0)
    for action in ("a01", "a02"):
        for take in ("e00", "e01"):
            for view in ("v01", "v02", "v03"):
                write_ucla_sequence(raw, f"{action}_s01_{take}_{view}", rng.normal(size=(20, 20, 3)))
    build([raw], folder / "ucla.h5", "ucla")
    return {"ntu60": (folder / "ntu60.h5", "xsub"), "ucla": (folder / "ucla.h5", "xview")}


def write_ucla_sequence(folder: Path, name: str, joints: np.ndarray) -> None:
    """An ``all_sqe`` JSON file: the record the NW-UCLA reader expects."""
    record = {"file_name": name, "skeletons": joints.tolist(), "label": parse_ucla_name(name).label + 1}
    (folder / f"{name}.json").write_text(json.dumps(record))


def tiny_run(store: Path, benchmark: str, encoder: str, work_dir: Path, **changes) -> TrainConfig:
    values = dict(store=str(store), benchmark=benchmark, encoder=encoder, window=16, batch_size=2, epochs=1,
                  max_steps=STEPS, lr=0.01, warmup_epochs=1, weight_decay=0.0, num_workers=0, csre_positives=1,
                  csre_negatives=2, spine_relative=encoder in SPINE_RELATIVE, work_dir=str(work_dir),
                  progress=False)
    values.update(changes)
    return TrainConfig(**values)


def last_metrics(work_dir: Path) -> dict:
    return json.loads((work_dir / "metrics.jsonl").read_text().splitlines()[-1])


def trained_and_initial_encoder(work_dir: Path, seed: int):
    """The exported encoder's state dict, and the parameters the run started from (the engine seeds the
    encoder's initialisation with the run's seed)."""
    exported = load_checkpoint(work_dir / "encoder.pt", "encoder")
    torch.manual_seed(seed)
    initial = dict(build_encoder(exported["model_arguments"]).named_parameters())
    return exported["model"], initial


def test_every_encoder_is_covered():
    assert sorted(ENCODERS) == list_encoders()


@pytest.mark.parametrize("encoder", ENCODERS)
@pytest.mark.parametrize("dataset", ["ntu60", "ucla"])
def test_trains_with_and_without_csre(stores, tmp_path, dataset, encoder):
    store, benchmark = stores[dataset]
    trained = {}
    for csre in (False, True):
        work_dir = tmp_path / ("csre" if csre else "plain")
        config = tiny_run(store, benchmark, encoder, work_dir, csre=csre)
        result = train(config)
        assert result.global_step == STEPS
        record = last_metrics(work_dir)
        assert record["loss"] is not None and math.isfinite(record["loss"])
        if csre:
            assert record["contrast"] > 0 and record["loss"] == pytest.approx(record["ce"] + record["contrast"])
        else:
            assert record["contrast"] is None and record["loss"] == pytest.approx(record["ce"])
        weights, initial = trained_and_initial_encoder(work_dir, config.seed)
        moved = [name for name, value in initial.items() if not torch.equal(value, weights[name])]
        assert len(moved) >= MOVED_SHARE * len(initial), f"only {len(moved)} of {len(initial)} tensors moved"
        trained[csre] = weights
    # Same seed, data, order and initial weights: the runs differ only by the contrastive gradient, which
    # reaches the encoder through the final feature map CSRE reads.
    assert any(not torch.equal(trained[False][name], trained[True][name]) for name in trained[False])


def test_blockgcn_reads_the_uncentred_joints(stores, tmp_path, monkeypatch):
    """The engine feeds BlockGCN's topology branch the joint positions, not the spine-relative input, in
    training and in evaluation."""
    calls = []
    original = BlockGCN.forward_features

    def recording(self, x, joint=None):
        calls.append((self.training, joint is not None and not torch.equal(joint, x)))
        return original(self, x, joint=joint)

    monkeypatch.setattr(BlockGCN, "forward_features", recording)
    store, benchmark = stores["ntu60"]
    train(tiny_run(store, benchmark, "blockgcn", tmp_path, max_steps=1))
    assert {training for training, _ in calls} == {True, False}
    assert all(separate for _, separate in calls)


def cli_flags(store: Path, benchmark: str, encoder: str, work_dir: Path) -> list:
    """``csre-train --encoder X`` on a tiny store, with the encoder's NTU-60 xsub joint config when it has one."""
    flags = ["--store", store, "--benchmark", benchmark, "--encoder", encoder, "--window", 16, "--batch-size", 2,
             "--max-steps", 1, "--num-workers", 0, "--no-progress", "--work-dir", work_dir]
    config = PROJECT_ROOT / "configs" / encoder / "ntu60-xsub-joint.yaml"
    return flags + (["--config", config] if config.exists() else [])


@pytest.mark.parametrize("encoder", ENCODERS)
def test_csre_train_command(stores, tmp_path, encoder):
    store, benchmark = stores["ntu60"]
    flags = cli_flags(store, benchmark, encoder, tmp_path)
    result = CliRunner().invoke(train_command, [str(flag) for flag in flags])
    assert result.exit_code == 0, result.output
    resolved = resolve_config(load_config_file(tmp_path / "config.yaml"))
    assert (resolved.encoder, resolved.csre, resolved.max_steps) == (encoder, True, 1)
    assert resolved.spine_relative == (encoder in SPINE_RELATIVE)
    assert (tmp_path / "encoder.pt").exists()


def test_hcn_window_below_its_pooling_is_a_one_line_error(stores, tmp_path):
    store, benchmark = stores["ntu60"]
    flags = cli_flags(store, benchmark, "hcn", tmp_path)
    flags[flags.index("--window") + 1] = 8
    result = CliRunner().invoke(train_command, [str(flag) for flag in flags])
    assert result.exit_code == 1
    assert result.stderr.strip() == "csre-train: error: --encoder hcn: HCN needs a window of at least 16 frames, got 8"
