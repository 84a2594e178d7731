"""Time one training step (forward + cross-entropy + backward) of each encoder, ours against the official.

Each encoder runs in train mode at its standard NTU-60 setting (batch 8; window 64, 2s-AGCN 300). The
official model is timed too when its repository is given by path; it is imported from there at run
time (nothing of it is copied into the project)::

    python bench/bench_encoders.py --official ctrgcn=/tmp/CTR-GCN --official agcn=/tmp/2s-AGCN \\
                                   --official hcn=/tmp/HCN-pytorch --official hyperformer=/tmp/Hyperformer \\
                                   --official blockgcn=/tmp/BlockGCN

Both models get the same weights (the official state dict, loaded with ``load_reference_state_dict``)
and the same input; the ``max |diff|`` column is the largest eval-mode logit difference on the first
sample, relative to the largest logit, as a check that the two compute the same thing.

Official code needs two allowances on a CPU-only machine without its optional packages: 2s-AGCN moves
its graph with ``tensor.cuda(x.get_device())``, which is made a no-op while the official model runs,
and HCN imports ``torchvision`` and ``openpyxl`` without using them, which get empty stand-ins when
they are not installed. Hyperformer's ``forward(x, y)`` returns ``(logits, y)``; it is called through
:class:`LogitsOnly`, and so is BlockGCN's ``forward(x, y, joint)``, with ``joint = x``. The official BlockGCN
imports ``torch_topological`` (with ``giotto-ph`` and ``einops``), which the project does not depend on: time
it with an interpreter that has them, e.g. a throwaway virtual environment.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import io
import statistics
import sys
import time
import types
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from csre_models import create_encoder
from csre_models.encoders import encoder_card

#: Top-level packages of the official repositories; forgotten after each import so that two
#: repositories with a ``model`` package can be benchmarked in one run.
OFFICIAL_PACKAGES = ("model", "graph", "utils")
NTU_GRAPH = dict(graph="graph.ntu_rgb_d.Graph", graph_args={"labeling_mode": "spatial"})
#: ``joint_label`` (body part of each joint) of the official Hyperformer NTU configs.
HYPERFORMER_NTU_JOINT_LABEL = [0, 4, 2, 2, 2, 2, 1, 1, 2, 2, 1, 1, 2, 3, 3, 3, 2, 3, 3, 3, 1, 0, 1, 0, 1]


@dataclass(frozen=True)
class Setting:
    """One encoder's benchmark setting and how to build its official counterpart."""

    name: str
    official_module: str
    official_class: str
    official_kwargs: Dict
    unused_imports: Sequence[str] = ()
    calls_cuda: bool = False
    takes_label: bool = False
    num_class: int = 60
    layout_kwargs: Dict = field(default_factory=lambda: dict(layout="ntu25", num_person=2))

    @property
    def window(self) -> int:
        """The official repository's own NTU input (the encoder card's): the window of its recipe for
        ``--pipeline stgcn`` data when it has one (2s-AGCN: all 300 frames), else its recipes' 64."""
        card = encoder_card(self.name)
        return card.stgcn_window or card.window("ntu25")

    @property
    def takes_joint(self) -> bool:
        return encoder_card(self.name).takes_joint


SETTINGS = {
    "ctrgcn": Setting("ctrgcn", "model.ctrgcn", "Model",
                      dict(num_class=60, num_point=25, num_person=2, **NTU_GRAPH)),
    "agcn": Setting("agcn", "model.agcn", "Model",
                    dict(num_class=60, num_point=25, num_person=2, **NTU_GRAPH), calls_cuda=True),
    "hcn": Setting("hcn", "model.HCN", "HCN",
                   dict(in_channel=3, num_joint=25, num_person=2, out_channel=64, window_size=64, num_class=60),
                   unused_imports=("torchvision", "openpyxl")),
    "hyperformer": Setting("hyperformer", "model.Hyperformer", "Model",
                           dict(num_class=60, num_point=25, num_person=2, joint_label=HYPERFORMER_NTU_JOINT_LABEL,
                                **NTU_GRAPH), takes_label=True),
    "blockgcn": Setting("blockgcn", "model.BlockGCN", "Model",
                        dict(num_class=60, num_point=25, num_person=2, window_size=64, **NTU_GRAPH),
                        takes_label=True),
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoders", default=",".join(SETTINGS), help="comma-separated, from: " + ", ".join(SETTINGS))
    parser.add_argument("--official", action="append", default=[], metavar="NAME=REPO",
                        help="an official repository checkout to compare with (repeatable)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--runs", type=int, default=3, help="timed steps per model (median)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--threads", type=int, default=1)
    return parser.parse_args()


@contextlib.contextmanager
def official_imports(repo: Path, unused_imports: Sequence[str]) -> Iterator[None]:
    """Make ``repo`` importable (with stand-ins for modules it imports but never uses), then forget it."""
    sys.path.insert(0, str(repo))
    added_stubs = []
    for name in unused_imports:
        if importlib.util.find_spec(name) is None:
            sys.modules[name] = types.ModuleType(name)
            added_stubs.append(name)
    try:
        yield
    finally:
        sys.path.remove(str(repo))
        for name in list(sys.modules):
            if name.split(".")[0] in OFFICIAL_PACKAGES or name in added_stubs:
                del sys.modules[name]


@contextlib.contextmanager
def cuda_calls_stay_on_cpu(active: bool) -> Iterator[None]:
    """Turn ``tensor.cuda(...)`` into a no-op while active and no GPU is present."""
    if not active or torch.cuda.is_available():
        yield
        return
    original = torch.Tensor.cuda
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    try:
        yield
    finally:
        torch.Tensor.cuda = original


class LogitsOnly(nn.Module):
    """An official model whose forward is ``forward(x, y) -> (logits, y, ...)``, called as ``model(x)``;
    with ``pass_joint``, ``forward(x, y, joint)`` called with ``joint = x``.

    It is held as ``module`` (as DataParallel holds it), a state-dict prefix that ``load_reference_state_dict``
    strips.
    """

    def __init__(self, module: nn.Module, pass_joint: bool = False):
        super().__init__()
        self.module = module
        self.pass_joint = pass_joint

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        joint = (x,) if self.pass_joint else ()
        return self.module(x, None, *joint)[0]


def build_official(setting: Setting, repo: Path) -> nn.Module:
    """The official model, built while its repository is importable (its graph is imported on construction)."""
    with official_imports(repo, setting.unused_imports), contextlib.redirect_stdout(io.StringIO()):
        module = importlib.import_module(setting.official_module)
        model = getattr(module, setting.official_class)(**setting.official_kwargs)
    return LogitsOnly(model, pass_joint=setting.takes_joint) if setting.takes_label else model


def time_training_step(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, runs: int, warmup: int) -> float:
    """Median milliseconds of ``runs`` train-mode forward + loss + backward steps after ``warmup`` steps."""
    model.train()
    times: List[float] = []
    for step in range(warmup + runs):
        model.zero_grad(set_to_none=True)
        start = time.perf_counter()
        F.cross_entropy(model(x), labels).backward()
        if step >= warmup:
            times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)


def relative_difference(ours: nn.Module, official: nn.Module, x: torch.Tensor) -> float:
    """Largest eval-mode logit difference on the first sample, relative to the largest official logit."""
    ours.eval()
    official.eval()
    with torch.no_grad():
        ref = official(x[:1])
        return float((ours(x[:1]) - ref).abs().max() / ref.abs().max())


def benchmark(setting: Setting, repo: Optional[Path], args: argparse.Namespace) -> Dict[str, str]:
    ours = create_encoder(setting.name, num_class=setting.num_class, window=setting.window, **setting.layout_kwargs)
    x = torch.randn(args.batch, 3, setting.window, ours.num_joints, ours.num_person)
    labels = torch.randint(setting.num_class, (args.batch,))
    row = {"encoder": setting.name, "window": str(setting.window), "ours ms": "-", "official ms": "-",
           "ours/official": "-", "max |diff|": "-"}
    if repo is not None:
        official = build_official(setting, repo)
        ours.load_reference_state_dict(official.state_dict())
        with cuda_calls_stay_on_cpu(setting.calls_cuda):
            row["max |diff|"] = f"{relative_difference(ours, official, x):.1e}"
            official_ms = time_training_step(official, x, labels, args.runs, args.warmup)
        row["official ms"] = f"{official_ms:.1f}"
    ours_ms = time_training_step(ours, x, labels, args.runs, args.warmup)
    row["ours ms"] = f"{ours_ms:.1f}"
    if repo is not None:
        row["ours/official"] = f"{ours_ms / official_ms:.2f}"
    return row


def print_table(rows: List[Dict[str, str]]) -> None:
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in columns}
    print(" | ".join(c.ljust(widths[c]) for c in columns))
    print("-|-".join("-" * widths[c] for c in columns))
    for row in rows:
        print(" | ".join(row[c].ljust(widths[c]) for c in columns))


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    warnings.filterwarnings("ignore", category=UserWarning)  # official HCN's 2-D Dropout2d, F.upsample
    repos: Dict[str, Path] = {}
    for item in args.official:
        name, _, path = item.partition("=")
        if name not in SETTINGS or not Path(path).is_dir():
            sys.exit(f"--official {item!r}: expected NAME=REPO with NAME in {sorted(SETTINGS)} and REPO a folder")
        repos[name] = Path(path).resolve()
    names = [n.strip() for n in args.encoders.split(",") if n.strip()]
    unknown = sorted(set(names) - set(SETTINGS))
    if unknown:
        sys.exit(f"--encoders: unknown {unknown}; known: {sorted(SETTINGS)}")
    print(f"batch {args.batch}, train mode, forward + cross-entropy + backward, median of {args.runs} runs "
          f"after {args.warmup} warm-up, {args.threads} thread(s), torch {torch.__version__}")
    print_table([benchmark(SETTINGS[name], repos.get(name), args) for name in names])


if __name__ == "__main__":
    main()
