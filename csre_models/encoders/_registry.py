"""The encoder registry: ``@register_encoder(name, **card)`` on a constructor, ``create_encoder(name, ...)`` to
build one, :func:`encoder_card` for what the rest of the project needs to know about it.

An :class:`EncoderCard` (like timm's ``default_cfg``) is the one place for an encoder's facts outside its
module: the window and feeder variant of its published recipes per joint layout, its recipes for
``--pipeline stgcn`` stores, the inputs it takes besides ``x``, and the folder of its shipped configs. The
configuration defaults (:func:`csre_models.config.default_window`), the dataset, the official-weights loader
and the benchmarks read it; adding an encoder is one module, one registration and its configs
(``docs/design.md``, "Encoders").
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Tuple

import torch.nn as nn

from ._blocks import chunk_cpu_convolutions

#: Frames per input of the published recipes, per joint layout (CTR-GCN's 64 on NTU, 52 on NW-UCLA): the
#: window of an encoder whose card says nothing else, and of the dataset when it is given none.
DEFAULT_WINDOWS: Mapping[str, int] = {"ntu25": 64, "ucla20": 52}
#: Feeder variants of the NTU and NW-UCLA feeders: CTR-GCN's centred joints, or joints relative to the spine
#: joint with its trajectory kept (the CSRE / Hyperformer / BlockGCN feeders; ``spine_relative`` of the
#: dataset and the configuration).
FEEDER_VARIANTS = ("centred", "spine-relative")
#: Feeders of the recipes for a ``--pipeline stgcn`` store: ``hcn`` (HCN-pytorch's crop of the file's frame
#: count resized to the window: the dataset's ``feeder="hcn"``, its default there) or ``whole`` (no crop, all
#: stored frames: 2s-AGCN's ``window_size: -1``, the dataset's ``crop=False``).
STGCN_FEEDERS = ("hcn", "whole")
#: The shipped recipes: ``<CONFIGS>/<encoder>/<dataset>-<benchmark>[-stgcn]-<stream>.yaml``.
CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@dataclass(frozen=True)
class EncoderCard:
    """What the project knows about an encoder besides its module (see the module docstring).

    Attributes:
        name: the registry name.
        published: the year of the encoder's paper (the benchmarks' table lists encoders in this order).
        windows: frames per input of its recipes, per joint layout.
        feeders: feeder variant of its recipes per joint layout, one of :data:`FEEDER_VARIANTS`.
        extra_inputs: keyword inputs of ``forward`` / ``forward_features`` besides ``x`` that the engine feeds
            (``joint``: BlockGCN's un-centred joint positions, the dataset's ``return_joint``).
        stgcn_feeder: feeder of its recipes for ``--pipeline stgcn`` stores (:data:`STGCN_FEEDERS`), ``None``
            when it has none.
        stgcn_window: frames per input of those recipes.
        recipe_options: ``(layout, stream) -> encoder options`` of its published recipes (the ``encoder_options``
            of its configs, what official weights are rebuilt with); ``None`` for none.
    """

    name: str
    published: int = 0
    windows: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_WINDOWS))
    feeders: Mapping[str, str] = field(default_factory=lambda: {layout: "centred" for layout in DEFAULT_WINDOWS})
    extra_inputs: Tuple[str, ...] = ()
    stgcn_feeder: Optional[str] = None
    stgcn_window: Optional[int] = None
    recipe_options: Optional[Callable[[str, str], Dict[str, object]]] = None

    def __post_init__(self) -> None:
        unknown = sorted(set(self.feeders.values()) - set(FEEDER_VARIANTS))
        if unknown or (self.stgcn_feeder is not None and self.stgcn_feeder not in STGCN_FEEDERS):
            raise ValueError(f"encoder {self.name!r}: feeders are {', '.join(FEEDER_VARIANTS)} "
                             f"(stgcn: {', '.join(STGCN_FEEDERS)}); got {unknown or self.stgcn_feeder}")

    def window(self, layout: str) -> int:
        """The recipes' frames per input on ``layout``."""
        return int(self.windows[layout])

    def spine_relative(self, layout: str) -> bool:
        """Whether its recipes on ``layout`` feed spine-relative joints."""
        return self.feeders[layout] == "spine-relative"

    def options(self, layout: str, stream: str) -> Dict[str, object]:
        """The encoder options of its published recipe on ``layout`` and ``stream`` (a fresh dict)."""
        return dict(self.recipe_options(layout, stream)) if self.recipe_options is not None else {}

    @property
    def takes_joint(self) -> bool:
        """Whether it reads BlockGCN's un-centred joint tensor (``forward_features(x, joint=...)``)."""
        return "joint" in self.extra_inputs

    @property
    def recipe_folder(self) -> Path:
        return CONFIGS / self.name

    def recipes(self) -> List[Path]:
        """Its shipped configuration files, sorted (none when the package runs without its ``configs/``)."""
        return sorted(self.recipe_folder.glob("*.yaml"))


_ENCODERS: Dict[str, Callable[..., nn.Module]] = {}
_CARDS: Dict[str, EncoderCard] = {}


def register_encoder(name: str, **card) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register ``fn(num_class, layout, num_person, window, **kwargs) -> nn.Module`` under ``name``, with the
    :class:`EncoderCard` fields ``card`` (the defaults for the rest)."""
    details = EncoderCard(name, **card)

    def decorate(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _ENCODERS:
            raise ValueError(f"encoder {name!r} is already registered")
        _ENCODERS[name] = fn
        _CARDS[name] = details
        return fn

    return decorate


def list_encoders() -> List[str]:
    """Names of the registered encoders, sorted."""
    return sorted(_ENCODERS)


def encoder_card(name: str) -> EncoderCard:
    """The :class:`EncoderCard` of the registered encoder ``name``."""
    try:
        return _CARDS[name]
    except KeyError:
        raise KeyError(f"unknown encoder {name!r}; known: {', '.join(list_encoders()) or 'none'}") from None


def create_encoder(name: str, num_class: int, layout: str = "ntu25", num_person: int = 2,
                   window: int = 64, **kwargs) -> nn.Module:
    """Build the encoder ``name``.

    Args:
        name: one of :func:`list_encoders`.
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
    # Recipe batches run their convolutions in chunks on the CPU (_blocks.CPU_CONV_CHUNK): faster, same values.
    return chunk_cpu_convolutions(fn(num_class=num_class, layout=layout, num_person=num_person, window=window,
                                     **kwargs))
