"""``csre-study``: does CSRE help this encoder on this data? K seeds x {csre, baseline} of one recipe,
paired by seed, resumable, with an honest report (:mod:`csre_models.study`, :mod:`csre_models.study_report`).

``python -m cli.study`` runs it too.
"""
from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import click

from cli._common import reports_errors
from cli.train import CONTEXT, _explicit_values
from cli.train import train as train_command


def _split(text: Optional[str]) -> Optional[List[str]]:
    return None if text is None else [item.strip() for item in text.split(",") if item.strip()]


def _seeds(text: str) -> List[int]:
    from csre_models.study import StudyError
    try:
        return [int(item) for item in _split(text)]
    except ValueError:
        raise StudyError(f"--seeds {text!r}: expected comma-separated integers, e.g. 1,2,3") from None


def _flag_names(args: Sequence[str]) -> List[str]:
    return [arg.split("=", 1)[0] for arg in args if arg.startswith("--")]


def _planned_config(run):
    """The resolved configuration ``csre-train`` will give ``run`` (the same parsing as the command)."""
    from csre_models.config import ConfigError, load_config_file, prepare_config, resolve_config

    try:
        ctx = train_command.make_context("csre-train", list(run.args))
    except click.ClickException as exc:
        raise ConfigError(f"csre-train flags: {exc.format_message()}") from None
    config_file = ctx.params.pop("config_file")
    for name in ("resume", "auto_resume"):
        ctx.params.pop(name)
    file_values = load_config_file(config_file) if config_file else {}
    return prepare_config(resolve_config(file_values, _explicit_values(ctx, ctx.params)))


def _stored_description(work_dir: Path) -> Dict[str, Any]:
    from csre_models.study import STUDY_FILE
    path = work_dir / STUDY_FILE
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        from csre_models.study import StudyError
        raise StudyError(f"{path}: not readable JSON ({exc})") from None


class _Status:
    """Prints the runs in progress at most once a minute (a study runs for hours)."""

    def __init__(self, every_seconds: float = 60.0):
        self.every, self.last = every_seconds, 0.0

    def __call__(self, line: str) -> None:
        if time.monotonic() - self.last >= self.every:
            self.last = time.monotonic()
            click.echo(f"{time.strftime('%H:%M:%S')} running: {line}", err=True)


@click.command(context_settings={**CONTEXT, "ignore_unknown_options": True, "allow_extra_args": True})
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              help="The recipe: a csre-train YAML config (default: the study's, when --work-dir holds one).")
@click.option("--store", type=click.Path(dir_okay=False), help="Store to train on (default: the study's).")
@click.option("--seeds", help="Comma-separated seeds, one pair of runs each (default: the study's).")
@click.option("--work-dir", required=True, type=click.Path(file_okay=False),
              help="Study dir: runs go to <arm>-seed<S>/ below it, the report beside them.")
@click.option("--arms", default=None, help="Comma-separated arms: csre, baseline (--no-csre).  [default: csre,baseline]")
@click.option("--streams", default=None, metavar="joint,bone,...",
              help="Train each of these streams per seed and arm (work dirs <arm>-seed<S>/<stream>); the report "
                   "adds their ensemble, weights tuned on validation scores.")
@click.option("--jobs", default=1, show_default=True, type=click.IntRange(min=1),
              help="Runs at once; the CPU threads are split between them.")
@click.option("--devices", default=None, metavar="cuda:0,cuda:1,...",
              help="Devices for the concurrent runs, one per slot, round-robin (default: --jobs = the number of "
                   "devices; a larger --jobs puts several runs on one GPU).")
@click.option("--plan", "plan_only", is_flag=True,
              help="Print one csre-train command per run (for a cluster's job array) and exit.")
@click.option("--report", "report_only", is_flag=True,
              help="Train nothing: aggregate the runs that exist into the report.")
@click.option("--progress/--no-progress", default=True, show_default=True,
              help="Print the runs' starts, ends and progress on stderr.")
@click.pass_context
@reports_errors("csre-study")
def study(ctx: click.Context, config_file: Optional[str], store: Optional[str], seeds: Optional[str], work_dir: str,
          arms: Optional[str], streams: Optional[str], jobs: int, devices: Optional[str], plan_only: bool,
          report_only: bool, progress: bool) -> None:
    """Train K seeds x {csre, baseline} of one recipe, paired by seed, and report whether CSRE helps.

    Every run is an ordinary csre-train work dir (<work dir>/<arm>-seed<S>/) trained with
    `csre-train --auto-resume` and the flags given here. For a given seed both arms start from the same
    encoder weights and see the same batches and augmentations, so their difference measures CSRE. Run
    again, the study reuses finished runs and resumes unfinished ones; the settings are kept in
    <work dir>/study.json, so `csre-study --work-dir DIR` alone continues a study.

    The report (report.json, report.md, curves.png) gives each run's test top-1 at its selected epoch (the
    best validation epoch with --val-fraction, else the last), each arm's mean and sd, and the paired
    difference csre - baseline with a Student-t and a bootstrap 95 % interval. Any other flag is passed to
    every csre-train run (--epochs, --val-fraction, --lr, ...).

    \b
    Example:
      csre-study --config configs/ctrgcn/ucla-xview-joint.yaml --store ucla.h5 --seeds 1,2,3 \\
                 --work-dir studies/ctrgcn-ucla --val-fraction 0.2 --jobs 2
      csre-study --work-dir studies/ctrgcn-ucla --report
      csre-study --config configs/ctrgcn/ucla-xview-joint.yaml --store ucla.h5 --seeds 1,2,3,4,5 \\
                 --work-dir studies/gpu --val-fraction 0.1 --devices cuda:0,cuda:1 --jobs 4
      csre-study ... --plan > runs.txt    # then: sed -n "${SLURM_ARRAY_TASK_ID}p" runs.txt | sh
    """
    from csre_models.checkpoint import store_fingerprint
    from csre_models.study import (ARMS, CONTROLLED_FLAGS, StudyError, StudyInterrupted, check_recipe, execute,
                                   plan_study, run_status, threads_per_run, write_study_file)
    from csre_models.study_report import build_report, write_report

    study_dir = Path(work_dir)
    stored = _stored_description(study_dir)
    passed = list(ctx.args) if ctx.args else list(stored.get("train_flags", []))
    controlled = sorted(set(_flag_names(passed)) & set(CONTROLLED_FLAGS))
    if controlled:
        raise StudyError(f"{', '.join(controlled)}: set by csre-study for each run; use --seeds, --arms, --streams, "
                         f"--config and --store instead")
    config_file = config_file or stored.get("config")
    store = store or stored.get("store")
    seed_list = _seeds(seeds) if seeds else stored.get("seeds")
    arm_list = _split(arms) or stored.get("arms") or list(ARMS)
    stream_list = _split(streams) or stored.get("streams")
    device_list = _split(devices) or []
    if device_list and "--device" in _flag_names(passed):
        raise StudyError("--device and --devices: give the devices with --devices only")
    missing = [name for name, value in (("--config", config_file), ("--store", store), ("--seeds", seed_list))
               if not value]
    if missing:
        raise StudyError(f"{', '.join(missing)} required (or a --work-dir holding a study.json)")
    if device_list and ctx.get_parameter_source("jobs") == click.core.ParameterSource.DEFAULT:
        jobs = len(device_list)
    runs = plan_study(study_dir, ["--config", config_file, "--store", store, *passed], seed_list, arm_list,
                      stream_list)
    if plan_only:
        for run in runs:
            click.echo(shlex.join(run.command()))
        return
    if not report_only:
        for run in runs:
            check_recipe(run, _planned_config(run))
    command = shlex.join(["csre-study", "--config", config_file, "--store", store, "--seeds",
                          ",".join(map(str, seed_list)), "--work-dir", str(study_dir), "--arms", ",".join(arm_list),
                          *(["--streams", ",".join(stream_list)] if stream_list else []),
                          *(["--devices", ",".join(device_list)] if device_list else []),
                          "--jobs", str(jobs), *passed])
    description = {"config": config_file, "store": store,
                   "store_fingerprint": (store_fingerprint(store) if Path(store).is_file()
                                         else stored.get("store_fingerprint")),
                   "seeds": seed_list, "arms": arm_list, "streams": stream_list, "train_flags": passed,
                   # --report keeps the command that trained the study; a run records its own invocation.
                   "command": stored["command"] if report_only and stored.get("command") else command,
                   "runs": {run.name: shlex.join(run.command()) for run in runs}}
    failed: List[str] = []
    if not report_only:
        write_study_file(study_dir, description)
        states = [run_status(run) for run in runs]
        echo = (lambda line: click.echo(f"{time.strftime('%H:%M:%S')} {line}", err=True)) if progress else (lambda _: None)
        threads = None if "--threads" in _flag_names(passed) else threads_per_run(jobs)
        echo(f"study {study_dir}: {len(runs)} runs, {states.count('finished')} finished, "
             f"{states.count('resumable')} to resume, {states.count('new')} to start; {jobs} at once")
        try:
            codes = execute(runs, jobs=jobs, threads=threads, devices=device_list, echo=echo,
                            status=_Status() if progress else None)
        except StudyInterrupted as exc:
            click.echo(f"csre-study: {exc}", err=True)
            sys.exit(exc.exit_code)
        failed = sorted(name for name, code in codes.items() if code != 0)
    report = build_report(runs, study_dir, description)
    written = write_report(report, study_dir)
    _print_summary(report)
    click.echo(f"wrote {', '.join(str(path) for path in written)}")
    if failed:
        raise StudyError(f"{len(failed)} run(s) failed: {', '.join(failed)}; see their study-output.txt, fix the "
                         f"cause and run the same command again (finished runs are kept)")


def _print_summary(report: Dict[str, Any]) -> None:
    def percent(value):
        return "-" if value is None else f"{100 * value:.2f}"

    for arm, stats in report["arms"].items():
        click.echo(f"{arm}: n {stats['n']}, mean test top-1 {percent(stats['mean'])} %, sd {percent(stats['std'])}")
    paired = report.get("paired_difference")
    if paired and paired["n"]:
        interval = paired["ci95_t"]
        text = "-" if interval is None else f"[{100 * interval[0]:+.2f}, {100 * interval[1]:+.2f}]"
        click.echo(f"csre - baseline: mean {100 * paired['mean']:+.2f} points over {paired['n']} paired seed(s), "
                   f"95 % t interval {text}")


if __name__ == "__main__":
    study()
