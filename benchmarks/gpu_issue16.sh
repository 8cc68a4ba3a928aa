#!/usr/bin/env bash
# One device call: the GPU check every lent machine starts with, plus issue 16's induction-heads
# runs at batch sizes a 2-core CPU cannot afford.
#
#   BUDGET=200 bash benchmarks/gpu_issue16.sh     # on the device machine; $OUT gets results.tar.gz
#
# 1. Five induction_probe.py variants train at once, each on the GPU for about BUDGET s (the
#    steps are fixed before training from a timed trial), then are evaluated there: the probe's
#    screening (2^8..2^16, near/far keys) and synthetic.py's ladder to 2^20 with >= 128
#    sequences per length.  The models are tiny and launch-bound, so they share the GPU well.
#    Meanwhile gpu_check.sh's tests run (correctness only, so sharing does not matter).
# 2. gpu_check.sh's timings, with the GPU to themselves.
# 3. Everything (logs, CSVs, the trained models) goes into one archive under $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD" PYTHONUNBUFFERED=1
BUDGET=${BUDGET:-200}
OUT=${OUT:-/tmp/gpu_issue16_out}
W=/tmp/gpu_issue16
mkdir -p "$OUT" "$W/logs" "$W/csv"
nvidia-smi --query-gpu=name,driver_version,memory.used,memory.total,clocks.sm,clocks.mem \
    --format=csv > "$W/logs/nvidia_smi.txt" 2>&1
variants="gpu_b256_state_passing gpu_b256_state_passing_zero16 gpu_b1024_state_passing
          gpu_b1024_state_passing_zero64 gpu_b4096_state_passing"
for v in $variants; do
    (timeout $((BUDGET + 150)) python3 benchmarks/induction_probe.py --device cuda \
         --time-budget "$BUDGET" --variants "$v" --out "$W/csv/probe_$v.csv" &&
     timeout 150 python3 benchmarks/synthetic.py --tasks induction --induction-variant "$v" \
         --device cuda --min-eval-seqs 128 --out "$W/csv/synthetic_$v.csv"
     echo "exit $?") > "$W/logs/$v.log" 2>&1 &
done
timeout 300 bash benchmarks/gpu_check.sh tests > "$W/logs/gpu_tests.log" 2>&1
echo "gpu_check tests: exit $?"; tail -25 "$W/logs/gpu_tests.log"
wait
for v in $variants; do echo "== $v"; grep -E "^==|self-check|step .*/|-> induction|exit|Error" \
    "$W/logs/$v.log" | tail -22; done
timeout 200 bash benchmarks/gpu_check.sh bench > "$W/logs/gpu_bench.log" 2>&1
echo "gpu_check bench: exit $?"
cp benchmarks/results/scan_cuda.csv "$W/csv/" 2>/dev/null
mkdir -p "$W/models" && cp -r runs/induction_probe/gpu_* "$W/models/" 2>/dev/null
tar czf "$OUT/results.tar.gz" -C "$W" logs csv models
tail -40 "$W/logs/gpu_bench.log"
