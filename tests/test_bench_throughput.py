"""bench/bench_throughput.py, run in-process on the CPU for HCN (batch 2, window 16): rows, FLOP count, arithmetic."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from csre_models import create_encoder
from csre_models.config import TrainConfig
from csre_models.csre import BankContrastLoss
from csre_models.engine import build_model, training_step

BENCH = Path(__file__).resolve().parents[1] / "bench"
BANK_SIZE = 40_091


@pytest.fixture
def bench_throughput(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    import bench_throughput
    return bench_throughput


def step_flops(csre: bool, batch: int) -> int:
    """FLOPs of one HCN training step at NTU-60 (window 16, 2 persons, 60 classes), banks fully written,
    counted here without the bench's code."""
    bank_labels = torch.randperm(BANK_SIZE) % 60
    model = build_model(TrainConfig(encoder="hcn", csre=csre), create_encoder("hcn", num_class=60, window=16),
                        bank_labels).train()
    for module in model.modules():
        if isinstance(module, BankContrastLoss):
            module.bank.copy_(F.normalize(torch.randn(module.bank.shape), dim=1))
            module.written.fill_(True)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    slots = torch.randperm(BANK_SIZE)[:batch]
    inputs = (torch.randn(batch, 3, 16, 25, 2), bank_labels[slots], slots)
    with FlopCounterMode(display=False) as counter:
        training_step(model, inputs, optimizer, torch.amp.GradScaler("cuda", enabled=False), torch.device("cpu"),
                      csre=csre, csre_weight=1.0)
    return counter.get_total_flops()


def test_rows_samples_flops_and_arithmetic(bench_throughput, tmp_path, capsys):
    previous = torch.get_num_threads()
    try:
        returned = bench_throughput.main(["--encoders", "hcn", "--batch", "2", "--window", "16", "--warmup", "1",
                                          "--steps", "1", "--threads", "1", "--peak-size", "128",
                                          "--json", str(tmp_path / "r.json")])
    finally:
        torch.set_num_threads(previous)
    printed = capsys.readouterr().out
    record = json.loads((tmp_path / "r.json").read_text())
    rows = record["rows"]
    assert rows == json.loads(json.dumps(returned))
    assert [(r["encoder"], r["variant"], r["batch"], r["window"]) for r in rows] == [
        ("hcn", "ours", 2, 16), ("hcn", "ours+csre", 2, 16)]
    peak = record["peaks_gflops_per_s"]["fp32"]
    assert peak > 0
    expected = {"ours": step_flops(False, 2), "ours+csre": step_flops(True, 2)}
    assert expected["ours+csre"] > expected["ours"] > 0
    for row in rows:
        assert row["step_s"] > 0 and row["samples_per_s"] > 0
        assert len(row["times_s"]) == 1 and row["step_s"] == row["times_s"][0]
        assert row["samples_per_s"] == pytest.approx(2 / row["step_s"])
        assert row["flops"] == expected[row["variant"]]
        assert row["gflops_per_s"] == pytest.approx(row["flops"] / row["step_s"] / 1e9)
        assert row["pct_of_peak"]["fp32"] == pytest.approx(100 * row["gflops_per_s"] / peak)
        line = next(line for line in printed.splitlines() if line.split()[:2] == ["hcn", row["variant"]])
        assert f"{row['samples_per_s']:.1f}" in line.split() and f"{row['flops'] / 1e9:.2f}" in line.split()
    assert rows[1]["csre_overhead_pct"] == pytest.approx(100 * (rows[1]["step_s"] / rows[0]["step_s"] - 1))
    assert printed.startswith("machine: ") and "1 torch threads" in printed.splitlines()[0]


def test_our_two_variants_are_one_model_with_and_without_its_head(bench_throughput):
    """Ours and ours + CSRE train the same weights, so the CSRE figure is the head's cost alone."""
    args = bench_throughput.parse_args(["--encoders", "hcn", "--batch", "2", "--window", "16"])
    config = bench_throughput.recipe("hcn", args)
    bank_labels = torch.randperm(BANK_SIZE) % 60
    ours, with_csre = bench_throughput.our_variants(config, bank_labels, args, torch.device("cpu"))
    assert (ours.label, ours.csre, with_csre.label, with_csre.csre) == ("ours", False, "ours+csre", True)
    assert ours.model is with_csre.model.encoder and ours.optimizer is with_csre.optimizer
    before = [p.detach().clone() for p in ours.model.parameters()]
    generator = torch.Generator().manual_seed(0)
    bench_throughput.run_step(ours, bench_throughput.make_batch(config, bank_labels, generator, torch.device("cpu")),
                              config, torch.device("cpu"))
    assert any(not torch.equal(p, q) for p, q in zip(before, with_csre.model.encoder.parameters()))
