"""Tests of the training engine and of ``csre-train`` and ``csre-eval`` (``csre-ensemble``: test_ensemble.py;
configuration: test_config.py; data order: test_sampling.py; work dir: test_workdir.py; torchrun:
test_distributed.py).

The runs are tiny: the NTU-60 fixture store (xsub: 7 training and 5 test samples), HCN (the fastest encoder
on a CPU) at 16 frames unless a test is about CTR-GCN, batch 2, one thread, and CSRE with 1 hard positive
and 2 negatives per anchor so that its contrastive term is active on 7 samples.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import FIXTURES, PROJECT_ROOT

from cli.train import ensemble as ensemble_command
from cli.train import evaluate as evaluate_command
from cli.train import train as train_command
from csre_models import create_encoder
from csre_models.checkpoint import build_encoder, load_checkpoint, load_encoder, store_fingerprint
from csre_models.config import TrainConfig, load_config_file, resolve_config
from csre_models.data import SkeletonDataset
from csre_models.data.sampling import validation_samples
from csre_models.engine import Trainer, train, training_step
from csre_models.ensemble import Scores, load_scores
from skeldata.build import build

WORK_DIR_FILES = {"config.yaml", "log.txt", "metrics.jsonl", "last.pt", "encoder.pt", "scores_test.npz", "env.json",
                  "progress.json",
                  "result.json"}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


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


def test_the_best_epoch_not_the_last_is_the_result(ntu_store, tmp_path, monkeypatch):
    """Three epochs whose validation accuracies are made 0, 1, 0: the result is epoch 2's weights, not the
    last epoch's."""
    original = Trainer.evaluate_part
    planned = iter([False, True, False])      # is every validation sample right, at the end of epochs 1, 2, 3

    def evaluate_part(self, part):
        scores = original(self, part)
        right = next(planned, None) if part == "val" else None
        if right is None:                     # test parts, and the result's final evaluation: as computed
            return scores
        classes = scores.logits.shape[1]
        target = scores.labels if right else (scores.labels + 1) % classes
        return Scores(scores.names, np.eye(classes, dtype=np.float32)[target], scores.labels)

    monkeypatch.setattr(Trainer, "evaluate_part", evaluate_part)
    result = train(tiny(ntu_store, tmp_path, val_fraction=0.3, epochs=3))
    assert [m["val_acc"] for m in metrics(tmp_path)] == [0.0, 1.0, 0.0]
    best, last = load_checkpoint(tmp_path / "best.pt"), load_checkpoint(tmp_path / "last.pt")
    assert best["position"]["epoch"] == 2 and last["position"]["epoch"] == 3 and best["best_val"] == 1.0
    exported = load_checkpoint(tmp_path / "encoder.pt")["model"]
    assert all(torch.equal(exported[k], best["model"][f"encoder.{k}"]) for k in exported)
    assert not all(torch.equal(exported[k], last["model"][f"encoder.{k}"]) for k in exported)
    assert json.loads((tmp_path / "result.json").read_text())["selected_epoch"] == 2
    assert result.selected.startswith("best.pt (epoch 2, val acc 1.0000)") and result.val_acc is not None


@pytest.mark.parametrize("command", [train_command, evaluate_command, ensemble_command])
def test_help_shows_an_example(command):
    result = run_cli(command, ["--help"])
    assert result.exit_code == 0 and "Example:" in result.output


def test_eval_errors_are_one_line(finished_run, ucla_store, tmp_path):
    flags = ["--store", ucla_store, "--out", tmp_path / "x.npz"]
    message = one_line_error(run_cli(evaluate_command, ["--checkpoint", finished_run / "encoder.pt", *flags]),
                             "csre-eval")
    assert "trained on ntu25 with 60 classes" in message
    message = one_line_error(run_cli(evaluate_command, ["--checkpoint", finished_run / "log.txt", *flags]), "csre-eval")
    assert "not a readable checkpoint" in message


# ------------------------------------------------------------------------------------------- CUDA

@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (this machine has none)")
def test_cuda_training_with_amp(ntu_store, tmp_path):
    train(tiny(ntu_store, tmp_path, device="cuda", max_steps=2))
    last = load_checkpoint(tmp_path / "last.pt")
    assert last["scaler"]["scale"] > 0 and "AMP float16" in (tmp_path / "log.txt").read_text()
    assert "cuda" in last["rank_states"][0]["rng"]
