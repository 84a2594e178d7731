"""Encoder weights from outside a ``csre-train`` run: official state dicts, read and loaded by key.

``csre-eval --checkpoint FILE`` and ``csre-train --init-from FILE`` take either

* a **csre_models checkpoint** (``last.pt``, ``best.pt``, ``encoder.pt``: :mod:`.checkpoint`), or
* a **state dict in an official repository's key layout**, which every encoder here shares
  (:meth:`~csre_models.encoders._blocks.SkeletonEncoder.load_reference_state_dict`): plain, as CTR-GCN,
  2s-AGCN, Hyperformer, BlockGCN and the CSRE release save their weights (``torch.save(weights)``), with
  or without DataParallel's ``module.`` prefix and with or without the CSRE head's ``std.*`` entries, or
  inside a dictionary under one of :data:`WRAPPER_KEYS` (HCN-pytorch saves
  ``{"epoch", "state_dict", "optim_dict"}``).

:func:`read_weights` tells the two apart (a csre_models checkpoint says so in its ``format`` entry);
:func:`load_weights` puts the weights into an encoder built for the store, checking every key and shape,
and re-initialises the classifier only where that is allowed (``--init-from`` on a store with another
class count). :func:`published_recipe` is what the shipped configs feed an encoder, for weights that do not
record it.

Files are read with ``torch.load(weights_only=True)``: tensors and plain containers only, never code.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn

from . import checkpoint as ckpt
from .checkpoint import CheckpointError
from .encoders import encoder_card
from .encoders._blocks import reference_state

__all__ = ["REFERENCE", "WRAPPER_KEYS", "Weights", "LoadReport", "read_weights", "load_weights",
           "build_reference_encoder", "classifier_axes", "published_recipe", "describe_object"]

PathLike = Union[str, Path]

#: ``Weights.kind`` of a state dict in an official key layout (the others are the checkpoint kinds).
REFERENCE = "reference"
#: Entries of a dictionary under which a checkpoint may keep its state dict, tried in this order.
WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "net", "weights")
#: Keys named in a mismatch message, per list.
SHOWN_KEYS = 3


@dataclass
class Weights:
    """The encoder weights of one file.

    ``kind``: ``training`` or ``encoder`` (a csre_models checkpoint, whose ``payload`` is kept) or
    :data:`REFERENCE` (an official state dict). ``state``: the encoder's entries (a training checkpoint's
    CSRE head dropped; an official state dict's ``module.`` prefix stripped and ``std.*`` entries dropped).
    ``wrapper``: the entry of the file's dictionary that held the state dict, ``None`` for a plain one.
    """

    path: str
    kind: str
    state: Dict[str, torch.Tensor]
    payload: Optional[Dict[str, Any]] = None
    wrapper: Optional[str] = None

    @property
    def encoder(self) -> Optional[str]:
        """The encoder a csre_models checkpoint was written for (``None`` for an official state dict)."""
        return None if self.payload is None else self.payload["model_arguments"]["name"]

    def describe(self) -> str:
        """What the file is, in a few words: ``an official state dict of 352 tensors (under 'state_dict')``."""
        if self.kind != REFERENCE:
            return f"a csre_models {self.kind} checkpoint of {self.encoder}"
        where = f" (under {self.wrapper!r})" if self.wrapper else ""
        return f"a state dict of {len(self.state)} tensors{where}"


@dataclass
class LoadReport:
    """What :func:`load_weights` did, as recorded in a run's log and ``env.json``."""

    path: str
    kind: str
    sha256: str
    tensors: int
    classifier: str                     # "loaded" or "re-initialised"
    weights_classes: Optional[int]
    classes: int
    wrapper: Optional[str] = None

    def as_dict(self) -> Dict[str, Any]:
        return {"path": self.path, "kind": self.kind, "sha256": self.sha256, "tensors": self.tensors,
                "classifier": self.classifier, "weights_classes": self.weights_classes, "classes": self.classes,
                "wrapper": self.wrapper}

    def describe(self) -> str:
        kind = "an official state dict" if self.kind == REFERENCE else f"a csre_models {self.kind} checkpoint"
        if self.classifier == "loaded":
            head = "classifier included"
        else:
            head = (f"classifier re-initialised: the weights classify {self.weights_classes} classes, the store "
                    f"{self.classes}")
        return f"encoder initialised from {self.path} ({kind}, sha256 {self.sha256[:16]}): {self.tensors} tensors " \
               f"loaded, {head}"


# ------------------------------------------------------------------------------------------- reading

def read_weights(path: PathLike, reference: bool = False) -> Weights:
    """The encoder weights held by ``path``.

    A csre_models checkpoint is recognised by its ``format`` entry; anything else must be a state dict
    (a mapping of names to tensors), plain or under one of :data:`WRAPPER_KEYS`. ``reference`` reads the
    file as a state dict even when it is a csre_models checkpoint (its ``model`` entry, without the recorded
    configuration). Raises :class:`~csre_models.checkpoint.CheckpointError` naming what the file is otherwise.
    """
    path = Path(path)
    content = ckpt.read_torch_file(path, missing="no such file")
    if not reference and isinstance(content, Mapping) and content.get("format") == ckpt.FORMAT:
        return Weights(str(path), content["kind"], dict(ckpt.encoder_weights(content)), dict(content))
    state, wrapper = _find_state_dict(content)
    if state is None:
        raise CheckpointError(f"{path}: neither a csre_models checkpoint nor a state dict: it is "
                              f"{describe_object(content)}")
    return Weights(str(path), REFERENCE, reference_state(state), None, wrapper)


def _is_state_dict(value: Any) -> bool:
    return (isinstance(value, Mapping) and len(value) > 0
            and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items()))


def _find_state_dict(content: Any) -> Tuple[Optional[Mapping[str, torch.Tensor]], Optional[str]]:
    if _is_state_dict(content):
        return content, None
    if isinstance(content, Mapping):
        for key in WRAPPER_KEYS:
            if _is_state_dict(content.get(key)):
                return content[key], key
    return None, None


def describe_object(value: Any) -> str:
    """A few words on what a loaded file holds: ``a dict of 3 entries (epoch, args, optimizer)``."""
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    if isinstance(value, Mapping):
        keys = [str(k) for k in value]
        shown = ", ".join(keys[:SHOWN_KEYS + 2]) + (", ..." if len(keys) > SHOWN_KEYS + 2 else "")
        tensors = sum(isinstance(v, torch.Tensor) for v in value.values())
        of_them = f", {tensors} of them tensors" if tensors else ", none of them a tensor or a state dict"
        return f"a dict of {len(keys)} entries ({shown}){of_them}" if keys else "an empty dict"
    if isinstance(value, (list, tuple)):
        return f"a {type(value).__name__} of {len(value)} items"
    return f"a {type(value).__name__}"


def file_sha256(path: PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ------------------------------------------------------------------------------------------- loading

def classifier_axes(encoder: nn.Module, arguments: Mapping[str, Any]) -> Dict[str, int]:
    """The state-dict entries of ``encoder`` (built from ``arguments``) whose shape follows the class count,
    and the axis that does: found by building the same encoder for one class more (under a forked random
    state, so the caller's draws are unchanged)."""
    own = encoder.state_dict()
    with torch.random.fork_rng(devices=[]):
        other = ckpt.build_encoder({**arguments, "num_class": int(arguments["num_class"]) + 1}).state_dict()
    axes = {}
    for key, value in own.items():
        if value.shape != other[key].shape:
            axes[key] = next(i for i, (a, b) in enumerate(zip(value.shape, other[key].shape)) if a != b)
    return axes


def _first(keys: Sequence[str]) -> str:
    shown = ", ".join(keys[:SHOWN_KEYS])
    return shown + (", ..." if len(keys) > SHOWN_KEYS else "")


def load_weights(encoder: nn.Module, arguments: Mapping[str, Any], weights: Weights,
                 new_classifier: bool = False) -> LoadReport:
    """Load ``weights`` into ``encoder`` (built from ``arguments``, the checkpoint module's
    :func:`~csre_models.checkpoint.model_arguments`).

    Every entry of the encoder must be in the weights and every entry of the weights in the encoder,
    with the same shape, except the classifier's when the class counts differ: then, with
    ``new_classifier``, the classifier keeps its fresh initialisation and the rest is loaded; without, it
    is an error. Raises :class:`~csre_models.checkpoint.CheckpointError` with one line naming the file, what
    it is and the first missing, unexpected or mis-shaped keys; nothing is loaded then.
    """
    name = arguments["name"]
    if weights.kind != REFERENCE and weights.encoder != name:
        raise CheckpointError(f"{weights.path} holds a {weights.encoder} encoder (a csre_models {weights.kind} "
                              f"checkpoint), not {name}")
    own = encoder.state_dict()
    state = weights.state
    missing = [key for key in own if key not in state]
    unexpected = [key for key in state if key not in own]
    target = f"{name} ({arguments['layout']}, {arguments['num_class']} classes)"
    if missing or unexpected:
        what = "not a csre_models checkpoint, and not" if weights.kind == REFERENCE else "not"
        parts = []
        if missing:
            parts.append(f"{len(missing)} of the encoder's {len(own)} keys missing ({_first(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected ({_first(unexpected)})")
        raise CheckpointError(f"{weights.path}: {what} a state dict of {target}: {weights.describe()}, with "
                              f"{' and '.join(parts)}")
    axes = classifier_axes(encoder, arguments)
    classes = state_classes(weights, axes)
    weights_classes = classes[0] if len(classes) == 1 else None
    head_differs = any(state[key].shape != own[key].shape for key in axes)
    shapes = [f"{key} {tuple(state[key].shape)} (expected {tuple(own[key].shape)})" for key in own
              if state[key].shape != own[key].shape and not (head_differs and key in axes)]
    if shapes:
        head = (f"; its classifier has {weights_classes or 'another number of'} classes" if head_differs else "")
        raise CheckpointError(f"{weights.path}: {weights.describe()} of other shapes than {target}: "
                              f"{len(shapes)} entries differ ({_first(shapes)}){head}")
    if head_differs and not new_classifier:
        raise CheckpointError(f"{weights.path}: the weights classify {weights_classes or 'another number of'} "
                              f"classes; the store has {arguments['num_class']}")
    if head_differs:
        # strict=False only spares the classifier: every other key was checked above.
        encoder.load_state_dict({key: value for key, value in state.items() if key not in axes}, strict=False)
    elif weights.kind == REFERENCE:
        encoder.load_reference_state_dict(state)
    else:
        encoder.load_state_dict(state)
    loaded = len(state) - (len(axes) if head_differs else 0)
    return LoadReport(weights.path, weights.kind, file_sha256(weights.path), loaded,
                      "re-initialised" if head_differs else "loaded", weights_classes,
                      int(arguments["num_class"]), weights.wrapper)


def build_reference_encoder(weights: Weights, encoder: str, num_class: int, layout: str, num_person: int,
                            window: int, stream: str = "joint", spine_relative: Optional[bool] = None,
                            encoder_options: Optional[Mapping[str, Any]] = None
                            ) -> Tuple[nn.Module, Dict[str, Any], bool]:
    """``encoder`` built for a store (``num_class``, ``layout``, ``num_person``) and ``window``, with the
    published recipe's options for ``stream`` (``encoder_options`` added over them), ``weights`` loaded
    (every key and shape checked, the classifier included), in eval mode: what ``csre-eval --encoder``
    evaluates. Returns the encoder, its :func:`~csre_models.checkpoint.model_arguments` and the feeder
    variant to feed it (``spine_relative``, default the recipe's)."""
    recipe_spine, recipe_options = published_recipe(encoder, layout, stream)
    arguments = ckpt.model_arguments(encoder, num_class, layout, num_person, window,
                                     {**recipe_options, **dict(encoder_options or {})})
    model = ckpt.build_encoder(arguments)
    load_weights(model, arguments, weights)
    return model.eval(), arguments, recipe_spine if spine_relative is None else bool(spine_relative)


# -------------------------------------------------------------------------------------------- recipes

def published_recipe(encoder: str, layout: str, stream: str) -> Tuple[bool, Dict[str, Any]]:
    """``(spine_relative, encoder_options)`` of the shipped config of ``encoder`` on ``layout`` and ``stream``
    (``configs/``; a test keeps the two in step): what weights that record no configuration are evaluated
    with by default. Both come from the encoder's card (its ``feeders`` and ``recipe_options``): e.g.
    Hyperformer and BlockGCN were published with the spine-relative feeder, BlockGCN with its official batch
    coupling (``faithful``), Hyperformer's NW-UCLA bone streams with other body parts.
    """
    card = encoder_card(encoder)
    return card.spine_relative(layout), card.options(layout, stream)


def state_classes(weights: Weights, axes: Mapping[str, int]) -> List[int]:
    """The class counts the classifier entries of ``weights`` imply (one value when consistent)."""
    return sorted({int(weights.state[key].shape[axis]) for key, axis in axes.items()
                   if key in weights.state and weights.state[key].dim() > axis})
