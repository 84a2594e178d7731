"""Paired multi-seed studies: K seeds x arms (``csre``, ``baseline``) of one recipe, each run an ordinary
``csre-train`` work dir, run here, resumed, or farmed out to a cluster.

A study is a plan of :class:`StudyRun` s. Each run is one ``csre-train --auto-resume`` command whose work
dir is ``<study dir>/<arm>-seed<S>`` (with several streams, ``<arm>-seed<S>/<stream>``):

* **Paired by seed.** The two arms of a seed differ only by ``--no-csre``. The engine draws the encoder's
  initial weights, the batch order and every augmentation from the seed alone and the CSRE head from a
  generator of its own, so both arms start from the same encoder and see the same batches; their
  difference measures CSRE, not the seed's luck.
* **Resumable.** A run whose work dir holds ``result.json`` is finished and is reused; one that holds
  ``last.pt`` is resumed (``--auto-resume``); anything else starts. Killing a study and running it again
  loses at most the work since each run's last checkpoint.
* **Consistent.** A run dir that already holds a run of another recipe (other epochs, lr, encoder, ...)
  is refused instead of being mixed into the statistics (:func:`recipe_differences`).
* **Portable.** :meth:`StudyRun.command` is the exact ``csre-train`` command (``csre-study --plan`` prints
  them, one per line, for a Slurm job array); ``csre-study --report`` aggregates whatever exists.

:func:`execute` runs the plan locally: ``jobs`` runs at once, CPU threads split between them, and with
``devices`` each concurrent slot bound to one device (``cuda:0``, ``cuda:1``, ...; more slots than devices
share them round-robin, several runs side by side on one GPU).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import yaml

from skeldata.output import replacing

from .config import ConfigError, TrainConfig, config_from_dict, config_fields
from .workdir import PROGRESS_FILE, RESULT_FILE, read_result

__all__ = ["ARMS", "ARM_FLAGS", "CONTROLLED_FLAGS", "OPERATIONAL_FIELDS", "StudyError", "StudyRun",
           "run_dir_name", "plan_study", "run_status", "recipe_differences", "threads_per_run", "execute",
           "write_study_file", "STUDY_FILE", "RUN_OUTPUT", "StudyInterrupted", "describe_progress"]

#: The arms of a study and the ``csre-train`` flags that make them.
ARM_FLAGS: Dict[str, Tuple[str, ...]] = {"csre": (), "baseline": ("--no-csre",)}
ARMS = tuple(ARM_FLAGS)
#: Flags the study sets for every run; they may not be passed through.
CONTROLLED_FLAGS = ("--seed", "--work-dir", "--csre", "--no-csre", "--stream", "--resume", "--auto-resume",
                    "--config", "--store")
#: Fields that say how a run is executed, not what it trains: they may differ between the runs of a study
#: (another machine, another thread count) without making their results incomparable.
OPERATIONAL_FIELDS = frozenset({"store", "dataset", "work_dir", "device", "num_workers", "progress", "threads",
                                "tensorboard", "test_batch_size", "deterministic", "checkpoint_every",
                                "checkpoint_minutes"})
STUDY_FILE = "study.json"
#: Each run's stdout and stderr, appended, when the study runs it.
RUN_OUTPUT = "study-output.txt"


class StudyError(ConfigError):
    """A study that cannot be planned, run or reported, with a one-line reason."""


def run_dir_name(arm: str, seed: int, stream: Optional[str] = None) -> str:
    """``<arm>-seed<S>``, or ``<arm>-seed<S>/<stream>`` in a multi-stream study."""
    name = f"{arm}-seed{seed}"
    return f"{name}/{stream}" if stream else name


@dataclass(frozen=True)
class StudyRun:
    """One run of a study: its arm, seed, stream (``None``: the recipe's own), work dir and
    ``csre-train`` arguments."""

    arm: str
    seed: int
    stream: Optional[str]
    work_dir: Path
    args: Tuple[str, ...]

    @property
    def name(self) -> str:
        return run_dir_name(self.arm, self.seed, self.stream)

    def command(self, program: str = "csre-train") -> List[str]:
        return [program, *self.args]


def plan_study(study_dir: Path, recipe_args: Sequence[str], seeds: Sequence[int], arms: Sequence[str] = ARMS,
               streams: Optional[Sequence[str]] = None) -> List[StudyRun]:
    """The runs of a study, seed by seed (so the first pairs finish first), arm by arm, stream by stream.

    ``recipe_args`` are the ``csre-train`` arguments every run shares (``--config``, ``--store`` and the
    flags passed through); the study adds ``--auto-resume``, ``--seed``, ``--work-dir``, the arm's flags and
    the stream.
    """
    if not seeds:
        raise StudyError("--seeds: give at least one seed")
    if len(set(seeds)) != len(seeds):
        raise StudyError(f"--seeds {','.join(map(str, seeds))}: a seed is repeated")
    unknown = [arm for arm in arms if arm not in ARM_FLAGS]
    if unknown or not arms or len(set(arms)) != len(arms):
        raise StudyError(f"--arms {','.join(arms)}: choose from {', '.join(ARMS)}, each at most once")
    if streams is not None and len(set(streams)) != len(streams):
        raise StudyError(f"--streams {','.join(streams)}: a stream is repeated")
    runs = []
    for seed in seeds:
        for arm in arms:
            for stream in (streams or [None]):
                work_dir = Path(study_dir) / run_dir_name(arm, seed, stream)
                args = ["--auto-resume", *recipe_args, "--seed", str(seed), "--work-dir", str(work_dir),
                        *ARM_FLAGS[arm]]
                if stream:
                    args += ["--stream", stream]
                runs.append(StudyRun(arm, seed, stream, work_dir, tuple(args)))
    return runs


def run_status(run: StudyRun) -> str:
    """``finished`` (``result.json`` written), ``resumable`` (``last.pt``, not finished) or ``new``."""
    if (run.work_dir / RESULT_FILE).exists():
        return "finished"
    if (run.work_dir / "last.pt").exists():
        return "resumable"
    return "new"


def stored_config(work_dir: Path) -> Optional[TrainConfig]:
    """The resolved configuration a run wrote to its ``config.yaml``, or ``None`` when there is none."""
    path = Path(work_dir) / "config.yaml"
    if not path.exists():
        return None
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        known = {f.name for f in config_fields()}
        return config_from_dict({key: value for key, value in values.items() if key in known})
    except (yaml.YAMLError, ConfigError, OSError) as exc:
        raise StudyError(f"{path}: not a readable run configuration ({exc})") from None


def recipe_differences(stored: TrainConfig, planned: TrainConfig) -> List[Tuple[str, object, object]]:
    """The fields, other than :data:`OPERATIONAL_FIELDS`, in which a run's stored configuration differs from
    the study's plan for it: ``(name, stored, planned)``."""
    return [(f.name, getattr(stored, f.name), getattr(planned, f.name)) for f in config_fields()
            if f.name not in OPERATIONAL_FIELDS and getattr(stored, f.name) != getattr(planned, f.name)]


def check_recipe(run: StudyRun, planned: TrainConfig) -> None:
    """Refuse a run dir that already holds a run of another recipe."""
    stored = stored_config(run.work_dir)
    if stored is None:
        return
    differences = recipe_differences(stored, planned)
    if differences:
        described = "; ".join(f"{name}: {old!r} there, {new!r} planned" for name, old, new in differences[:4])
        raise StudyError(f"{run.work_dir} holds a run of another recipe ({described}); give the same flags as "
                         f"when the study started, or use another --work-dir")


def threads_per_run(jobs: int, cpu_count: Optional[int] = None) -> int:
    """CPU threads for each of ``jobs`` concurrent runs: the cores split evenly, at least one."""
    return max(1, (cpu_count or os.cpu_count() or 1) // max(1, jobs))


def write_study_file(study_dir: Path, description: Mapping[str, object]) -> None:
    """Write ``study.json`` (what the study is: its recipe, seeds, arms, streams and commands)."""
    path = Path(study_dir) / STUDY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as temporary:
        temporary.write_text(json.dumps(description, indent=2) + "\n", encoding="utf-8")


# ================================================================================================ running

@dataclass
class _Running:
    run: StudyRun
    process: subprocess.Popen
    started: float
    device: Optional[str]


def describe_progress(run: StudyRun) -> str:
    """``epoch 2/65, batch 130/255`` from the run's ``progress.json`` (``starting`` before its first step)."""
    try:
        progress = json.loads((run.work_dir / PROGRESS_FILE).read_text(encoding="utf-8"))
        return (f"epoch {progress['epoch']}/{progress['epochs']}, batch {progress['batch']}/"
                f"{progress['batches']}")
    except (OSError, ValueError, KeyError):
        return "starting"


def execute(runs: Sequence[StudyRun], *, jobs: int = 1, threads: Optional[int] = None,
            devices: Sequence[str] = (), program: Sequence[str] = (sys.executable, "-m", "cli.train"),
            echo: Callable[[str], None] = print, status: Optional[Callable[[str], None]] = None,
            poll_seconds: float = 2.0) -> Dict[str, int]:
    """Run every unfinished run of ``runs``, ``jobs`` at a time, and return each started run's exit status.

    Each run is ``program`` with the run's arguments plus ``--threads T --no-progress`` and, with
    ``devices``, ``--device D`` of its slot; its output is appended to ``<work dir>/study-output.txt``.
    ``echo`` receives a line when a run starts and ends; ``status`` (when given) a one-line summary of the
    runs in progress every ``poll_seconds``. On SIGINT or SIGTERM the runs in progress are stopped (their
    ``last.pt`` keeps them resumable) and the signal's exception is raised again.
    """
    if jobs < 1:
        raise StudyError(f"--jobs must be at least 1, got {jobs}")
    threads = threads or threads_per_run(jobs)
    pending = [run for run in runs if run_status(run) != "finished"]
    free_slots = list(range(jobs))
    running: Dict[int, _Running] = {}
    exit_codes: Dict[str, int] = {}
    previous_handler = _raise_on_sigterm()
    try:
        while pending or running:
            while pending and free_slots:
                slot = free_slots.pop(0)
                run = pending.pop(0)
                device = devices[slot % len(devices)] if devices else None
                how = "resuming" if run_status(run) == "resumable" else "starting"
                running[slot] = _start(run, program, threads, device)
                echo(f"{how} {run.name}" + (f" on {device}" if device else "") + f" ({threads} thread(s))")
            time.sleep(poll_seconds)
            for slot, job in list(running.items()):
                code = job.process.poll()
                if code is None:
                    continue
                del running[slot]
                free_slots.append(slot)
                exit_codes[job.run.name] = code
                minutes = (time.monotonic() - job.started) / 60
                if code == 0:
                    result = read_result(job.run.work_dir) or {}
                    echo(f"finished {job.run.name} in {minutes:.1f} min: test top-1 "
                         f"{result.get('test_top1', float('nan')):.4f} (epoch {result.get('selected_epoch')}, "
                         f"selected on {result.get('selection')})")
                else:
                    echo(f"FAILED {job.run.name} (exit status {code}) after {minutes:.1f} min; see "
                         f"{job.run.work_dir / RUN_OUTPUT}")
            if status is not None and running:
                status("; ".join(f"{job.run.name} {describe_progress(job.run)}" for job in running.values()))
    except KeyboardInterrupt:
        for job in running.values():
            _stop(job.process)
        raise StudyInterrupted(signal.SIGINT) from None
    except BaseException:
        for job in running.values():
            _stop(job.process)
        raise
    finally:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, previous_handler)
    return exit_codes


def _start(run: StudyRun, program: Sequence[str], threads: int, device: Optional[str]) -> _Running:
    run.work_dir.mkdir(parents=True, exist_ok=True)
    args = [*program, *run.args, "--threads", str(threads), "--no-progress"]
    if device:
        args += ["--device", device]
    environment = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    with open(run.work_dir / RUN_OUTPUT, "a", encoding="utf-8") as output:
        output.write(f"\n$ {' '.join(args)}\n")
        output.flush()
        process = subprocess.Popen(args, stdout=output, stderr=subprocess.STDOUT, env=environment,
                                   stdin=subprocess.DEVNULL)
    return _Running(run, process, time.monotonic(), device)


def _stop(process: subprocess.Popen, grace_seconds: float = 30.0) -> None:
    """Ask a run to stop (SIGTERM), then kill it after ``grace_seconds``."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(grace_seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class StudyInterrupted(Exception):
    """The study was stopped by SIGTERM or SIGINT; its runs in progress saved a resumable ``last.pt``."""

    def __init__(self, signum: int):
        super().__init__(f"stopped by {signal.Signals(signum).name}; the runs in progress saved their last.pt: "
                         f"run the same command again to continue")
        self.exit_code = 128 + signum


def _raise_on_sigterm():
    """Make SIGTERM (a cluster stopping the job) unwind like Ctrl-C, so running runs are stopped too."""
    def handler(signum, frame):
        raise StudyInterrupted(signum)

    if threading.current_thread() is not threading.main_thread():
        return signal.getsignal(signal.SIGTERM)
    return signal.signal(signal.SIGTERM, handler)
