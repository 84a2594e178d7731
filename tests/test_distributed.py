"""csre_models.distributed: a 2-process gloo job on the CPU (and NCCL on two GPUs) trains and resumes exactly."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from conftest import PROJECT_ROOT
from csre_models.checkpoint import load_checkpoint
from test_engine import _same_tensors, metrics, tiny_flags

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def torchrun(flags: list) -> None:
    """``csre-train FLAGS`` as a 2-process gloo job (torch.distributed.run, by module, one thread each)."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "cli.train",
               *map(str, flags)]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=PROJECT_ROOT, env=environment, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]


def test_ddp_on_cpu_two_processes_resumes_exactly(ntu_store, tmp_path):
    interrupted, straight = tmp_path / "interrupted", tmp_path / "straight"
    torchrun(tiny_flags(ntu_store, interrupted) + ["--max-steps", "2"])
    last = load_checkpoint(interrupted / "last.pt")
    assert last["world_size"] == 2 and len(last["rank_states"]) == 2
    assert last["position"] == {"epoch": 0, "batch": 2, "global_step": 2}      # 4 steps per epoch: mid-epoch
    # Each rank trains on 1 sample per step, and every rank enqueues the global batch: 2 steps x 2 samples.
    assert int(last["model"]["csre_head.spatial_contrast.written"].sum()) == 4
    assert [m["step"] for m in metrics(interrupted)] == [2]
    assert "2 process(es), global batch 2" in (interrupted / "log.txt").read_text()

    torchrun(["--work-dir", interrupted, "--resume", "--max-steps", "5"])
    torchrun(tiny_flags(ntu_store, straight) + ["--max-steps", "5"])
    a, b = load_checkpoint(straight / "last.pt"), load_checkpoint(interrupted / "last.pt")
    assert a["position"] == b["position"] == {"epoch": 1, "batch": 1, "global_step": 5}
    assert _same_tensors(a["model"], b["model"]) and _same_tensors(a["optimizer"], b["optimizer"])


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices for NCCL")
def test_ddp_on_two_gpus_with_nccl(ntu_store, tmp_path):
    torchrun(tiny_flags(ntu_store, tmp_path) + ["--device", "cuda", "--max-steps", "2"])
    assert load_checkpoint(tmp_path / "last.pt")["position"]["global_step"] == 2
