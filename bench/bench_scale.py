"""How ``skeldata build`` grows with the data set: time and peak memory at several sizes, and the
extrapolation to the full NTU RGB+D 120 (114,480 files).

    python bench/bench_scale.py                        # 2,000, 5,000 and 20,000 synthetic NTU120 files
    python bench/bench_scale.py --sizes 500,2000 --jobs 2 --keep /data/synth   # reuse generated files

The files come from ``skeldata.synthetic`` (NTU120 names, 60-300 frames, the scenarios of the real data:
one or two actors, noise bodies, empty frames, files left out), generated once for the largest size; the
smaller builds take the first files by name. Each build runs as a whole process, as a user runs it, and
its peak RSS is taken for the main process (exact) and with its workers (sampled every 50 ms). The table
gives seconds, files/s, body-frames/s and both peaks per size, then a least-squares line of time against
files (is it linear?) and what it predicts for 114,480 files.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from pathlib import Path
from typing import List, Tuple

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_build import body_frames, skeldata_command, timed_process  # noqa: E402
from reference import discover_files  # noqa: E402

FULL_NTU120 = 114_480


def generate(folder: Path, n: int, seed: int) -> List[Path]:
    """``n`` synthetic NTU120 files in ``folder`` (kept if already there), sorted by name."""
    from skeldata.synthetic import write_set

    existing = sorted(folder.glob("*.skeleton")) if folder.exists() else []
    if len(existing) < n:
        print(f"generating {n:,} synthetic NTU120 files in {folder} ...", flush=True)
        write_set(folder, n, seed=seed, dataset="ntu120", frames=(60, 300))
        existing = sorted(folder.glob("*.skeleton"))
    return existing[:n]


def build(raw: Path, out: Path, jobs: int) -> Tuple[float, float, float]:
    return timed_process(skeldata_command() + ["build", "--dataset", "ntu120", "--raw", str(raw), "--out", str(out),
                                               "--jobs", str(jobs), "--quiet", "--allow-errors", "--overwrite"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="2000,5000,20000", help="comma-separated file counts")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, help="folder for the generated files, kept between runs")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    with tempfile.TemporaryDirectory(prefix="skeldata-scale-") as tmp:
        tmp = Path(tmp)
        paths = generate(args.keep or tmp / "raw", sizes[-1], args.seed)
        print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
              f"--jobs {args.jobs}")
        print(f"{'files':>7} {'MB':>7} {'body-frames':>12} {'seconds':>8} {'files/s':>8} {'frames/s':>10} "
              f"{'RSS main':>9} {'RSS all':>8}")
        rows = []
        for n in sizes:
            subset = tmp / f"subset{n}"
            subset.mkdir()
            for path in paths[:n]:
                os.symlink(path.resolve(), subset / path.name)
            files = discover_files([subset])
            megabytes = sum(p.stat().st_size for p in files.values()) / 1e6
            frames = body_frames(files)
            seconds, rss, tree = build(subset, tmp / f"store{n}.h5", args.jobs)
            (tmp / f"store{n}.h5").unlink()
            rows.append((n, seconds, rss, tree))
            print(f"{n:>7,} {megabytes:>7.0f} {frames:>12,} {seconds:>8.1f} {n / seconds:>8.0f} {frames / seconds:>10,.0f} "
                  f"{rss:>7.0f} M {tree:>6.0f} M", flush=True)
        counts = np.array([row[0] for row in rows], dtype=float)
        times = np.array([row[1] for row in rows])
        slope, intercept = np.polyfit(counts, times, 1)
        residual = np.abs(times - (slope * counts + intercept)).max() / times.max()
        print(f"time = {intercept:.1f} s + {slope * 1000:.2f} s per 1,000 files (largest residual {residual:.1%} of "
              f"the longest build); {FULL_NTU120:,} files: {intercept + slope * FULL_NTU120:.0f} s predicted")
        print(f"peak RSS from {sizes[0]:,} to {sizes[-1]:,} files: main process {rows[0][2]:.0f} -> {rows[-1][2]:.0f} "
              f"MiB, with workers {rows[0][3]:.0f} -> {rows[-1][3]:.0f} MiB")


if __name__ == "__main__":
    main()
