"""Numeric precision of training and evaluation: ``fp32``, ``bf16`` or ``fp16`` autocast.

* ``fp32``: no autocast; every operation in float32.
* ``bf16``: ``torch.autocast`` with bfloat16, on the CPU and on CUDA. bfloat16 keeps float32's exponent
  range, so no loss scaling is needed. Fast on CPUs with native bfloat16 (AVX512-BF16 or AMX) and on
  GPUs from Ampere on; elsewhere torch emulates it, slower than float32.
* ``fp16``: ``torch.autocast`` with float16 and a :class:`torch.amp.GradScaler` (the AMP of the
  published GPU recipes). CUDA only.

The default (``None``) is ``fp16`` on CUDA, as the recipes trained, and ``fp32`` on the CPU. Losses and
the CSRE similarities are computed in float32 under every setting (``csre_models.csre``).
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from functools import lru_cache
from typing import ContextManager, Optional

import torch

from .errors import ConfigError

__all__ = ["PRECISIONS", "Precision", "resolve_precision", "cpu_has_native_bf16"]

#: The values of ``--precision``.
PRECISIONS = ("fp32", "bf16", "fp16")

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
_LABELS = {"fp32": "float32", "bf16": "bfloat16 autocast", "fp16": "float16 autocast + GradScaler"}


@dataclass(frozen=True)
class Precision:
    """A resolved precision on one device type."""

    name: str
    device_type: str

    @property
    def dtype(self) -> Optional[torch.dtype]:
        """The autocast dtype, or ``None`` for float32."""
        return _DTYPES.get(self.name)

    @property
    def uses_scaler(self) -> bool:
        """Whether gradients need loss scaling (float16 only)."""
        return self.name == "fp16"

    def autocast(self) -> ContextManager:
        """The context to run forward passes and losses in."""
        if self.dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=self.dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        """A GradScaler that scales for ``fp16`` and passes everything through otherwise."""
        return torch.amp.GradScaler("cuda" if self.device_type == "cuda" else "cpu", enabled=self.uses_scaler)

    def describe(self) -> str:
        return _LABELS[self.name]


FP32_CPU = Precision("fp32", "cpu")


@lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX-BF16; read from /proc/cpuinfo)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def resolve_precision(requested: Optional[str], device: torch.device, fall_back: bool = False) -> Precision:
    """The precision to use on ``device`` for ``requested`` (``None``: fp16 on CUDA, fp32 on the CPU).

    With ``fall_back`` (evaluating a checkpoint on another device than it trained on) a precision the
    device cannot run is replaced by the device's default instead of refused.

    Raises:
        ConfigError: an unknown name, fp16 on the CPU, or bf16 on a GPU without bfloat16.
    """
    default = "fp16" if device.type == "cuda" else "fp32"
    name = requested if requested is not None else default
    if name not in PRECISIONS:
        raise ConfigError(f"--precision {name}: choose one of {', '.join(PRECISIONS)}")
    if fall_back:
        try:
            return resolve_precision(name, device)
        except ConfigError:
            return Precision(default, device.type)
    if name == "fp16" and device.type != "cuda":
        raise ConfigError("--precision fp16 needs CUDA (float16 autocast with loss scaling); on the CPU use "
                          "--precision bf16 (fast where the CPU has AVX512-BF16 or AMX) or fp32")
    if name == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError(f"--precision bf16: {torch.cuda.get_device_name(device)} has no bfloat16 support; "
                          f"use --precision fp16")
    return Precision(name, device.type)
