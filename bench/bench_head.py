"""Time the CSRE head (STFD, both bank losses, their backward): alone, and inside an encoder's training step.

The head is what ``--csre`` adds to a training step (the encoder runs once either way). Every measurement
alternates its variants call by call, so that load on the machine slows them alike.

Alone (the default):

1. the head's forward and backward on a random feature map, with the compiled selections
   (``csre_models/_select_c.c``) and with torch's kernels in their place;
2. the two selections alone at the loss's shapes: the hard negatives' top-k of ``(batch, bank)``
   similarities, and the random negatives' first distinct of ``(batch, 2K)`` draws.

Inside a step (``--encoder NAME``): the encoder's NTU-60 X-Sub recipe step as ``bench/bench_throughput.py``
builds it (one model: its encoder alone, and with its head), split into phases by process CPU time: encoder
forward, head forward, the loss and the backward down to the feature map (the classifier's backward, and the
head's), the rest of the backward (the encoder's), clipping and the optimizer. Whole steps of the two variants
differ by their noise as well as by the head (on this project's VM their medians ran 1-8 % apart at HCN's 3.5 s
step for a head of about 0.15 s); the phases say where a difference comes from.

::

    python bench/bench_head.py                         # HCN's map (256, 4, 4), batch 64, NTU-60 X-Sub bank
    python bench/bench_head.py --map 256,16,25 --batch 16 --repeats 15 --profile
    python bench/bench_head.py --encoder hcn --steps 40 # HCN's recipe step, phase by phase
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable, Dict, List

import torch
import torch.nn as nn
import torch.nn.functional as F

from csre_models import row_selection
from csre_models.csre import CSREHead, csre_objective
from csre_models.row_selection import first_distinct_per_row, has_compiled_selection, largest_per_row


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--map", default="256,4,4", help="the encoder's feature map C,T',V (default: HCN's)")
    parser.add_argument("--batch", type=int, help="samples per step (default: 64; with --encoder, its recipe's)")
    parser.add_argument("--window", type=int, help="with --encoder: frames per input (default: its recipe's)")
    parser.add_argument("--persons", type=int, default=2, help="persons folded into the map's batch axis")
    parser.add_argument("--bank-size", type=int, default=40_091, help="NTU-60 X-Sub training samples")
    parser.add_argument("--classes", type=int, default=60)
    parser.add_argument("--negatives", type=int, default=512, help="K of the loss")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=9, help="timed calls per variant (median)")
    parser.add_argument("--profile", action="store_true", help="print torch.profiler's table of one head call")
    parser.add_argument("--encoder", help="time the head inside this encoder's recipe step instead (phase by phase)")
    parser.add_argument("--steps", type=int, default=20, help="with --encoder: timed steps of each variant")
    parser.add_argument("--warmup", type=int, default=2, help="with --encoder: untimed steps of each variant")
    return parser.parse_args(argv)


def alternate(variants: Dict[str, Callable[[], object]], repeats: int) -> Dict[str, float]:
    """Median milliseconds of each variant, called in turn ``repeats`` times after one untimed round."""
    times = {name: [] for name in variants}
    for round_index in range(repeats + 1):
        for name, call in variants.items():
            start = time.perf_counter()
            call()
            if round_index:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) * 1e3 for name, values in times.items()}


def with_torch_kernels(call: Callable[[], object]) -> Callable[[], object]:
    """``call`` with the compiled selections switched off (torch's kernels in their place)."""
    def run():
        compiled, row_selection._select_c = row_selection._select_c, None
        try:
            return call()
        finally:
            row_selection._select_c = compiled
    return run


PHASES = ("encoder forward", "CSRE head forward", "loss, backward to the map", "encoder backward",
          "clip + optimizer", "whole step")


def phased_step(model: nn.Module, head, optimizer: torch.optim.Optimizer, batch: tuple, csre_weight: float,
                clip_grad_norm) -> List[float]:
    """One training step as ``csre_models.engine.training_step`` runs it (fp32), timed phase by phase
    (process CPU seconds, in the order of :data:`PHASES`). ``head`` is ``None`` for the encoder alone."""
    encoder = model.encoder if head is not None else model
    x, labels, slots, *joint = batch
    inputs = {"joint": joint[0]} if joint else {}
    clock = time.process_time
    start = clock()
    feature_map = encoder.forward_features(x, **inputs)
    logits = encoder.forward_head(feature_map, x.shape[-1])
    encoded = clock()
    contrast = head(feature_map, labels, slots) if head is not None else torch.zeros(())
    contrasted = clock()
    loss = csre_objective(logits.float(), labels, contrast, csre_weight)
    optimizer.zero_grad(set_to_none=True)
    reached = []
    feature_map.register_hook(lambda grad: reached.append(clock()))  # the map's gradient is complete
    loss.backward()
    backward = clock()
    if clip_grad_norm is not None:
        nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
    optimizer.step()
    end = clock()
    return [encoded - start, contrasted - encoded, reached[0] - contrasted, backward - reached[0], end - backward,
            end - start]


def in_step(args: argparse.Namespace) -> None:
    """The head inside the encoder's recipe step: phases of both variants, alternated step by step."""
    import bench_throughput as throughput  # the same model, recipe and batches as the throughput bench

    options, config, bank_labels, generator = throughput.recipe_setup(args.encoder, args.threads, args.batch,
                                                                       args.window, args.bank_size)
    cpu = torch.device("cpu")
    ours, with_csre = throughput.our_variants(config, bank_labels, options, cpu)
    timings = {"ours": [], "ours+csre": []}
    for step in range(args.warmup + args.steps):
        batch = throughput.make_batch(config, bank_labels, generator, cpu)
        batch = batch if ours.joint else batch[:3]
        for variant in (ours, with_csre):
            phases = phased_step(variant.model, variant.model.csre_head if variant.csre else None, variant.optimizer,
                                 batch, config.csre_weight, config.clip_grad_norm)
            if step >= args.warmup:
                timings[variant.label].append(phases)
    print(f"torch {torch.__version__}, {args.threads} thread(s); {args.encoder} at its {throughput.RECIPE} recipe "
          f"(batch {config.batch_size}, window {config.window}), CSRE banks of {options.bank_size:,} slots fully "
          f"written; {args.steps} alternated steps after {args.warmup} warm-up; process CPU ms")
    print(f"  {'phase':<28} {'ours':>9} {'ours+csre':>10} {'difference (median of pairs)':>30}")
    plain, csre = ([statistics.median(row[i] for row in timings[label]) * 1e3 for i in range(len(PHASES))]
                   for label in ("ours", "ours+csre"))
    for i, phase in enumerate(PHASES):
        paired = statistics.median((b[i] - a[i]) * 1e3 for a, b in zip(timings["ours"], timings["ours+csre"]))
        print(f"  {phase:<28} {plain[i]:9.1f} {csre[i]:10.1f} {paired:+30.1f}")
    head_ms = csre[1] + csre[2] - plain[2]
    print(f"  the head in the step (its forward, and its share of the backward to the map): {head_ms:.1f} ms = "
          f"{100 * head_ms / plain[-1]:.1f} % of the encoder's step; whole steps: {100 * (csre[-1] / plain[-1] - 1):+.1f} %")


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.encoder:
        in_step(args)
        return
    args.batch = args.batch or 64
    channels, frames, joints = (int(size) for size in args.map.split(","))
    generator = torch.Generator().manual_seed(0)
    bank_labels = torch.arange(args.bank_size) % args.classes
    head = CSREHead((channels, frames, joints), args.persons, bank_labels, negatives=args.negatives)
    for loss in (head.spatial_contrast, head.temporal_contrast):
        loss.bank.copy_(F.normalize(torch.randn(args.bank_size, loss.dim, generator=generator), dim=1))
        loss.written.fill_(True)
    feature_map = torch.randn(args.batch * args.persons, channels, frames, joints, generator=generator,
                              requires_grad=True)
    labels = torch.randint(0, args.classes, (args.batch,), generator=generator)
    indices = torch.randperm(args.bank_size, generator=generator)[:args.batch]

    def head_step():
        head(feature_map, labels, indices).backward()

    print(f"torch {torch.__version__}, {args.threads} thread(s); map {(channels, frames, joints)}, batch "
          f"{args.batch} x {args.persons} persons, bank {args.bank_size:,} slots fully written, K {args.negatives}; "
          f"median of {args.repeats} alternated calls, ms")
    if not has_compiled_selection():
        print("csre_models._select_c is not built: only torch's kernels can be timed")
    compiled_variants = has_compiled_selection()
    head_variants = {"head, compiled selections": head_step} if compiled_variants else {}
    head_variants["head, torch's kernels"] = with_torch_kernels(head_step)
    for name, ms in alternate(head_variants, args.repeats).items():
        print(f"  {name:<34} {ms:8.1f}")

    similarities = torch.randn(args.batch, args.bank_size, generator=generator)
    similarities[:, :args.bank_size // args.classes] = float("-inf")     # the anchor's own class, masked
    draws = torch.randint(0, args.bank_size, (args.batch, 2 * args.negatives), generator=generator)
    selections = {}
    if compiled_variants:
        selections["top-k, compiled"] = lambda: largest_per_row(similarities, args.negatives)
    selections["top-k, torch.topk"] = lambda: similarities.topk(args.negatives, dim=1, sorted=False)
    if compiled_variants:
        selections["first distinct, compiled"] = lambda: first_distinct_per_row(draws, args.negatives)
    selections["first distinct, torch"] = with_torch_kernels(lambda: first_distinct_per_row(draws, args.negatives))
    for name, ms in alternate(selections, args.repeats).items():
        print(f"  {name:<34} {ms:8.2f}")

    if args.profile:
        from torch.profiler import ProfilerActivity, profile
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            head_step()
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))


if __name__ == "__main__":
    main()
