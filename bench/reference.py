"""Run the published SGN-family NTU scripts on a set of raw files, for timing and parity checks.

The scripts are NOT part of this project: pass the folder of a checkout of a repository that ships
them (CSRE, CTR-GCN, Hyperformer or SGN; it must contain ``data/ntu/`` and ``data/ntu120/`` with
``get_raw_skes_data.py``, ``get_raw_denoised_data.py`` and ``seq_transformation.py``). They are
copied into a scratch folder together with the ``statistics/`` files they expect (derived from the
sample names, exactly as the shipped files are) and links to the raw files, then run unmodified,
each as its own process. The only help they get is a start-up shim that restores the numpy aliases
removed since they were written (``np.int``, ``np.float``, ``np.string_``...) and, when scikit-learn
is not installed, an empty ``sklearn.model_selection`` (they import it but never call it).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence

SCRIPTS = ("get_raw_skes_data.py", "get_raw_denoised_data.py", "seq_transformation.py")
_STATISTICS = {"setup": (1, 4), "camera": (5, 8), "performer": (9, 12), "replication": (13, 16), "label": (17, 20)}

_SHIM = '''\
import runpy, sys, types
import numpy as np
for name, value in {"int": int, "float": float, "bool": bool, "object": object, "str": str,
                    "string_": np.bytes_, "unicode_": np.str_}.items():
    if name not in np.__dict__:
        setattr(np, name, value)
try:
    import sklearn.model_selection  # noqa: F401
except ImportError:
    sklearn = types.ModuleType("sklearn"); selection = types.ModuleType("sklearn.model_selection")
    selection.train_test_split = None; sklearn.model_selection = selection
    sys.modules["sklearn"] = sklearn; sys.modules["sklearn.model_selection"] = selection
script = sys.argv[1]
sys.argv = sys.argv[1:]
runpy.run_path(script, run_name="__main__")
'''


@dataclass
class ScriptRun:
    script: str
    seconds: float
    peak_rss_mib: float


def find_scripts(reference: Path, dataset: str) -> Path:
    """The folder holding the three scripts for ``dataset`` inside a reference checkout."""
    sub = "ntu" if dataset == "ntu60" else "ntu120"
    for candidate in (reference / "data" / sub, reference / sub, reference):
        if all((candidate / script).is_file() for script in SCRIPTS):
            return candidate
    raise FileNotFoundError(f"{reference}: no data/{sub}/ folder with {', '.join(SCRIPTS)}")


def prepare(reference: Path, dataset: str, files: Dict[str, Path], workdir: Path) -> Path:
    """Lay out ``workdir`` as the scripts expect; returns the folder to run them in."""
    scripts = find_scripts(reference, dataset)
    run_dir = workdir / "data" / ("ntu" if dataset == "ntu60" else "ntu120")
    stats = run_dir / "statistics"
    stats.mkdir(parents=True, exist_ok=True)
    for script in SCRIPTS:
        shutil.copy(scripts / script, run_dir / script)
    (run_dir / "shim.py").write_text(_SHIM)
    names = sorted(files)
    (stats / "skes_available_name.txt").write_text("".join(f"{n}\n" for n in names))
    for key, (a, b) in _STATISTICS.items():
        (stats / f"{key}.txt").write_text("".join(f"{int(n[a:b])}\n" for n in names))
    raw60 = workdir / "data" / "nturgbd_raw" / "nturgb+d_skeletons"
    raw120 = workdir / "data" / "nturgbd_raw" / "nturgb+d_skeletons120"
    for folder in (raw60, raw120):
        folder.mkdir(parents=True, exist_ok=True)
    for name, path in files.items():
        folder = raw120 if dataset == "ntu120" and int(name[1:4]) >= 18 else raw60
        os.symlink(Path(path).resolve(), folder / f"{name}.skeleton")
    return run_dir


def run(run_dir: Path, python: str = sys.executable) -> List[ScriptRun]:
    """Run the three scripts in order, each as a whole process; wall time and peak RSS of each."""
    runs = []
    for script in SCRIPTS:
        started = time.perf_counter()
        proc = subprocess.Popen([python, "shim.py", script], cwd=run_dir,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        stderr = proc.stderr.read().decode(errors="replace")
        proc.stderr.close()
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise RuntimeError(f"{script} failed (exit {proc.returncode}):\n{stderr[-2000:]}")
        runs.append(ScriptRun(script, seconds, usage.ru_maxrss / 1024))
    return runs


def npz_paths(run_dir: Path, dataset: str) -> Dict[str, Path]:
    """benchmark -> the npz file the scripts wrote."""
    from skeldata.datasets import get_dataset
    return {bench: run_dir / name for bench, name in get_dataset(dataset).sgn_npz_names.items()}


def compare_npz(expected: Path, produced: Path) -> List[str]:
    """Differences between two npz files (keys, order, dtypes, shapes, bytes); empty when identical."""
    import numpy as np
    problems = []
    with np.load(expected) as e, np.load(produced) as g:
        if list(e.files) != list(g.files):
            return [f"keys differ: {list(e.files)} vs {list(g.files)}"]
        for key in e.files:
            a, b = e[key], g[key]
            if a.dtype != b.dtype or a.shape != b.shape:
                problems.append(f"{key}: {a.dtype}{a.shape} vs {b.dtype}{b.shape}")
            elif a.tobytes() != b.tobytes():
                problems.append(f"{key}: values differ")
    return problems


def discover_files(raw_dirs: Sequence[Path]) -> Dict[str, Path]:
    return {p.name[:-len(".skeleton")]: p for d in raw_dirs for p in Path(d).rglob("*.skeleton")}
