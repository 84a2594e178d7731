"""The training configuration: one dataclass whose fields are the ``csre-train`` flags.

A YAML config file holds some of these fields under their flag names (``batch_size`` or ``batch-size``:
both spellings are accepted). A run resolves its configuration in this order, later winning::

    dataclass defaults  <  --config FILE.yaml  <  flags given explicitly on the command line

and writes the result to ``<work dir>/config.yaml``, which is itself a valid ``--config`` file. A resumed
run starts from the configuration stored in its checkpoint instead of the defaults; the fields that define
what is being trained (:data:`FIXED_ON_RESUME`) may not change then.

``window`` and ``work_dir`` may stay unset: :func:`default_window` and :func:`default_work_dir` fill them
from the encoder's card and the store's layout, and from the run's identity.

Every check of a configuration is here: the types and names of its fields (:func:`resolve_config`), what a
resumed run may change (:func:`check_resume_changes`, :func:`resumed_config`) and whether it can run on its
store, encoder and device (:func:`prepare_config`), each failure a :class:`ConfigError` with a one-line reason.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

import yaml

from skeldata.pipeline.streams import TRAINING_STREAMS

from .errors import ConfigError

__all__ = ["TrainConfig", "ConfigError", "FIXED_ON_RESUME", "STREAMS", "config_fields", "load_config_file",
           "resolve_config", "config_from_dict", "dump_config", "check_resume_changes", "prepare_config",
           "resumed_config", "default_window", "default_work_dir"]

#: The input streams a model can be trained on (``SkeletonDataset``'s ``stream``).
STREAMS = tuple(TRAINING_STREAMS)

#: Fields that define the model, its data and the optimiser state: a resumed run must keep them.
FIXED_ON_RESUME = ("benchmark", "encoder", "encoder_options", "init_from", "stream", "csre", "window", "spine_relative",
                   "crop", "pipeline",
                   "val_fraction", "batch_size", "seed", "csre_dim", "csre_reduction", "optimizer")


def _option(default, help_text: str) -> Any:
    """A dataclass field carrying the help text of its command-line flag."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help_text})
    return field(default=default, metadata={"help": help_text})


@dataclass
class TrainConfig:
    """Everything a training run depends on. Defaults: CTR-GCN's NTU recipe (``configs/`` has the rest)."""

    store: Optional[str] = _option(None, "Store to train from (skeldata build).")
    dataset: Optional[str] = _option(None, "Data set the configuration was written for (ntu60, ntu120, ucla): a "
                                           "store of another data set is refused. Unset: any store.")
    benchmark: Optional[str] = _option(None, "Benchmark of the store (ntu60: xsub, xview; ntu120: xsub, xset; "
                                             "ucla: xview). Optional when the store has only one.")
    encoder: str = _option("ctrgcn", "Encoder (csre_models.list_encoders()).")
    encoder_options: Dict[str, Any] = _option({}, "Encoder-specific keyword arguments of create_encoder (a YAML "
                                                  "mapping; on the command line KEY=VALUE, repeatable).")
    init_from: Optional[str] = _option(None, "Start from these encoder weights instead of a random initialisation: a "
                                             "state dict in the official repository's key layout (module. prefix "
                                             "and {'state_dict': ...} wrappers accepted) or a csre_models "
                                             "checkpoint / encoder.pt. The classifier is loaded only when its "
                                             "class count matches the store's, else re-initialised. Not with "
                                             "--resume.")
    stream: str = _option("joint", "Input stream: " + ", ".join(STREAMS) + ".")
    csre: bool = _option(True, "Train with the CSRE head (STFD + memory-bank contrast); --no-csre trains the "
                               "plain encoder.")
    epochs: int = _option(65, "Training epochs.")
    batch_size: int = _option(64, "Global training batch (split evenly over the processes of a torchrun job).")
    test_batch_size: int = _option(64, "Evaluation batch per process.")
    test_clips: int = _option(1, "Temporal clips per test sample whose softmax probabilities are averaged, as PYSKL's "
                                 "multi-clip testing (1: the single deterministic test input). Clip 0 is that "
                                 "input; clip k > 0 a training-style temporal crop drawn with seed (255, k).")
    optimizer: str = _option("sgd", "Optimiser: sgd (Nesterov momentum, the GCN recipes) or adam (betas 0.9, "
                                    "0.999: HCN's).")
    lr: float = _option(0.1, "Base learning rate, reached at the end of the warm-up.")
    momentum: float = _option(0.9, "SGD momentum (Nesterov); adam does not use it.")
    weight_decay: float = _option(4e-4, "Weight decay (L2, added to the gradient) of either optimiser.")
    warmup_epochs: int = _option(5, "Epochs of linear warm-up: lr * (epoch + 1) / warmup_epochs.")
    lr_steps: List[int] = _option([35, 55], "Epochs at which the learning rate is multiplied by lr_decay "
                                            "(comma-separated).")
    lr_decay: float = _option(0.1, "Factor applied at each of lr_steps.")
    lr_epoch_decay: float = _option(1.0, "Factor applied at the end of every epoch after the warm-up, on top of "
                                         "lr_steps: lr * lr_epoch_decay ** (epoch - warmup_epochs) (1: none).")
    clip_grad_norm: Optional[float] = _option(None, "Clip the L2 norm of all gradients together to this value "
                                                    "before each step (default: no clipping).")
    window: Optional[int] = _option(None, "Frames per sample (default: the encoder's recipes', 64 for NTU and 52 for "
                                          "NW-UCLA).")
    spine_relative: bool = _option(False, "Joints relative to the spine, its trajectory kept (the "
                                          "Hyperformer / BlockGCN feeders).")
    crop: bool = _option(True, "NTU: valid-frame crop resized to the window (the CTR-GCN-family feeders); "
                               "--no-crop feeds the first window frames as stored, as 2s-AGCN's feeder does "
                               "on its 300-frame data (a --pipeline stgcn store with window 300), e.g. "
                               "--no-crop --window 300.")
    pipeline: Optional[str] = _option(None, "The skeldata build --pipeline the store must come from: sgn or "
                                            "stgcn (e.g. pipeline: stgcn in configs/agcn/ntu60-xsub-stgcn-joint.yaml); "
                                            "unset: any.")
    random_rot: bool = _option(True, "Random rotation of NTU training inputs, up to 0.3 rad about each axis "
                                     "(CTR-GCN's feeder); --no-random-rot as HCN's. NW-UCLA has its own "
                                     "augmentation, always on.")
    val_fraction: float = _option(0.0, "Fraction of the training part held out (seeded) as a validation set; "
                                       "when > 0 the best checkpoint is chosen on it. 0: no selection, the "
                                       "last epoch is the result.")
    csre_weight: float = _option(1.0, "w in CE + w * (L_spa + L_tem) / 2 (1: the released code).")
    csre_dim: int = _option(256, "Size of the spatial and temporal CSRE features.")
    csre_reduction: int = _option(8, "Channel reduction r of the STFD 1x1 convolutions.")
    csre_positives: int = _option(128, "Hard positives per anchor.")
    csre_negatives: int = _option(512, "Hard negatives, and random negatives, per anchor.")
    csre_temperature: float = _option(0.8, "Temperature of the contrastive loss.")
    precision: Optional[str] = _option(None, "Numeric precision: fp32, bf16 (bfloat16 autocast; CPU or GPU) or fp16 "
                                             "(float16 autocast + GradScaler; CUDA only). Default: fp16 on CUDA "
                                             "(the recipes' AMP), fp32 on the CPU.")
    compile: bool = _option(False, "Compile the encoder with torch.compile (inductor) before training; the first "
                                   "steps are slower while it compiles. Weights and checkpoints are unchanged.")
    device: Optional[str] = _option(None, "cpu, cuda or cuda:N (default: cuda when available).")
    seed: int = _option(1, "Seed of the weights, the data order, the augmentations and the CSRE sampling.")
    max_steps: Optional[int] = _option(None, "Stop after this many optimizer steps in total, counted across "
                                             "resumes, then evaluate and write the results.")
    checkpoint_every: Optional[int] = _option(None, "Also write last.pt every N optimizer steps (default: only at "
                                                    "epoch ends and by time, --checkpoint-minutes).")
    checkpoint_minutes: float = _option(10.0, "Also write last.pt when this many minutes have passed since the last "
                                              "checkpoint (0: never by time). A killed run loses at most this much.")
    num_workers: int = _option(2, "DataLoader worker processes per training process.")
    threads: Optional[int] = _option(None, "CPU threads of torch in each training process (default: torch's "
                                           "own choice, usually one per core).")
    deterministic: bool = _option(False, "Use only deterministic algorithms (torch.use_deterministic_algorithms, "
                                         "cuDNN deterministic, no cuDNN benchmark); slower on CUDA.")
    tensorboard: bool = _option(True, "Also write TensorBoard event files (per-step loss, contrast and lr; per-"
                                      "epoch accuracies) to <work dir>/tensorboard when the tensorboard package "
                                      "is installed. metrics.jsonl stays the record.")
    work_dir: Optional[str] = _option(None, "Output folder (default: work_dirs/<encoder>[-csre]-<dataset>-"
                                            "<benchmark>-<stream>).")
    progress: bool = _option(True, "Show a progress bar on stderr.")


def config_fields() -> List[dataclasses.Field]:
    """The fields of :class:`TrainConfig`, in declaration order."""
    return list(dataclasses.fields(TrainConfig))


_TYPES = typing.get_type_hints(TrainConfig)


def _coerce(name: str, value: Any) -> Any:
    """``value`` converted to the type of field ``name``, or a :class:`ConfigError` saying what was expected."""
    kind = _TYPES[name]
    if value is None:
        if typing.get_origin(kind) is typing.Union and type(None) in typing.get_args(kind):
            return None
        raise ConfigError(f"{name}: a value is required")
    if typing.get_origin(kind) is typing.Union:
        kind = next(arg for arg in typing.get_args(kind) if arg is not type(None))
    try:
        if kind is bool:
            return _to_bool(name, value)
        if typing.get_origin(kind) is dict:
            if not isinstance(value, dict):
                raise TypeError
            return {str(key): item for key, item in value.items()}
        if typing.get_origin(kind) is list:
            items = value.split(",") if isinstance(value, str) else value
            return [int(item) for item in items if str(item).strip() != ""]
        if kind is int and (isinstance(value, bool) or float(value) != int(float(value))):
            raise TypeError
        return kind(value)
    except (TypeError, ValueError):
        expected = {bool: "true or false", int: "an integer", float: "a number", str: "text"}.get(
            kind, "a mapping" if typing.get_origin(kind) is dict else "a list of integers")
        raise ConfigError(f"{name}: expected {expected}, got {value!r}") from None


def _legacy_amp(values: Mapping[str, Any]) -> Dict[str, Any]:
    """``amp`` of configurations and checkpoints written before ``precision`` existed: ``amp: false`` is
    ``precision: fp32``; ``amp: true`` was the default (fp16 on CUDA, fp32 on the CPU)."""
    values = dict(values)
    amp = values.pop("amp", None)
    if amp is not None and not _to_bool("amp", amp) and "precision" not in values:
        values["precision"] = "fp32"
    return values


def _to_bool(name: str, value: Any) -> bool:
    if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no"):
        return value.lower() in ("true", "yes")
    if not isinstance(value, bool):
        raise ConfigError(f"{name}: expected true or false, got {value!r}")
    return value


def _normalise_keys(values: Mapping[str, Any], source: str) -> Dict[str, Any]:
    """Keys with ``-`` spelled ``_``, checked against the fields; values coerced to the field types."""
    known = {f.name for f in config_fields()}
    out = {}
    for key, value in _legacy_amp(values).items():
        name = str(key).replace("-", "_")
        if name not in known:
            raise ConfigError(f"{source}: unknown key {key!r}; known keys: {', '.join(sorted(known))}")
        out[name] = _coerce(name, value)
    return out


def load_config_file(path: str) -> Dict[str, Any]:
    """The fields set by a YAML config file (a mapping of flag names to values)."""
    try:
        with open(path, encoding="utf-8") as handle:
            values = yaml.safe_load(handle)
    except OSError as exc:
        raise ConfigError(f"--config {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--config {path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigError(f"--config {path}: expected a mapping of flag names to values, "
                          f"got {type(values).__name__}")
    return _normalise_keys(values, f"--config {path}")


def resolve_config(file_values: Optional[Mapping[str, Any]] = None,
                   explicit: Optional[Mapping[str, Any]] = None,
                   base: Optional[TrainConfig] = None) -> TrainConfig:
    """``base`` (the defaults, or a resumed run's configuration) overridden by the config file's values,
    then by the explicitly given flags."""
    values = dataclasses.asdict(base or TrainConfig())
    values.update(_normalise_keys(file_values or {}, "config"))
    values.update(_normalise_keys(explicit or {}, "flags"))
    return TrainConfig(**values)


def config_from_dict(values: Mapping[str, Any]) -> TrainConfig:
    """A configuration stored as a dictionary (in a checkpoint), unknown keys refused."""
    return TrainConfig(**_normalise_keys(values, "stored config"))


def dump_config(config: TrainConfig, path: Path) -> None:
    """Write ``config`` as YAML, in field order, loadable with ``--config``."""
    with open(path, "w", encoding="utf-8") as handle:
        yaml.safe_dump(dataclasses.asdict(config), handle, sort_keys=False, default_flow_style=None)


def check_resume_changes(stored: TrainConfig, requested: TrainConfig) -> List[Tuple[str, Any, Any]]:
    """The fields that differ between a checkpoint's configuration and the resumed run's.

    Raises :class:`ConfigError` when one of :data:`FIXED_ON_RESUME` differs; returns the other changes as
    ``(name, stored value, new value)`` so the caller can log them.
    """
    changes = [(f.name, getattr(stored, f.name), getattr(requested, f.name)) for f in config_fields()
               if getattr(stored, f.name) != getattr(requested, f.name)]
    fixed = [change for change in changes if change[0] in FIXED_ON_RESUME]
    if fixed:
        described = "; ".join(f"{name}: {old!r} -> {new!r}" for name, old, new in fixed)
        raise ConfigError(f"--resume cannot change what is trained ({described}); start a new run in another "
                          f"--work-dir instead")
    return changes


def prepare_config(config: TrainConfig) -> TrainConfig:
    """``config`` checked against the store and the registry, with ``window`` and ``work_dir`` filled in.

    Raises :class:`ConfigError` with a one-line reason for anything that cannot run.
    """
    # Imported here, not at the top: this module stays light (no torch, no HDF5) for the command line's
    # --help.
    from skeldata import open_store
    from skeldata.errors import StoreError

    from .data import check_store
    from .encoders import list_encoders
    from .precision import resolve_precision
    from .runtime import resolve_device
    from .schedule import OPTIMIZERS

    if not config.store:
        raise ConfigError("--store is required (a store written by skeldata build)")
    if config.encoder not in list_encoders():
        raise ConfigError(f"unknown encoder {config.encoder!r}; known: {', '.join(list_encoders())}")
    if config.stream not in STREAMS:
        raise ConfigError(f"unknown stream {config.stream!r}; known: {', '.join(STREAMS)}")
    numbers = {"epochs": 1, "batch_size": 1, "test_batch_size": 1, "test_clips": 1, "num_workers": 0, "seed": 0,
               "warmup_epochs": 0, "csre_positives": 1, "csre_negatives": 1, "csre_dim": 1, "csre_reduction": 1}
    for name, least in numbers.items():
        if getattr(config, name) < least:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least {least}, got {getattr(config, name)}")
    if config.checkpoint_every is not None and config.checkpoint_every < 1:
        raise ConfigError(f"--checkpoint-every must be at least 1, got {config.checkpoint_every}")
    if config.checkpoint_minutes < 0:
        raise ConfigError(f"--checkpoint-minutes must be 0 (off) or more, got {config.checkpoint_minutes}")
    if config.threads is not None and config.threads < 1:
        raise ConfigError(f"--threads must be at least 1, got {config.threads}")
    if config.max_steps is not None and config.max_steps < 0:
        raise ConfigError(f"--max-steps must be at least 0, got {config.max_steps}")
    if not 0 <= config.val_fraction < 1:
        raise ConfigError(f"--val-fraction must be in [0, 1), got {config.val_fraction}")
    if config.pipeline not in (None, "sgn", "stgcn"):
        raise ConfigError(f"unknown pipeline {config.pipeline!r}; known: sgn, stgcn")
    if config.optimizer not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer {config.optimizer!r}; known: {', '.join(OPTIMIZERS)}")
    for name in ("lr_epoch_decay", "clip_grad_norm"):
        if getattr(config, name) is not None and getattr(config, name) <= 0:
            raise ConfigError(f"--{name.replace('_', '-')} must be positive, got {getattr(config, name)}")
    try:
        check_store(config.store)
        with open_store(config.store) as store:
            benchmarks, layout, dataset = store.benchmarks, store.layout.name, store.dataset.name
            classes, pipeline = store.num_classes, store.pipeline
    except StoreError as exc:
        raise ConfigError(f"--store: {exc}") from None
    if config.dataset is not None and config.dataset != dataset:
        raise ConfigError(f"the configuration is for {config.dataset} but {config.store} holds {dataset} ({layout}, "
                          f"{classes} classes); use a {dataset} config (configs/<encoder>/{dataset}-...) or "
                          f"another store")
    if config.pipeline is not None and layout == "ntu25" and config.pipeline != pipeline:
        raise ConfigError(f"the configuration is for a store built with --pipeline {config.pipeline} but "
                          f"{config.store} was built with --pipeline {pipeline}")
    if not config.crop and layout != "ntu25":
        raise ConfigError(f"--no-crop: NTU stores only; {config.store} ({dataset}) has its own frame sampling")
    if not config.random_rot and layout != "ntu25":
        raise ConfigError(f"--no-random-rot: the random rotation is the NTU feeder's; {config.store} ({dataset}) "
                          f"has its own training augmentation")
    benchmark = config.benchmark
    if benchmark is None and len(benchmarks) == 1:
        benchmark = benchmarks[0]
    if benchmark not in benchmarks:
        given = "--benchmark is required" if benchmark is None else f"--benchmark {benchmark}: not in this store"
        raise ConfigError(f"{given}; {config.store} ({dataset}) has {', '.join(benchmarks) or 'no benchmark'}")
    config = dataclasses.replace(config, benchmark=benchmark, window=config.window or default_window(layout, config.encoder))
    if config.work_dir is None:
        config = dataclasses.replace(config, work_dir=default_work_dir(config, dataset))
    resolve_precision(config.precision, resolve_device(config.device))
    return config


def resumed_config(stored_values: Mapping[str, Any], work_dir: str, file_values: Mapping[str, Any],
                   explicit: Mapping[str, Any]) -> Tuple[TrainConfig, List[Tuple[str, Any, Any]]]:
    """The configuration of a resumed run, prepared (:func:`prepare_config`): the one stored in its checkpoint
    (``stored_values``), overridden by the config file and the flags given now, and the fields that changed.
    Changing what is trained is refused (:func:`check_resume_changes`); the caller also checks that the store's
    content is the same (:func:`~csre_models.checkpoint.check_fingerprint`)."""
    stored = config_from_dict(stored_values)
    resumed = prepare_config(dataclasses.replace(resolve_config(file_values, explicit, base=stored),
                                                 work_dir=work_dir))
    return resumed, check_resume_changes(stored, resumed)


def default_window(layout: str, encoder: str) -> int:
    """The window of ``encoder``'s published recipes on a joint layout (its card's: 64 frames on NTU, 52 on
    NW-UCLA for every shipped encoder)."""
    from .encoders import encoder_card

    return encoder_card(encoder).window(layout)


def default_work_dir(config: TrainConfig, dataset: str) -> str:
    """``work_dirs/<encoder>[-csre]-<dataset>-<benchmark>-<stream>``."""
    model = f"{config.encoder}-csre" if config.csre else config.encoder
    return str(Path("work_dirs") / f"{model}-{dataset}-{config.benchmark}-{config.stream}")
