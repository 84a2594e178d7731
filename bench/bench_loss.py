"""Time one CSRE bank-loss call (forward + backward) at the NTU-60 X-Sub scale.

Compares the vectorised ``csre_models.csre.BankContrastLoss`` with a plain per-anchor loop (the reference
loop of ``tests/test_csre.py``) and, when its path is given, the official ``model/loss.py`` of
zhshj0110/CSRE, imported from that path at run time::

    python bench/bench_loss.py --official /path/to/CSRE/model/loss.py

All three see the same fully written bank, features, labels and slots. Their losses differ slightly
because each draws its own random negatives.
"""
from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict, Tuple

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_csre import loop_bank_contrast_loss  # noqa: E402  (the reference loop lives with the tests)

from csre_models.csre import BankContrastLoss  # noqa: E402

LossCall = Callable[[torch.Tensor], torch.Tensor]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--official", type=Path, help="path of the official model/loss.py to compare with")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--bank-size", type=int, default=40_091, help="NTU-60 X-Sub training samples")
    parser.add_argument("--classes", type=int, default=60)
    parser.add_argument("--positives", type=int, default=128)
    parser.add_argument("--negatives", type=int, default=512)
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per implementation (median)")
    parser.add_argument("--threads", type=int, default=2)
    return parser.parse_args()


def make_problem(args: argparse.Namespace) -> Dict[str, torch.Tensor]:
    """A fully written bank of unit vectors, its slot labels, and one batch of features at distinct slots."""
    generator = torch.Generator().manual_seed(0)
    bank_labels = torch.randperm(args.bank_size, generator=generator) % args.classes
    bank = F.normalize(torch.randn(args.bank_size, args.dim, generator=generator), dim=1)
    indices = torch.randperm(args.bank_size, generator=generator)[:args.batch]
    features = torch.randn(args.batch, args.dim, generator=generator)
    return dict(bank_labels=bank_labels, bank=bank, indices=indices, labels=bank_labels[indices],
                features=features)


def vectorised_call(args: argparse.Namespace, problem: Dict[str, torch.Tensor]) -> LossCall:
    loss_fn = BankContrastLoss(args.bank_size, dim=args.dim, bank_labels=problem["bank_labels"],
                               positives=args.positives, negatives=args.negatives, temperature=args.temperature)
    loss_fn.bank.copy_(problem["bank"])
    loss_fn.written.fill_(True)
    return lambda features: loss_fn(features, problem["labels"], problem["indices"])


def loop_call(args: argparse.Namespace, problem: Dict[str, torch.Tensor]) -> LossCall:
    bank, written = problem["bank"].clone(), torch.ones(args.bank_size, dtype=torch.bool)
    generator = torch.Generator().manual_seed(1)

    def random_choice(_, negative_slots):
        return negative_slots[torch.randperm(len(negative_slots), generator=generator)[:args.negatives]]

    return lambda features: loop_bank_contrast_loss(
        features, problem["labels"], problem["indices"], bank, written, problem["bank_labels"], random_choice,
        args.positives, args.negatives, args.temperature)


def official_call(args: argparse.Namespace, problem: Dict[str, torch.Tensor]) -> LossCall:
    spec = importlib.util.spec_from_file_location("official_csre_loss", args.official)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    loss_fn = module.ContrastLoss(out_channels=args.dim, mem_size=args.bank_size, positive_num=args.positives,
                                  negative_num=args.negatives, T=args.temperature,
                                  label_all=problem["bank_labels"].tolist())
    with torch.no_grad():
        loss_fn.Bank.copy_(problem["bank"])
        loss_fn.bank_flag.fill_(1.0)
    return lambda features: loss_fn(features, problem["labels"], problem["indices"])


def forward_backward_seconds(call: LossCall, features: torch.Tensor) -> Tuple[float, float]:
    """Wall-clock seconds of ``call(features)`` plus its backward, and the loss value."""
    leaf = features.clone().requires_grad_(True)
    start = time.perf_counter()
    loss = call(leaf)
    loss.sum().backward()
    return time.perf_counter() - start, loss.item()


def similarity_product(bank: torch.Tensor) -> LossCall:
    """The (n, D) x (D, M) similarity product alone, as a loss: the dense part every implementation has."""
    return lambda features: (F.normalize(features, dim=1) @ bank.t()).sum()


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    problem = make_problem(args)
    print(f"batch {args.batch}, D {args.dim}, bank {args.bank_size} slots fully written, {args.classes} classes, "
          f"P {args.positives}, K {args.negatives}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    calls = {"ours (vectorised)": vectorised_call(args, problem), "per-anchor loop": loop_call(args, problem)}
    if args.official:
        calls["official model/loss.py"] = official_call(args, problem)
    calls["similarity product alone"] = similarity_product(problem["bank"])
    # Round-robin, so that a change of load on a shared machine affects every implementation alike;
    # round 0 is a warm-up.
    seconds = {name: [] for name in calls}
    losses = {}
    for round_number in range(args.repeats + 1):
        for name, call in calls.items():
            elapsed, losses[name] = forward_backward_seconds(call, problem["features"])
            if round_number:
                seconds[name].append(elapsed)
    medians = {name: statistics.median(times) for name, times in seconds.items()}
    print(f"forward + backward, {args.repeats} rounds: median (min) ms")
    for name, times in seconds.items():
        print(f"{name:>26}: {medians[name] * 1e3:8.1f} ({min(times) * 1e3:8.1f})   loss {losses[name]:.6f}")
    ours = medians["ours (vectorised)"]
    for name in ("per-anchor loop", "official model/loss.py"):
        if name in medians:
            print(f"speed-up of ours over {name}: {medians[name] / ours:.1f}x (medians)")


if __name__ == "__main__":
    main()
