"""Tests of the training engine and of ``csre-train`` and ``csre-eval`` (``csre-ensemble``: test_ensemble.py).

The runs are tiny: the NTU-60 fixture store (xsub: 7 training and 5 test samples), HCN (the fastest encoder
on a CPU) at 16 frames unless a test is about CTR-GCN, batch 2, one thread, and CSRE with 1 hard positive
and 2 negatives per anchor so that its contrastive term is active on 7 samples.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import FIXTURES, PROJECT_ROOT, ucla_subset_store

from cli.train import ensemble as ensemble_command
from cli.train import evaluate as evaluate_command
from cli.train import train as train_command
from csre_models import create_encoder, list_encoders
from csre_models.checkpoint import build_encoder, load_checkpoint, load_encoder, store_fingerprint
from csre_models.config import TrainConfig, load_config_file, resolve_config
from csre_models.data import SkeletonDataset
from csre_models.distributed import WorldInfo
from csre_models.engine import EpochBatches, build_data, prepare_config, train, training_step, validation_samples
from csre_models.ensemble import load_scores
from csre_models.schedule import WarmupStepDecay, build_optimizer
from skeldata.build import build

WORK_DIR_FILES = {"config.yaml", "log.txt", "metrics.jsonl", "last.pt", "encoder.pt", "scores_test.npz", "env.json",
                  "progress.json",
                  "result.json"}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def ucla_store(tmp_path_factory) -> Path:
    """Twelve NW-UCLA sequences: 8 training (views 1 and 2), 4 test (view 3), two actions."""
    return ucla_subset_store(tmp_path_factory.mktemp("ucla"), ("a01", "a02"))


def tiny(store: Path, work_dir: Path, **changes) -> TrainConfig:
    """A run of a few seconds on the fixture store."""
    values = dict(store=str(store), benchmark="xsub", encoder="hcn", window=16, batch_size=2, epochs=2, lr=0.01,
                  warmup_epochs=1, num_workers=0, csre_positives=1, csre_negatives=2, work_dir=str(work_dir),
                  progress=False)
    values.update(changes)
    return TrainConfig(**values)


def tiny_flags(store: Path, work_dir: Path) -> list:
    return ["--store", str(store), "--benchmark", "xsub", "--encoder", "hcn", "--window", "16", "--batch-size", "2",
            "--epochs", "2", "--lr", "0.01", "--warmup-epochs", "1", "--num-workers", "0", "--csre-positives", "1",
            "--csre-negatives", "2", "--no-progress", "--work-dir", str(work_dir)]


def metrics(work_dir: Path) -> list:
    return [json.loads(line) for line in (Path(work_dir) / "metrics.jsonl").read_text().splitlines()]


def run_cli(command, args):
    """Invoke a click command in this process; returns click's ``Result``."""
    return CliRunner().invoke(command, [str(a) for a in args])


def one_line_error(result, program: str) -> str:
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{program}: error: "), result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def finished_run(ntu_store, tmp_path_factory) -> Path:
    """HCN + CSRE, two full epochs (6 steps)."""
    work_dir = tmp_path_factory.mktemp("runs") / "hcn-csre"
    train(tiny(ntu_store, work_dir))
    return work_dir


# ------------------------------------------------------------------------------------- the work dir

def test_training_writes_the_work_dir(finished_run, ntu_store):
    # No best.pt without validation; TensorBoard event files when the package is installed.
    assert {p.name for p in finished_run.iterdir()} - {"tensorboard"} == WORK_DIR_FILES
    lines = metrics(finished_run)
    assert [(m["epoch"], m["complete"], m["step"]) for m in lines] == [(1, True, 3), (2, True, 6)]
    assert set(lines[0]) == {"epoch", "complete", "step", "lr", "loss", "ce", "contrast", "train_acc", "test_acc",
                             "test_top5", "seconds"}
    assert [m["lr"] for m in lines] == [0.01, 0.01]
    assert all(m["contrast"] > 0 and m["loss"] == pytest.approx(m["ce"] + m["contrast"]) for m in lines)

    resolved = resolve_config(load_config_file(finished_run / "config.yaml"))
    assert resolved == tiny(ntu_store, finished_run)
    assert "model selection: none" in (finished_run / "log.txt").read_text()

    last = load_checkpoint(finished_run / "last.pt", "training")
    assert last["position"] == {"epoch": 2, "batch": 0, "global_step": 6}
    assert last["store_fingerprint"] == store_fingerprint(ntu_store)
    assert last["scheduler"]["last_epoch"] == 2 and last["optimizer"]["state"]
    assert set(last["rank_states"][0]["rng"]) >= {"python", "numpy", "torch"}
    assert last["model"]["csre_head.spatial_contrast.written"].all()            # every slot enqueued
    assert last["model"]["csre_head.temporal_contrast.sampling_step"] == 6

    exported = load_checkpoint(finished_run / "encoder.pt", "encoder")
    assert not any(key.startswith("csre_head") for key in exported["model"])
    create_encoder("hcn", num_class=60, window=16).load_state_dict(exported["model"])

    scores = load_scores(finished_run / "scores_test.npz")
    test_part = SkeletonDataset(ntu_store, "xsub", "test", window=16)
    assert list(scores.names) == test_part.names and np.array_equal(scores.labels, test_part.labels)
    assert scores.logits.shape == (5, 60) and scores.logits.dtype == np.float32


def test_scores_match_the_model_and_csre_eval(finished_run, ntu_store, tmp_path):
    written = load_scores(finished_run / "scores_test.npz")
    encoder, _ = load_encoder(finished_run / "encoder.pt")
    test_part = SkeletonDataset(ntu_store, "xsub", "test", window=16)
    x = torch.stack([torch.from_numpy(test_part[i][0]) for i in range(len(test_part))])
    with torch.no_grad():
        assert np.array_equal(encoder(x).numpy(), written.logits)
    for checkpoint in ("encoder.pt", "last.pt"):
        out = tmp_path / f"{checkpoint}.npz"
        result = run_cli(evaluate_command, ["--checkpoint", finished_run / checkpoint, "--store", ntu_store,
                                            "--out", out, "--num-workers", "0", "--no-progress"])
        assert result.exit_code == 0, result.output
        assert "5 samples: top-1" in result.stdout
        evaluated = load_scores(out)
        assert np.array_equal(evaluated.names, written.names) and np.array_equal(evaluated.logits, written.logits)


def test_plain_encoder_without_csre(ntu_store, tmp_path):
    result = train(tiny(ntu_store, tmp_path, csre=False, max_steps=2))
    assert result.global_step == 2
    assert [m["contrast"] for m in metrics(tmp_path)] == [None]
    last = load_checkpoint(tmp_path / "last.pt", "training")["model"]
    assert last.keys() == load_checkpoint(tmp_path / "encoder.pt", "encoder")["model"].keys()


def test_ctrgcn_with_csre_through_the_command_line(ntu_store, tmp_path):
    flags = tiny_flags(ntu_store, tmp_path) + ["--encoder", "ctrgcn", "--stream", "bone", "--max-steps", "1"]
    result = run_cli(train_command, flags)
    assert result.exit_code == 0, result.output
    assert "ctrgcn + CSRE on ntu60 xsub, stream bone" in (tmp_path / "log.txt").read_text()
    assert [m["step"] for m in metrics(tmp_path)] == [1]
    assert WORK_DIR_FILES <= {p.name for p in tmp_path.iterdir()}


def test_hcn_config_through_the_command_line(ntu_store, tmp_path):
    config = PROJECT_ROOT / "configs" / "hcn" / "ntu60-xsub-joint.yaml"
    flags = ["--config", config, "--store", ntu_store, "--batch-size", "2", "--max-steps", "1", "--num-workers", "0",
             "--no-progress", "--work-dir", tmp_path]             # the fixture's 7 samples hold no batch of 64
    result = run_cli(train_command, flags)
    assert result.exit_code == 0, result.output
    assert "hcn + CSRE on ntu60 xsub, stream joint, window 64" in (tmp_path / "log.txt").read_text()
    last = load_checkpoint(tmp_path / "last.pt")
    assert {key: last["config"][key] for key in ("optimizer", "lr", "clip_grad_norm", "lr_epoch_decay", "random_rot")} \
        == {"optimizer": "adam", "lr": 0.001, "clip_grad_norm": 32.0, "lr_epoch_decay": 0.99, "random_rot": False}
    assert "exp_avg_sq" in last["optimizer"]["state"][0]
    assert [(m["step"], m["lr"]) for m in metrics(tmp_path)] == [(1, 0.001)]


def test_random_rotation_switch(ntu_store, ucla_store, tmp_path):
    assert build_data(prepare_config(tiny(ntu_store, tmp_path)), False).train.random_rot
    assert not build_data(prepare_config(tiny(ntu_store, tmp_path, random_rot=False)), False).train.random_rot
    message = one_line_error(run_cli(train_command, ["--store", ucla_store, "--no-random-rot", "--work-dir", tmp_path]),
                             "csre-train")
    assert "--no-random-rot: the random rotation is the NTU feeder's" in message


def test_ucla_ctrgcn_with_the_reference_window(ucla_store, tmp_path):
    flags = ["--store", ucla_store, "--encoder", "ctrgcn", "--stream", "joint", "--device", "cpu", "--batch-size", "4",
             "--max-steps", "2", "--num-workers", "0", "--no-progress", "--work-dir", tmp_path]
    result = run_cli(train_command, flags)              # no --benchmark: the store has only xview
    assert result.exit_code == 0, result.output
    last = load_checkpoint(tmp_path / "last.pt", "training")
    assert last["config"]["benchmark"] == "xview" and last["config"]["window"] == 52
    assert last["model_arguments"]["layout"] == "ucla20" and last["model_arguments"]["num_person"] == 1
    # 8 training sequences repeated 5 times, each copy its own bank slot, as the released CSRE code
    assert last["model"]["csre_head.spatial_contrast.bank"].shape == (40, 256)
    assert load_scores(tmp_path / "scores_test.npz").logits.shape == (4, 10)


# ------------------------------------------------------------------------------------------ resuming

def _same_tensors(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same_tensors(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same_tensors(x, y) for x, y in zip(a, b))
    return a == b


def test_resume_continues_bit_identically(ntu_store, tmp_path):
    # Uninterrupted: 5 steps of 3-step epochs (stops inside epoch 2).
    straight = tmp_path / "straight"
    train(tiny(ntu_store, straight, epochs=3, max_steps=5))
    # Interrupted twice, inside epoch 1 and inside epoch 2, and continued with DataLoader workers.
    pieces = tmp_path / "pieces"
    train(tiny(ntu_store, pieces, epochs=3, max_steps=2))
    train(TrainConfig(work_dir=str(pieces)), resume=True, explicit={"max_steps": 4, "num_workers": 1})
    assert load_checkpoint(pieces / "last.pt")["position"] == {"epoch": 1, "batch": 1, "global_step": 4}
    train(TrainConfig(work_dir=str(pieces)), resume=True, explicit={"max_steps": 5})

    a, b = load_checkpoint(straight / "last.pt"), load_checkpoint(pieces / "last.pt")
    assert a["position"] == b["position"] == {"epoch": 1, "batch": 2, "global_step": 5}
    for key in ("model", "optimizer", "scheduler", "rank_states"):
        assert _same_tensors(a[key], b[key]), key
    assert np.array_equal(load_scores(straight / "scores_test.npz").logits,
                          load_scores(pieces / "scores_test.npz").logits)
    without_time = [{k: v for k, v in m.items() if k != "seconds"} for m in metrics(pieces) if m["complete"]]
    assert without_time == [{k: v for k, v in m.items() if k != "seconds"} for m in metrics(straight) if m["complete"]]

    # --max-steps counts across resumes: asking again for 5 trains nothing more.
    train(TrainConfig(work_dir=str(pieces)), resume=True, explicit={"max_steps": 5})
    assert load_checkpoint(pieces / "last.pt")["position"]["global_step"] == 5
    assert len(metrics(pieces)) == 4      # epoch 1 partial, epoch 1, epoch 2 partial (step 4), epoch 2 partial (step 5)


#: HCN's optimisation (configs/hcn) at the tiny runs' learning rate, with a bound the gradients exceed.
HCN_OPTIMISATION = dict(optimizer="adam", weight_decay=1e-4, warmup_epochs=0, lr_steps=[], lr_epoch_decay=0.99,
                        clip_grad_norm=0.01, random_rot=False)


def test_adam_with_clipping_resumes_bit_identically(ntu_store, tmp_path):
    straight, pieces = tmp_path / "straight", tmp_path / "pieces"
    train(tiny(ntu_store, straight, max_steps=4, **HCN_OPTIMISATION))
    train(tiny(ntu_store, pieces, max_steps=2, **HCN_OPTIMISATION))          # stops inside epoch 1
    train(TrainConfig(work_dir=str(pieces)), resume=True, explicit={"max_steps": 4})

    a, b = load_checkpoint(straight / "last.pt"), load_checkpoint(pieces / "last.pt")
    assert a["position"] == b["position"] == {"epoch": 1, "batch": 1, "global_step": 4}
    for key in ("model", "optimizer", "scheduler", "rank_states"):
        assert _same_tensors(a[key], b[key]), key
    assert a["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.999)
    assert {"exp_avg", "exp_avg_sq"} <= set(a["optimizer"]["state"][0])
    assert [m["lr"] for m in metrics(straight)] == pytest.approx([0.01, 0.01 * 0.99])


def test_the_engine_clips_the_gradient_norm(ntu_store, tmp_path):
    # One plain SGD step at weight decay 0 moves the weights by lr * (1 + momentum) * the clipped gradient.
    lr, bound = 1.0, 0.01
    train(tiny(ntu_store, tmp_path, csre=False, max_steps=1, lr=lr, warmup_epochs=0, weight_decay=0.0,
               clip_grad_norm=bound))
    last = load_checkpoint(tmp_path / "last.pt")
    torch.manual_seed(last["config"]["seed"])
    initial = build_encoder(last["model_arguments"])
    moved = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(last["model"][name] - parameter.detach())
                                                  for name, parameter in initial.named_parameters()]))
    assert float(moved) == pytest.approx(lr * 1.9 * bound, rel=1e-3)


def test_training_step_clips_the_gradient_norm(ntu_store):
    part = SkeletonDataset(ntu_store, "xsub", "train", window=16)
    batch = torch.utils.data.default_collate([part[0], part[1]])

    def gradient_norm(bound):
        torch.manual_seed(0)                  # the same weights and dropout masks every time
        encoder = create_encoder("hcn", num_class=60, window=16)
        optimizer = torch.optim.SGD(encoder.parameters(), lr=0.0)
        training_step(encoder, batch, optimizer, torch.amp.GradScaler("cuda", enabled=False), torch.device("cpu"),
                      csre=False, csre_weight=1.0, clip_grad_norm=bound)
        return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad)
                                                           for p in encoder.parameters()])))

    unclipped = gradient_norm(None)
    assert gradient_norm(unclipped / 4) == pytest.approx(unclipped / 4, rel=1e-5)
    assert gradient_norm(unclipped * 4) == unclipped


def test_resume_refusals(ntu_store, tmp_path):
    run = tmp_path / "run"
    train(tiny(ntu_store, run, max_steps=1))
    other = tmp_path / "other.h5"
    build([FIXTURES / "ntu60"], other, "ntu60")
    subset = tmp_path / "subset"
    subset.mkdir()
    for path in sorted((FIXTURES / "ntu60").iterdir())[1:]:
        (subset / path.name).symlink_to(path)
    smaller = tmp_path / "smaller.h5"
    build([subset], smaller, "ntu60")

    rebuilt = run_cli(train_command, ["--work-dir", run, "--resume", "--store", other, "--max-steps", "2"])
    assert rebuilt.exit_code == 0, rebuilt.output           # an identical rebuild is the same store
    message = one_line_error(run_cli(train_command, ["--work-dir", run, "--resume", "--store", smaller]), "csre-train")
    assert "is not the store this run was trained on" in message
    message = one_line_error(run_cli(train_command, ["--work-dir", run, "--resume", "--encoder", "ctrgcn"]),
                             "csre-train")
    assert "cannot change what is trained (encoder: 'hcn' -> 'ctrgcn')" in message
    message = one_line_error(run_cli(train_command, tiny_flags(ntu_store, run)), "csre-train")
    assert "already holds a run" in message and "--resume" in message
    message = one_line_error(run_cli(train_command, ["--work-dir", tmp_path / "empty", "--resume"]), "csre-train")
    assert "nothing to resume" in message


# ------------------------------------------------------------------------------------ model selection

def test_validation_split_selects_the_result(ntu_store, tmp_path):
    result = train(tiny(ntu_store, tmp_path, val_fraction=0.3))
    held_out = validation_samples(7, 0.3, seed=1)
    assert len(held_out) == 2
    assert {"best.pt", "scores_val.npz"} <= {p.name for p in tmp_path.iterdir()}
    assert all("val_acc" in m for m in metrics(tmp_path))
    assert "model selection: best validation accuracy" in (tmp_path / "log.txt").read_text()
    train_part = SkeletonDataset(ntu_store, "xsub", "train", window=16)
    assert list(load_scores(tmp_path / "scores_val.npz").names) == [train_part.names[i] for i in held_out]
    # The held-out samples never reach the training loss: their bank slots stay unwritten.
    written = load_checkpoint(tmp_path / "last.pt")["model"]["csre_head.spatial_contrast.written"]
    assert written.tolist() == [i not in held_out for i in range(7)]
    best = load_checkpoint(tmp_path / "best.pt")
    exported = load_checkpoint(tmp_path / "encoder.pt")["model"]
    assert all(torch.equal(exported[k], best["model"][f"encoder.{k}"]) for k in exported)
    assert result.selected.startswith("best.pt") and result.val_acc == best["best_val"]


def test_validation_draw_is_seeded():
    first = validation_samples(100, 0.05, seed=3)
    assert len(first) == 5 and np.array_equal(first, validation_samples(100, 0.05, seed=3))
    assert not np.array_equal(first, validation_samples(100, 0.05, seed=4))
    assert len(validation_samples(100, 0.0, seed=3)) == 0


# ---------------------------------------------------------------------------- configuration and CLI

def test_config_precedence_defaults_file_flags(tmp_path, monkeypatch):
    captured = {}
    monkeypatch.setattr("csre_models.engine.train", lambda config, **kwargs: captured.update(config=config))
    config_file = tmp_path / "run.yaml"
    config_file.write_text("encoder: agcn\nbatch-size: 8\nlr: 4e-4\nepochs: 10\nlr_steps: [3, 6]\n")
    result = run_cli(train_command, ["--config", config_file, "--store", "s.h5", "--lr", "0.5", "--epochs", "65"])
    assert result.exit_code == 0, result.output
    config = captured["config"]
    assert (config.encoder, config.batch_size, config.lr_steps) == ("agcn", 8, [3, 6])     # from the file
    assert (config.lr, config.epochs, config.store) == (0.5, 65, "s.h5")      # flags, even at a default value
    assert (config.weight_decay, config.stream) == (4e-4, "joint")            # defaults
    assert resolve_config({"lr": "4e-4"}).lr == 4e-4        # YAML 1.1 reads 4e-4 as text; it is coerced

    config_file.write_text("batch_size: eight\n")
    assert "batch_size: expected an integer, got 'eight'" in one_line_error(
        run_cli(train_command, ["--config", config_file]), "csre-train")
    config_file.write_text("learning_rate: 0.1\n")
    assert "unknown key 'learning_rate'" in one_line_error(run_cli(train_command, ["--config", config_file]),
                                                           "csre-train")


#: What a config's data set means for its encoder: classes, joint layout and persons.
CONFIG_DATASETS = {"ntu60": (60, "ntu25", 2), "ntu120": (120, "ntu25", 2), "ucla": (10, "ucla20", 1)}


def test_shipped_configs_load_and_match_their_names():
    files = sorted((PROJECT_ROOT / "configs").rglob("*.yaml"))
    assert len(files) >= 92
    for path in files:
        config = resolve_config(load_config_file(path))
        parts = path.stem.split("-")
        dataset, benchmark, stream = parts[0], parts[1], parts[-1]
        # <dataset>-<benchmark>-stgcn-<stream>: recipes for a store built with --pipeline stgcn.
        stgcn = parts[2:-1] == ["stgcn"]
        assert len(parts) == (4 if stgcn else 3) and config.pipeline == ("stgcn" if stgcn else None), path
        assert (config.encoder, config.dataset, config.benchmark, config.stream) == (
            path.parent.name, dataset, benchmark, stream), path
        assert config.encoder in list_encoders(), path
        own_agcn = stgcn and config.encoder == "agcn"   # 2s-AGCN's own recipe: all 300 frames, no augmentation
        if own_agcn:
            assert (config.window, config.crop, config.random_rot) == (300, False, False), path
            assert (config.epochs, config.lr_steps, config.weight_decay) == (50, [30, 40], 1e-4), path
        else:
            assert config.crop and config.window == (52 if dataset == "ucla" else 64), path
        assert config.store is None, path
        # Hyperformer and BlockGCN were published with the spine-relative feeder.
        assert config.spine_relative == (config.encoder in ("hyperformer", "blockgcn")), path
        # HCN's recipe: Adam, clipping, per-epoch decay, no rotation; the GCNs': SGD, CTR-GCN's rotation.
        hcn = config.encoder == "hcn"
        assert (config.optimizer, config.random_rot) == (("adam", False) if hcn else ("sgd", not own_agcn)), path
        assert (config.clip_grad_norm, config.lr_epoch_decay) == ((32.0, 0.99) if hcn else (None, 1.0)), path
        classes, layout, persons = CONFIG_DATASETS[dataset]
        create_encoder(config.encoder, num_class=classes, layout=layout, num_person=persons, window=config.window,
                       **config.encoder_options)


def test_a_config_of_another_data_set_is_refused(ucla_store, tmp_path):
    """The benchmark name alone cannot tell: NTU-60 and NW-UCLA both have an xview benchmark."""
    config = PROJECT_ROOT / "configs" / "ctrgcn" / "ntu60-xview-joint.yaml"
    message = one_line_error(run_cli(train_command, ["--config", config, "--store", ucla_store, "--work-dir", tmp_path,
                                                     "--epochs", "1"]), "csre-train")
    assert f"the configuration is for ntu60 but {ucla_store} holds ucla (ucla20, 10 classes)" in message
    assert not (tmp_path / "last.pt").exists()


@pytest.mark.parametrize("command", [train_command, evaluate_command, ensemble_command])
def test_help_shows_an_example(command):
    result = run_cli(command, ["--help"])
    assert result.exit_code == 0 and "Example:" in result.output


@pytest.mark.parametrize("flags, expected", [
    (["--encoder", "resnet"], "unknown encoder 'resnet'; known: agcn, "),
    (["--benchmark", "xset"], "--benchmark xset: not in this store; "),
    (["--stream", "velocity"], "unknown stream 'velocity'; known: joint, bone, joint_motion, bone_motion"),
    (["--device", "cuda"], "CUDA is not available here"),
    (["--val-fraction", "1.5"], "--val-fraction must be in [0, 1)"),
    (["--optimizer", "rmsprop"], "unknown optimizer 'rmsprop'; known: sgd, adam"),
    (["--clip-grad-norm", "0"], "--clip-grad-norm must be positive, got 0.0"),
])
def test_errors_are_one_line(ntu_store, tmp_path, flags, expected):
    if flags[0] == "--device" and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    message = one_line_error(run_cli(train_command, tiny_flags(ntu_store, tmp_path) + flags), "csre-train")
    assert expected in message
    if flags[0] == "--benchmark":
        assert message.endswith("(ntu60) has xsub, xview")


def test_eval_errors_are_one_line(finished_run, ucla_store, tmp_path):
    flags = ["--store", ucla_store, "--out", tmp_path / "x.npz"]
    message = one_line_error(run_cli(evaluate_command, ["--checkpoint", finished_run / "encoder.pt", *flags]),
                             "csre-eval")
    assert "trained on ntu25 with 60 classes" in message
    message = one_line_error(run_cli(evaluate_command, ["--checkpoint", finished_run / "log.txt", *flags]), "csre-eval")
    assert "not a readable checkpoint" in message


# ------------------------------------------------------------------------------ schedule and order

def test_schedule_is_the_reference_rule():
    factor = WarmupStepDecay(5, [35, 55], 0.1)
    assert [factor(e) for e in (0, 1, 4, 5, 34)] == [0.2, 0.4, 1.0, 1.0, 1.0]
    assert factor(35) == pytest.approx(0.1) and factor(55) == pytest.approx(0.01) and factor(64) == pytest.approx(0.01)
    optimizer, scheduler = build_optimizer(torch.nn.Linear(2, 2), lr=0.1, momentum=0.9, weight_decay=4e-4,
                                           warmup_epochs=5, steps=[35, 55], decay=0.1)
    assert optimizer.defaults["nesterov"] and optimizer.param_groups[0]["lr"] == pytest.approx(0.02)
    for _ in range(5):
        optimizer.step()
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1)


def test_per_epoch_decay_and_adam():
    hcn = WarmupStepDecay(0, [], 0.1, epoch_decay=0.99)                 # ExponentialLR, gamma 0.99
    assert [hcn(e) for e in (0, 1, 399)] == pytest.approx([1.0, 0.99, 0.99 ** 399])
    both = WarmupStepDecay(2, [3], 0.1, epoch_decay=0.5)                 # decays after the warm-up only
    assert [both(e) for e in range(5)] == pytest.approx([0.5, 1.0, 1.0, 0.05, 0.025])
    optimizer, scheduler = build_optimizer(torch.nn.Linear(2, 2), lr=1e-3, momentum=0.9, weight_decay=1e-4,
                                           warmup_epochs=0, steps=[], decay=0.1, optimizer="adam", epoch_decay=0.99)
    assert isinstance(optimizer, torch.optim.Adam)
    assert (optimizer.defaults["betas"], optimizer.defaults["eps"], optimizer.defaults["weight_decay"]) == \
        ((0.9, 0.999), 1e-8, 1e-4)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-3)
    optimizer.step()
    scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.99e-3)
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'; known: sgd, adam"):
        build_optimizer(torch.nn.Linear(2, 2), 0.1, 0.9, 0.0, 0, [], 0.1, optimizer="rmsprop")


def test_epoch_batches_shard_shuffle_and_skip():
    positions = np.arange(100, 110)
    ranks = [EpochBatches(positions, 2, WorldInfo(rank=r, world_size=2), seed=5) for r in range(2)]
    for sampler in ranks:
        sampler.set_epoch(3)
    epoch3 = [list(sampler) for sampler in ranks]
    keys = [key for batches in epoch3 for batch in batches for key in batch]
    # 5 positions per rank, 2 whole batches of 2 each: 8 distinct positions in all.
    assert len(keys) == 8 and len({p for p, _ in keys}) == 8 and all(100 <= p < 110 for p, _ in keys)
    assert all(epoch == 3 for _, epoch in keys) and all(len(b) == 2 for batches in epoch3 for b in batches)
    ranks[0].set_epoch(3, skip=1)
    assert list(ranks[0]) == epoch3[0][1:] and len(ranks[0]) == len(epoch3[0]) - 1
    ranks[0].set_epoch(4)
    assert list(ranks[0]) != epoch3[0]


# -------------------------------------------------------------------------------------- distributed

def torchrun(flags: list) -> None:
    """``csre-train FLAGS`` as a 2-process gloo job (torch.distributed.run, by module, one thread each)."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "cli.train",
               *map(str, flags)]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=PROJECT_ROOT, env=environment, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]


def test_ddp_on_cpu_two_processes_resumes_exactly(ntu_store, tmp_path):
    interrupted, straight = tmp_path / "interrupted", tmp_path / "straight"
    torchrun(tiny_flags(ntu_store, interrupted) + ["--max-steps", "2"])
    last = load_checkpoint(interrupted / "last.pt")
    assert last["world_size"] == 2 and len(last["rank_states"]) == 2
    assert last["position"] == {"epoch": 0, "batch": 2, "global_step": 2}      # 4 steps per epoch: mid-epoch
    # Each rank trains on 1 sample per step, and every rank enqueues the global batch: 2 steps x 2 samples.
    assert int(last["model"]["csre_head.spatial_contrast.written"].sum()) == 4
    assert [m["step"] for m in metrics(interrupted)] == [2]
    assert "2 process(es), global batch 2" in (interrupted / "log.txt").read_text()

    torchrun(["--work-dir", interrupted, "--resume", "--max-steps", "5"])
    torchrun(tiny_flags(ntu_store, straight) + ["--max-steps", "5"])
    a, b = load_checkpoint(straight / "last.pt"), load_checkpoint(interrupted / "last.pt")
    assert a["position"] == b["position"] == {"epoch": 1, "batch": 1, "global_step": 5}
    assert _same_tensors(a["model"], b["model"]) and _same_tensors(a["optimizer"], b["optimizer"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (this machine has none)")
def test_cuda_training_with_amp(ntu_store, tmp_path):
    train(tiny(ntu_store, tmp_path, device="cuda", max_steps=2))
    last = load_checkpoint(tmp_path / "last.pt")
    assert last["scaler"]["scale"] > 0 and "AMP float16" in (tmp_path / "log.txt").read_text()
    assert "cuda" in last["rank_states"][0]["rng"]


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices for NCCL")
def test_ddp_on_two_gpus_with_nccl(ntu_store, tmp_path):
    torchrun(tiny_flags(ntu_store, tmp_path) + ["--device", "cuda", "--max-steps", "2"])
    assert load_checkpoint(tmp_path / "last.pt")["position"]["global_step"] == 2
