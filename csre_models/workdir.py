"""The work dir of a run: what it holds, and the one class that writes it (only rank 0 writes).

Files: ``config.yaml`` (the resolved configuration), ``log.txt``, ``metrics.jsonl`` (one object per epoch),
``progress.json`` (where a running run stands, rewritten every few seconds), ``env.json``
(:mod:`.runinfo`), ``last.pt``, ``best.pt`` (with validation), ``encoder.pt`` (the result's plain encoder),
``scores_test.npz`` (the result's test logits) and, with validation, ``scores_val.npz``; ``result.json``
last, when the run has finished (:func:`read_result`). A killed run can leave temporary files beside its
checkpoints and scores; the next start removes them (:meth:`WorkDir.remove_stale_temporaries`).
"""
from __future__ import annotations

import json
import logging
import math
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

from skeldata.output import remove_stale_temporaries, replacing

from .distributed import WorldInfo

__all__ = ["WorkDir", "read_result", "RESULT_FILE", "PROGRESS_FILE", "OUTPUT_FILES", "LOGGER_NAME"]

LOGGER_NAME = "csre_models.train"
#: Written last by a run that finished: what ``csre-study`` and other tools read as the run's result.
RESULT_FILE = "result.json"
#: Where a run stands, rewritten every few seconds while it trains.
PROGRESS_FILE = "progress.json"
#: The files a run writes through a temporary file renamed over them.
OUTPUT_FILES = ("last.pt", "best.pt", "encoder.pt", "scores_test.npz", "scores_val.npz")


class WorkDir:
    """The files of a run: log, metrics, checkpoints, scores. Only rank 0 writes."""

    def __init__(self, path: Path, world: WorldInfo):
        self.path = Path(path)
        self.world = world
        self.log = logging.getLogger(f"{LOGGER_NAME}.{id(self)}")
        self.log.propagate = False
        self.log.setLevel(logging.INFO)
        if world.is_main:
            self.path.mkdir(parents=True, exist_ok=True)
            formatter = logging.Formatter("%(asctime)s  %(message)s", "%Y-%m-%d %H:%M:%S")
            for handler in (logging.FileHandler(self.path / "log.txt", encoding="utf-8"),
                            logging.StreamHandler(sys.stderr)):
                handler.setFormatter(formatter)
                self.log.addHandler(handler)
        else:
            self.log.addHandler(logging.NullHandler())

    def file(self, name: str) -> Path:
        return self.path / name

    def append_metrics(self, record: Dict[str, Any]) -> None:
        """Append one line to ``metrics.jsonl`` (strict JSON: a non-finite number is written as null)."""
        if self.world.is_main:
            finite = {key: None if isinstance(value, float) and not math.isfinite(value) else value
                      for key, value in record.items()}
            with open(self.file("metrics.jsonl"), "a", encoding="utf-8") as handle:
                handle.write(json.dumps(finite, allow_nan=False) + "\n")

    def write_json(self, name: str, record: Dict[str, Any]) -> None:
        """Write ``record`` to ``name`` atomically (a temporary file renamed over it)."""
        if self.world.is_main:
            with replacing(self.file(name)) as temporary:
                temporary.write_text(json.dumps(record, indent=2, allow_nan=False) + "\n", encoding="utf-8")

    def forget_unfinished(self) -> List[str]:
        """Before a fresh start: remove the metrics and result of an earlier attempt that never reached a
        checkpoint (nothing there can be resumed), so the new run does not append to them."""
        removed = []
        if self.world.is_main:
            for name in ("metrics.jsonl", RESULT_FILE):
                if self.file(name).exists():
                    self.file(name).unlink()
                    removed.append(name)
        return removed

    def keep_metrics_up_to(self, global_step: int) -> None:
        """Drop the metrics lines written after ``global_step`` (by a run that stopped before its next
        checkpoint), so a resumed run does not record an epoch twice."""
        path = self.file("metrics.jsonl")
        if self.world.is_main and path.exists():
            lines = [line for line in path.read_text(encoding="utf-8").splitlines()
                     if line.strip() and json.loads(line)["step"] <= global_step]
            path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")

    def remove_stale_temporaries(self) -> List[str]:
        """Remove the temporary files a killed run left beside :data:`OUTPUT_FILES`; their names."""
        if not self.world.is_main:
            return []
        return [path.name for name in OUTPUT_FILES for path in remove_stale_temporaries(self.file(name))]

    def close(self) -> None:
        for handler in list(self.log.handlers):
            handler.close()
            self.log.removeHandler(handler)


def read_result(work_dir: Path) -> Optional[Dict[str, Any]]:
    """The ``result.json`` of a finished run, or ``None`` when the run has not finished."""
    path = Path(work_dir) / RESULT_FILE
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))
