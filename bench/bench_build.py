"""Time ``skeldata build`` on synthetic NTU files, against the published scripts when given.

    python bench/bench_build.py --n 1000 --jobs 2 [--reference /path/to/CSRE] [--raw DIR] [--rounds 3]
    python bench/bench_build.py --memory 150,1500

Prints files/s, body-frames/s and peak RSS of ``skeldata build`` run as a whole process (the command
line, as a user runs it), and, with ``--reference``, the same for the three SGN-family scripts run
side by side on the same files, each as its own process, with the ratio of the totals and a
bit-for-bit comparison of the npz files. ``--rounds N`` alternates N builds with N reference runs
and compares the medians, so that a machine whose speed drifts slows both sides alike. ``--memory`` builds stores of different sizes to show that
peak memory does not grow with the data set.

Files: ``--raw DIR`` (e.g. made by ``shared/tools/synth_ntu.py --n 1000``), or a set generated with
``skeldata.synthetic`` into a temporary folder.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Dict, List, Tuple

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from reference import compare_npz, discover_files, npz_paths, prepare, run  # noqa: E402


def skeldata_command() -> List[str]:
    """``skeldata`` as installed, falling back to the module when the script is not on PATH."""
    script = Path(sys.executable).with_name("skeldata")
    return [str(script)] if script.exists() else [sys.executable, "-m", "cli.skeldata"]


def _tree_rss_bytes(root: int) -> int:
    """Resident memory of a process and all its descendants, from /proc (Linux).

    Follows /proc/PID/task/*/children from the root only, so that sampling stays cheap and does not
    slow down the process being measured.
    """
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        try:
            with open(f"/proc/{pid}/statm") as handle:
                total += int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/children") as handle:
                    stack.extend(int(child) for child in handle.read().split())
        except (OSError, ValueError):
            continue
    return total


def timed_process(args: List[str]) -> Tuple[float, float, float]:
    """Run a command to completion: wall seconds, peak RSS of the process itself (exact, MiB) and of
    the process with its workers together (sampled every 50 ms, MiB)."""
    started = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    tree_peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.05):
            tree_peak[0] = max(tree_peak[0], _tree_rss_bytes(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    stderr = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{stderr[-2000:]}")
    return seconds, usage.ru_maxrss / 1024, tree_peak[0] / 2 ** 20


def body_frames(files: Dict[str, Path]) -> int:
    """Bodies summed over all frames: the unit of parsing work."""
    total = 0
    for path in files.values():
        with open(path, "rb") as handle:
            lines = handle.read().split(b"\n")
        n_frames, line = int(lines[0]), 1
        for _ in range(n_frames):
            n_bodies = int(lines[line])
            total += n_bodies
            line += 1 + 27 * n_bodies
    return total


def make_files(folder: Path, n: int, seed: int) -> Path:
    from skeldata.synthetic import write_set
    write_set(folder, n, seed=seed, frames=(60, 300))
    return folder


def build_once(raw: Path, out: Path, jobs: int) -> Tuple[float, float, float]:
    return timed_process(skeldata_command() + ["build", "--dataset", "ntu60", "--raw", str(raw), "--out", str(out),
                                               "--jobs", str(jobs), "--quiet"])


def speed(args) -> None:
    with tempfile.TemporaryDirectory(prefix="skeldata-bench-") as tmp:
        tmp = Path(tmp)
        raw = args.raw or make_files(tmp / "raw", args.n, args.seed)
        files = discover_files([raw])
        size = sum(p.stat().st_size for p in files.values())
        frames = body_frames(files)
        print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
        print(f"input: {len(files)} files, {size / 1e6:.0f} MB, {frames:,} body-frames ({raw})")
        store = tmp / "store.h5"
        run_dir = None
        ours: List[float] = []
        theirs: List[float] = []
        for round_ in range(1, args.rounds + 1):  # ours and the reference alternate: drift slows both alike
            store.unlink(missing_ok=True)
            seconds, rss, tree = build_once(raw, store, args.jobs)
            ours.append(seconds)
            print(f"round {round_}: skeldata build --jobs {args.jobs}: {seconds:.2f} s, {len(files) / seconds:.0f} files/s, "
                  f"{frames / seconds:,.0f} body-frames/s, peak RSS {rss:.0f} MiB (main process), "
                  f"{tree:.0f} MiB (with workers)")
            if not args.reference:
                continue
            if run_dir is None:
                from skeldata import open_store
                with open_store(store) as opened:
                    names = set(opened.names)
                run_dir = prepare(args.reference, "ntu60", {n: p for n, p in files.items() if n in names}, tmp / "ref")
            total = 0.0
            for script in run(run_dir):
                total += script.seconds
                print(f"round {round_}: reference {script.script:<28} {script.seconds:6.2f} s  "
                      f"peak RSS {script.peak_rss_mib:.0f} MiB")
            theirs.append(total)
            print(f"round {round_}: reference total {total:.2f} s; ratio {total / seconds:.1f}x")
        mine = statistics.median(ours)
        print(f"skeldata build: median {mine:.2f} s of {len(ours)} ({', '.join(f'{s:.2f}' for s in ours)})")
        if not args.reference:
            return
        reference_total = statistics.median(theirs)
        print(f"reference total: median {reference_total:.2f} s of {len(theirs)} "
              f"({', '.join(f'{s:.2f}' for s in theirs)}), {len(files) / reference_total:.0f} files/s")
        print(f"ratio of medians: skeldata build is {reference_total / mine:.1f}x faster")
        from skeldata import open_store
        from skeldata.convert.export import export_sgn_npz
        with open_store(store) as opened:
            for bench, expected in npz_paths(run_dir, "ntu60").items():
                export_sgn_npz(opened, bench, tmp / f"{bench}.npz")
                problems = compare_npz(expected, tmp / f"{bench}.npz")
                print(f"output {bench}: {'bit-identical to the reference' if not problems else problems}")


def memory(args) -> None:
    sizes = [int(s) for s in args.memory.split(",")]
    with tempfile.TemporaryDirectory(prefix="skeldata-bench-") as tmp:
        tmp = Path(tmp)
        raw = make_files(tmp / "raw", max(sizes), args.seed)
        paths = sorted(raw.glob("*.skeleton"))
        peaks = []
        for n in sizes:
            subset = tmp / f"subset{n}"
            subset.mkdir()
            for path in paths[:n]:
                os.symlink(path, subset / path.name)
            seconds, rss, tree = build_once(subset, tmp / f"store{n}.h5", args.jobs)
            peaks.append((rss, tree))
            print(f"{n:>6} files: {seconds:6.2f} s, peak RSS {rss:.0f} MiB (main process), {tree:.0f} MiB (with workers)")
        print(f"peak RSS ratio {sizes[-1]} / {sizes[0]} files: main process {peaks[-1][0] / peaks[0][0]:.2f}, "
              f"with workers {peaks[-1][1] / peaks[0][1]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=300, help="synthetic files to generate (without --raw)")
    parser.add_argument("--raw", type=Path, help="folder of .skeleton files to use instead")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1,
                        help="builds (and reference runs, alternated with them) to take the median of")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reference", type=Path, help="checkout of CSRE / CTR-GCN with data/ntu/*.py")
    parser.add_argument("--memory", help="comma-separated file counts, e.g. 150,1500")
    args = parser.parse_args()
    memory(args) if args.memory else speed(args)


if __name__ == "__main__":
    main()
