"""Each console script of pyproject.toml, run once as a real process: ``--help`` and one tiny real invocation,
chained (build and verify a store, train on it, evaluate the checkpoint, fuse the scores, plan a study).

The processes run what the installed wrapper runs (``from MODULE import FUNCTION; sys.exit(FUNCTION())``,
with the script's name as ``argv[0]``), on this checkout's packages."""
from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import distribution
from pathlib import Path

import pytest

from conftest import FIXTURES, PROJECT_ROOT

SCRIPTS = {entry.name: entry.value for entry in distribution("skeldata").entry_points
           if entry.group == "console_scripts"}


def script(name: str, *args, cwd: Path) -> subprocess.CompletedProcess:
    module, function = SCRIPTS[name].split(":")
    code = f"import sys; sys.argv[0] = {name!r}; from {module} import {function}; sys.exit({function}())"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def test_the_five_scripts_are_declared():
    assert SCRIPTS == {"skeldata": "cli.skeldata:main", "csre-train": "cli.train:train",
                       "csre-eval": "cli.train:evaluate", "csre-ensemble": "cli.train:ensemble",
                       "csre-study": "cli.study:study"}


def test_help_of_every_script(tmp_path):
    """Every script's ``--help``, in one process (each process imports torch: seconds); the tiny run below
    starts each script as a process of its own."""
    calls = "".join(f"print('=== {name}', flush=True)\n"
                    f"try:\n    __import__({module!r}, fromlist=['x']).{function}(['--help'], prog_name={name!r})\n"
                    f"except SystemExit as exc:\n    print('=== exit', exc.code, flush=True)\n"
                    for name, (module, function) in ((name, value.split(":")) for name, value in SCRIPTS.items()))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", calls], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr
    sections = result.stdout.split("=== ")[1:]
    assert len(sections) == 2 * len(SCRIPTS)
    for name, (text, exit_line) in zip(SCRIPTS, zip(sections[::2], sections[1::2])):
        assert text.startswith(f"{name}\nUsage: {name} ") and "--help" in text, text
        assert exit_line.strip() in ("exit 0", "exit None"), (name, exit_line)


@pytest.mark.slow
def test_a_tiny_run_of_every_script(tmp_path):
    store, work_dir = tmp_path / "ntu60.h5", tmp_path / "run"
    result = script("skeldata", "build", "--dataset", "ntu60", "--raw", FIXTURES / "ntu60", "--out", store, "--quiet",
                    cwd=tmp_path)
    assert result.returncode == 0 and store.exists(), result.stderr
    result = script("skeldata", "verify", store, cwd=tmp_path)
    assert result.returncode == 0 and f"skeldata verify: {store}: OK (ntu60 store, 12 samples" in result.stdout

    training = ["--benchmark", "xsub", "--encoder", "hcn", "--window", "16", "--batch-size", "2", "--epochs", "1",
                "--max-steps", "2", "--num-workers", "0", "--csre-positives", "1", "--csre-negatives", "2",
                "--threads", "1"]
    result = script("csre-train", "--store", store, *training, "--no-progress", "--work-dir", work_dir, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (work_dir / "encoder.pt").exists() and (work_dir / "scores_test.npz").exists()

    scores = tmp_path / "eval.npz"
    result = script("csre-eval", "--checkpoint", work_dir / "encoder.pt", "--store", store, "--out", scores,
                    "--num-workers", "0", "--no-progress", cwd=tmp_path)
    assert result.returncode == 0 and scores.exists(), result.stderr

    fused = tmp_path / "fused.npz"
    result = script("csre-ensemble", scores, work_dir / "scores_test.npz", "--out", fused, cwd=tmp_path)
    assert result.returncode == 0 and fused.exists(), result.stderr

    config = tmp_path / "study.yaml"
    config.write_text("# every setting is a flag of the study\n")
    result = script("csre-study", "--config", config, "--store", store, "--seeds", "1", "--work-dir",
                    tmp_path / "study", "--plan", *training, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert [line.split()[:2] for line in result.stdout.splitlines()] == [["csre-train", "--auto-resume"]] * 2
