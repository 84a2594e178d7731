"""How far apart two identical training steps run here: the floor under any A/B step-time comparison.

Builds an encoder's recipe model twice without CSRE (same seed, same weights, separate memory), as
``bench/bench_throughput.py`` builds its variants, and alternates their training steps on the same batches.
Any difference between the two is the machine's and the process's, not a treatment's: compare it with a
difference you want to claim (e.g. CSRE's cost, ``bench/bench_head.py --encoder``)::

    python bench/bench_noise.py --encoder hcn --steps 20      # run it in a few processes: the spread matters
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

import bench_throughput as throughput


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoder", default="hcn")
    parser.add_argument("--batch", type=int, help="default: the recipe's")
    parser.add_argument("--window", type=int, help="default: the recipe's")
    parser.add_argument("--steps", type=int, default=20, help="timed steps of each twin")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    options, config, bank_labels, generator = throughput.recipe_setup(args.encoder, args.threads, args.batch,
                                                                       args.window)
    cpu = torch.device("cpu")
    twins = [throughput.our_variants(config, bank_labels, options, cpu)[0] for _ in range(2)]
    times = [[], []]
    for step in range(args.warmup + args.steps):
        batch = throughput.make_batch(config, bank_labels, generator, cpu)
        for twin, timed in zip(twins, times):
            start = time.process_time()
            throughput.run_step(twin, batch, config, cpu)
            if step >= args.warmup:
                timed.append(time.process_time() - start)
    first, second = (statistics.median(timed) for timed in times)
    slower = sum(b > a for a, b in zip(*times))
    print(f"{args.encoder} (batch {config.batch_size}, window {config.window}), {args.threads} thread(s), "
          f"{args.steps} alternated steps, process CPU: twin A {first:.3f} s, twin B {second:.3f} s, "
          f"B/A - 1 = {100 * (second / first - 1):+.1f} % (medians); B slower in {slower} of {args.steps} pairs")


if __name__ == "__main__":
    main()
