"""csre_models.workdir: what a run's folder holds and how it is written (rank 0 only)."""
from __future__ import annotations

import json
import subprocess
import sys

from csre_models.distributed import WorldInfo
from csre_models.workdir import RESULT_FILE, WorkDir, read_result


def dead_pid() -> int:
    """The id of a process that has ended."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def test_metrics_are_strict_json_and_cut_back_on_resume(tmp_path):
    work = WorkDir(tmp_path, WorldInfo())
    try:
        for step, loss in ((3, 1.5), (6, float("nan")), (9, float("inf"))):
            work.append_metrics({"step": step, "loss": loss})
        lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
        assert [json.loads(line) for line in lines] == [{"step": 3, "loss": 1.5}, {"step": 6, "loss": None},
                                                        {"step": 9, "loss": None}]
        work.keep_metrics_up_to(6)            # a resumed run drops what came after its checkpoint
        assert [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [3, 6]
    finally:
        work.close()


def test_a_fresh_start_forgets_an_unfinished_attempt(tmp_path):
    work = WorkDir(tmp_path, WorldInfo())
    try:
        assert read_result(tmp_path) is None
        work.append_metrics({"step": 1})
        work.write_json(RESULT_FILE, {"test_top1": 0.5})
        assert read_result(tmp_path) == {"test_top1": 0.5}
        assert sorted(work.forget_unfinished()) == ["metrics.jsonl", RESULT_FILE]
        assert read_result(tmp_path) is None and not (tmp_path / "metrics.jsonl").exists()
    finally:
        work.close()


def test_temporaries_of_a_killed_run_are_removed(tmp_path):
    stale = tmp_path / f".last.pt.tmp-{dead_pid()}"
    stale.write_bytes(b"half a checkpoint")
    other = tmp_path / f".notes.txt.tmp-{dead_pid()}"          # not a file the run writes: left alone
    other.write_text("x")
    work = WorkDir(tmp_path, WorldInfo())
    try:
        assert work.remove_stale_temporaries() == [stale.name]
        assert not stale.exists() and other.exists()
    finally:
        work.close()


def test_only_rank_0_writes(tmp_path):
    folder = tmp_path / "run"
    work = WorkDir(folder, WorldInfo(rank=1, world_size=2))
    try:
        work.append_metrics({"step": 1})
        work.write_json(RESULT_FILE, {"test_top1": 0.5})
        assert work.forget_unfinished() == [] and work.remove_stale_temporaries() == []
        assert not folder.exists()
    finally:
        work.close()
