"""How training throughput grows with CPU threads and processes on one machine.

One encoder (with CSRE by default, steady-state banks) at one global batch, trained three ways:

* one process with 1 thread,
* one process with 2 threads (``torch.set_num_threads(2)``),
* two DistributedDataParallel processes (gloo) with 1 thread each, each on half the global batch, as
  ``torchrun --nproc_per_node=2 csre-train`` runs; the CSRE banks gather both halves at every step.

Each way runs ``--rounds`` times, in rotated order, so that a machine whose load changes slows all of them
alike. The table gives the median step time over all rounds and the training samples per second. Inputs
are random, shaped like the data set's (``--shape ntu``: 3 x 64 frames x 25 joints x 2 bodies, 60 classes,
a 40,091-slot bank; ``--shape ucla``: 3 x 52 x 20 x 1, 10 classes, 5,100 slots: the 1,020 training
sequences repeated 5 times, as the NW-UCLA recipes do)::

    python bench/bench_scaling.py                          # CTR-GCN + CSRE, NTU shape, batch 16
    python bench/bench_scaling.py --encoder hcn --shape ucla --batch 16 --no-csre
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from csre_models import list_encoders
from csre_models.checkpoint import build_encoder, model_arguments
from csre_models.config import TrainConfig
from csre_models.distributed import wrap_ddp
from csre_models.engine import build_model, training_step
from csre_models.schedule import build_optimizer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import fill_banks  # noqa: E402  (the steady-state banks, as the other train benches fill them)

#: (layout, channels, frames, joints, bodies, classes, bank slots) of each input shape.
SHAPES = {"ntu": ("ntu25", 3, 64, 25, 2, 60, 40_091), "ucla": ("ucla20", 3, 52, 20, 1, 10, 5_100)}
MODES = ("1 process x 1 thread", "1 process x 2 threads", "2 DDP processes x 1 thread")


def parse_args(argv: List[str] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoder", default="ctrgcn", choices=list_encoders())
    parser.add_argument("--shape", default="ntu", choices=sorted(SHAPES))
    parser.add_argument("--batch", type=int, default=16, help="global batch (even: two processes share it)")
    parser.add_argument("--csre", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per run")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per run")
    parser.add_argument("--rounds", type=int, default=2, help="runs of every way, in rotated order")
    args = parser.parse_args(argv)
    if args.batch % 2:
        parser.error("--batch must be even: two processes take half each")
    return args


def _model_and_batches(args: argparse.Namespace, rank: int, world_size: int):
    """The model (banks full), its optimizer and this rank's batches; the same on every call for a rank."""
    layout, channels, frames, joints, bodies, classes, slots = SHAPES[args.shape]
    generator = torch.Generator().manual_seed(0)
    bank_labels = torch.randperm(slots, generator=generator) % classes
    config = TrainConfig(encoder=args.encoder, csre=args.csre)
    torch.manual_seed(0)
    encoder = build_encoder(model_arguments(args.encoder, classes, layout, bodies, frames))
    model = build_model(config, encoder, bank_labels)
    fill_banks(model, generator)
    optimizer, _ = build_optimizer(model, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay,
                                   warmup_epochs=config.warmup_epochs, steps=config.lr_steps, decay=config.lr_decay)
    share = args.batch // world_size
    order = torch.randperm(slots, generator=generator)
    batches = []
    for step in range(args.warmup + args.steps):
        step_slots = order[step * args.batch:(step + 1) * args.batch][rank * share:(rank + 1) * share]
        x = torch.randn(args.batch, channels, frames, joints, bodies, generator=generator)[rank * share:(rank + 1) * share]
        batches.append((x, bank_labels[step_slots], step_slots))
    return model.train(), optimizer, batches


def _timed_steps(args: argparse.Namespace, model, optimizer, batches) -> List[float]:
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    times = []
    for step, batch in enumerate(batches):
        started = time.perf_counter()
        training_step(model, batch, optimizer, scaler, torch.device("cpu"), csre=args.csre, csre_weight=1.0)
        if step >= args.warmup:
            times.append(time.perf_counter() - started)
    return times


def one_process(args: argparse.Namespace, threads: int) -> List[float]:
    torch.set_num_threads(threads)
    return _timed_steps(args, *_model_and_batches(args, 0, 1))


def _ddp_rank(rank: int, args: argparse.Namespace, init_file: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        model, optimizer, batches = _model_and_batches(args, rank, 2)
        times = _timed_steps(args, wrap_ddp(model, torch.device("cpu")), optimizer, batches)
        if rank == 0:
            torch.save(times, out)
    finally:
        dist.destroy_process_group()


def two_ddp_processes(args: argparse.Namespace) -> List[float]:
    with tempfile.TemporaryDirectory(prefix="bench-scaling-") as tmp:
        out = str(Path(tmp) / "times.pt")
        mp.spawn(_ddp_rank, args=(args, str(Path(tmp) / "init"), out), nprocs=2, join=True)
        return torch.load(out)


def measure(args: argparse.Namespace) -> Dict[str, List[float]]:
    """Step times of every way, ``rounds`` runs each, in rotated order."""
    runs = {mode: [] for mode in MODES}
    ways = {MODES[0]: lambda: one_process(args, 1), MODES[1]: lambda: one_process(args, 2),
            MODES[2]: lambda: two_ddp_processes(args)}
    for round_ in range(args.rounds):
        for mode in MODES[round_ % 3:] + MODES[:round_ % 3]:
            runs[mode].extend(ways[mode]())
    return runs


def main(argv: List[str] = None) -> Dict[str, float]:
    args = parse_args(argv)
    print(f"{args.encoder}{' + CSRE' if args.csre else ''}, {args.shape} shape, global batch {args.batch}; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}; "
          f"median of {args.rounds} x {args.steps} steps per way", flush=True)
    runs = measure(args)
    base = statistics.median(runs[MODES[0]])
    rates = {}
    print(f"{'':<28} {'step s':>8} {'samples/s':>10} {'vs 1 thread':>12}")
    for mode in MODES:
        seconds = statistics.median(runs[mode])
        rates[mode] = args.batch / seconds
        print(f"{mode:<28} {seconds:>8.3f} {rates[mode]:>10.2f} {base / seconds:>11.2f}x")
    return rates


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
