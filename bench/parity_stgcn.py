"""Check ``skeldata build --pipeline stgcn`` + ``export --format stgcn-npy`` against the ST-GCN-lineage
scripts, byte for byte, or write their outputs as golden files.

    python bench/parity_stgcn.py --reference /path/to/2s-AGCN --dataset ntu60 --raw DIR
    python bench/parity_stgcn.py --reference /path/to/MS-G3D --dataset ntu120 --raw DIR
    python bench/parity_stgcn.py --reference ... --dataset ntu60 --raw fixtures/ntu60 \
        --golden fixtures/golden/stgcn_ntu60.json

The scripts are NOT part of this project: ``--reference`` is a checkout holding
``data_gen/ntu_gendata.py`` (2s-AGCN; NTU60; MS-G3D's version stops at an ``input()`` call) or
``data_gen/ntu120_gendata.py`` (MS-G3D; NTU120) with its ``preprocess.py`` and ``rotation.py``. They run unmodified, as whole processes, from
their ``data_gen`` folder. Their only help is a start-up shim that makes ``os.listdir`` return sorted
names, so that 2s-AGCN lists the files in MS-G3D's (and our) order instead of the file system's.
They are told to ignore the files our build left out (they would keep an all-empty file as zeros,
as the official missing-skeleton lists prevent). MS-G3D's NTU120 pickles hold full raw paths; they
are cut to the file name before comparing or keeping them.

Compares the npy files byte for byte and the pickles' names and labels; exits 1 on any difference.
With ``--golden FILE`` a digest of the reference's outputs is written to that JSON file: for every
benchmark and part the SHA-256 and shape of the npy file and the pickle's names and labels (the npy
files themselves are 180 KB a sample, too large to bundle; the digest checks them byte for byte).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

SCRIPTS = {"ntu60": "ntu_gendata.py", "ntu120": "ntu120_gendata.py"}

_SHIM = '''\
import os, runpy, sys
_listdir = os.listdir
os.listdir = lambda path=".": sorted(_listdir(path))
script = sys.argv[1]
sys.argv = sys.argv[1:]
runpy.run_path(script, run_name="__main__")
'''


def run_reference(reference: Path, dataset: str, files: Dict[str, Path], ignored: List[str], workdir: Path,
                  python: str = sys.executable) -> Path:
    """Run the unmodified reference script on ``files`` (name -> path); returns its output folder."""
    data_gen = reference / "data_gen"
    script = data_gen / SCRIPTS[dataset]
    if not script.is_file():
        raise FileNotFoundError(f"{reference}: no data_gen/{SCRIPTS[dataset]}")
    part1, part2 = workdir / "nturgb+d_skeletons", workdir / "nturgb+d_skeletons120"
    for folder in (part1, part2):
        folder.mkdir(parents=True, exist_ok=True)
    for name, path in files.items():
        folder = part2 if dataset == "ntu120" and int(name[1:4]) >= 18 else part1
        os.symlink(Path(path).resolve(), folder / f"{name}.skeleton")
    ignore = workdir / "missing.txt"
    ignore.write_text("".join(f"{name}\n" for name in ignored))
    shim = workdir / "shim.py"
    shim.write_text(_SHIM)
    out = workdir / "out"
    if dataset == "ntu60":
        args = ["--data_path", f"{part1}/", "--ignored_sample_path", str(ignore), "--out_folder", str(out)]
    else:
        args = ["--part1-path", f"{part1}/", "--part2-path", f"{part2}/", "--ignored-sample-path", str(ignore),
                "--out-folder", str(out)]
    started = time.perf_counter()
    proc = subprocess.run([python, str(shim), str(script)] + args, cwd=data_gen,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{script.name} failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    print(f"  reference {script.name} {time.perf_counter() - started:.2f} s")
    return out


def read_labels(path: Path):
    """``(names, labels)`` of a label pickle, names cut to the file name (MS-G3D stores full paths)."""
    with open(path, "rb") as handle:
        names, labels = pickle.load(handle)
    return [os.path.basename(n) for n in names], [int(label) for label in labels]


def compare(expected: Path, produced: Path) -> List[str]:
    """Differences between two stgcn-npy folders of one benchmark; empty when identical."""
    problems = []
    for part in ("train", "val"):
        data = f"{part}_data_joint.npy"
        if (expected / data).read_bytes() != (produced / data).read_bytes():
            problems.append(f"{data} differs")
        if read_labels(expected / f"{part}_label.pkl") != read_labels(produced / f"{part}_label.pkl"):
            problems.append(f"{part}_label.pkl names or labels differ")
    return problems


def digest(folder: Path) -> dict:
    """What the golden file keeps of one benchmark's stgcn-npy folder."""
    import numpy as np

    parts = {}
    for part in ("train", "val"):
        data = folder / f"{part}_data_joint.npy"
        names, labels = read_labels(folder / f"{part}_label.pkl")
        parts[part] = {"sha256": hashlib.sha256(data.read_bytes()).hexdigest(),
                       "shape": list(np.load(data, mmap_mode="r").shape), "names": names, "labels": labels}
    return parts


def main() -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from skeldata.build import build
    from skeldata.datasets import get_dataset
    from skeldata.convert.export import export_stgcn_npy
    from skeldata.store import open_store

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", required=True, type=Path,
                        help="checkout of 2s-AGCN (ntu60) or MS-G3D (ntu120)")
    parser.add_argument("--dataset", required=True, choices=sorted(SCRIPTS))
    parser.add_argument("--raw", required=True, action="append", type=Path)
    parser.add_argument("--golden", type=Path, help="also keep the reference's outputs in this folder")
    parser.add_argument("--jobs", type=int, default=1)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="skeldata-parity-stgcn-") as tmp:
        tmp = Path(tmp)
        summary = build(args.raw, tmp / "store.h5", args.dataset, jobs=args.jobs, pipeline="stgcn")
        files = {p.name[:-len(".skeleton")]: p for d in args.raw for p in Path(d).rglob("*.skeleton")}
        with open_store(tmp / "store.h5") as store:
            left_out = sorted(store.dropped.name)
            print(f"{args.dataset}: {summary.files} files, {len(store)} samples, left out {dict(summary.dropped)}")
            reference_out = run_reference(args.reference, args.dataset, files, left_out, tmp / "reference")
            failures = 0
            golden = {}
            for bench in get_dataset(args.dataset).benchmarks:
                produced = tmp / "ours" / bench
                export_stgcn_npy(store, bench, produced)
                problems = compare(reference_out / bench, produced)
                failures += bool(problems)
                print(f"  {bench:<6} {'identical' if not problems else 'DIFFERENT: ' + '; '.join(problems)}")
                golden[bench] = digest(reference_out / bench)
        if args.golden:
            args.golden.write_text(json.dumps({"dataset": args.dataset, "reference": SCRIPTS[args.dataset],
                                               "benchmarks": golden}, indent=1) + "\n")
            print(f"  golden digest written to {args.golden}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
