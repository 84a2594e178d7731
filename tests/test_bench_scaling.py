"""bench/bench_scaling.py runs all three ways (1 thread, 2 threads, two gloo DDP processes) and reports
samples per second that follow from the step times it measured."""
from __future__ import annotations

import sys

import pytest
import torch
from conftest import PROJECT_ROOT

sys.path.insert(0, str(PROJECT_ROOT / "bench"))
import bench_scaling  # noqa: E402


def test_every_way_trains_and_reports_samples_per_second(monkeypatch, capsys):
    measured = {}
    original = bench_scaling.measure

    def keep(args):
        measured.update(original(args))
        return measured

    monkeypatch.setattr(bench_scaling, "measure", keep)
    threads = torch.get_num_threads()
    try:
        rates = bench_scaling.main(["--encoder", "hcn", "--shape", "ucla", "--batch", "4", "--warmup", "0",
                                    "--steps", "1", "--rounds", "1"])
    finally:
        torch.set_num_threads(threads)
    assert list(rates) == list(bench_scaling.MODES)
    for mode, times in measured.items():
        assert len(times) == 1 and times[0] > 0
        assert rates[mode] == pytest.approx(4 / times[0])
    output = capsys.readouterr().out
    assert "2 DDP processes x 1 thread" in output and "samples/s" in output


def test_an_odd_global_batch_is_refused():
    with pytest.raises(SystemExit):
        bench_scaling.parse_args(["--batch", "3"])
