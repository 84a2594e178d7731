"""Checkpoints, exported encoders, RNG states and store fingerprints.

Two kinds of file, both ``torch.save`` dictionaries loadable with ``torch.load(weights_only=True)``:

* a **training checkpoint** (``last.pt``, ``best.pt``): ``kind = "training"``, the whole training module
  (encoder, and with CSRE the STFD head and both memory banks with their sampling state), the optimizer,
  the schedule, the AMP scaler, the position (epoch, batches done in it, global step), the RNG states of
  every process, the resolved configuration and the fingerprint of the store it was trained on;
* an **exported encoder** (``encoder.pt``): ``kind = "encoder"``, the plain encoder's weights only (no
  CSRE head: inference does not need it), with what is needed to rebuild it.

:func:`load_encoder` rebuilds a ready-to-evaluate encoder from either.
"""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any, Dict, Mapping, Tuple, Union

import numpy as np
import torch
import torch.nn as nn

from skeldata.output import replacing
from skeldata.store import open_store

from .csre import encoder_state_dict
from .encoders import create_encoder
from .errors import CSREModelsError

__all__ = ["CheckpointError", "TRAINING", "ENCODER", "store_fingerprint", "check_fingerprint",
           "capture_rng_state", "restore_rng_state", "save_checkpoint", "load_checkpoint", "model_arguments",
           "build_encoder", "load_encoder"]

TRAINING = "training"
ENCODER = "encoder"
FORMAT = "csre_models.checkpoint"
PathLike = Union[str, Path]


class CheckpointError(CSREModelsError):
    """A checkpoint that cannot be used for what was asked, with a one-line reason."""


# ------------------------------------------------------------------------------------ store fingerprint

def store_fingerprint(path: PathLike) -> Dict[str, Any]:
    """What identifies the content of the store at ``path``: :meth:`skeldata.store.Store.fingerprint`
    (data set, sample count and a digest of skeldata's checksums; the file name plays no part)."""
    with open_store(path) as store:
        return store.fingerprint()


def check_fingerprint(saved: Mapping[str, Any], current: Mapping[str, Any], store: PathLike) -> None:
    """Raise :class:`CheckpointError` when ``store`` is not the store a checkpoint was trained on."""
    if dict(saved) != dict(current):
        raise CheckpointError(
            f"--resume: {store} is not the store this run was trained on (checkpoint: {saved['dataset']}, "
            f"{saved['num_samples']} samples, digest {saved['digest']}; given: {current['dataset']}, "
            f"{current['num_samples']} samples, digest {current['digest']}); resume with the original store "
            f"or start a new run")


# ------------------------------------------------------------------------------------------ RNG states

def capture_rng_state() -> Dict[str, Any]:
    """The global random states of Python, NumPy, torch (CPU) and, when present, every CUDA device."""
    numpy_state = np.random.get_state(legacy=False)
    state = {"python": random.getstate(),
             "numpy": {"key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
                       "pos": int(numpy_state["state"]["pos"]), "has_gauss": int(numpy_state["has_gauss"]),
                       "gauss": float(numpy_state["gauss"])},
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Put back what :func:`capture_rng_state` returned (the CUDA states only where CUDA is present)."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy_state = state["numpy"]
    np.random.set_state({"bit_generator": "MT19937",
                         "state": {"key": numpy_state["key"].numpy().astype(np.uint32), "pos": numpy_state["pos"]},
                         "has_gauss": numpy_state["has_gauss"], "gauss": numpy_state["gauss"]})
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ------------------------------------------------------------------------------------------- files

def save_checkpoint(path: PathLike, kind: str, payload: Mapping[str, Any]) -> None:
    """Write ``payload`` atomically and durably: to a temporary file beside ``path``, flushed to the disk
    (fsync), renamed over ``path``, and the folder synced, so neither a killed process nor a power cut
    leaves a truncated checkpoint; the previous one stays until the new one is complete."""
    path = Path(path)
    with replacing(path) as temporary:
        with open(temporary, "wb") as handle:
            torch.save({"format": FORMAT, "kind": kind, **payload}, handle)
            handle.flush()
            os.fsync(handle.fileno())
    _sync_folder(path.parent)


def _sync_folder(folder: Path) -> None:
    """fsync a folder so a rename in it survives a crash (not possible on every platform or file system)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def read_torch_file(path: PathLike, missing: str = "no such checkpoint") -> Any:
    """What ``torch.save`` wrote to ``path``, loaded onto the CPU with ``weights_only``; a
    :class:`CheckpointError` naming the file when it is absent (``missing``) or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: {missing}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for files that are not checkpoints
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {first})") from None


def load_checkpoint(path: PathLike, kind: str = "") -> Dict[str, Any]:
    """Read a checkpoint onto the CPU; with ``kind``, refuse any other kind of file."""
    path = Path(path)
    payload = read_torch_file(path)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a csre_models checkpoint (written by csre-train)")
    if kind and payload["kind"] != kind:
        raise CheckpointError(f"{path}: is a {payload['kind']!r} file, expected a {kind!r} checkpoint")
    return payload


# ------------------------------------------------------------------------------------------ encoders

def model_arguments(encoder: str, num_class: int, layout: str, num_person: int, window: int,
                    options: Mapping[str, Any] = ()) -> Dict[str, Any]:
    """The :func:`~csre_models.create_encoder` arguments a checkpoint records to rebuild its encoder:
    the common ones and the encoder-specific ``options``."""
    common = {"name": encoder, "num_class": int(num_class), "layout": layout, "num_person": int(num_person),
              "window": int(window)}
    clashing = sorted(set(common) & set(dict(options)))
    if clashing:
        raise CheckpointError(f"encoder options may not set {', '.join(clashing)}: they come from the store "
                              f"and the configuration")
    return {**common, **dict(options)}


def build_encoder(arguments: Mapping[str, Any]) -> nn.Module:
    """A freshly initialised encoder from :func:`model_arguments`."""
    return create_encoder(**arguments)


def encoder_weights(payload: Mapping[str, Any]) -> Dict[str, torch.Tensor]:
    """The plain encoder's state dict in a checkpoint payload (a CSRE run's without the head)."""
    state = payload["model"]
    if payload["kind"] == TRAINING and payload["config"]["csre"]:
        state = encoder_state_dict(state)
    return state


def load_encoder(path: PathLike) -> Tuple[nn.Module, Dict[str, Any]]:
    """The plain encoder held by a training checkpoint or an exported encoder file, in eval mode, and the
    file's payload (its ``config``, ``model_arguments``, ``store_fingerprint``, ...)."""
    payload = load_checkpoint(path)
    encoder = build_encoder(payload["model_arguments"])
    state = encoder_weights(payload)
    encoder.load_state_dict(state)
    return encoder.eval(), payload
