"""No silent overwrite: every command that writes --out refuses an existing path unless --overwrite is
given, says so in one line, and leaves the existing file as it was."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import FIXTURES

from cli.skeldata import main as skeldata_main
from cli.train import evaluate as evaluate_command
from test_engine import tiny
from csre_models.engine import train


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run(command, args):
    return CliRunner().invoke(command, [str(a) for a in args])


def refused(result, program: str, path: Path) -> bool:
    lines = result.stderr.strip().splitlines()
    return (result.exit_code == 1 and len(lines) == 1 and lines[0] == f"{program}: error: {path} exists (file); "
            f"give --overwrite to replace it, or choose another path")


@pytest.mark.parametrize("make_args", [
    lambda store, out: ["build", "--dataset", "ntu60", "--raw", FIXTURES / "ntu60", "--out", out, "--quiet"],
    lambda store, out: ["export", store, "--format", "pyskl", "--out", out],
    lambda store, out: ["export", store, "--format", "sgn-npz", "--benchmark", "xsub", "--out", out],
    lambda store, out: ["show", store, "S001C001P001R001A001", "--out", out],
], ids=["build", "export-pyskl", "export-sgn-npz", "show"])
def test_skeldata_refuses_an_existing_out(ntu_store, tmp_path, make_args):
    out = tmp_path / "existing.png"
    out.write_bytes(b"not yours to replace")
    result = run(skeldata_main, make_args(ntu_store, out))
    assert refused(result, "skeldata", out), result.output
    assert out.read_bytes() == b"not yours to replace"


def test_skeldata_overwrite_replaces_only_when_asked(ntu_store, tmp_path):
    out = tmp_path / "copy.h5"
    out.write_bytes(b"an older file")
    result = run(skeldata_main, ["build", "--dataset", "ntu60", "--raw", FIXTURES / "ntu60", "--out", out, "--quiet",
                                 "--overwrite"])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89HDF\r\n\x1a\n"
    # A store is not replaced by a pickle by mistake: exporting onto it is refused.
    before = digest(out)
    assert refused(run(skeldata_main, ["export", ntu_store, "--format", "pyskl", "--out", out]), "skeldata", out)
    assert digest(out) == before


def test_csre_eval_refuses_existing_outputs(ntu_store, tmp_path):
    train(tiny(ntu_store, tmp_path / "run", max_steps=1))
    scores = tmp_path / "scores.npz"
    report = tmp_path / "report.json"
    report.write_text("{}")
    base = ["--checkpoint", tmp_path / "run" / "encoder.pt", "--store", ntu_store, "--num-workers", "0",
            "--no-progress", "--out", scores]
    assert refused(run(evaluate_command, base + ["--report", report]), "csre-eval", report)
    assert not scores.exists() and report.read_text() == "{}"
    result = run(evaluate_command, base + ["--report", report, "--overwrite"])
    assert result.exit_code == 0, result.output
    assert scores.exists() and report.read_text() != "{}"
    assert refused(run(evaluate_command, base), "csre-eval", scores)
