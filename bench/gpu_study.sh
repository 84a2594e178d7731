#!/usr/bin/env bash
# The full 65-epoch NW-UCLA recipe of CTR-GCN, with and without CSRE, over as many seeds as fit: runs
# side by side on one GPU (csre-study --devices cuda:0 --jobs N), stopped after a time budget and resumed
# by the next call with the same study dir (each run keeps its last.pt).
#
# Prepared for the lent GPU machine (the device tool), one call of at most 10 minutes:
#   carry: work/ucla.h5 (the NW-UCLA store, 11 MB: skeldata build --dataset ucla --raw
#          ../shared/data/nw-ucla/all_sqe --out work/ucla.h5) and, to continue a study, work/gpu-study
#   run:   bash bench/gpu_study.sh            (BUDGET=540 SEEDS=1,2 JOBS=4 are the defaults: two seeds x two
#          arms side by side; a CTR-GCN NW-UCLA step is launch-bound on a large GPU, so four runs share it well)
# Everything comes back under $OUT: the report, each run's metrics.jsonl, result.json, env.json, log.txt
# and scores, and (to resume in a later call) the last.pt files when they fit.
#
# Also runs on any CUDA machine: STORE=ucla.h5 WORK=studies/gpu BUDGET=0 (no limit) bash bench/gpu_study.sh
set -uo pipefail
cd "$(dirname "$0")/.."

STORE=${STORE:-work/ucla.h5}
WORK=${WORK:-work/gpu-study}
SEEDS=${SEEDS:-1,2}
JOBS=${JOBS:-4}
BUDGET=${BUDGET:-540}                       # seconds of training before the study is stopped (0: none)
OUT=${OUT:-work/gpu-out}
mkdir -p "$OUT" "$WORK"

python3 -m pip install --no-deps -q -e . 2>&1 | grep -v -i warning || true
python3 - <<'EOF' | tee "$OUT/gpu.txt"
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())
for i in range(torch.cuda.device_count()):
    print(f"cuda:{i}", torch.cuda.get_device_name(i), f"{torch.cuda.get_device_properties(i).total_memory / 2**30:.0f} GiB")
EOF
if [ ! -f "$STORE" ]; then
  if [ -d ../shared/data/nw-ucla/all_sqe ]; then
    skeldata build --dataset ucla --raw ../shared/data/nw-ucla/all_sqe --out "$STORE" --jobs 8
  else
    echo "gpu_study.sh: no store at $STORE and no ../shared/data/nw-ucla to build it from" >&2; exit 1
  fi
fi

# The recipe as published (65 epochs, warm-up 5, lr x0.1 at 50, batch 16, window 52) with a 10 %
# validation split for the model choice; AMP float16 on CUDA (csre-train's default there).
STUDY=(csre-study --config configs/ctrgcn/ucla-xview-joint.yaml --store "$STORE" --seeds "$SEEDS"
       --work-dir "$WORK" --devices cuda:0 --jobs "$JOBS" --val-fraction 0.1 --num-workers 2)
nvidia-smi --query-gpu=name,utilization.gpu,memory.used --format=csv -l 30 > "$OUT/nvidia-smi.csv" 2>/dev/null &
SMI=$!
if [ "$BUDGET" -gt 0 ]; then
  timeout --signal=TERM --kill-after=60 "$BUDGET" "${STUDY[@]}" 2>&1 | tee "$OUT/study.txt"
else
  "${STUDY[@]}" 2>&1 | tee "$OUT/study.txt"
fi
kill "$SMI" 2>/dev/null || true
csre-study --work-dir "$WORK" --report 2>&1 | tee -a "$OUT/study.txt"

# Bring back what explains the runs; the checkpoints too while they stay small enough to carry again.
( cd "$WORK" && find . -name '*.json' -o -name '*.jsonl' -o -name 'log.txt' -o -name '*.npz' \
    -o -name 'report.md' -o -name 'curves.png' -o -name 'study-output.txt' | tar -cf - -T - ) | tar -xf - -C "$OUT"
SIZE=$(du -cm "$WORK"/*/last.pt 2>/dev/null | tail -1 | cut -f1)
if [ "${SIZE:-0}" -le 48 ]; then
  ( cd "$WORK" && find . -name 'last.pt' -o -name 'best.pt' | tar -cf - -T - ) | tar -xf - -C "$OUT"
fi
echo "gpu_study.sh: done; results in $OUT"
