"""bench/bench_head.py and bench/bench_noise.py, run in-process at tiny sizes."""
import sys
from pathlib import Path

from csre_models import row_selection

BENCH = Path(__file__).resolve().parents[1] / "bench"


def test_bench_head_prints_every_variant(monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(BENCH))
    import bench_head
    compiled = row_selection._select_c
    monkeypatch.setattr(sys, "argv", ["bench_head.py", "--map", "16,4,5", "--batch", "4", "--bank-size", "1500",
                                      "--classes", "5", "--negatives", "32", "--repeats", "1", "--threads", "1"])
    bench_head.main()
    out = capsys.readouterr().out
    assert "map (16, 4, 5), batch 4 x 2 persons, bank 1,500 slots fully written, K 32" in out
    expected = ["head, torch's kernels", "top-k, torch.topk", "first distinct, torch"]
    if compiled is not None:
        expected += ["head, compiled selections", "top-k, compiled", "first distinct, compiled"]
    for name in expected:
        assert name in out
    assert row_selection._select_c is compiled           # switched back after the torch-kernel variants


def test_bench_head_times_the_phases_of_a_recipe_step(monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(BENCH))
    import bench_head
    bench_head.main(["--encoder", "hcn", "--batch", "2", "--window", "16", "--steps", "2", "--warmup", "0",
                     "--threads", "1"])
    out = capsys.readouterr().out
    assert "hcn at its ntu60-xsub-joint.yaml recipe (batch 2, window 16)" in out
    rows = {line.split("  ")[1].strip(): line for line in out.splitlines() if line.startswith("  ") and "phase" not in line
            and "the head" not in line}
    assert list(rows) == list(bench_head.PHASES)
    plain_head, csre_head = (float(x) for x in rows["CSRE head forward"].split()[-3:-1])
    assert plain_head < csre_head                      # the plain encoder has no head to run
    assert "the head in the step" in out and "% of the encoder's step" in out


def test_bench_noise_compares_two_identical_models(monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(BENCH))
    import bench_noise
    bench_noise.main(["--encoder", "hcn", "--batch", "2", "--window", "16", "--steps", "2", "--warmup", "0"])
    out = capsys.readouterr().out
    assert out.startswith("hcn (batch 2, window 16), 1 thread(s), 2 alternated steps, process CPU: twin A ")
    assert "(medians); B slower in " in out
