"""Train-step time with and without CSRE: the overhead CSRE adds to training (issue 4: at most 10 %).

One step is what ``csre-train`` runs per batch (:func:`csre_models.engine.training_step`): forward,
loss, backward and the SGD update. "Without" trains the plain encoder on CE; "with" trains
``CSREModel(encoder, bank)`` on CE + (L_spa + L_tem) / 2. The CSRE banks are in their steady state,
every slot written (as from the second epoch on), at the NTU-60 X-Sub size (40,091 slots, 60 classes,
P = 128, K = 512), so every anchor takes part in the loss. Inputs are random, 64 frames: the NTU window
of every CSRE recipe in ``configs/`` (2s-AGCN's too; its own 300-frame recipe is not CSRE's). The two
variants alternate step by step, so that a busy machine slows both alike; the table gives the median of
the timed steps after the warm-up steps, in wall-clock time and in CPU time of this process (all its
threads). On a machine shared with other jobs the CPU time is the steadier measure, most of all with
``--threads 1``::

    python bench/bench_train.py                                  # CTR-GCN, batch 16
    python bench/bench_train.py --encoders ctrgcn,hyperformer --batch 16 --steps 5
    python bench/bench_train.py --encoders ctrgcn,agcn,hcn,hyperformer,blockgcn --threads 1
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Dict, List

import torch
import torch.nn.functional as F

from csre_models import create_encoder, list_encoders
from csre_models.config import TrainConfig
from csre_models.csre import BankContrastLoss
from csre_models.engine import build_model, training_step
from csre_models.schedule import build_optimizer

#: Frames per input: the NTU window of the CSRE recipes.
WINDOW = 64


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoders", default="ctrgcn",
                        help=f"comma-separated, from {', '.join(list_encoders())} (default: ctrgcn)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--bank-size", type=int, default=40_091, help="training samples (NTU-60 X-Sub)")
    parser.add_argument("--classes", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps of each variant")
    parser.add_argument("--steps", type=int, default=3, help="timed steps of each variant (median)")
    parser.add_argument("--threads", type=int, default=2)
    return parser.parse_args()


def fill_banks(model: torch.nn.Module, generator: torch.Generator) -> None:
    """Every slot of every CSRE bank written with a random unit vector (the steady state)."""
    for module in model.modules():
        if isinstance(module, BankContrastLoss):
            module.bank.copy_(F.normalize(torch.randn(module.bank.shape, generator=generator), dim=1))
            module.written.fill_(True)


def time_encoder(name: str, args: argparse.Namespace) -> Dict[str, Dict[bool, float]]:
    """Median seconds per step, wall-clock (``"wall"``) and CPU (``"cpu"``), of the plain encoder
    (``False``) and of the encoder with CSRE (``True``)."""
    generator = torch.Generator().manual_seed(0)
    bank_labels = torch.randperm(args.bank_size, generator=generator) % args.classes
    variants = {}
    for csre in (False, True):
        config = TrainConfig(encoder=name, csre=csre)
        torch.manual_seed(0)
        model = build_model(config, create_encoder(name, num_class=args.classes, window=WINDOW), bank_labels)
        fill_banks(model, generator)
        optimizer, _ = build_optimizer(model, lr=config.lr, momentum=config.momentum,
                                       weight_decay=config.weight_decay, warmup_epochs=config.warmup_epochs,
                                       steps=config.lr_steps, decay=config.lr_decay)
        variants[csre] = (model.train(), optimizer, torch.amp.GradScaler("cuda", enabled=False))
    slots = torch.randperm(args.bank_size, generator=generator)
    times: Dict[str, Dict[bool, List[float]]] = {"wall": {False: [], True: []}, "cpu": {False: [], True: []}}
    for step in range(args.warmup + args.steps):
        batch_slots = slots[step * args.batch:(step + 1) * args.batch]
        batch = (torch.randn(args.batch, 3, WINDOW, 25, 2, generator=generator), bank_labels[batch_slots],
                 batch_slots)
        for csre, (model, optimizer, scaler) in variants.items():
            wall, cpu = time.perf_counter(), time.process_time()
            training_step(model, batch, optimizer, scaler, torch.device("cpu"), csre=csre, csre_weight=1.0)
            if step >= args.warmup:
                times["wall"][csre].append(time.perf_counter() - wall)
                times["cpu"][csre].append(time.process_time() - cpu)
    return {clock: {csre: statistics.median(values) for csre, values in runs.items()} for clock, runs in times.items()}


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    names = [name.strip() for name in args.encoders.split(",") if name.strip()]
    unknown = sorted(set(names) - set(list_encoders()))
    if unknown:
        raise SystemExit(f"unknown encoder(s) {', '.join(unknown)}; known: {', '.join(list_encoders())}")
    print(f"train step (forward + backward + SGD), CPU, {args.threads} threads, batch {args.batch}, "
          f"bank {args.bank_size} slots fully written, median of {args.steps} steps after {args.warmup} warm-up")
    print(f"{'':<12} {'wall-clock':^32} {'CPU time':^32}")
    print(f"{'encoder':<12}" + f" {'plain ms':>10} {'CSRE ms':>10} {'overhead':>10}" * 2)
    for name in names:
        result = time_encoder(name, args)
        row = f"{name:<12}"
        for clock in ("wall", "cpu"):
            plain, csre = result[clock][False], result[clock][True]
            row += f" {1000 * plain:>10.1f} {1000 * csre:>10.1f} {100 * (csre / plain - 1):>9.1f}%"
        print(row, flush=True)


if __name__ == "__main__":
    main()
