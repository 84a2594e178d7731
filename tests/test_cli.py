"""The skeldata command line: exit codes, the summary, errors on bad input, --help examples."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cli.skeldata import main
from conftest import FIXTURES
from skeldata import open_store


def run(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def raw_with_bad_file(tmp_path) -> Path:
    raw = tmp_path / "raw"
    shutil.copytree(FIXTURES / "ntu60", raw)
    good = sorted(raw.glob("*.skeleton"))[0].read_text()
    (raw / "S001C001P001R001A001.skeleton").write_text(good[:3000])  # truncated
    return raw


def test_build_prints_a_summary_and_exits_0(tmp_path):
    result = run("build", "--dataset", "ntu60", "--raw", FIXTURES / "ntu60", "--out", tmp_path / "s.h5", "-q")
    assert result.exit_code == 0, result.output
    assert "samples               12" in result.output
    assert "no skeleton in any frame" in result.output and "every body 11 frames or shorter" in result.output
    assert "bodies removed by length" in result.output and "files/s" in result.output
    assert len(open_store(tmp_path / "s.h5")) == 12


def test_a_malformed_file_is_named_recorded_and_fails_the_build(tmp_path, raw_with_bad_file):
    out = tmp_path / "s.h5"
    result = run("build", "--dataset", "ntu60", "--raw", raw_with_bad_file, "--out", out, "-q", "-j", "2")
    assert result.exit_code == 1
    assert "S001C001P001R001A001.skeleton, line" in result.stderr
    assert "1 file(s) could not be parsed" in result.stderr
    with open_store(out) as store:  # the store is still written, without the bad file
        assert len(store) == 12
        dropped = dict(zip(store.dropped.name, store.dropped.reason))
        assert dropped["S001C001P001R001A001"] == "malformed"


def test_allow_errors_exits_0(tmp_path, raw_with_bad_file):
    result = run("build", "--dataset", "ntu60", "--raw", raw_with_bad_file, "--out", tmp_path / "s.h5", "-q",
                 "--allow-errors")
    assert result.exit_code == 0 and "malformed (errors)" in result.output


def test_files_outside_the_dataset_are_left_out_not_errors(tmp_path):
    result = run("build", "--dataset", "ntu60", "--raw", FIXTURES / "ntu120", "--out", tmp_path / "s.h5", "-q")
    assert result.exit_code == 0 and "outside the data set" in result.output


@pytest.mark.parametrize("args, message", [
    (["--raw", "/nonexistent"], "--raw /nonexistent: no such folder"),
    (["--raw", "."], "no .skeleton file"),
])
def test_bad_raw_folders(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    result = run("build", "--dataset", "ntu60", *args, "--out", tmp_path / "s.h5")
    assert result.exit_code == 1 and message in result.stderr and not (tmp_path / "s.h5").exists()


def test_duplicate_names_across_folders(tmp_path):
    other = tmp_path / "copy"
    shutil.copytree(FIXTURES / "ntu60", other)
    result = run("build", "--dataset", "ntu60", "--raw", FIXTURES / "ntu60", "--raw", other, "--out", tmp_path / "s.h5")
    assert result.exit_code == 1 and "is in two files" in result.stderr


def test_staged_commands_and_export(tmp_path):
    assert run("extract", "--dataset", "ntu60", "--raw", FIXTURES / "ntu60", "--out", tmp_path / "raw.h5", "-q").exit_code == 0
    assert run("denoise", tmp_path / "raw.h5", "--out", tmp_path / "den.h5", "-q").exit_code == 0
    assert run("transform", tmp_path / "den.h5", "--out", tmp_path / "s.h5", "-q").exit_code == 0
    result = run("export", tmp_path / "s.h5", "--format", "sgn-npz", "--benchmark", "xview", "--out", tmp_path / "x.npz")
    assert result.exit_code == 0 and "train 8, test 4" in result.output
    with np.load(tmp_path / "x.npz") as produced, np.load(FIXTURES / "golden" / "ntu60_xview.npz") as golden:
        assert all(produced[k].tobytes() == golden[k].tobytes() for k in golden.files)


def test_wrong_inputs_to_later_stages(tmp_path):
    run("build", "--dataset", "ntu60", "--raw", FIXTURES / "ntu60", "--out", tmp_path / "s.h5", "-q")
    result = run("denoise", tmp_path / "s.h5", "--out", tmp_path / "d.h5")
    assert result.exit_code == 1 and "is a 'store' file, expected a 'raw' file" in result.stderr
    result = run("export", tmp_path / "s.h5", "--format", "sgn-npz", "--benchmark", "xset", "--out", tmp_path / "x.npz")
    assert result.exit_code == 1 and "has no benchmark 'xset'" in result.stderr and not (tmp_path / "x.npz").exists()


def test_streams_option_needs_the_joints(tmp_path):
    result = run("build", "--dataset", "ntu60", "--raw", FIXTURES / "ntu60", "--out", tmp_path / "s.h5",
                 "--streams", "bone,motion")
    assert result.exit_code == 2 and "includes joint" in result.output


@pytest.mark.parametrize("command", ["build", "extract", "denoise", "transform", "export"])
def test_every_command_has_help_with_an_example(command):
    result = run(command, "--help")
    assert result.exit_code == 0 and "Example:" in result.output and f"skeldata {command}" in result.output
