"""The encoder registry: ``@register_encoder`` on a constructor, ``create_encoder(name, ...)`` to build one."""
from __future__ import annotations

from typing import Callable, Dict, List

import torch.nn as nn

_ENCODERS: Dict[str, Callable[..., nn.Module]] = {}


def register_encoder(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register ``fn(num_class, layout, num_person, window, **kwargs) -> nn.Module`` under ``name``."""

    def decorate(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _ENCODERS:
            raise ValueError(f"encoder {name!r} is already registered")
        _ENCODERS[name] = fn
        return fn

    return decorate


def list_encoders() -> List[str]:
    """Names of the registered encoders, sorted."""
    return sorted(_ENCODERS)


def create_encoder(name: str, num_class: int, layout: str = "ntu25", num_person: int = 2,
                   window: int = 64, **kwargs) -> nn.Module:
    """Build the encoder ``name``.

    Args:
        name: one of :func:`list_encoders` (``hcn``, ``agcn``, ``ctrgcn``, ``hyperformer``, ``blockgcn``).
        num_class: number of output classes.
        layout: joint layout of the input, ``ntu25`` or ``ucla20`` (see :mod:`skeldata.layouts`).
        num_person: bodies per sample (M of the input ``(N, C, T, V, M)``).
        window: frames per sample (T of the input).
        **kwargs: encoder-specific options.

    Returns:
        An ``nn.Module`` mapping ``x (N, C, T, V, M)`` to logits ``(N, num_class)``. It also has
        ``forward_features(x)`` returning the final feature map ``(N*M, C', T', V')`` that CSRE reads, and
        ``load_reference_state_dict(sd)`` for checkpoints in the official repository's key layout.
    """
    try:
        fn = _ENCODERS[name]
    except KeyError:
        raise KeyError(f"unknown encoder {name!r}; known: {', '.join(list_encoders()) or 'none'}") from None
    return fn(num_class=num_class, layout=layout, num_person=num_person, window=window, **kwargs)
