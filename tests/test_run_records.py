"""What a run records about itself: env.json, result.json, the bank warm-up in the log, TensorBoard events,
and the --threads, --deterministic and --auto-resume options."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cli.train import train as train_command
from csre_models.checkpoint import store_fingerprint
from csre_models.ensemble import load_scores
from csre_models.engine import train
from test_engine import metrics, run_cli, tiny, tiny_flags

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def validated_run(ntu_store, tmp_path_factory) -> Path:
    work_dir = tmp_path_factory.mktemp("runs") / "validated"
    train(tiny(ntu_store, work_dir, val_fraction=0.3, epochs=3, threads=1))
    return work_dir


def test_env_json_describes_the_run(validated_run, ntu_store):
    env = json.loads((validated_run / "env.json").read_text())
    assert env["versions"]["torch"] == torch.__version__ and env["versions"]["numpy"] == np.__version__
    assert env["torch_threads"] == 1 and env["device"] == "cpu" and env["python"]
    assert env["store_fingerprint"] == store_fingerprint(ntu_store)
    assert env["cuda"]["available"] == torch.cuda.is_available()
    assert env["git"] is None or len(env["git"]["commit"]) == 40
    assert "resumes" not in env


def test_result_json_names_the_selected_epoch(validated_run):
    result = json.loads((validated_run / "result.json").read_text())
    lines = metrics(validated_run)
    val = [line["val_acc"] for line in lines]
    assert result["selection"] == "val" and result["selected_epoch"] == 1 + val.index(max(val))
    assert result["complete"] and result["epochs_done"] == 3 and result["global_step"] == 6
    assert result["test_top1"] == load_scores(validated_run / "scores_test.npz").accuracy(1)
    assert result["val_top1"] == load_scores(validated_run / "scores_val.npz").accuracy(1) == max(val)


def test_the_log_says_when_the_contrastive_term_starts(validated_run):
    log = (validated_run / "log.txt").read_text()
    assert "CSRE bank warm-up: the contrastive term stays 0" in log
    assert log.count("the contrastive term is active from here on") == 1


def test_tensorboard_events_hold_every_step(validated_run):
    pytest.importorskip("tensorboard", reason="the optional tensorboard package is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(validated_run / "tensorboard"))
    events.Reload()
    assert [event.step for event in events.Scalars("train/loss")] == [1, 2, 3, 4, 5, 6]
    assert {"train/ce", "train/contrast", "train/lr", "epoch/val_acc", "epoch/test_acc"} <= set(events.Tags()["scalars"])
    assert [event.value for event in events.Scalars("epoch/test_acc")] == pytest.approx(
        [line["test_acc"] for line in metrics(validated_run)])


def test_deterministic_runs_match_and_are_recorded(ntu_store, tmp_path):
    try:
        train(tiny(ntu_store, tmp_path / "deterministic", deterministic=True, max_steps=3))
    finally:
        torch.use_deterministic_algorithms(False)
    train(tiny(ntu_store, tmp_path / "default", max_steps=3))
    env = json.loads((tmp_path / "deterministic" / "env.json").read_text())
    assert env["deterministic_algorithms"] is True
    a, b = (load_scores(tmp_path / name / "scores_test.npz") for name in ("deterministic", "default"))
    assert np.array_equal(a.logits, b.logits)
    assert "deterministic algorithms on" in (tmp_path / "deterministic" / "log.txt").read_text()


def test_auto_resume_starts_then_continues(ntu_store, tmp_path):
    flags = tiny_flags(ntu_store, tmp_path) + ["--auto-resume"]
    result = run_cli(train_command, flags + ["--max-steps", "2"])
    assert result.exit_code == 0, result.output
    assert "resumed from" not in (tmp_path / "log.txt").read_text()
    result = run_cli(train_command, flags + ["--max-steps", "5"])
    assert result.exit_code == 0, result.output
    assert "resumed from" in (tmp_path / "log.txt").read_text()
    assert json.loads((tmp_path / "result.json").read_text())["global_step"] == 5
    env = json.loads((tmp_path / "env.json").read_text())
    assert [resume["step"] for resume in env["resumes"]] == [2]


def test_threads_must_be_positive(ntu_store, tmp_path):
    result = run_cli(train_command, tiny_flags(ntu_store, tmp_path) + ["--threads", "0"])
    assert result.exit_code == 1 and "--threads must be at least 1, got 0" in result.stderr


def test_progress_json_says_where_the_run_stands(validated_run):
    from csre_models.study import StudyRun, describe_progress

    progress = json.loads((validated_run / "progress.json").read_text())
    assert (progress["epoch"], progress["epochs"], progress["batch"], progress["step"]) == (1, 3, 1, 1)
    run = StudyRun("csre", 1, None, validated_run, ())
    assert describe_progress(run) == f"epoch 1/3, batch 1/{progress['batches']}"
    assert describe_progress(StudyRun("csre", 2, None, validated_run / "none", ())) == "starting"
