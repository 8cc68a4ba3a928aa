#!/usr/bin/env bash
# One device call for issue 16's induction-heads runs, with (CHECK=1, the default) the GPU
# check every lent machine starts with.
#
#   BUDGET=170 bash experiments/gpu_issue16.sh                  # five batch sizes at once + check
#   CHECK=0 BUDGET=250 VARIANTS=gpu_b32_state_passing bash experiments/gpu_issue16.sh
#
# 1. Each VARIANTS entry (induction_probe.py) trains on the GPU for about BUDGET s (the steps
#    are fixed before training from a timed trial; several variants train at once), then is
#    evaluated there: the probe's screening (2^8..2^16, near/far keys) and synthetic.py's
#    ladder to 2^20 with >= 128 sequences per length.  Each trained model is archived under
#    $OUT as soon as it is saved, so a call cut short keeps it.  Meanwhile gpu_check.sh's tests
#    run (correctness only, so sharing the GPU does not matter).
#    Measured on an H200: processes time-slice the GPU, so five at once each ran at a fraction
#    of the speed of one; the step count per variant falls accordingly.
# 2. gpu_check.sh's timings, with the GPU to themselves ($OUT/scan_cuda.csv).
# 3. Logs and the induction CSVs go into $OUT/results.tar.gz.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD" PYTHONUNBUFFERED=1
BUDGET=${BUDGET:-200}
CHECK=${CHECK:-1}
VARIANTS=${VARIANTS:-"gpu_b256_state_passing gpu_b256_state_passing_zero16
    gpu_b1024_state_passing gpu_b1024_state_passing_zero64 gpu_b4096_state_passing"}
OUT=${OUT:-/tmp/gpu_issue16_out}
W=/tmp/gpu_issue16
mkdir -p "$OUT" "$W/logs" "$W/csv"
nvidia-smi --query-gpu=name,driver_version,memory.used,memory.total,clocks.sm,clocks.mem \
    --format=csv > "$W/logs/nvidia_smi.txt" 2>&1
for v in $VARIANTS; do
    (timeout $((BUDGET + 150)) python3 experiments/induction_probe.py --device cuda \
         --time-budget "$BUDGET" --variants "$v" --out "$W/csv/probe_$v.csv" &&
     timeout 150 python3 experiments/synthetic.py --tasks induction --induction-variant "$v" \
         --device cuda --min-eval-seqs 128 --out "$W/csv/synthetic_$v.csv"
     echo "exit $?") > "$W/logs/$v.log" 2>&1 &
    trainer=$!
    (d=runs/induction_probe/$v  # archive the model once saved (or give up if the run died)
     while [ ! -s "$d/train.txt" ] && kill -0 $trainer 2>/dev/null; do sleep 2; done; sleep 3
     [ -s "$d/train.txt" ] && tar czf "$OUT/model_$v.tar.gz" -C runs/induction_probe "$v") &
done
if [ "$CHECK" = 1 ]; then
    timeout 300 bash benchmarks/gpu_check.sh tests > "$W/logs/gpu_tests.log" 2>&1
    echo "gpu_check tests: exit $?"; tail -25 "$W/logs/gpu_tests.log"
fi
wait
for v in $VARIANTS; do echo "== $v"; grep -E "^==|self-check|step .*/|-> induction|exit|Error" \
    "$W/logs/$v.log" | tail -24; done
if [ "$CHECK" = 1 ]; then
    timeout 200 bash benchmarks/gpu_check.sh bench > "$W/logs/gpu_bench.log" 2>&1
    echo "gpu_check bench: exit $?"  # it puts scan_cuda.csv under $OUT itself
    tail -40 "$W/logs/gpu_bench.log"
fi
tar czf "$OUT/results.tar.gz" -C "$W" logs csv
