"""The ``csre-train``, ``csre-eval`` and ``csre-ensemble`` commands: thin click wrappers around
:mod:`csre_models.engine` and :mod:`csre_models.ensemble`.

Every field of :class:`csre_models.config.TrainConfig` is a ``csre-train`` flag of the same name
(``batch_size`` -> ``--batch-size``), so a YAML config file and the command line speak the same language.
``python -m cli.train`` runs ``csre-train``.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import click
import yaml
from click.core import ParameterSource

from ._common import reports_errors

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 110}


# ------------------------------------------------------------------------------------------ csre-train

def _config_options(fn: Callable) -> Callable:
    """One click option per :class:`TrainConfig` field, defaults and help taken from the dataclass."""
    import typing

    from csre_models.config import TrainConfig, config_fields

    hints = typing.get_type_hints(TrainConfig)
    for spec in reversed(config_fields()):
        flag = "--" + spec.name.replace("_", "-")
        kind = hints[spec.name]
        if typing.get_origin(kind) is typing.Union:
            kind = next(arg for arg in typing.get_args(kind) if arg is not type(None))
        default = spec.default_factory() if callable(spec.default_factory) else spec.default
        help_text = spec.metadata["help"]
        if kind is bool:
            option = click.option(f"{flag}/--no-{flag[2:]}", spec.name, default=default, show_default=True,
                                  help=help_text)
        elif spec.name == "encoder_options":
            option = click.option("--encoder-option", spec.name, multiple=True, metavar="KEY=VALUE",
                                  help=help_text)
        elif spec.name == "lr_steps":
            option = click.option(flag, spec.name, default=",".join(map(str, default)), show_default=True,
                                  metavar="E1,E2,...", help=help_text)
        else:
            option = click.option(flag, spec.name, type=kind, default=default, help=help_text,
                                  show_default=default is not None)
        fn = option(fn)
    return fn


def _explicit_values(ctx: click.Context, values: Dict[str, Any]) -> Dict[str, Any]:
    """The configuration values given on the command line (not left at their defaults)."""
    from csre_models.config import config_fields

    explicit = {}
    for spec in config_fields():
        if ctx.get_parameter_source(spec.name) in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT):
            explicit[spec.name] = values[spec.name]
    if "encoder_options" in explicit:
        explicit["encoder_options"] = _key_values(explicit["encoder_options"], "--encoder-option")
    return explicit


def _key_values(items: Sequence[str], flag: str) -> Dict[str, Any]:
    """``KEY=VALUE`` items as a mapping, each value read as YAML (``faithful=false`` is a boolean)."""
    from csre_models.config import ConfigError

    pairs = {}
    for item in items:
        key, separator, text = item.partition("=")
        if not separator or not key:
            raise ConfigError(f"{flag} {item!r}: expected KEY=VALUE")
        pairs[key] = yaml.safe_load(text)
    return pairs


@click.command(context_settings=CONTEXT)
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              help="YAML file of flag values (keys as the flags without dashes); flags given here win.")
@click.option("--resume", is_flag=True,
              help="Continue the run in the work dir from its last.pt, exactly where it stopped (same store "
                   "required). Flags given now override the stored configuration, except those that change "
                   "what is trained.")
@click.option("--auto-resume", is_flag=True,
              help="Resume when the work dir holds a run (last.pt), else start one: the same command serves a "
                   "job that a cluster may stop and start again (csre-study --plan prints such commands).")
@_config_options
@click.pass_context
@reports_errors("csre-train")
def train(ctx: click.Context, config_file: str, resume: bool, auto_resume: bool, **values) -> None:
    """Train a skeleton encoder, with CSRE by default, from a skeldata store.

    Configuration: defaults < --config FILE.yaml < flags given on the command line; the result is written
    to <work dir>/config.yaml. The work dir also receives log.txt, metrics.jsonl (one line per epoch),
    last.pt (everything needed by --resume), encoder.pt (the plain encoder: CSRE is training-only) and
    scores_test.npz.

    Model selection: with --val-fraction F a seeded fraction F of the training samples is held out, and
    the epoch of best validation accuracy is the result (best.pt). Without it nothing is selected: the last
    epoch is the result and the test accuracy is only reported. Nothing is ever chosen on the test set.

    Initialisation: --init-from FILE loads encoder weights before the first step, from an official
    repository's state dict or a csre_models checkpoint; the classifier too when the class counts match,
    else it is re-initialised (the log and env.json say which). A new run only: not with --resume.

    Distributed: run the same command under torchrun (one process per GPU, or per CPU share with gloo);
    --batch-size stays the global batch.

    \b
    Example:
      csre-train --store ucla.h5 --benchmark xview --encoder ctrgcn --stream joint --device cpu
      csre-train --config configs/ctrgcn/ntu60-xsub-joint.yaml --store ntu60.h5 --val-fraction 0.05
      csre-train --config configs/ctrgcn/ntu60-xsub-joint.yaml --store ntu60.h5 --resume
      csre-train --store ntu60.h5 --benchmark xsub --encoder ctrgcn --no-csre --max-steps 20
      csre-train --config configs/ctrgcn/ntu120-xsub-joint.yaml --store ntu120.h5 --init-from ctrgcn_ntu60.pt
      torchrun --nproc_per_node=2 --no-python csre-train --config configs/ctrgcn/ntu60-xsub-joint.yaml \\
               --store ntu60.h5
    """
    from csre_models.config import load_config_file, prepare_config, resolve_config
    from csre_models.engine import train as run_training

    from csre_models.config import ConfigError

    file_values = load_config_file(config_file) if config_file else {}
    explicit = _explicit_values(ctx, values)
    if resume and explicit.get("init_from"):
        raise ConfigError("--init-from starts a new run from given weights; --resume continues a run from its "
                          "last.pt: give one of them")
    config = resolve_config(file_values, explicit)
    if auto_resume and not resume:
        work_dir = config.work_dir or prepare_config(config).work_dir
        resume = (Path(work_dir) / "last.pt").exists()
    from csre_models.engine import TrainingInterrupted

    try:
        run_training(config, resume=resume, file_values=file_values, explicit=explicit)
    except TrainingInterrupted as exc:
        click.echo(f"csre-train: {exc}", err=True)
        sys.exit(exc.exit_code)


# --------------------------------------------------------------------------------- reports and figures

def _report_options(fn: Callable) -> Callable:
    """``--report``, ``--confusion`` and ``--overwrite``, shared by csre-eval and csre-ensemble."""
    fn = click.option("--overwrite", is_flag=True,
                      help="Replace --out, --report and --confusion if they exist (by default an existing path "
                           "is refused).")(fn)
    fn = click.option("--confusion", type=click.Path(dir_okay=False), default=None,
                      help="Write the confusion matrix (true action down, predicted across, rows normalised) to "
                           "this image (.png); needs matplotlib: pip install '.[plot]'.")(fn)
    return click.option("--report", type=click.Path(dir_okay=False), default=None,
                        help="Write top-1, top-5, mean class accuracy and per-class accuracy (JSON).")(fn)


def _write_report_and_figure(scores, report: Optional[str], confusion: Optional[str], title: str,
                             **details: Any) -> None:
    """``--report``: the classification report of ``scores`` with ``details`` added; ``--confusion``: its
    confusion matrix as an image. Both name the classes by action."""
    import json

    from csre_models.ensemble import class_names_of, classification_report, confusion_matrix

    names = class_names_of(scores)
    if report:
        content = {**classification_report(scores, names), **details}
        with open(report, "w", encoding="utf-8") as handle:
            json.dump(content, handle, indent=1, allow_nan=False)
            handle.write("\n")
        click.echo(f"wrote {report}")
    if confusion:
        from csre_models.figures import plot_confusion_matrix
        plot_confusion_matrix(confusion_matrix(scores.logits, scores.labels, len(names)), names, confusion, title)
        click.echo(f"wrote {confusion}")


# ------------------------------------------------------------------------------------------- csre-eval

@click.command(context_settings=CONTEXT)
@click.option("--checkpoint", required=True, type=click.Path(dir_okay=False),
              help="A training checkpoint (last.pt, best.pt), an exported encoder.pt, or (with --encoder) a state "
                   "dict in the official repository's key layout.")
@click.option("--store", required=True, type=click.Path(dir_okay=False), help="Store to evaluate on.")
@click.option("--benchmark", default=None, help="Benchmark (default: the one the model was trained on).")
@click.option("--part", default="test", show_default=True, type=click.Choice(["test", "val", "train"]),
              help="Part of the benchmark, test-time transforms either way. val: the samples the run held out "
                   "with --val-fraction (drawn again from its stored fraction and seed).")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Score file to write (.npz).")
@_report_options
@click.option("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available).")
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(min=1))
@click.option("--num-workers", default=2, show_default=True, type=click.IntRange(min=0))
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress bar on stderr.")
@click.option("--clips", default=None, type=click.IntRange(min=1),
              help="Temporal clips per sample whose softmax probabilities are averaged (PYSKL's multi-clip "
                   "testing; scores = log of the mean probabilities). Default: the run's test_clips, else 1.")
@click.option("--precision", default=None, type=click.Choice(["fp32", "bf16", "fp16"]),
              help="Autocast of the forward pass: fp32, bf16 (CPU or GPU) or fp16 (CUDA). Default: the precision "
                   "the run trained in (the device's default where it cannot run that), fp32 for official weights.")
@click.option("--encoder", default=None,
              help="Encoder of an official state dict (a name of csre_models.list_encoders(), e.g. ctrgcn): a "
                   "--checkpoint that is not a csre_models checkpoint is read in its official key layout.")
@click.option("--reference-weights", is_flag=True,
              help="Read --checkpoint as an official state dict even if it is a csre_models checkpoint.")
@click.option("--stream", default=None, help="Official weights: input stream (default joint).")
@click.option("--window", default=None, type=click.IntRange(min=1),
              help="Official weights: frames per input (default: 64 NTU, 52 NW-UCLA).")
@click.option("--spine-relative/--no-spine-relative", default=None,
              help="Official weights: the feeder variant (default: the encoder's published recipe, spine-relative "
                   "for hyperformer and for blockgcn on NTU).")
@click.option("--encoder-option", "encoder_option", multiple=True, metavar="KEY=VALUE",
              help="Official weights: an encoder option over the published recipe's (repeatable).")
@reports_errors("csre-eval")
def evaluate(checkpoint: str, store: str, benchmark: str, part: str, out: str, report: Optional[str],
             confusion: Optional[str], overwrite: bool, device: str, batch_size: int, num_workers: int,
             progress: bool, clips: Optional[int], precision: Optional[str], encoder: Optional[str],
             reference_weights: bool, stream: Optional[str], window: Optional[int], spine_relative: Optional[bool],
             encoder_option: Tuple[str, ...]) -> None:
    """Evaluate a trained encoder and write its scores (names, logits, labels) to an .npz file.

    For a csre_models checkpoint the stream, window, feeder variant and test clips are those the model was
    trained with; only the encoder runs
    (the CSRE head is not needed at inference). The score file records its stream, data set and part, which
    csre-ensemble uses to apply presets by stream and to refuse tuning on test scores.

    Validation scores (--part val) are what csre-ensemble --tune-on chooses weights on: they equal the
    run's own scores_val.npz.

    Official weights: a --checkpoint that is not a csre_models checkpoint (or any, with --reference-weights)
    is read as a state dict of --encoder in its official repository's key layout (module. prefix and
    {'state_dict': ...} wrappers accepted; every key and shape checked). The store gives classes, joint
    layout and persons; --window, --stream, --spine-relative and --encoder-option default to the encoder's
    published recipe (configs/). --benchmark is needed when the store has several.

    Multi-clip testing: --clips N evaluates N deterministic temporal clips per sample (clip 0 the usual test
    input, the others training-style crops drawn with seed (255, k)) and averages their softmax, as PYSKL.

    \b
    Example:
      csre-eval --checkpoint work_dirs/ctrgcn-csre-ucla-xview-joint/encoder.pt --store ucla.h5 \\
                --out ucla-joint.npz --report ucla-joint.json --confusion ucla-joint.png
      csre-eval --checkpoint work_dirs/<run>/encoder.pt --store ntu60.h5 --part val --out joint-val.npz
      csre-eval --checkpoint ntu60_xsub_joint.pt --encoder ctrgcn --store ntu60.h5 --benchmark xsub \\
                --out official.npz
      csre-eval --checkpoint work_dirs/<run>/encoder.pt --store ntu60.h5 --clips 10 --out joint-10clips.npz
      csre-eval --checkpoint work_dirs/<run>/encoder.pt --store ntu60.h5 --precision bf16 --out joint-bf16.npz
    """
    from csre_models.checkpoint import store_fingerprint
    from csre_models.config import ConfigError
    from csre_models.engine import evaluate_checkpoint
    from csre_models.ensemble import save_scores

    from ._common import refuse_existing

    refuse_existing(out, report, confusion, overwrite=overwrite)
    if reference_weights and encoder is None:
        raise ConfigError("--reference-weights reads --checkpoint in an encoder's official key layout: give --encoder")
    options = _key_values(encoder_option, "--encoder-option")
    scores, payload = evaluate_checkpoint(checkpoint, store, benchmark, part, device, batch_size, num_workers,
                                          progress, encoder=encoder, reference_weights=reference_weights,
                                          stream=stream, window=window, spine_relative=spine_relative,
                                          encoder_options=options or None, clips=clips, precision=precision)
    if payload["kind"] == "reference":
        arguments = payload["model_arguments"]
        click.echo(f"{checkpoint}: {payload['weights']} read as {arguments['name']} (official key layout), "
                   f"{payload['benchmark']}, stream {payload['stream']}, window {arguments['window']}, "
                   f"{'spine-relative' if payload['spine_relative'] else 'plain'} feeder", err=True)
    elif payload["store_fingerprint"] != store_fingerprint(store):
        click.echo(f"csre-eval: note: {store} is not the store this model was trained on", err=True)
    save_scores(out, scores)
    click.echo(f"{len(scores.labels)} samples: top-1 {scores.accuracy(1):.4f}, top-5 {scores.accuracy(5):.4f}; "
               f"wrote {out}")
    clip_count = int(scores.extra["clips"]) if "clips" in scores.extra else 1
    _write_report_and_figure(scores, report, confusion, f"{Path(checkpoint).parent.name or checkpoint} ({part})",
                             checkpoint=str(checkpoint), part=part, clips=clip_count)


# --------------------------------------------------------------------------------------- csre-ensemble

def _parse_weights(text: str, count: int) -> Tuple[float, ...]:
    from csre_models.ensemble import ScoresError
    try:
        return tuple(float(w) for w in text.split(","))
    except ValueError:
        raise ScoresError(f"--weights {text!r}: expected {count} comma-separated numbers") from None


class _SpreadValuesCommand(click.Command):
    """A command whose ``--tune-on`` takes every value that follows it up to the next option, as in
    ``csre-ensemble T1 T2 --tune-on V1 V2 --out F`` (click options take one value each: the values are
    spread to ``--tune-on V1 --tune-on V2`` before parsing)."""

    spread = "--tune-on"

    def parse_args(self, ctx: click.Context, args: List[str]) -> List[str]:
        return super().parse_args(ctx, _spread_values(args, self.spread))


def _spread_values(args: Sequence[str], flag: str) -> List[str]:
    """``args`` with ``flag A B`` written ``flag A flag B`` (up to the next argument starting with '-')."""
    spread: List[str] = []
    taking = waiting = False
    for arg in args:
        if arg == flag:
            taking = waiting = True
            continue
        if taking and not arg.startswith("-"):
            spread += [flag, arg]
            waiting = False
            continue
        if waiting:
            spread.append(flag)           # no value: click says so
        taking = waiting = False
        spread.append(arg)
    if waiting:
        spread.append(flag)
    return spread


def _choose_weights(parts, sources: Sequence[str], weights: Optional[str], preset: Optional[str],
                    tune_on: Sequence[str], tune_on_test: bool):
    """The weights of the fusion (``None``: all 1), what they were chosen on (``tuned_on``: ``val``,
    ``test``, ``preset:NAME`` or ``fixed``) and what to add to the report. One way only."""
    from csre_models.config import ConfigError
    from csre_models.ensemble import (PRESETS, check_tuning_parts, load_scores, metadata, preset_weights,
                                      tune_weights)

    given = [flag for flag, value in (("--weights", weights), ("--preset", preset), ("--tune-on", tune_on),
                                      ("--tune-on-test", tune_on_test)) if value]
    if len(given) > 1:
        raise ConfigError(f"{' and '.join(given)} are mutually exclusive: choose the weights one way")
    if tune_on:
        tuning = [load_scores(path) for path in tune_on]
        check_tuning_parts(tuning, tune_on, parts, sources)
        chosen, info = tune_weights(tuning, sources=tune_on)
        click.echo(f"weights tuned on {len(tune_on)} validation files ({len(tuning[0].labels)} samples, "
                   f"{info['candidates']} candidates): val top-1 {info['val_top1']:.4f}")
        return chosen, "val", {"tuning": {**info, "sources": list(tune_on)}}
    if tune_on_test:
        click.echo("csre-ensemble: WARNING: --tune-on-test chooses the weights on the test labels, so the fused "
                   "test accuracy is optimistic (not a result to report); tune on validation scores with "
                   "--tune-on", err=True)
        chosen, info = tune_weights(parts, sources=sources)
        return chosen, "test", {"tuning": {**info, "sources": list(sources)}}
    if preset:
        chosen, note = preset_weights(preset, [metadata(part, "stream") for part in parts])
        if note:
            click.echo(f"csre-ensemble: note: {note}", err=True)
        return chosen, f"preset:{preset}", {"preset": {"name": preset, "source": PRESETS[preset].source}}
    return (_parse_weights(weights, len(parts)) if weights else None), "fixed", {}


@click.command(cls=_SpreadValuesCommand, context_settings=CONTEXT)
@click.argument("scores", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--weights", default=None, metavar="W1,W2,...",
              help="One weight per score file (default: all 1), fixed in advance.")
@click.option("--tune-on", multiple=True, type=click.Path(dir_okay=False), metavar="VAL.npz ...",
              help="Choose the weights by grid search on these validation score files (one per test file, same "
                   "stream order; csre-eval --part val or a run's scores_val.npz), then apply them to the test "
                   "files. Give the test files first.")
@click.option("--tune-on-test", is_flag=True,
              help="Choose the weights on the test files themselves, as the reference scripts do: the accuracy "
                   "is optimistic; warns and marks the output tuned_on=test.")
@click.option("--preset", default=None, metavar="NAME",
              help="A published weight set, applied by the streams the files record: csre-ntu, csre-ucla, "
                   "hyperformer-ntu, hyperformer-ucla, pyskl-4s, pyskl-2s, agcn-2s.")
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="Fused score file to write (.npz, with the weights, sources and tuned_on recorded).")
@_report_options
@reports_errors("csre-ensemble")
def ensemble(scores: Tuple[str, ...], weights: Optional[str], tune_on: Tuple[str, ...], tune_on_test: bool,
             preset: Optional[str], out: str, report: Optional[str], confusion: Optional[str],
             overwrite: bool) -> None:
    """Fuse score files of several streams: sum of weight * logits, then report the fused top-1.

    The files must list the same samples in the same order (as csre-train and csre-eval write them for
    one benchmark part). The weights are fixed (--weights), published (--preset), or chosen on validation
    scores (--tune-on): the highest validation top-1 over a 0..1 grid, ties to the lower cross-entropy, then
    to the smaller weights. Choosing them on the test labels (--tune-on-test) is possible but marked.

    \b
    Example:
      csre-ensemble joint.npz bone.npz joint_motion.npz bone_motion.npz --weights 0.6,0.6,0.4,0.4 \\
                    --out fused.npz
      csre-ensemble joint.npz bone.npz --tune-on joint-val.npz bone-val.npz --out fused.npz \\
                    --report fused.json --confusion fused.png
      csre-ensemble joint.npz bone.npz joint_motion.npz bone_motion.npz --preset csre-ntu --out fused.npz
      csre-ensemble joint.npz bone.npz --tune-on-test --out optimistic.npz
    """
    import numpy as np

    from csre_models.ensemble import fuse, load_scores, save_scores

    from ._common import refuse_existing

    refuse_existing(out, report, confusion, overwrite=overwrite)
    parts = [load_scores(path) for path in scores]
    chosen, tuned_on, details = _choose_weights(parts, scores, weights, preset, tune_on, tune_on_test)
    fused = fuse(parts, chosen, sources=scores)
    fused.extra["tuned_on"] = np.asarray(tuned_on)
    for path, part, weight in zip(scores, parts, fused.extra["weights"]):
        click.echo(f"{path}: top-1 {part.accuracy(1):.4f} (weight {weight:g})")
    save_scores(out, fused)
    optimistic = " (optimistic: weights tuned on these labels)" if tuned_on == "test" else ""
    click.echo(f"fused {len(parts)} files, {len(fused.labels)} samples: top-1 {fused.accuracy(1):.4f}, "
               f"top-5 {fused.accuracy(5):.4f}{optimistic}; wrote {out}")
    _write_report_and_figure(fused, report, confusion, f"fusion of {len(parts)} streams ({tuned_on})",
                             weights=[float(w) for w in fused.extra["weights"]], tuned_on=tuned_on,
                             sources=list(scores), **details)


if __name__ == "__main__":
    train()
