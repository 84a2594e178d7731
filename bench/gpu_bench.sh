#!/usr/bin/env bash
# Training throughput on one CUDA GPU in under 8 minutes (bench/bench_throughput.py, four times): each encoder's
# samples/s with and without CSRE in fp32, AMP bf16, AMP fp16 and compiled AMP, beside the official models that
# are given, then the DataLoader's samples/s with 8 workers from a store (bench/bench_loader.py's measure) against
# what the GPU consumes (the fastest training samples/s), and a summary table.
#
# Prepared for the lent GPU machine (the device tool), one call of at most 10 minutes:
#   carry: work/ucla.h5 (the NW-UCLA store, 11 MB; see bench/gpu_study.sh) and, to time the official models, their
#          checkouts inside the tree without .git (16 MB for these four; BlockGCN's needs einops and
#          torch_topological, which that machine lacks, so it is reported as skipped):
#            mkdir -p work/ref && for r in CTR-GCN 2s-AGCN HCN-pytorch Hyperformer; do
#              rsync -a --exclude .git /work/ref/$r work/ref/; done
#   run:   OFFICIAL_CTRGCN=work/ref/CTR-GCN OFFICIAL_AGCN=work/ref/2s-AGCN OFFICIAL_HCN=work/ref/HCN-pytorch \
#          OFFICIAL_HYPERFORMER=work/ref/Hyperformer bash bench/gpu_bench.sh work/ucla.h5
# Everything goes to $OUT (default ./gpu-bench-out): gpu.txt, <part>.txt and <part>.json per part (fp32, bf16,
# fp16, compiled), loader.txt/.json and summary.txt. Each part runs under `timeout`, and bench_throughput.py
# rewrites its JSON after every encoder, so a part cut short still leaves the encoders it finished.
#
# Settings (environment): ENCODERS (default all five), COMPILE_ENCODERS (ctrgcn,hyperformer: compiling takes about
# a minute per model, so only these two fit; "none" skips the part), COMPILE_PRECISION (fp16, csre-train's AMP on
# CUDA), STEPS (10), WARMUP (3), BUDGET (450 s for all parts together), DEVICE (cuda; cpu gives a smoke run on
# any machine: fp16 is skipped there), BENCH_ARGS (more bench_throughput.py flags for every part, e.g. "--batch 2
# --window 16" for a smoke run), PYTHON (python3), LOADER_ITEMS (8192), OFFICIAL_<ENCODER> (a checkout).
set -uo pipefail

STORE=${1:-work/ucla.h5}
STORE=$(realpath -m "$STORE")
OUT=$(realpath -m "${OUT:-gpu-bench-out}")
OFFICIAL=()
for name in ctrgcn agcn hcn hyperformer blockgcn; do
  var="OFFICIAL_${name^^}"
  if [ -n "${!var:-}" ]; then
    if [ -d "${!var}" ]; then OFFICIAL+=(--official "$name=$(realpath "${!var}")")
    else echo "gpu_bench.sh: $var=${!var} is not a folder; $name is timed without its official model" >&2; fi
  fi
done
cd "$(dirname "$0")/.."
mkdir -p "$OUT"

PYTHON=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
ENCODERS=${ENCODERS:-hcn,agcn,ctrgcn,hyperformer,blockgcn}
COMPILE_ENCODERS=${COMPILE_ENCODERS:-ctrgcn,hyperformer}
COMPILE_PRECISION=${COMPILE_PRECISION:-fp16}
STEPS=${STEPS:-10}
WARMUP=${WARMUP:-3}
BUDGET=${BUDGET:-450}
LOADER_ITEMS=${LOADER_ITEMS:-8192}
read -r -a EXTRA <<< "${BENCH_ARGS:-}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"   # this tree's code, whatever is installed
if ! "$PYTHON" -c "import csre_models, skeldata" 2>/dev/null; then
  "$PYTHON" -m pip install --no-deps -q -e . 2>&1 | grep -v -i warning || true
fi

{ "$PYTHON" - "$DEVICE" <<'EOF'
import sys, torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version(),
      "threads", torch.get_num_threads())
for i in range(torch.cuda.device_count()):
    print(f"cuda:{i}", torch.cuda.get_device_name(i), f"{torch.cuda.get_device_properties(i).total_memory / 2**30:.0f} GiB")
if sys.argv[1] == "cuda" and not torch.cuda.is_available():
    print("gpu_bench.sh: no CUDA device visible (DEVICE=cpu for a smoke run)")
EOF
  nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv 2>/dev/null; } | tee "$OUT/gpu.txt"

# part NAME SECONDS ARGS...: bench_throughput.py under min(SECONDS, what is left of BUDGET).
part() {
  local name=$1 limit=$2; shift 2
  local left=$((BUDGET - SECONDS))
  [ "$left" -lt "$limit" ] && limit=$left
  if [ "$limit" -lt 20 ]; then echo "== $name: skipped, the budget is spent" | tee "$OUT/$name.txt"; return; fi
  echo "== $name (at most ${limit}s)"
  timeout --signal=TERM --kill-after=10 "$limit" "$PYTHON" bench/bench_throughput.py --device "$DEVICE" \
      --steps "$STEPS" --warmup "$WARMUP" --json "$OUT/$name.json" "${EXTRA[@]}" "$@" 2>&1 | tee "$OUT/$name.txt"
  local rc=${PIPESTATUS[0]}
  [ "$rc" -eq 124 ] && echo "== $name: stopped after ${limit}s; the finished encoders are in $name.json" | tee -a "$OUT/$name.txt"
  [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && echo "== $name: exit $rc" | tee -a "$OUT/$name.txt"
}

part fp32 110 --encoders "$ENCODERS" --precision fp32 "${OFFICIAL[@]}"
part bf16 75 --encoders "$ENCODERS" --precision bf16 "${OFFICIAL[@]}"
if [ "$DEVICE" = cuda ]; then part fp16 75 --encoders "$ENCODERS" --precision fp16 "${OFFICIAL[@]}"; fi
if [ "$COMPILE_ENCODERS" != none ] && { [ "$DEVICE" = cuda ] || [ "$COMPILE_PRECISION" != fp16 ]; }; then
  part compiled 150 --encoders "$COMPILE_ENCODERS" --precision "$COMPILE_PRECISION" --compile
fi

# The DataLoader as csre-train builds it for training (SkeletonDataset, train transforms), 8 workers, batch 64,
# timed by bench_loader.samples_per_second (one untimed epoch first, persistent workers).
LEFT=$((BUDGET + 20 - SECONDS)); [ "$LEFT" -gt 60 ] && LEFT=60
if [ ! -f "$STORE" ]; then
  echo "== loader: no store at $STORE" | tee "$OUT/loader.txt"
elif [ "$LEFT" -lt 10 ]; then
  echo "== loader: skipped, the budget is spent" | tee "$OUT/loader.txt"
else
  echo "== loader (at most ${LEFT}s)"
  timeout --signal=TERM --kill-after=10 "$LEFT" "$PYTHON" - "$STORE" "$OUT/loader.json" "$LOADER_ITEMS" <<'EOF' 2>&1 | tee "$OUT/loader.txt"
import json, sys
sys.path.insert(0, "bench")
from bench_loader import samples_per_second
from csre_models.data import SkeletonDataset
from skeldata.store import open_store

store, out, items = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open_store(store) as opened:
    benchmark = opened.benchmarks[0]
dataset = SkeletonDataset(store, benchmark, "train", train=True)
rate = samples_per_second(dataset, workers=8, items=items, batch=64)
print(f"loader: {store}, {benchmark} train ({len(dataset)} items, window {dataset.window}), 8 workers, batch 64: "
      f"{rate:,.0f} samples/s over {items} items")
with open(out, "w") as handle:
    json.dump({"store": store, "benchmark": benchmark, "workers": 8, "batch": 64, "items": items,
               "window": dataset.window, "samples_per_s": rate}, handle, indent=1)
EOF
fi

"$PYTHON" - "$OUT" <<'EOF' | tee "$OUT/summary.txt"
import json, sys
from pathlib import Path

out = Path(sys.argv[1])
parts = {}
for name in ("fp32", "bf16", "fp16", "compiled"):
    path = out / f"{name}.json"
    if path.exists():
        record = json.loads(path.read_text())
        label = f"{name} {record['precision']}" if name == "compiled" else name
        parts[label] = record
if not parts:
    sys.exit("summary: no part finished")
machine = next(iter(parts.values()))["machine"]
print(f"\nsummary: samples/s of a training step; {machine.get('gpu', machine['device'])}, torch {machine['torch']}")
print("(CSRE: its step-time overhead over ours; x faster: official step time / ours without CSRE)")
encoders = list(dict.fromkeys(row["encoder"] for record in parts.values() for row in record["rows"]))
print(f"{'encoder':<12} {'part':<15} {'ours':>9} {'ours+csre':>10} {'CSRE':>8} {'official':>9} {'x faster':>9} "
      f"{'GFLOP/s':>8} {'% peak':>7}")
fastest = {}
for encoder in encoders:
    for label, record in parts.items():
        rows = {row["variant"]: row for row in record["rows"] if row["encoder"] == encoder}
        if not rows:
            continue
        ours, csre, official = rows.get("ours"), rows.get("ours+csre"), rows.get("official")
        cell = lambda row, key="samples_per_s", f="{:,.0f}": "-" if row is None else f.format(row[key])
        precision = record["precision"]
        print(f"{encoder:<12} {label:<15} {cell(ours):>9} {cell(csre):>10} "
              f"{cell(csre, 'csre_overhead_pct', '{:+.1f}%'):>8} {cell(official):>9} "
              f"{cell(official, 'official_over_ours', '{:.2f}x'):>9} {cell(ours, 'gflops_per_s', '{:,.0f}'):>8} "
              f"{'-' if ours is None else format(ours['pct_of_peak'][precision], '.1f'):>7}")
        for row in (ours, csre):
            if row is not None and row["samples_per_s"] > fastest.get(encoder, (0, ""))[0]:
                fastest[encoder] = (row["samples_per_s"], f"{label}, {row['variant']}")
skipped = sorted({reason for record in parts.values() for reason in record.get("skipped", [])})
for reason in skipped:
    print(reason)
loader_path = out / "loader.json"
if not loader_path.exists():
    print("loader: not measured (see loader.txt)")
    sys.exit(0)
loader = json.loads(loader_path.read_text())
print(f"\nloader (8 workers, batch {loader['batch']}, {Path(loader['store']).name}, window {loader['window']}): "
      f"{loader['samples_per_s']:,.0f} samples/s, against the fastest training step of each encoder:")
for encoder, (rate, where) in fastest.items():
    share = loader["samples_per_s"] / rate
    verdict = "keeps up" if share >= 1 else f"GPU waits: {100 * (1 - share):.0f} % idle"
    print(f"  {encoder:<12} {rate:>9,.0f} samples/s ({where}): loader/GPU {share:.2f}, {verdict}")
EOF
echo "gpu_bench.sh: done in ${SECONDS}s; results in $OUT"
