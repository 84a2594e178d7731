"""Training throughput of every encoder, with and without CSRE: samples/s, FLOPs and GFLOP/s against the machine's
matmul peak, and the official model's step beside ours.

One step is what ``csre-train`` runs per batch (:func:`csre_models.engine.training_step`): forward, loss,
backward and the optimizer step, built as ``bench/bench_train.py`` builds it (``build_model``, the CSRE banks
in their steady state, every one of ``--bank-size`` slots written, ``build_optimizer``). Each encoder runs
at its NTU-60 X-Sub CSRE recipe (``configs/<encoder>/ntu60-xsub-joint.yaml``: batch, window, optimizer,
gradient clipping, encoder options); ``--batch`` and ``--window`` override the recipe. Inputs are random.
The variants of an encoder (ours, ours + CSRE, the official model) alternate step by step, so that load on
the machine slows all of them alike; the table gives the median of ``--steps`` timed steps after
``--warmup`` untimed ones::

    python bench/bench_throughput.py                                   # the five encoders, CPU, fp32
    python bench/bench_throughput.py --encoders ctrgcn,hcn --steps 3 --warmup 1 \\
        --official ctrgcn=/work/ref/CTR-GCN --official hcn=/work/ref/HCN-pytorch
    python bench/bench_throughput.py --device cuda --precision bf16 --compile --json bf16.json

Columns:

- ``samples/s``: batch / median step time (wall clock; on CUDA synchronised before and after the step). The
  JSON rows also keep every timed step, in wall-clock and in process CPU time (``times_s``, ``cpu_times_s``):
  on a CPU shared with other jobs the CPU time is the steadier measure.
- ``GFLOP/step``: the FLOPs of one step (forward + backward; the optimizer's elementwise update is not
  counted), counted once by :class:`torch.utils.flop_counter.FlopCounterMode` on an untimed step. It counts
  matrix products and convolutions, which is where nearly all the work is.
- ``GFLOP/s``: FLOPs / median step time, and that as a percentage of the matmul peak measured in the same
  process with the same threads (the best of a few ``torch.mm`` of two ``--peak-size`` square matrices: fp32,
  and bf16 or fp16 as well when that is the precision). On CUDA, cuDNN convolutions use TF32 by default while
  the fp32 matmul peak is measured without it (torch's default), so an fp32 step can exceed 100 %.
- ``vs``: for ``ours+csre`` the CSRE overhead (with / without - 1); for ``official`` the ratio official time /
  our time ("x faster": above 1, ours is faster), against our encoder without CSRE.

The official model (``--official NAME=REPO``, a checkout of its repository, imported from there at run time;
see ``bench/bench_encoders.py``) is trained by the same ``training_step`` without CSRE: plain cross-entropy,
and the same optimizer and gradient clipping as our row (the recipe's: Nesterov SGD; Adam, clipped, for HCN).
Its import failing skips it with the reason. BlockGCN's official model needs ``einops`` and ``torch_topological``
(``pip install einops torch-topological``, which brings giotto-ph, gudhi, POT, scipy and scikit-learn; the project
does not depend on them). No stand-in replaces them: its forward runs ``torch_topological``'s
``VietorisRipsComplex`` (giotto-ph's ``ripser_parallel`` on every sample's joint distances), ``make_tensor`` and
``StructureElementLayer`` on every step.

Our two variants are one model: ``ours`` is the encoder of the ``CSREModel`` that ``ours+csre`` trains, with
the same optimizer, so that the CSRE figure is the head's cost and not the luck of where two models' tensors
landed in memory (two identical models ran up to 4 % apart). The official model is built separately.

``--precision bf16|fp16`` autocasts forward and loss (a wrapper around the module ``training_step`` calls; the
cross-entropy runs in float32 either way); fp16 adds a ``GradScaler`` and is CUDA-only. ``--compile`` compiles
our encoder's ``forward_features`` and ``forward_head`` (which ``CSREModel`` and the encoder's ``forward`` both
call), once for both variants, and applies ``module.compile()`` to the official model. The first step after
compiling is reported as ``compile s`` and not timed (for ``ours+csre`` the encoder is compiled by then, so its
figure is the head's tracing and any recompilation); FLOPs are counted before compiling.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import statistics
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ContextManager, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from csre_models.checkpoint import build_encoder, model_arguments
from csre_models.config import TrainConfig, load_config_file, resolve_config
from csre_models.encoders import encoder_card, list_encoders
from csre_models.engine import build_model, training_step
from csre_models.schedule import build_optimizer

from bench_encoders import SETTINGS, build_official, cuda_calls_stay_on_cpu
from bench_train import fill_banks

#: The encoders, in the order of the table: by the year of their paper (their cards').
ENCODERS = tuple(sorted(list_encoders(), key=lambda name: (encoder_card(name).published, name)))
#: The recipe each encoder is timed at: its NTU-60 X-Sub CSRE config.
RECIPE = "ntu60-xsub-joint.yaml"
#: NTU-60: joint layout, joints, persons per sample, classes.
NTU60 = dict(layout="ntu25", num_joints=25, num_person=2, num_class=60)
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoders", default=",".join(ENCODERS), help="comma-separated, from " + ", ".join(ENCODERS))
    parser.add_argument("--official", action="append", default=[], metavar="NAME=REPO",
                        help="an official repository checkout to time beside ours (repeatable)")
    parser.add_argument("--batch", type=int, help="batch size (default: each encoder's recipe)")
    parser.add_argument("--window", type=int, help="frames per input (default: each encoder's recipe)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--precision", default="fp32", choices=tuple(DTYPES))
    parser.add_argument("--compile", action="store_true", help="module.compile() the encoders before timing")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's own)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps of each variant")
    parser.add_argument("--steps", type=int, default=5, help="timed steps of each variant (median)")
    parser.add_argument("--bank-size", type=int, default=40_091, help="CSRE bank slots (NTU-60 X-Sub training)")
    parser.add_argument("--peak-size", type=int,
                        help="side of the square matrices of the matmul peak (default: 2048 CPU, 8192 CUDA)")
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write the rows as JSON (after every encoder)")
    args = parser.parse_args(argv)
    for name in ("warmup", "steps", "batch", "window", "threads", "bank_size", "peak_size"):
        least = 0 if name == "warmup" else 1
        value = getattr(args, name)
        if value is not None and value < least:
            parser.error(f"--{name.replace('_', '-')} must be at least {least}, got {value}")
    if args.precision == "fp16" and args.device != "cuda":
        parser.error("--precision fp16 needs --device cuda (GradScaler and float16 autocast are CUDA's); "
                     "use bf16 on the CPU")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device cuda: CUDA is not available (torch {torch.__version__})")
    args.names = [name.strip() for name in args.encoders.split(",") if name.strip()]
    unknown = sorted(set(args.names) - set(ENCODERS))
    if unknown:
        parser.error(f"--encoders: unknown {', '.join(unknown)}; known: {', '.join(ENCODERS)}")
    args.repos = {}
    for item in args.official:
        name, _, path = item.partition("=")
        if name not in SETTINGS or not Path(path).is_dir():
            parser.error(f"--official {item!r}: expected NAME=REPO with NAME in {', '.join(SETTINGS)} and REPO "
                         f"a folder")
        args.repos[name] = Path(path).resolve()
    args.peak_size = args.peak_size or (8192 if args.device == "cuda" else 2048)
    return args


# ============================================================================================ machine

def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform
    return platform.processor() or "unknown CPU"


def machine(device: torch.device) -> Dict[str, Any]:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    info = {"cpu": cpu_model(), "cores": cores, "threads": torch.get_num_threads(), "torch": torch.__version__,
            "device": str(device)}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
        info["tf32"] = {"matmul": torch.backends.cuda.matmul.allow_tf32, "cudnn": torch.backends.cudnn.allow_tf32}
    return info


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(device: torch.device, dtype: torch.dtype, size: int, repeats: int = 3) -> float:
    """FLOP/s of the fastest of ``repeats`` ``torch.mm`` of two ``size`` x ``size`` matrices (after one untimed)."""
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=generator).to(device, dtype)
    b = torch.randn(size, size, generator=generator).to(device, dtype)
    best = float("inf")
    for attempt in range(repeats + 1):
        synchronize(device)
        start = time.perf_counter()
        torch.mm(a, b)
        synchronize(device)
        if attempt:
            best = min(best, time.perf_counter() - start)
    return 2 * size ** 3 / best


# ============================================================================================ variants

class Autocast(nn.Module):
    """``module`` called under ``torch.autocast``: forward and, inside ``CSREModel``, the CSRE loss."""

    def __init__(self, module: nn.Module, device_type: str, dtype: torch.dtype):
        super().__init__()
        self.module, self.device_type, self.dtype = module, device_type, dtype

    def forward(self, *args, **kwargs):
        with torch.autocast(self.device_type, dtype=self.dtype):
            return self.module(*args, **kwargs)


@dataclass
class Variant:
    """One model being timed, and what it measured."""

    label: str                      # "ours", "ours+csre" or "official"
    model: nn.Module                # what training_step calls
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    csre: bool
    joint: bool                     # the batch carries BlockGCN's joint tensor
    context: Callable[[], ContextManager] = contextlib.nullcontext
    times: List[float] = field(default_factory=list)
    cpu_times: List[float] = field(default_factory=list)
    flops: int = 0
    compile_s: Optional[float] = None


def recipe_setup(encoder: str, threads: int, batch: Optional[int] = None, window: Optional[int] = None,
                 bank_size: int = 40_091) -> Tuple[argparse.Namespace, TrainConfig, torch.Tensor, torch.Generator]:
    """What another bench needs to run this bench's steps of one encoder on the CPU: the options, the recipe,
    the bank's slot labels and the generator of the batches (seeded as :func:`benchmark` seeds it)."""
    overrides = [f"--{name}={value}" for name, value in (("batch", batch), ("window", window)) if value]
    options = parse_args(["--encoders", encoder, "--threads", str(threads), "--bank-size", str(bank_size),
                          *overrides])
    bank_labels, generator = seeded_bank_labels(options.bank_size)
    return options, recipe(encoder, options), bank_labels, generator


def seeded_bank_labels(bank_size: int) -> Tuple[torch.Tensor, torch.Generator]:
    """The bank's slot labels (NTU-60 classes in random order) and the generator that goes on to draw batches."""
    generator = torch.Generator().manual_seed(0)
    return torch.randperm(bank_size, generator=generator) % NTU60["num_class"], generator


def recipe(name: str, args: argparse.Namespace) -> TrainConfig:
    """The encoder's NTU-60 X-Sub CSRE recipe, with ``--batch`` and ``--window`` applied."""
    config = resolve_config(load_config_file(str(encoder_card(name).recipe_folder / RECIPE)))
    return dataclasses.replace(config, batch_size=args.batch or config.batch_size,
                               window=args.window or config.window or encoder_card(name).window("ntu25"))


def optimizer_of(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    optimizer, _ = build_optimizer(model, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay,
                                   warmup_epochs=config.warmup_epochs, steps=config.lr_steps, decay=config.lr_decay,
                                   optimizer=config.optimizer, epoch_decay=config.lr_epoch_decay)
    return optimizer


def precision_wrapper(model: nn.Module, args: argparse.Namespace) -> nn.Module:
    return model if args.precision == "fp32" else Autocast(model, args.device, DTYPES[args.precision])


def our_variants(config: TrainConfig, bank_labels: torch.Tensor, args: argparse.Namespace,
                 device: torch.device) -> List[Variant]:
    """Our encoder without and with CSRE: one ``CSREModel`` and one optimizer, whose encoder alone is the first.

    Both variants train the same weights in the same memory, so that they differ only in the head. Two models
    built side by side differ by themselves: two identical HCN models without CSRE, alternated over 20 steps,
    ran 0.1 %, 0.1 % and 4.1 % apart in three processes, as much as the head costs HCN (docs/performance.md).
    """
    arguments = model_arguments(config.encoder, NTU60["num_class"], NTU60["layout"], NTU60["num_person"],
                                config.window, config.encoder_options)
    config_csre = dataclasses.replace(config, csre=True)
    torch.manual_seed(0)
    model = build_model(config_csre, build_encoder(arguments), bank_labels)
    fill_banks(model, torch.Generator().manual_seed(1))
    model = model.to(device).train()
    optimizer = optimizer_of(model, config_csre)
    joint = encoder_card(config.encoder).takes_joint
    return [Variant("ours", precision_wrapper(model.encoder, args), optimizer, scaler_of(args), csre=False,
                    joint=joint),
            Variant("ours+csre", precision_wrapper(model, args), optimizer, scaler_of(args), csre=True, joint=joint)]


def official_variant(name: str, repo: Path, config: TrainConfig, args: argparse.Namespace,
                     device: torch.device) -> Variant:
    """The official model (no CSRE), built from its repository at the recipe's window."""
    setting = SETTINGS[name]
    kwargs = dict(setting.official_kwargs)
    if "window_size" in kwargs:
        kwargs["window_size"] = config.window
    setting = dataclasses.replace(setting, official_kwargs=kwargs)
    torch.manual_seed(0)
    model = build_official(setting, repo).to(device).train()
    return Variant("official", precision_wrapper(model, args), optimizer_of(model, config), scaler_of(args),
                   csre=False, joint=False, context=lambda: cuda_calls_stay_on_cpu(setting.calls_cuda))


def scaler_of(args: argparse.Namespace) -> torch.amp.GradScaler:
    return torch.amp.GradScaler("cuda", enabled=args.precision == "fp16")


def compile_variant(variant: Variant) -> None:
    """``module.compile()`` on the official model. Ours: the encoder's ``forward_features`` and ``forward_head``,
    which ``CSREModel`` calls and the encoder's own ``forward`` calls too, compiled once for both variants."""
    model = variant.model.module if isinstance(variant.model, Autocast) else variant.model
    if variant.label == "official":
        model.compile()
        return
    encoder = model.encoder if variant.csre else model
    if not getattr(encoder, "_bench_compiled", False):
        encoder.forward_features = torch.compile(encoder.forward_features)
        encoder.forward_head = torch.compile(encoder.forward_head)
        encoder._bench_compiled = True


# =============================================================================================== steps

def make_batch(config: TrainConfig, bank_labels: torch.Tensor, generator: torch.Generator,
               device: torch.device) -> tuple:
    """Random inputs, labels and bank slots of one batch (and the joint tensor, same as the input), on ``device``."""
    x = torch.randn(config.batch_size, 3, config.window, NTU60["num_joints"], NTU60["num_person"], generator=generator)
    slots = torch.randperm(len(bank_labels), generator=generator)[:config.batch_size]
    batch = (x, bank_labels[slots], slots, x)
    return tuple(t.to(device) for t in batch)


def run_step(variant: Variant, batch: tuple, config: TrainConfig, device: torch.device) -> None:
    with variant.context():
        training_step(variant.model, batch if variant.joint else batch[:3], variant.optimizer, variant.scaler,
                      device, csre=variant.csre, csre_weight=config.csre_weight,
                      clip_grad_norm=config.clip_grad_norm)


def timed_step(variant: Variant, batch: tuple, config: TrainConfig, device: torch.device) -> Tuple[float, float]:
    """Wall-clock and process CPU seconds of one step."""
    synchronize(device)
    wall, cpu = time.perf_counter(), time.process_time()
    run_step(variant, batch, config, device)
    synchronize(device)
    return time.perf_counter() - wall, time.process_time() - cpu


class _NoModules:
    """A stand-in for :class:`FlopCounterMode`'s module tracker: every FLOP goes to the total only."""

    parents = {"Global"}

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return None


def count_flops(variant: Variant, batch: tuple, config: TrainConfig, device: torch.device) -> int:
    """FLOPs of one step. Without the per-module breakdown: its module tracker flattens every module's output
    with pytree, which official BlockGCN's ``torch_topological`` outputs (``PersistenceInformation``) refuse."""
    counter = FlopCounterMode(display=False)
    counter.mod_tracker = _NoModules()
    with counter:
        run_step(variant, batch, config, device)
    return int(counter.get_total_flops())


# ============================================================================================== encoder

def benchmark(name: str, args: argparse.Namespace, device: torch.device, skipped: List[str]) -> List[Dict[str, Any]]:
    """The rows of one encoder: ours, ours + CSRE and (when given and importable) the official model."""
    config = recipe(name, args)
    bank_labels, generator = seeded_bank_labels(args.bank_size)
    variants = our_variants(config, bank_labels, args, device)
    batch = make_batch(config, bank_labels, generator, device)
    for variant in variants:
        variant.flops = count_flops(variant, batch, config, device)
    if name in args.repos:
        try:
            official = official_variant(name, args.repos[name], config, args, device)
            official.flops = count_flops(official, batch, config, device)
            variants.append(official)
        except Exception as exc:  # an official repository that does not import or run here: skip it, say why
            reason = f"official {name} skipped: {type(exc).__name__}: {exc}"
            print(reason, flush=True)
            skipped.append(reason)
    if args.compile:
        for variant in variants:
            compile_variant(variant)
            variant.compile_s = timed_step(variant, batch, config, device)[0]
    for step in range(args.warmup + args.steps):
        batch = make_batch(config, bank_labels, generator, device)
        for variant in variants:
            wall, cpu = timed_step(variant, batch, config, device)
            if step >= args.warmup:
                variant.times.append(wall)
                variant.cpu_times.append(cpu)
    return rows_of(name, config, variants, args)


def rows_of(name: str, config: TrainConfig, variants: List[Variant], args: argparse.Namespace) -> List[Dict[str, Any]]:
    rows = []
    medians = {variant.label: statistics.median(variant.times) for variant in variants}
    for variant in variants:
        seconds = medians[variant.label]
        flops_per_s = variant.flops / seconds
        row = {"encoder": name, "variant": variant.label, "batch": config.batch_size, "window": config.window,
               "optimizer": config.optimizer, "precision": args.precision, "compiled": args.compile,
               "step_s": seconds, "steps": len(variant.times), "samples_per_s": config.batch_size / seconds,
               "flops": variant.flops, "gflops_per_s": flops_per_s / 1e9,
               "pct_of_peak": {precision: 100 * flops_per_s / peak for precision, peak in args.peaks.items()},
               "compile_s": variant.compile_s, "times_s": variant.times, "cpu_times_s": variant.cpu_times}
        if variant.label == "ours+csre":
            row["csre_overhead_pct"] = 100 * (seconds / medians["ours"] - 1)
        if variant.label == "official":
            row["official_over_ours"] = seconds / medians["ours"]
        rows.append(row)
    return rows


# ============================================================================================== output

def format_row(row: Dict[str, Any], peaks: Sequence[str]) -> List[str]:
    compared = ""
    if "csre_overhead_pct" in row:
        compared = f"CSRE {row['csre_overhead_pct']:+.1f} %"
    elif "official_over_ours" in row:
        compared = f"ours {row['official_over_ours']:.2f}x faster"
    return ([row["encoder"], row["variant"], str(row["batch"]), str(row["window"]), f"{1000 * row['step_s']:.1f}",
             f"{row['samples_per_s']:.1f}", f"{row['flops'] / 1e9:.2f}", f"{row['gflops_per_s']:.1f}"]
            + [f"{row['pct_of_peak'][p]:.1f}" for p in peaks]
            + ["-" if row["compile_s"] is None else f"{row['compile_s']:.1f}", compared])


def header_columns(peaks: Sequence[str]) -> List[str]:
    return (["encoder", "variant", "batch", "window", "ms/step", "samples/s", "GFLOP/step", "GFLOP/s"]
            + [f"% {p} peak" for p in peaks] + ["compile s", "vs"])


def print_row(cells: Sequence[str], widths: Sequence[int]) -> None:
    print("  ".join(c.ljust(w) if i < 2 or i == len(cells) - 1 else c.rjust(w)
                    for i, (c, w) in enumerate(zip(cells, widths))).rstrip(), flush=True)


def write_json(path: Path, record: Dict[str, Any]) -> None:
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    temporary.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def main(argv: Optional[Sequence[str]] = None) -> List[Dict[str, Any]]:
    """Run the benchmark; print the table (and write ``--json``); return the rows."""
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=UserWarning)  # official HCN's Dropout2d and F.upsample
    device = torch.device(args.device)
    info = machine(device)
    args.peaks = {"fp32": matmul_peak(device, torch.float32, args.peak_size)}
    if args.precision != "fp32":
        args.peaks[args.precision] = matmul_peak(device, DTYPES[args.precision], args.peak_size)
    gpu = ""
    if device.type == "cuda":
        tf32 = ", ".join(f"{key} {'on' if on else 'off'}" for key, on in info["tf32"].items())
        gpu = f", {info['gpu']} (CUDA {info['cuda']}; TF32: {tf32})"
    print(f"machine: {info['cpu']}, {info['cores']} cores, {info['threads']} torch threads, torch {info['torch']}, "
          f"device {device}{gpu}")
    print(f"train step (forward + loss + backward + optimizer), {args.precision}"
          f"{', compiled' if args.compile else ''}, each encoder's {RECIPE} recipe, CSRE banks of "
          f"{args.bank_size:,} slots fully written; median of {args.steps} step(s) after {args.warmup} warm-up; "
          "matmul peak ("
          + ", ".join(f"{p} {peak / 1e9:,.1f} GFLOP/s" for p, peak in args.peaks.items())
          + f", {args.peak_size}x{args.peak_size} torch.mm)", flush=True)
    columns = header_columns(list(args.peaks))
    widths = [max(len(c), w) for c, w in zip(columns, [11, 9, 5, 6, 8, 9, 10, 8] + [8] * len(args.peaks) + [9, 0])]
    print_row(columns, widths)
    rows: List[Dict[str, Any]] = []
    skipped: List[str] = []
    for name in args.names:
        for row in benchmark(name, args, device, skipped):
            rows.append(row)
            print_row(format_row(row, list(args.peaks)), widths)
        if args.json:
            write_json(args.json, {"machine": info, "precision": args.precision, "compiled": args.compile,
                                   "peaks_gflops_per_s": {p: v / 1e9 for p, v in args.peaks.items()},
                                   "peak_size": args.peak_size, "bank_size": args.bank_size,
                                   "warmup": args.warmup, "rows": rows, "skipped": skipped})
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return rows


if __name__ == "__main__":
    main()
