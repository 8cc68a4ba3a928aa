#!/usr/bin/env bash
# One device call for issue 13 (FSDD, unheard speakers): leave-one-speaker-out folds trained on
# the GPU, with the GPU check's tests running beside them (correctness only, so sharing the GPU
# does not matter) and its timings after them, with the GPU alone.
#
#   BUDGET=400 P=4 bash experiments/gpu_issue13.sh
#   CHECK=0 JOBS="band_limit_s0:seed=0,band_limit=0.5:george" bash experiments/gpu_issue13.sh
#
# JOBS: "TAG:OVERRIDES:SPEAKER" entries, OVERRIDES comma-separated recipe keys (audio_fsdd.py's
# --set), in priority order; P of them train at once (each with WORKERS data-loader processes:
# the augmentation is CPU work, about 5 ms a clip) until BUDGET seconds after the start, when
# the ones still running are stopped.  A stopped fold keeps its last checkpoint (every val_every
# steps), and `audio_fsdd.py` resumes it wherever it is rerun.  Every fold is trained in float32
# ("32-true", what the CPU runs use), not the bf16 that Lightning would pick on a GPU, so the
# folds compare with the CPU-trained ones.  Scoring (baselines, noise, confusions) is left to
# `audio_fsdd.py --evaluate-only` on any machine.
# Measured on an H200 (2026-11-30; README, "Measured on a GPU"): five folds at once with two
# workers each took 193-199 s a fold, four at once with three workers 114-115 s, against about
# 460 s for one fold on two idle CPU cores.  A lease's 15 minutes hold the GPU check's tests
# and about a dozen folds: three calls (BUDGET=370, then the stopped folds and four more).
# Out: $OUT/finished.tar.gz and stopped.tar.gz (runs/fsdd_loso_TAG/SPEAKER), $OUT/logs.tar.gz,
# $OUT/scan_cuda.csv (gpu_check.sh's timings).
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
BUDGET=${BUDGET:-400}
P=${P:-4}
WORKERS=${WORKERS:-3}
CHECK=${CHECK:-1}
JOBS=${JOBS:-"band_limit_s0:seed=0,band_limit=0.5:george band_limit_s0:seed=0,band_limit=0.5:jackson
    band_limit_s0:seed=0,band_limit=0.5:lucas band_limit_s0:seed=0,band_limit=0.5:nicolas
    band_limit:seed=1,band_limit=0.5:jackson band_limit:seed=1,band_limit=0.5:lucas
    seed2:seed=2:george seed2:seed=2:jackson seed2:seed=2:lucas seed2:seed=2:nicolas
    band_limit_s2:seed=2,band_limit=0.5:george band_limit_s2:seed=2,band_limit=0.5:jackson
    band_limit_s2:seed=2,band_limit=0.5:lucas band_limit_s2:seed=2,band_limit=0.5:nicolas"}
OUT=${OUT:-/tmp/gpu_issue13_out}
W=/tmp/gpu_issue13
mkdir -p "$OUT" "$W/logs"
START=$(date +%s)
export DEADLINE=$((START + BUDGET)) WORKERS W
nvidia-smi --query-gpu=name,driver_version,memory.used,memory.total,clocks.sm,clocks.mem \
    --format=csv > "$W/logs/nvidia_smi.txt" 2>&1

fold() {  # one job: train until done or DEADLINE
    local tag=${1%%:*} rest=${1#*:}
    local sets=${rest%:*} speaker=${rest##*:}
    local left=$((DEADLINE - $(date +%s)))
    [ $left -gt 30 ] || { echo "$1: no time left, not started"; return 0; }
    local t0=$(date +%s)
    # one thread per process: P trainers and their workers share the machine's cores
    OMP_NUM_THREADS=1 timeout $left python3 experiments/audio_fsdd.py --train-only --threads 1 \
        --tag "$tag" --speakers "$speaker" --set ${sets//,/ } \
        --train-set workers=$WORKERS precision=32-true > "$W/logs/${tag}_$speaker.log" 2>&1
    echo "$1: exit $? after $(( $(date +%s) - t0 )) s"
}
export -f fold
if [ "$CHECK" = 1 ]; then
    (timeout 330 bash benchmarks/gpu_check.sh tests > "$W/logs/gpu_tests.log" 2>&1
     echo "gpu_check tests: exit $?" >> "$W/logs/gpu_tests.log") &
    tests=$!
fi
# GPU and memory-bus utilisation every 5 s while the folds train: is the GPU or the CPU-side
# augmentation the limit?
nvidia-smi dmon -s u -d 5 > "$W/logs/dmon.txt" 2>&1 &
dmon=$!
echo $JOBS | tr ' ' '\n' | xargs -P "$P" -I{} bash -c 'fold "$@"' _ {}
kill $dmon 2>/dev/null
echo "training stopped after $(( $(date +%s) - START )) s"
# finished folds without their checkpoints (scoring reads final/), stopped ones with the last
# only (to resume from): the files that come back are 16 MiB at most
done_runs=$(ls -d runs/fsdd_loso_*/*/report.json 2>/dev/null | xargs -r -n1 dirname)
part_runs=$(ls -d runs/fsdd_loso_*/*/checkpoints/last.ckpt 2>/dev/null | xargs -r -n1 dirname |
            xargs -r -n1 dirname | grep -v -x -F "$done_runs")
[ -n "$done_runs" ] && tar czf "$OUT/finished.tar.gz" --exclude=checkpoints $done_runs
[ -n "$part_runs" ] && tar czf "$OUT/stopped.tar.gz" --exclude=best.ckpt $part_runs
for f in "$W"/logs/*_*.log; do  # each fold's steps/s and its end
    echo "== $(basename "$f")"; grep -E "held-out|Error|error|it/s|steps" "$f" | tail -3; done
if [ "$CHECK" = 1 ]; then
    wait $tests; tail -4 "$W/logs/gpu_tests.log"
    timeout 120 bash benchmarks/gpu_check.sh bench > "$W/logs/gpu_bench.log" 2>&1
    echo "gpu_check bench: exit $?"; tail -22 "$W/logs/gpu_bench.log"
fi
tar czf "$OUT/logs.tar.gz" -C "$W" logs
echo "all done after $(( $(date +%s) - START )) s"
