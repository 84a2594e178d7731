"""Training and evaluation loops: what ``csre-train`` and ``csre-eval`` run.

:func:`train` runs one training job from a :class:`~csre_models.config.TrainConfig` (checked by
:func:`~csre_models.config.prepare_config`), as one process or as one rank of a ``torchrun`` job
(DistributedDataParallel, see :mod:`.distributed`):

* **Initialisation.** Seeded; with ``init_from``, the encoder's weights are then loaded from an official state
  dict or a csre_models checkpoint (:mod:`.weights`), the classifier only when the class counts match.
* **Model.** With CSRE, ``CSREModel(encoder, bank_labels=<labels of the training part's bank slots>)``
  trained on ``CE + w * (L_spa + L_tem) / 2``; without (``csre=False``), the plain encoder on CE. Either
  way evaluation and the exported ``encoder.pt`` use the encoder alone: the CSRE head is training-only.
* **Optimisation.** SGD with Nesterov momentum or Adam, the reference per-epoch schedule (warm-up, step
  and per-epoch decay, :mod:`.schedule`) and optional gradient-norm clipping. Precision
  (:mod:`.precision`): float16 autocast with a GradScaler on CUDA by default (gradients unscaled before
  clipping), float32 on the CPU; bfloat16 autocast on either with ``precision="bf16"``. ``compile``
  compiles the encoder in place with ``torch.compile``.
* **Data order and augmentation are functions of (seed, epoch)** (:mod:`.data.sampling`), so a run resumed at
  any batch continues exactly as if it had not stopped.
* **Checkpoints.** ``last.pt`` after every epoch, every ``checkpoint_every`` steps, when
  ``checkpoint_minutes`` have passed since the last one (default 10), when ``max_steps`` stops a run, and
  when SIGTERM or SIGINT asks the run to stop (it saves, then raises :class:`TrainingInterrupted`;
  ``csre-train`` exits 143 or 130); mid-epoch ones record the position in the epoch. Each is written to
  a temporary file, fsynced and renamed. ``best.pt`` after an epoch that improves validation accuracy. Resuming restores
  the model (CSRE banks included), optimizer, schedule, scaler, position, every rank's RNG states and the
  epoch's running sums, so on the CPU the weights after a resumed run are bit-identical to an
  uninterrupted run's.
* **Model selection.** With ``val_fraction > 0`` a seeded part of the training samples is held out and
  the result is the epoch of best validation accuracy. Without it there is no selection: the result is
  the last epoch's weights, and test accuracy is only reported. Nothing is ever chosen on the test set.

What a run writes, and where: :mod:`.workdir`. The device, threads and seeding: :mod:`.runtime`.
"""
from __future__ import annotations

import dataclasses
import math
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from skeldata import open_store
from skeldata.errors import StoreError

from . import checkpoint as ckpt
from . import runinfo
from .config import (STREAMS, ConfigError, TrainConfig, config_from_dict, default_window, dump_config,
                     prepare_config, resumed_config)
from .csre import BankContrastLoss, CSREModel, csre_objective
from .data import SkeletonDataset, check_store
from .data.sampling import EpochBatches, SeededTrainingItems, TestClip, build_data, validation_samples
from .distributed import (WorldInfo, all_gather_objects, all_reduce_sum, barrier, broadcast_buffers,
                          init_distributed, is_distributed, shutdown_distributed, world_info_from_env,
                          wrap_ddp)
from .encoders import encoder_card, list_encoders
from .ensemble import Scores, average_clip_logits, save_scores, with_metadata
from .precision import FP32_CPU, Precision, resolve_precision
from .runtime import apply_runtime_options, resolve_device, seed_globals
from .schedule import build_optimizer
from .weights import REFERENCE, LoadReport, Weights, build_reference_encoder, load_weights, read_weights
from .workdir import PROGRESS_FILE, RESULT_FILE, WorkDir

__all__ = ["TrainResult", "train", "evaluate", "evaluate_checkpoint", "training_step", "build_model",
           "PARTS", "with_part_metadata", "TrainingInterrupted", "StopSignals"]

#: Entropy word of the CSRE head's initial weights: drawn from a generator of their own, so that a run with
#: and one without CSRE (``--no-csre``) of the same seed start from the same encoder and see the same batches.
CSRE_HEAD_STREAM = 0x5EED_C5E0
#: The parts :func:`evaluate_checkpoint` scores: the benchmark's two, and the samples a run held out.
PARTS = ("test", "val", "train")


# ============================================================================================== model

def build_model(config: TrainConfig, encoder: nn.Module, bank_labels: np.ndarray) -> nn.Module:
    """The module to train: ``CSREModel(encoder, bank_labels)`` with CSRE, else the encoder itself.

    The head's initial weights come from a generator of their own, seeded by ``(seed, CSRE_HEAD_STREAM)``;
    the global random state is left as it was. So adding the head changes nothing else a run draws: with
    and without CSRE, the same seed gives the same encoder, batches and augmentations (a paired study).
    """
    if not config.csre:
        return encoder
    head_seed = int(np.random.SeedSequence([config.seed, CSRE_HEAD_STREAM]).generate_state(1)[0])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(head_seed)
        return CSREModel(encoder, bank_labels=bank_labels, dim=config.csre_dim, reduction=config.csre_reduction,
                         positives=config.csre_positives, negatives=config.csre_negatives,
                         temperature=config.csre_temperature, seed=config.seed)


def encoder_of(model: nn.Module) -> nn.Module:
    """The plain encoder inside a training module (DDP wrapper and CSRE container removed)."""
    model = model.module if isinstance(model, DistributedDataParallel) else model
    return model.encoder if isinstance(model, CSREModel) else model


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, DistributedDataParallel) else model


def _bank_buffers(model: nn.Module) -> List[torch.Tensor]:
    """The buffers of every CSRE memory bank (identical on all ranks by construction, never broadcast)."""
    return [buffer for module in model.modules() if isinstance(module, BankContrastLoss)
            for buffer in module.buffers(recurse=False)]


# ========================================================================================= evaluation

def _batch_inputs(batch: Sequence[torch.Tensor], device: torch.device) -> Tuple[torch.Tensor, ...]:
    return tuple(t.to(device, non_blocking=True) for t in batch)


def _forward_encoder(encoder: nn.Module, x: torch.Tensor, joint: Optional[torch.Tensor]) -> torch.Tensor:
    return encoder(x) if joint is None else encoder(x, joint=joint)


@torch.no_grad()
def evaluate(encoder: nn.Module, dataset: SkeletonDataset, positions: Optional[np.ndarray], device: torch.device,
             batch_size: int, num_workers: int = 0, precision: Optional[Precision] = None,
             world: Optional[WorldInfo] = None,
             progress: bool = False, description: str = "eval", clips: int = 1) -> Scores:
    """Logits of ``encoder`` on the test-time items ``positions`` of ``dataset`` (all when ``None``).

    With ``clips > 1``, each item is evaluated on clips ``0 .. clips - 1``
    (:meth:`SkeletonDataset.item`'s ``clip``) and the result is the logarithm of the mean of their softmax
    probabilities (:func:`~csre_models.ensemble.average_clip_logits`, PYSKL's ``average_clips='prob'``);
    with 1 it is the plain logits of the test input.

    Under torch.distributed every rank evaluates a contiguous share and every rank returns the whole
    result, in ``positions`` order. The encoder is left in eval mode.
    """
    if clips < 1:
        raise ConfigError(f"--clips must be at least 1, got {clips}")
    world = world or WorldInfo()
    positions = np.arange(len(dataset)) if positions is None else np.asarray(positions)
    share = np.array_split(positions, world.world_size)[world.rank]
    encoder.eval()
    per_clip = []
    for clip in range(clips):
        items = dataset if clip == 0 else TestClip(dataset, clip)
        loader = DataLoader(Subset(items, share.tolist()), batch_size=batch_size, shuffle=False,
                            num_workers=num_workers, pin_memory=device.type == "cuda",
                            generator=torch.Generator())
        outputs = []
        label = description if clips == 1 else f"{description} clip {clip + 1}/{clips}"
        for batch in tqdm(loader, desc=label, leave=False, disable=not progress, file=sys.stderr):
            x, _, _, *joint = _batch_inputs(batch, device)
            with (precision or FP32_CPU).autocast():
                logits = _forward_encoder(encoder, x, joint[0] if joint else None)
            outputs.append(logits.float().cpu().numpy())
        classes = dataset.num_classes
        mine = np.concatenate(outputs) if outputs else np.zeros((0, classes), dtype=np.float32)
        per_clip.append(np.concatenate(all_gather_objects(mine)))
    logits = per_clip[0] if clips == 1 else average_clip_logits(per_clip)
    names = np.asarray(dataset.names, dtype=str)[positions % dataset.num_samples]
    scores = Scores(names, logits, dataset.labels[positions % dataset.num_samples])
    if clips > 1:
        scores.extra.update(clips=np.asarray(clips), clip_average=np.asarray("prob"))
    return scores


def with_part_metadata(scores: Scores, dataset: SkeletonDataset, part: str) -> Scores:
    """``scores`` of ``dataset`` recording its stream, data set and ``part`` (``test``, ``val`` or ``train``)."""
    return with_metadata(scores, stream=dataset.stream, dataset=dataset.store.dataset.name, part=part)


def evaluate_checkpoint(checkpoint: str, store: str, benchmark: Optional[str] = None, part: str = "test",
                        device: Optional[str] = None, batch_size: int = 64, num_workers: int = 0,
                        progress: bool = False, *, encoder: Optional[str] = None, reference_weights: bool = False,
                        stream: Optional[str] = None, window: Optional[int] = None,
                        spine_relative: Optional[bool] = None, encoder_options: Optional[Dict[str, Any]] = None,
                        clips: Optional[int] = None, precision: Optional[str] = None) -> Tuple[Scores, Dict[str, Any]]:
    """Scores of the encoder in ``checkpoint`` on ``part`` of ``benchmark`` of ``store``. Returns the scores
    (recording stream, data set and part) and the checkpoint's payload.

    A csre_models checkpoint (training checkpoint or exported ``encoder.pt``) is evaluated with the input
    stream, window, feeder variant and ``test_clips`` it was trained with, on its benchmark by default.

    Any other file must be a state dict in the official key layout of ``encoder`` (:mod:`.weights`;
    ``reference_weights`` reads even a csre_models checkpoint so). The store gives the classes, joint layout
    and persons; ``window`` defaults to the encoder card's (64 NTU, 52 NW-UCLA), ``stream`` to ``joint``, the feeder
    variant (``spine_relative``) and ``encoder_options`` to the shipped config's
    (:func:`~csre_models.weights.published_recipe`), ``benchmark`` to the store's only one. Evaluated in
    float32. The payload returned then is ``{"kind": "reference", "store_fingerprint": None, ...}``.

    ``clips`` (default: the checkpoint's ``test_clips``, else 1) averages the softmax of that many
    deterministic temporal clips per sample (:func:`evaluate`).

    ``precision`` (``fp32``, ``bf16``, ``fp16``) is the autocast of the forward pass. By default a
    csre_models checkpoint is evaluated in the precision it trained in, replaced by the device's default
    where the device cannot run it, and official weights in float32; a precision given here that the
    device cannot run is refused (:func:`~csre_models.precision.resolve_precision`).

    ``part`` ``val`` is the validation samples the run held out of its training part: drawn again from
    the stored ``val_fraction`` and ``seed`` with :func:`validation_samples`, with test-time transforms, as
    :func:`build_data` draws them, so the scores equal the run's ``scores_val.npz``. That needs the run's
    benchmark and store (the draw depends on the training part's size and order)."""
    weights = read_weights(checkpoint, reference=reference_weights)
    try:
        check_store(store)
        with open_store(store) as opened:
            layout, classes, benchmarks = opened.layout.name, opened.num_classes, opened.benchmarks
            persons = opened.max_bodies
    except StoreError as exc:
        raise ConfigError(f"--store: {exc}") from None
    if part not in PARTS:
        raise ConfigError(f"--part must be {', '.join(PARTS)}, got {part!r}")
    if weights.kind == REFERENCE:
        if encoder is None:
            raise ConfigError(f"{checkpoint} is not a csre_models checkpoint but {weights.describe()}; give --encoder "
                              f"({', '.join(list_encoders())}) to read it in that encoder's official key layout")
        if encoder not in list_encoders():
            raise ConfigError(f"unknown encoder {encoder!r}; known: {', '.join(list_encoders())}")
        stream = stream or "joint"
        if stream not in STREAMS:
            raise ConfigError(f"unknown stream {stream!r}; known: {', '.join(STREAMS)}")
        if part == "val":
            raise ConfigError(f"--part val: {checkpoint} is an official state dict, which records no held-out "
                              f"samples; evaluate --part test or train")
        if benchmark is None:
            if len(benchmarks) != 1:
                raise ConfigError(f"--benchmark is required: {store} has {', '.join(benchmarks)} and official weights "
                                  f"do not record theirs")
            benchmark = benchmarks[0]
        try:
            model, arguments, spine_relative = build_reference_encoder(
                weights, encoder, classes, layout, persons, window or default_window(layout, encoder), stream, spine_relative,
                encoder_options)
        except ckpt.CheckpointError:
            raise
        except (TypeError, ValueError) as exc:   # options the encoder does not take, or a window too short
            raise ConfigError(f"--encoder {encoder}: {exc}") from None
        precision_name, clips = "fp32", clips or 1
        crop = True
        payload = {"kind": REFERENCE, "store_fingerprint": None, "model_arguments": arguments, "stream": stream,
                   "spine_relative": spine_relative, "benchmark": benchmark, "weights": weights.describe()}
    else:
        given = [flag for flag, value in (("--stream", stream), ("--window", window),
                                          ("--spine-relative", spine_relative), ("--encoder-option", encoder_options))
                 if value is not None and value != {}]
        if given:
            raise ConfigError(f"{' and '.join(given)}: {checkpoint} is a csre_models checkpoint, which records what "
                              f"its encoder was trained with; these options are for official state dicts")
        if encoder is not None and encoder != weights.encoder:
            raise ConfigError(f"--encoder {encoder}: {checkpoint} holds a {weights.encoder} encoder")
        payload = weights.payload
        config = config_from_dict(payload["config"])
        arguments = payload["model_arguments"]
        if (layout, classes) != (arguments["layout"], arguments["num_class"]):
            raise ConfigError(f"{checkpoint} was trained on {arguments['layout']} with {arguments['num_class']} "
                              f"classes; {store} has {layout} with {classes} classes")
        model = ckpt.build_encoder(arguments)
        model.load_state_dict(weights.state)
        benchmark = benchmark or config.benchmark
        stream, spine_relative, precision_name = config.stream, config.spine_relative, config.precision
        crop = config.crop
        clips = clips or config.test_clips
    if benchmark not in benchmarks:
        raise ConfigError(f"--benchmark {benchmark}: not in {store}; it has {', '.join(benchmarks)}")
    if part == "val":
        _check_validation_source(checkpoint, config, payload, store, benchmark)
    torch_device = resolve_device(device)
    dataset = SkeletonDataset(store, benchmark, "train" if part == "val" else part, stream=stream, train=False,
                              window=arguments["window"], spine_relative=spine_relative,
                              return_joint=encoder_card(arguments["name"]).takes_joint, crop=crop)
    positions = validation_samples(dataset.num_samples, config.val_fraction, config.seed) if part == "val" else None
    # A precision asked for must run on this device; the run's own falls back to the device's default.
    chosen = (resolve_precision(precision, torch_device) if precision is not None
              else resolve_precision(precision_name, torch_device, fall_back=True))
    scores = evaluate(model.eval().to(torch_device), dataset, positions, torch_device, batch_size, num_workers,
                      chosen, progress=progress, description=part, clips=clips)
    return with_part_metadata(scores, dataset, part), payload


def _check_validation_source(checkpoint: str, config: TrainConfig, payload: Dict[str, Any], store: str,
                             benchmark: str) -> None:
    """Refuse ``--part val`` where the held-out samples cannot be drawn again: a run without validation,
    another benchmark, or another store than the run's."""
    if config.val_fraction <= 0:
        raise ConfigError(f"--part val: {checkpoint} was trained without --val-fraction, so no samples were held "
                          f"out for validation; evaluate --part test or train")
    if benchmark != config.benchmark:
        raise ConfigError(f"--part val: the validation samples of {checkpoint} come from the training part of "
                          f"{config.benchmark}, not {benchmark}; leave out --benchmark")
    if payload["store_fingerprint"] != ckpt.store_fingerprint(store):
        raise ConfigError(f"--part val: {store} is not the store {checkpoint} was trained on, so its held-out "
                          f"samples cannot be drawn again from it")


# ========================================================================================== training

def training_step(model: nn.Module, batch: Sequence[torch.Tensor], optimizer: torch.optim.Optimizer,
                  scaler: torch.amp.GradScaler, device: torch.device, *, csre: bool, csre_weight: float,
                  precision: Optional[Precision] = None,
                  clip_grad_norm: Optional[float] = None) -> Tuple[float, float, float, int, int]:
    """One optimizer step of ``model`` on ``batch`` ``(x, labels, slots[, joint])``.

    With ``csre`` the model is a :class:`CSREModel` and the loss ``CE + csre_weight * contrast``; otherwise
    the model is the encoder and the loss CE. With ``clip_grad_norm`` the (unscaled) gradients of all
    parameters are clipped to that L2 norm together before the step. ``precision`` (default float32) sets the
    autocast of the forward pass and the loss; ``scaler`` scales the loss for float16. Returns the batch's loss, CE,
    contrast, correct predictions and size.
    """
    x, labels, slots, *joint = _batch_inputs(batch, device)
    inputs = {"joint": joint[0]} if joint else {}
    with (precision or FP32_CPU).autocast():
        if csre:
            logits, contrast = model(x, labels, slots, **inputs)
        else:
            logits, contrast = model(x, **inputs), torch.zeros((), device=device)
        loss = csre_objective(logits.float(), labels, contrast, csre_weight)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if clip_grad_norm is not None:
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
    scaler.step(optimizer)
    scaler.update()
    with torch.no_grad():
        ce = F.cross_entropy(logits.float(), labels)
        correct = int((logits.argmax(dim=1) == labels).sum())
    return float(loss.detach()), float(ce), float(contrast.detach()), correct, len(labels)


@dataclass
class EpochMeter:
    """Running sums of one epoch on one rank (saved in checkpoints, so a resumed epoch reports the same)."""

    loss: float = 0.0
    ce: float = 0.0
    contrast: float = 0.0
    correct: int = 0
    samples: int = 0

    def add(self, loss: float, ce: float, contrast: float, correct: int, samples: int) -> None:
        self.loss += loss * samples
        self.ce += ce * samples
        self.contrast += contrast * samples
        self.correct += correct
        self.samples += samples

    def averages(self, device: torch.device) -> Dict[str, float]:
        """Averages over the samples of every rank."""
        sums = all_reduce_sum(torch.tensor([self.loss, self.ce, self.contrast, self.correct, self.samples],
                                           dtype=torch.float64, device=device)).tolist()
        samples = max(sums[4], 1.0)
        return {"loss": sums[0] / samples, "ce": sums[1] / samples, "contrast": sums[2] / samples,
                "train_acc": sums[3] / samples}


@dataclass
class Position:
    """Where a run stands: the epoch in progress (0-based), its batches done, optimizer steps in total."""

    epoch: int = 0
    batch: int = 0
    global_step: int = 0


@dataclass
class TrainResult:
    """What :func:`train` produced (on rank 0; other ranks get the same numbers)."""

    work_dir: Path
    global_step: int
    epochs_done: int
    test_acc: float
    test_top5: float
    selected: str
    val_acc: Optional[float] = None


class Trainer:
    """One training run (one rank of it under torchrun); :func:`train` is the way to use it."""

    def __init__(self, config: TrainConfig, world: WorldInfo, device: torch.device, work: WorkDir,
                 init_weights: Optional[Weights] = None):
        self.config, self.world, self.device = config, world, device
        #: What ``init_from`` loaded (``None`` without it, and when resuming: last.pt holds the weights then).
        self.init_report: Optional[LoadReport] = None
        self.precision = resolve_precision(config.precision, device)
        self.work, self.log = work, work.log
        self.fingerprint = ckpt.store_fingerprint(config.store)
        self.position = Position()
        self.meter = EpochMeter()
        self.best_val: Optional[float] = None
        self._setup_model(init_weights)
        self.contrast_active = self._contrast_active()
        self.board = _tensorboard_writer(work) if config.tensorboard and world.is_main else None
        self.stop_signals: Optional[StopSignals] = None
        self.last_checkpoint = time.monotonic()
        self.steps_at_checkpoint = 0
        self.last_progress = 0.0

    # -- setup ---------------------------------------------------------------------------------------
    def _setup_model(self, init_weights: Optional[Weights] = None) -> None:
        config = self.config
        with open_store(config.store) as store:
            self.model_args = ckpt.model_arguments(config.encoder, store.num_classes, store.layout.name,
                                                   store.max_bodies, config.window, config.encoder_options)
        torch.manual_seed(config.seed)
        try:
            encoder = ckpt.build_encoder(self.model_args)
        except TypeError as exc:
            if not config.encoder_options:
                raise
            raise ConfigError(f"--encoder-option {config.encoder_options}: {exc}") from None
        except ValueError as exc:  # an encoder that cannot be built for this input (e.g. HCN below 16 frames)
            raise ConfigError(f"--encoder {config.encoder}: {exc}") from None
        if init_weights is not None:
            # After the seeded initialisation, drawing nothing: a classifier that is not loaded keeps the weights
            # a run without --init-from starts from, and everything else draws the same.
            self.init_report = load_weights(encoder, self.model_args, init_weights, new_classifier=True)
        self.data = build_data(config, encoder_card(config.encoder).takes_joint)
        model = build_model(config, encoder, self.data.train.bank_labels).to(self.device)
        if config.compile:
            encoder.compile()  # in place: the state dict keeps its keys, checkpoints stay interchangeable
        self.optimizer, self.scheduler = build_optimizer(
            model, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay,
            warmup_epochs=config.warmup_epochs, steps=config.lr_steps, decay=config.lr_decay,
            optimizer=config.optimizer, epoch_decay=config.lr_epoch_decay)
        self.scaler = self.precision.grad_scaler()
        if is_distributed():
            # Buffers are synchronised before evaluation and saving (rank 0's BatchNorm statistics); the CSRE
            # banks never travel: every rank enqueues the whole global batch.
            model = wrap_ddp(model, self.device)
        self.model = model
        self.batches = EpochBatches(self.data.train_positions, config.batch_size // self.world.world_size,
                                    self.world, config.seed)
        if self.batches.batches_per_epoch == 0:
            raise ConfigError(f"the training part has {len(self.data.train_positions)} items, fewer than one "
                              f"batch of {config.batch_size}; lower --batch-size")
        seed_globals(config.seed, self.world.rank)

    def describe(self) -> None:
        config, data = self.config, self.data
        parameters = sum(p.numel() for p in encoder_of(self.model).parameters())
        head = sum(p.numel() for p in unwrap(self.model).parameters()) - parameters
        self.log.info("csre-train: %s%s on %s %s, stream %s, window %d", config.encoder,
                      " + CSRE" if config.csre else "", data.train.store.dataset.name, config.benchmark,
                      config.stream, config.window)
        self.log.info("store %s (fingerprint %s)", config.store, self.fingerprint["digest"])
        self.log.info("train items %d (%d samples%s), validation %d, test %d; bank slots %d",
                      len(data.train_positions), data.train.num_samples,
                      f" x repeat {data.train.repeat}" if data.train.repeat > 1 else "",
                      len(data.val_positions), len(data.test), len(data.train.bank_labels))
        self.log.info("encoder parameters %d, CSRE head parameters %d (training only)", parameters, head)
        if self.init_report is not None:
            self.log.info("%s", self.init_report.describe())
        self.log.info("device %s (%s%s), %d process(es), global batch %d, %d steps per epoch", self.device,
                      self.precision.describe(), ", encoder compiled" if config.compile else "",
                      self.world.world_size, config.batch_size,
                      self.batches.batches_per_epoch)
        self.log.info("model selection: %s", "best validation accuracy" if data.val is not None else
                      "none (the last epoch is the result; test accuracy is reported, never used to choose)")
        if config.csre:
            self.log.info("CSRE bank warm-up: the contrastive term stays 0 (the loss is CE alone) until a class "
                          "has %d written bank slots and the others %d; the log says when it starts, and the "
                          "total loss then rises by the contrastive term: that is not divergence",
                          config.csre_positives, config.csre_negatives)
        if config.deterministic:
            self.log.info("deterministic algorithms on (torch warns about any operation without a "
                          "deterministic implementation)")
        if self.board is None and config.tensorboard and self.world.is_main:
            self.log.info("TensorBoard event files: off (the tensorboard package is not installed)")

    # -- the contrastive term ------------------------------------------------------------------------
    def _contrast_active(self) -> Optional[bool]:
        """Whether the CSRE term can be non-zero yet (``None`` without CSRE)."""
        module = unwrap(self.model)
        return module.csre_head.is_active() if isinstance(module, CSREModel) else None

    def _note_contrast_start(self) -> None:
        if self.contrast_active is False and self._contrast_active():
            self.contrast_active = True
            self.log.info("step %d (epoch %d): the CSRE banks are warm; the contrastive term is active from "
                          "here on", self.position.global_step, self.position.epoch + 1)

    # -- checkpoints ---------------------------------------------------------------------------------
    def save(self, name: str) -> None:
        """Write ``name`` (``last.pt`` / ``best.pt``) with everything needed to continue exactly."""
        module = unwrap(self.model)
        if is_distributed():
            broadcast_buffers(module, exclude=_bank_buffers(module))
            self._check_banks_agree(module)
        rank_states = all_gather_objects({"rng": ckpt.capture_rng_state(), "meter": dataclasses.asdict(self.meter)})
        if self.world.is_main:
            ckpt.save_checkpoint(self.work.file(name), ckpt.TRAINING, {
                "model": module.state_dict(), "model_arguments": self.model_args,
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(), "position": dataclasses.asdict(self.position),
                "best_val": self.best_val, "world_size": self.world.world_size, "rank_states": rank_states,
                "config": dataclasses.asdict(self.config), "store_fingerprint": self.fingerprint})
        barrier()
        if name == "last.pt":
            self.last_checkpoint, self.steps_at_checkpoint = time.monotonic(), self.position.global_step

    def _after_step(self) -> None:
        """Checkpoint when ``checkpoint_every`` steps or ``checkpoint_minutes`` have passed, and stop (after
        a checkpoint) when a signal asked for it. Every rank takes the same decision."""
        config = self.config
        if self.position.batch == self.batches.batches_per_epoch:
            return      # the epoch's end: run() evaluates, saves, and then honours a stop request
        due = bool(config.checkpoint_every
                   and self.position.global_step - self.steps_at_checkpoint >= config.checkpoint_every)
        due = due or bool(config.checkpoint_minutes
                          and time.monotonic() - self.last_checkpoint >= 60 * config.checkpoint_minutes)
        signum = self.stop_signals.requested if self.stop_signals is not None else None
        if is_distributed():
            # Any rank's clock or signal decides for all: the save is collective.
            agreed = all_reduce_sum(torch.tensor([float(due), float(signum or 0)], dtype=torch.float64,
                                                 device=self.device)).tolist()
            due = agreed[0] > 0
            signum = (signum or signal.SIGTERM) if agreed[1] > 0 else None
        if due or signum:
            self.save("last.pt")
        if signum:
            self._interrupted(signum)

    def _record_progress(self, every_seconds: float = 15.0) -> None:
        """Write ``progress.json`` (epoch, batch, step, time) at most every ``every_seconds`` (0: now): what
        ``csre-study`` and other watchers show of a run whose own progress bar is off."""
        now = time.monotonic()
        if now - self.last_progress < every_seconds:
            return
        self.last_progress = now
        position = self.position
        self.work.write_json(PROGRESS_FILE, {
            "epoch": position.epoch + 1, "epochs": self.config.epochs, "batch": position.batch,
            "batches": self.batches.batches_per_epoch, "step": position.global_step,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")})

    def _interrupted(self, signum: int) -> None:
        position = self.position
        message = (f"stopped by {signal.Signals(signum).name} at step {position.global_step} (epoch "
                   f"{position.epoch + 1}, batch {position.batch}); last.pt saved: continue with "
                   f"csre-train --work-dir {self.work.path} --resume")
        self.log.info(message)
        raise TrainingInterrupted(signum, message)

    def _check_banks_agree(self, module: nn.Module) -> None:
        sums = [float(b.double().sum()) for b in _bank_buffers(module) if b.is_floating_point()]
        if len({tuple(s) for s in all_gather_objects(sums)}) > 1:
            raise RuntimeError("the ranks hold different CSRE memory banks; the distributed run is inconsistent")

    def restore(self, state: Dict[str, Any]) -> None:
        """Continue from ``state``, the work dir's ``last.pt``."""
        unwrap(self.model).load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state["scaler"] and self.scaler.is_enabled():  # empty when saved without loss scaling
            self.scaler.load_state_dict(state["scaler"])
        self.position = Position(**state["position"])
        self.best_val = state["best_val"]
        ranks = state["rank_states"]
        if self.world.world_size != state["world_size"] and self.position.batch:
            raise ConfigError(f"last.pt stopped inside an epoch of a {state['world_size']}-process job; resume it "
                              f"with {state['world_size']} processes")
        if self.world.rank < len(ranks):
            ckpt.restore_rng_state(ranks[self.world.rank]["rng"])
            self.meter = EpochMeter(**ranks[self.world.rank]["meter"])
        self.work.keep_metrics_up_to(self.position.global_step)
        self.contrast_active = self._contrast_active()
        self.log.info("resumed from %s: epoch %d, batch %d of it, step %d", self.work.file("last.pt"),
                      self.position.epoch + 1, self.position.batch, self.position.global_step)

    # -- loops ---------------------------------------------------------------------------------------
    def _steps_left(self) -> float:
        if self.config.max_steps is None:
            return math.inf
        return self.config.max_steps - self.position.global_step

    def train_epoch(self) -> bool:
        """Train the rest of the current epoch; ``False`` when ``max_steps`` stopped it before its end."""
        config, position = self.config, self.position
        self.batches.set_epoch(position.epoch, skip=position.batch)
        loader = DataLoader(SeededTrainingItems(self.data.train, config.seed), batch_sampler=self.batches,
                            num_workers=config.num_workers, pin_memory=self.device.type == "cuda",
                            generator=torch.Generator())
        self.model.train()
        bar = tqdm(total=self.batches.batches_per_epoch, initial=position.batch, file=sys.stderr,
                   desc=f"epoch {position.epoch + 1}/{config.epochs}", leave=False,
                   disable=not (config.progress and self.world.is_main))
        try:
            for batch in loader:
                outcome = self.train_step(batch)
                self.meter.add(*outcome)
                position.batch += 1
                position.global_step += 1
                self._note_contrast_start()
                self._board_step(outcome)
                self._record_progress()
                bar.update()
                postfix = {"loss": f"{self.meter.loss / max(self.meter.samples, 1):.4f}", "step": position.global_step}
                if self.contrast_active is False:
                    postfix["contrast"] = "warm-up"
                bar.set_postfix(postfix)
                if self._steps_left() <= 0:
                    break
                self._after_step()
        except RuntimeError:
            # A signal sent to the whole process group also ends the DataLoader's workers; the last step
            # completed is still consistent, so save it and stop as asked.
            signum = self.stop_signals.requested if self.stop_signals is not None else None
            if not signum or is_distributed():
                raise
            self.save("last.pt")
            self._interrupted(signum)
        finally:
            bar.close()
        return position.batch == self.batches.batches_per_epoch

    def _board_step(self, outcome: Tuple[float, float, float, int, int]) -> None:
        if self.board is None:
            return
        step = self.position.global_step
        self.board.add_scalar("train/loss", outcome[0], step)
        self.board.add_scalar("train/ce", outcome[1], step)
        if self.config.csre:
            self.board.add_scalar("train/contrast", outcome[2], step)
        self.board.add_scalar("train/lr", self.optimizer.param_groups[0]["lr"], step)

    def train_step(self, batch) -> Tuple[float, float, float, int, int]:
        """One optimizer step; returns (loss, CE, contrast, correct, samples) of the batch."""
        outcome = training_step(self.model, batch, self.optimizer, self.scaler, self.device, csre=self.config.csre,
                                csre_weight=self.config.csre_weight, precision=self.precision,
                                clip_grad_norm=self.config.clip_grad_norm)
        if not self.precision.uses_scaler and not math.isfinite(outcome[0]):
            raise FloatingPointError(self._non_finite_loss(outcome[0], batch))
        return outcome

    def _non_finite_loss(self, loss: float, batch) -> str:
        """What to tell when the loss is not finite: the step, the batch's samples, and whether their inputs
        were finite (a damaged store) or not (a diverging run)."""
        x, _, slots = batch[:3]
        train = self.data.train
        part_names = train.names
        names = [part_names[int(slot) % train.num_samples] for slot in slots]
        finite = torch.isfinite(x.reshape(len(x), -1)).all(dim=1).tolist()
        where = f"the loss is {loss} at step {self.position.global_step + 1} (epoch {self.position.epoch + 1})"
        shown = ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
        if all(finite):
            return f"{where}; every input of the batch ({shown}) was finite: the run diverged; lower --lr"
        bad = [name for name, ok in zip(names, finite) if not ok]
        return (f"{where}; the input of {', '.join(bad)} was not finite: {self.config.store} may be damaged, run "
                f"skeldata verify {self.config.store}")

    def evaluate_part(self, part: str) -> Scores:
        """Scores of the current encoder on ``test`` or ``val`` (BatchNorm statistics of rank 0)."""
        module = unwrap(self.model)
        if is_distributed():
            broadcast_buffers(module, exclude=_bank_buffers(module))
        dataset, positions = (self.data.test, None) if part == "test" else (self.data.val, self.data.val_positions)
        scores = evaluate(encoder_of(self.model), dataset, positions, self.device, self.config.test_batch_size,
                          self.config.num_workers, self.precision, self.world,
                          self.config.progress and self.world.is_main, part, clips=self.config.test_clips)
        self.model.train()
        return scores

    def end_of_evaluation(self, seconds: float, complete: bool) -> Tuple[Scores, Optional[Scores]]:
        """Evaluate, log and record the metrics line of the epoch in progress."""
        position = self.position
        test = self.evaluate_part("test")
        val = self.evaluate_part("val") if self.data.val is not None else None
        record = {"epoch": position.epoch + 1, "complete": complete, "step": position.global_step,
                  "lr": self.optimizer.param_groups[0]["lr"], **self.meter.averages(self.device),
                  "test_acc": test.accuracy(1), "test_top5": test.accuracy(5)}
        if not self.config.csre:
            record["contrast"] = None
        if val is not None:
            record["val_acc"] = val.accuracy(1)
        record["seconds"] = round(seconds, 3)
        self.work.append_metrics(record)
        if self.board is not None:
            for key in ("loss", "ce", "contrast", "train_acc", "test_acc", "test_top5", "val_acc"):
                if record.get(key) is not None:
                    self.board.add_scalar(f"epoch/{key}", record[key], record["epoch"])
            self.board.flush()
        self.log.info("epoch %d%s  step %d  lr %.4g  loss %.4f  ce %.4f%s  train acc %.4f  %stest acc %.4f "
                      "(top-5 %.4f)  %.1f s", record["epoch"], "" if complete else " (stopped by --max-steps)",
                      record["step"], record["lr"], record["loss"], record["ce"],
                      "" if record["contrast"] is None else f"  contrast {record['contrast']:.4f}",
                      record["train_acc"], "" if val is None else f"val acc {record['val_acc']:.4f}  ",
                      record["test_acc"], record["test_top5"], seconds)
        return test, val

    def run(self) -> TrainResult:
        config, position = self.config, self.position
        test = val = None
        while position.epoch < config.epochs and self._steps_left() > 0:
            started = time.perf_counter()
            if not self.train_epoch():
                self.save("last.pt")
                test, val = self.end_of_evaluation(time.perf_counter() - started, complete=False)
                break
            test, val = self.end_of_evaluation(time.perf_counter() - started, complete=True)
            self.scheduler.step()
            position.epoch, position.batch = position.epoch + 1, 0
            self.meter = EpochMeter()
            improved = val is not None and (self.best_val is None or val.accuracy(1) > self.best_val)
            if improved:
                self.best_val = val.accuracy(1)
            self.save("last.pt")
            if improved:
                self.save("best.pt")
            if self.stop_signals is not None and self.stop_signals.requested:
                self._interrupted(self.stop_signals.requested)
        return self.finish(test, val)

    def finish(self, test: Optional[Scores], val: Optional[Scores]) -> TrainResult:
        """Write the result: ``encoder.pt``, ``scores_test.npz`` (and ``scores_val.npz``), then ``result.json``."""
        selected = "last"
        # The epoch (1-based, as in metrics.jsonl) whose weights are the result.
        selected_epoch = self.position.epoch + (1 if self.position.batch else 0)
        if self.data.val is not None and self.work.file("best.pt").exists():
            best = ckpt.load_checkpoint(self.work.file("best.pt"), ckpt.TRAINING)
            unwrap(self.model).load_state_dict(best["model"])
            selected = f"best.pt (epoch {best['position']['epoch']}, val acc {best['best_val']:.4f})"
            selected_epoch = int(best["position"]["epoch"])
            test = val = None
        if test is None:
            test = self.evaluate_part("test")
            val = self.evaluate_part("val") if self.data.val is not None else None
        if self.world.is_main:
            save_scores(self.work.file("scores_test.npz"), with_part_metadata(test, self.data.test, "test"))
            if val is not None:
                save_scores(self.work.file("scores_val.npz"), with_part_metadata(val, self.data.val, "val"))
            ckpt.save_checkpoint(self.work.file("encoder.pt"), ckpt.ENCODER, {
                "model": encoder_of(self.model).state_dict(), "model_arguments": self.model_args,
                "config": dataclasses.asdict(self.config), "store_fingerprint": self.fingerprint,
                "position": dataclasses.asdict(self.position)})
            self.work.write_json(RESULT_FILE, {
                "selection": "val" if self.data.val is not None else "last", "selected_epoch": selected_epoch,
                "epochs_done": self.position.epoch, "epochs": self.config.epochs,
                "global_step": self.position.global_step, "complete": self.position.epoch >= self.config.epochs,
                "test_top1": test.accuracy(1), "test_top5": test.accuracy(5),
                "val_top1": None if val is None else val.accuracy(1), "stream": self.config.stream,
                "csre": self.config.csre, "seed": self.config.seed})
        if self.board is not None:
            self.board.close()
            self.board = None
        barrier()
        self.log.info("result (%s weights): test acc %.4f, top-5 %.4f%s; wrote scores_test.npz and encoder.pt in %s",
                      selected, test.accuracy(1), test.accuracy(5),
                      "" if val is None else f", val acc {val.accuracy(1):.4f}", self.work.path)
        return TrainResult(self.work.path, self.position.global_step, self.position.epoch, test.accuracy(1),
                           test.accuracy(5), selected, None if val is None else val.accuracy(1))


class TrainingInterrupted(Exception):
    """A run stopped by SIGTERM or SIGINT after saving a resumable ``last.pt``; ``exit_code`` is the shell's
    ``128 + signal`` (143 for SIGTERM, 130 for SIGINT)."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum


class StopSignals:
    """While active (a context manager), SIGTERM and SIGINT only record that a stop was asked for; the
    trainer checks :attr:`requested` after every step, saves ``last.pt`` and stops. Clusters send SIGTERM
    before they preempt a job; Ctrl-C sends SIGINT. A second SIGINT interrupts at once, as usual."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.requested: Optional[int] = None
        self._previous: Dict[int, Any] = {}

    def _handle(self, signum, frame) -> None:
        if self.requested == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = signum

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()


def _tensorboard_writer(work: "WorkDir"):
    """A SummaryWriter on ``<work dir>/tensorboard``, or ``None`` when tensorboard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(log_dir=str(work.file("tensorboard")))


def train(config: TrainConfig, resume: bool = False, file_values: Optional[Dict[str, Any]] = None,
          explicit: Optional[Dict[str, Any]] = None) -> TrainResult:
    """Run (or with ``resume`` continue) the training job ``config``; see the module docstring.

    ``config`` is the resolved configuration. A resumed run continues the one in ``config.work_dir`` (when
    unset, the default work dir of ``config``); its configuration is the checkpoint's with ``file_values``
    (of ``--config``) and ``explicit`` (the flags given on the command line) applied over it.
    """
    world = world_info_from_env()
    changes: List[Tuple[str, Any, Any]] = []
    state: Dict[str, Any] = {}
    init_weights: Optional[Weights] = None
    if resume:
        # With --work-dir the stored configuration supplies everything else; without, the work dir is the
        # default one of the configuration given.
        work_dir = config.work_dir or prepare_config(config).work_dir
        last = Path(work_dir) / "last.pt"
        if not last.exists():
            raise ConfigError(f"--resume: {last} does not exist; nothing to resume")
        state = ckpt.load_checkpoint(last, ckpt.TRAINING)
        config, changes = resumed_config(state["config"], work_dir, file_values or {}, explicit or {})
        ckpt.check_fingerprint(state["store_fingerprint"], ckpt.store_fingerprint(config.store), config.store)
    else:
        config = prepare_config(config)
        if (Path(config.work_dir) / "last.pt").exists():
            raise ConfigError(f"{config.work_dir} already holds a run (last.pt); continue it with --resume or "
                              f"choose another --work-dir")
        if config.init_from:
            init_weights = read_weights(config.init_from)   # before the work dir exists: a bad file leaves nothing
    if config.batch_size % world.world_size:
        raise ConfigError(f"--batch-size {config.batch_size} is the global batch; it must divide evenly over the "
                          f"{world.world_size} processes")
    apply_runtime_options(config.threads, config.deterministic)
    device = init_distributed(resolve_device(config.device), world)
    work = WorkDir(Path(config.work_dir), world)
    try:
        removed = [] if resume else work.forget_unfinished()
        stale = work.remove_stale_temporaries()
        trainer = Trainer(config, world, device, work, init_weights)
        del init_weights
        if world.is_main:
            dump_config(config, work.file("config.yaml"))
        trainer.describe()
        if removed:
            trainer.log.info("fresh start: removed %s of an earlier attempt that stopped before its first "
                             "checkpoint", " and ".join(removed))
        if stale:
            trainer.log.info("removed temporary files that a killed run left: %s", ", ".join(stale))
        if resume:
            for name, old, new in changes:
                trainer.log.info("resume: %s changed from %r to %r", name, old, new)
            trainer.restore(state)
            del state
        if world.is_main:
            env = runinfo.environment(device, trainer.fingerprint)
            if trainer.init_report is not None:
                env["init_from"] = trainer.init_report.as_dict()
            runinfo.record_environment(work.path, env, resumed_at_step=trainer.position.global_step if resume else None)
        with StopSignals() as stop_signals:
            trainer.stop_signals = stop_signals
            return trainer.run()
    finally:
        work.close()
        shutdown_distributed()
