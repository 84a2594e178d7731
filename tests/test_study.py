"""Tests of ``csre-study``: pairing by seed, resuming, the recipe check, the plan, and the report's numbers
against each run's own files; and of the statistics behind the report."""
from __future__ import annotations

import json
import math
import shlex
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from cli.study import study as study_command
from csre_models.engine import Trainer, train
from csre_models.ensemble import load_scores
from csre_models.statistics import bootstrap_interval, paired_t_interval, t_cdf_two_sided, t_quantile
from csre_models.study import plan_study, recipe_differences, run_status, threads_per_run
from csre_models.study_report import summarize_metric
from test_engine import metrics, one_line_error, tiny

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY_FLAGS = ["--benchmark", "xsub", "--encoder", "hcn", "--window", "16", "--batch-size", "2", "--epochs", "2",
              "--lr", "0.05", "--warmup-epochs", "1", "--num-workers", "0", "--csre-positives", "1",
              "--csre-negatives", "2", "--val-fraction", "0.3"]


@pytest.fixture(scope="module")
def empty_config(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("configs") / "tiny.yaml"
    path.write_text("# every setting is a flag of the study\n")
    return path


def run_study(args):
    return CliRunner().invoke(study_command, [str(a) for a in args])


@pytest.fixture(scope="module")
def finished_study(ntu_store, empty_config, tmp_path_factory):
    """Two seeds x both arms, two runs at once; returns the study dir and the command's result."""
    study_dir = tmp_path_factory.mktemp("study") / "hcn"
    result = run_study(["--config", empty_config, "--store", ntu_store, "--seeds", "1,2", "--work-dir", study_dir,
                        "--jobs", "2", *TINY_FLAGS])
    assert result.exit_code == 0, result.output
    return study_dir, result


# ------------------------------------------------------------------------------------------ statistics

@pytest.mark.parametrize("df, quantile", [(1, 12.7062047362), (2, 4.3026527297), (3, 3.1824463053),
                                          (4, 2.7764451052), (9, 2.2621571628), (30, 2.0422724563)])
def test_t_quantiles_are_the_tabulated_values(df, quantile):
    assert t_quantile(0.975, df) == pytest.approx(quantile, abs=1e-8)
    assert t_cdf_two_sided(quantile, df) == pytest.approx(0.95, abs=1e-10)


def test_paired_summary_by_hand():
    entries = [{"arm": arm, "seed": seed, "test_top1": value}
               for arm, values in (("csre", (0.80, 0.70, 0.90)), ("baseline", (0.75, 0.72, 0.85)))
               for seed, value in zip((1, 2, 3), values)]
    entries.append({"arm": "csre", "seed": 4, "test_top1": 0.99})        # unpaired: counted in its arm only
    summary = summarize_metric(entries)
    assert summary["arms"]["csre"]["n"] == 4 and summary["arms"]["baseline"]["n"] == 3
    assert summary["arms"]["baseline"]["mean"] == pytest.approx((0.75 + 0.72 + 0.85) / 3)
    assert summary["arms"]["baseline"]["std"] == pytest.approx(np.std([0.75, 0.72, 0.85], ddof=1))
    paired = summary["paired_difference"]
    d = [0.05, -0.02, 0.05]
    mean, sd = sum(d) / 3, math.sqrt(sum((x - sum(d) / 3) ** 2 for x in d) / 2)
    assert paired["seeds"] == [1, 2, 3] and paired["values"] == pytest.approx(d)
    assert paired["mean"] == pytest.approx(mean) and paired["std"] == pytest.approx(sd)
    half = 4.302652729749 * sd / math.sqrt(3)
    assert paired["ci95_t"] == pytest.approx((mean - half, mean + half))
    low, high = paired["ci95_bootstrap"]
    assert min(d) - 1e-12 <= low <= mean <= high <= max(d) + 1e-12
    assert paired["ci95_bootstrap"] == bootstrap_interval(paired["values"])            # seeded: the same every time
    assert paired_t_interval([0.1]) is None and bootstrap_interval([0.1]) is None


def test_threads_are_split_between_jobs():
    assert threads_per_run(2, cpu_count=16) == 8 and threads_per_run(3, cpu_count=2) == 1


# ------------------------------------------------------------------------------------------- pairing

def _record_training(monkeypatch):
    """Record, for every run trained while active, the encoder's weights at its first step and every batch."""
    seen = []
    original = Trainer.train_step

    def recording(self, batch):
        if not self.position.global_step:
            module = self.model.encoder if self.config.csre else self.model
            seen.append({"weights": {k: v.clone() for k, v in module.state_dict().items()}, "batches": []})
        seen[-1]["batches"].append([t.clone() for t in batch])
        return original(self, batch)

    monkeypatch.setattr(Trainer, "train_step", recording)
    return seen


def test_both_arms_of_a_seed_start_alike_and_see_the_same_batches(ntu_store, tmp_path, monkeypatch):
    seen = _record_training(monkeypatch)
    for name, csre, seed in (("csre", True, 5), ("baseline", False, 5), ("other-seed", False, 6)):
        train(tiny(ntu_store, tmp_path / name, csre=csre, seed=seed, epochs=2))
    with_csre, without, other_seed = seen
    assert with_csre["weights"].keys() == without["weights"].keys()
    assert all(torch.equal(with_csre["weights"][k], without["weights"][k]) for k in with_csre["weights"])
    assert len(with_csre["batches"]) == len(without["batches"]) == 6
    for a, b in zip(with_csre["batches"], without["batches"]):
        assert all(torch.equal(x, y) for x, y in zip(a, b))           # inputs, labels and bank slots
    # The check can fail: another seed starts elsewhere and shuffles otherwise.
    assert not all(torch.equal(with_csre["weights"][k], other_seed["weights"][k]) for k in with_csre["weights"])
    assert not all(torch.equal(a[0], b[0]) for a, b in zip(without["batches"], other_seed["batches"]))


# --------------------------------------------------------------------------------------- the command

def test_report_numbers_are_the_runs_own(finished_study):
    study_dir, result = finished_study
    report = json.loads((study_dir / "report.json").read_text())
    assert report["metric"] == "test_top1" and report["selection"] == "val"
    assert report["runs_finished"] == report["runs_planned"] == 4
    assert [(r["arm"], r["seed"]) for r in report["runs"]] == [("csre", 1), ("baseline", 1), ("csre", 2),
                                                               ("baseline", 2)]
    values = {}
    for entry in report["runs"]:
        work_dir = study_dir / entry["work_dir"]
        assert entry["work_dir"] == f"{entry['arm']}-seed{entry['seed']}" and entry["complete"]
        assert (work_dir / "env.json").exists()
        assert entry["test_top1"] == load_scores(work_dir / "scores_test.npz").accuracy(1)
        lines = metrics(work_dir)
        assert entry["curve"] == [line["test_acc"] for line in lines]
        val = [line["val_acc"] for line in lines]
        assert entry["selected_epoch"] == 1 + val.index(max(val))        # the first best validation epoch
        values[entry["arm"], entry["seed"]] = entry["test_top1"]
    for arm in ("csre", "baseline"):
        arm_values = [values[arm, 1], values[arm, 2]]
        assert report["arms"][arm]["values"] == arm_values
        assert report["arms"][arm]["mean"] == pytest.approx(np.mean(arm_values))
    d = [values["csre", s] - values["baseline", s] for s in (1, 2)]
    paired = report["paired_difference"]
    half = 12.706204736 * np.std(d, ddof=1) / math.sqrt(2)
    assert paired["values"] == pytest.approx(d)
    assert paired["ci95_t"] == pytest.approx([np.mean(d) - half, np.mean(d) + half])
    (environment,) = report["environments"]            # one code version, one machine
    assert sorted(environment["runs"]) == sorted(entry["work_dir"] for entry in report["runs"])
    assert environment["device"] == "cpu" and environment["threads"] == 1
    markdown = (study_dir / "report.md").read_text()
    assert "csre-study --config" in markdown and "95 % interval (Student t, 1 df)" in markdown
    assert "finished csre-seed1" in result.stderr


def test_running_again_trains_nothing(finished_study):
    study_dir, _ = finished_study
    before = {p: p.stat().st_mtime_ns for p in study_dir.glob("*/last.pt")}
    result = run_study(["--work-dir", study_dir])          # the settings come from study.json
    assert result.exit_code == 0, result.output
    assert "4 finished, 0 to resume, 0 to start" in result.stderr
    assert "starting" not in result.stderr and "resuming" not in result.stderr
    assert {p: p.stat().st_mtime_ns for p in study_dir.glob("*/last.pt")} == before


def test_an_unfinished_run_is_resumed_and_the_others_kept(finished_study, tmp_path):
    study_dir, _ = finished_study
    run_dir = study_dir / "baseline-seed2"
    expected = json.loads((run_dir / "result.json").read_text())
    (run_dir / "result.json").unlink()                      # as if killed after its last checkpoint
    kept = (study_dir / "csre-seed1" / "last.pt").stat().st_mtime_ns
    result = run_study(["--work-dir", study_dir, "--report"])
    report = json.loads((study_dir / "report.json").read_text())
    assert result.exit_code == 0 and report["runs_finished"] == 3 and report["arms"]["baseline"]["n"] == 1
    result = run_study(["--work-dir", study_dir])
    assert result.exit_code == 0, result.output
    assert "1 to resume" in result.stderr and "resuming baseline-seed2" in result.stderr
    assert "starting" not in result.stderr
    assert json.loads((run_dir / "result.json").read_text())["test_top1"] == expected["test_top1"]
    assert len(metrics(run_dir)) == 2                        # no epoch recorded twice
    assert (study_dir / "csre-seed1" / "last.pt").stat().st_mtime_ns == kept


def test_plan_prints_the_commands(ntu_store, empty_config, tmp_path):
    result = run_study(["--config", empty_config, "--store", ntu_store, "--seeds", "3,4", "--work-dir", tmp_path / "s",
                        "--plan", *TINY_FLAGS])
    assert result.exit_code == 0, result.output
    commands = [shlex.split(line) for line in result.stdout.splitlines()]
    assert len(commands) == 4 and all(c[:2] == ["csre-train", "--auto-resume"] for c in commands)
    assert [c[c.index("--seed") + 1] for c in commands] == ["3", "3", "4", "4"]
    assert ["--no-csre" in c for c in commands] == [False, True, False, True]
    assert commands[1][commands[1].index("--work-dir") + 1] == str(tmp_path / "s" / "baseline-seed3")
    assert not (tmp_path / "s").exists()                     # planning writes nothing


def test_streams_plan_one_dir_per_stream(tmp_path):
    runs = plan_study(tmp_path, ["--config", "c.yaml"], [1], ["csre"], ["joint", "bone"])
    assert [run.name for run in runs] == ["csre-seed1/joint", "csre-seed1/bone"]
    assert runs[1].args[-2:] == ("--stream", "bone") and run_status(runs[0]) == "new"


def test_refusals_are_one_line(ntu_store, empty_config, finished_study, tmp_path):
    study_dir, _ = finished_study
    base = ["--config", empty_config, "--store", ntu_store, "--seeds", "1,2"]
    message = one_line_error(run_study([*base, "--work-dir", tmp_path / "a", *TINY_FLAGS, "--seed", "3"]),
                             "csre-study")
    assert "--seed: set by csre-study for each run" in message
    message = one_line_error(run_study([*base, "--work-dir", study_dir, *TINY_FLAGS[:-2], "--epochs", "3"]),
                             "csre-study")
    assert "holds a run of another recipe" in message and "epochs: 2 there, 3 planned" in message
    message = one_line_error(run_study(["--work-dir", tmp_path / "b", "--seeds", "1"]), "csre-study")
    assert "--config, --store required" in message
    message = one_line_error(run_study([*base, "--work-dir", tmp_path / "c", "--arms", "csre,placebo"]), "csre-study")
    assert "--arms csre,placebo: choose from csre, baseline" in message
    message = one_line_error(run_study([*base, "--work-dir", tmp_path / "d", "--no-such-flag", "1"]), "csre-study")
    assert "csre-train flags: No such option" in message and "--no-such-flag" in message


def test_recipe_differences_ignore_how_a_run_is_executed(ntu_store, tmp_path):
    planned = tiny(ntu_store, tmp_path)
    moved = tiny(ntu_store, tmp_path / "elsewhere", threads=4, device="cpu", num_workers=3, progress=True)
    assert recipe_differences(moved, planned) == []
    assert recipe_differences(tiny(ntu_store, tmp_path, lr=0.5), planned) == [("lr", 0.5, 0.01)]


def test_help_shows_an_example():
    result = CliRunner().invoke(study_command, ["--help"])
    assert result.exit_code == 0 and "Example:" in result.output and "--plan" in result.output


def test_streams_add_a_validation_tuned_ensemble(ntu_store, empty_config, tmp_path):
    from cli.train import ensemble as ensemble_command
    from test_engine import run_cli

    study_dir = tmp_path / "streams"
    result = run_study(["--config", empty_config, "--store", ntu_store, "--seeds", "1", "--arms", "csre",
                        "--streams", "joint,bone", "--work-dir", study_dir, "--jobs", "2", *TINY_FLAGS])
    assert result.exit_code == 0, result.output
    report = json.loads((study_dir / "report.json").read_text())
    assert report["metric"] == "ensemble_test_top1" and set(report["metrics"]) == {"joint", "bone", "ensemble"}
    fused_entry = next(entry for entry in report["runs"] if entry["stream"] == "ensemble")
    assert fused_entry["tuned_on"] == "val" and fused_entry["complete"]
    runs = [study_dir / "csre-seed1" / stream for stream in ("joint", "bone")]
    out = tmp_path / "fused.npz"
    command = run_cli(ensemble_command, [*(r / "scores_test.npz" for r in runs), "--tune-on",
                                         *(r / "scores_val.npz" for r in runs), "--out", out])
    assert command.exit_code == 0, command.output
    fused = load_scores(out)
    assert fused_entry["weights"] == fused.extra["weights"].tolist()
    assert fused_entry["test_top1"] == fused.accuracy(1) == report["metrics"]["ensemble"]["arms"]["csre"]["mean"]


FAKE_TRAINER = """
import json, os, sys
args = sys.argv[1:]
work_dir = args[args.index("--work-dir") + 1]
with open(os.path.join(work_dir, "argv.json"), "w") as handle:
    json.dump({"args": args, "omp": os.environ.get("OMP_NUM_THREADS")}, handle)
if "--seed" in args and args[args.index("--seed") + 1] == "13":
    sys.exit(2)
with open(os.path.join(work_dir, "result.json"), "w") as handle:
    json.dump({"test_top1": 0.5, "selected_epoch": 1, "selection": "last"}, handle)
"""


def test_execute_binds_devices_splits_threads_and_reports_failures(tmp_path):
    from csre_models.study import execute

    fake = tmp_path / "fake_trainer.py"
    fake.write_text(FAKE_TRAINER)
    runs = plan_study(tmp_path / "s", ["--config", "c.yaml"], [11, 12, 13], ["csre"])
    lines = []
    codes = execute(runs, jobs=3, devices=["cuda:0", "cuda:1"], program=[sys.executable, str(fake)],
                    echo=lines.append, poll_seconds=0.05)
    assert codes == {"csre-seed11": 0, "csre-seed12": 0, "csre-seed13": 2}
    seen = [json.loads((run.work_dir / "argv.json").read_text()) for run in runs]
    devices = [s["args"][s["args"].index("--device") + 1] for s in seen]
    assert sorted(devices) == ["cuda:0", "cuda:0", "cuda:1"]             # three slots on two GPUs, round-robin
    threads = str(threads_per_run(3))
    assert all(s["args"][s["args"].index("--threads") + 1] == threads == s["omp"] for s in seen)
    assert all(s["args"][:2] == ["--auto-resume", "--config"] for s in seen)
    assert any(line.startswith("FAILED csre-seed13 (exit status 2)") for line in lines)
    assert run_status(runs[0]) == "finished" and run_status(runs[2]) == "new"
    # Finished runs are not started again.
    assert execute(runs[:2], jobs=2, program=[sys.executable, str(fake)], echo=lines.append, poll_seconds=0.05) == {}


@pytest.mark.slow
def test_a_study_killed_with_sigterm_resumes_where_its_runs_stopped(ntu_store, empty_config, tmp_path):
    """A real csre-study process is sent SIGTERM while its runs train: it stops them (each saves last.pt)
    and exits 143; the same command then resumes them and the results equal an uninterrupted study's."""
    import signal as signals
    import subprocess
    import time

    from conftest import PROJECT_ROOT

    flags = [*TINY_FLAGS, "--checkpoint-every", "1"]
    flags[flags.index("--epochs") + 1] = "12"
    flags[flags.index("--lr") + 1] = "0.001"

    def command(study_dir):
        return [sys.executable, "-m", "cli.study", "--config", str(empty_config), "--store", str(ntu_store), "--seeds",
                "1", "--work-dir", str(study_dir), "--jobs", "2", *flags]

    reference = subprocess.run(command(tmp_path / "reference"), cwd=PROJECT_ROOT, capture_output=True, text=True,
                               timeout=600)
    assert reference.returncode == 0, reference.stderr
    study_dir = tmp_path / "killed"
    process = subprocess.Popen(command(study_dir), cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not all(
            (study_dir / name / "progress.json").exists() for name in ("csre-seed1", "baseline-seed1")):
        time.sleep(0.05)
    process.send_signal(signals.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr
    assert "csre-study: stopped by SIGTERM; the runs in progress saved their last.pt" in stderr
    stopped = [name for name in ("csre-seed1", "baseline-seed1") if not (study_dir / name / "result.json").exists()]
    assert stopped and all((study_dir / name / "last.pt").exists() for name in stopped)
    resumed = subprocess.run(command(study_dir), cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert all(f"resuming {name}" in resumed.stderr for name in stopped) and "starting" not in resumed.stderr
    first, second = (json.loads((d / "report.json").read_text()) for d in (tmp_path / "reference", study_dir))
    assert [r["curve"] for r in first["runs"]] == [r["curve"] for r in second["runs"]]
    assert [r["test_top1"] for r in first["runs"]] == [r["test_top1"] for r in second["runs"]]
