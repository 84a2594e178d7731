"""Check ``skeldata build`` + ``export --format sgn-npz`` against the published scripts, bit for bit.

    python bench/parity.py --reference /path/to/CSRE --dataset ntu60 --raw DIR [--raw DIR ...]

Builds a store from the raw folders, runs the reference scripts on exactly the samples the store
holds (the reference needs the files it cannot process to be listed out beforehand; skeldata finds
them itself), exports every benchmark and compares keys, order, dtypes, shapes and bytes. Exits 1 on
any difference.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from reference import compare_npz, discover_files, npz_paths, prepare, run  # noqa: E402

from skeldata.build import build  # noqa: E402
from skeldata.convert.export import export_sgn_npz  # noqa: E402
from skeldata.store import open_store  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", required=True, type=Path, help="checkout of CSRE / CTR-GCN / SGN")
    parser.add_argument("--dataset", required=True, choices=["ntu60", "ntu120"])
    parser.add_argument("--raw", required=True, action="append", type=Path)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="skeldata-parity-") as tmp:
        tmp = Path(tmp)
        summary = build(args.raw, tmp / "store.h5", args.dataset, jobs=args.jobs)
        store = open_store(tmp / "store.h5")
        names = set(store.names)
        files = {n: p for n, p in discover_files(args.raw).items() if n in names}
        print(f"{args.dataset}: {summary.files} files, {len(names)} samples, left out {dict(summary.dropped)}")
        run_dir = prepare(args.reference, args.dataset, files, tmp / "reference")
        for script in run(run_dir):
            print(f"  reference {script.script:<28} {script.seconds:6.2f} s")
        failures = 0
        for bench, expected in npz_paths(run_dir, args.dataset).items():
            produced = tmp / f"{bench}.npz"
            export_sgn_npz(store, bench, produced)
            problems = compare_npz(expected, produced)
            failures += bool(problems)
            print(f"  {bench:<6} {'identical' if not problems else 'DIFFERENT: ' + '; '.join(problems)}")
        store.close()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
