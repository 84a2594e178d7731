"""The process a run executes in: its device (``--device``), torch's threads and deterministic mode, and the
seeding of Python, NumPy and torch."""
from __future__ import annotations

import os
import random
from typing import Optional

import numpy as np
import torch

from .errors import ConfigError

__all__ = ["resolve_device", "apply_runtime_options", "seed_globals"]


def resolve_device(requested: Optional[str]) -> torch.device:
    """The device for ``--device`` (``None``: CUDA when available, else the CPU)."""
    if requested is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except RuntimeError:
        raise ConfigError(f"--device {requested}: not a device; use cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"--device {requested}: only cpu and cuda are supported")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {requested}: CUDA is not available here (torch {torch.__version__}, "
                              f"{'CPU-only build' if torch.version.cuda is None else 'no GPU visible'}); "
                              f"use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"--device {requested}: only {torch.cuda.device_count()} CUDA device(s) visible")
    return device


def apply_runtime_options(threads: Optional[int], deterministic: bool) -> None:
    """Set torch's thread count (``--threads``; ``None`` keeps torch's) and deterministic mode for this process."""
    if threads is not None:
        torch.set_num_threads(threads)
    if deterministic:
        # cuBLAS needs a fixed workspace for reproducible results; it reads this when CUDA starts.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def seed_globals(seed: int, rank: int) -> None:
    """Seed Python, NumPy and torch from ``(seed, rank)``: reproducible, and other dropout masks per rank."""
    state = int(np.random.SeedSequence([seed, rank]).generate_state(1)[0])
    random.seed(state)
    np.random.seed(state)
    torch.manual_seed(state)
