"""What a run was made with: the ``env.json`` of every work dir.

A number is only evidence when someone can tell what produced it. :func:`environment` collects the
library versions, the devices, the thread count, the project's version and git commit (when the code runs
from a git checkout) and the store's fingerprint; :func:`record_environment` writes it to
``<work dir>/env.json``. A resumed run keeps the first start's record and appends its own under
``"resumes"``, so a run that moved between machines says so.
"""
from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

import numpy as np
import torch

from skeldata.output import replacing
from skeldata.store import library_versions

__all__ = ["environment", "record_environment", "git_commit", "cpu_name", "ENV_FILE"]

ENV_FILE = "env.json"
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def git_commit(root: Path = PROJECT_ROOT) -> Optional[Dict[str, Any]]:
    """``{"commit": sha, "dirty": bool}`` of the checkout holding the code, or ``None`` outside one."""
    if not (root / ".git").exists():
        return None
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": sha, "dirty": bool(status.strip())}


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), else what :mod:`platform` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cuda() -> Dict[str, Any]:
    if not torch.cuda.is_available():
        return {"available": False, "torch_cuda": torch.version.cuda}
    return {"available": True, "torch_cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(),
            "devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]}


def environment(device: Optional[torch.device] = None,
                store_fingerprint: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """The environment of this process, as JSON-ready values."""
    from . import __version__

    return {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "versions": {"torch": torch.__version__, "numpy": np.__version__, **library_versions(),
                     "csre_models": __version__},
        "torch_threads": torch.get_num_threads(),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "cuda": _cuda(),
        "device": None if device is None else str(device),
        "device_name": (torch.cuda.get_device_name(device) if device is not None and device.type == "cuda"
                        else cpu_name()),
        "git": git_commit(),
        "store_fingerprint": None if store_fingerprint is None else dict(store_fingerprint),
    }


def record_environment(work_dir: Path, env: Mapping[str, Any], resumed_at_step: Optional[int] = None) -> None:
    """Write ``env`` to ``work_dir/env.json``; for a resumed run (``resumed_at_step`` given) append it to the
    record's ``"resumes"`` instead, keeping the first start's record."""
    path = Path(work_dir) / ENV_FILE
    record: Dict[str, Any] = dict(env)
    if resumed_at_step is not None and path.exists():
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            record = {"unreadable_previous_record": True, **env}
        record.setdefault("resumes", []).append({"step": resumed_at_step, **env})
    with replacing(path) as temporary:
        temporary.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
