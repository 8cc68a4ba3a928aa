#!/usr/bin/env bash
# GPU check for the Triton scan kernels: one call of at most ~10 minutes on an H100 or H200.
#   tests   the Triton tests compiled for the GPU at real sizes, fp32 and bf16 (both
#           reverse-scan modes of the backward kernel, see seqmamba_kernels/triton_kernels.py,
#           and every candidate tile config of triton_scan.CANDIDATE_TILES), the conformance
#           vectors in full, gradients included, and the Mamba-2 (SSD) kernels
#           (tests/test_ssd_triton.py: values, final states, every gradient);
#   static  benchmarks/gpu_static.py --candidates for this GPU's compute capability:
#           registers, spills, shared memory and occupancy of every kernel at each candidate
#           tile config (it needs no GPU; run beside the tests, it also fills Triton's cache
#           with the kernels the sweep launches);
#   sweep   benchmarks/gpu_scan_sweep.py: every candidate tile config, then the best ones on
#           batch 8 x dim 2048 x L 2k..64k and batch 1 x dim 512 x L 64k..1M against the
#           torch backend, as fractions of the floor (benchmarks/gpu_floor.py); the one-step
#           kernel's tokens/s in a 24-layer d_model 768 LM, eager and with CUDA graphs; a
#           bf16-mixed training step of the DNA LM at 2^16 and 2^20 tokens and the largest
#           length that fits.  Each of its sections has a time budget (SWEEP_BUDGET).
#           Then benchmarks/gpu_ssd.py: the SSD kernels against the torch chunked path,
#           batch 4 x 32 heads x head_dim 64, state 128, L 2k..64k, fwd and fwd+bwd, tokens/s
#           and peak memory, within its own budget (SSD_BUDGET seconds, default 60).
#   bench   the fixed table of benchmarks/scan.py (benchmarks/results/scan_cuda.csv, fresh
#           processes, peak memory): by name only, it takes 2-3 minutes of its own.
# Results: everything under $OUT (a new temporary folder when $OUT is unset), eight files (a
# lease returns eight at most: add none without removing one): tests.log, gpu_static.csv,
# gpu_static.log, scan_sweep.csv, step_tokens.csv, train_step.csv, ssd_sweep.csv, sweep.log.
#
#   bash benchmarks/gpu_check.sh                 # tests + static + sweep
#   bash benchmarks/gpu_check.sh tests           # one stage: tests, static, sweep or bench
#   bash benchmarks/gpu_check.sh --dry-run       # on a CPU: every stage at tiny sizes, under
#                                                # TRITON_INTERPRET=1 (a check of this script)
# Every test runs even after a failure, so one call lists all of them.
set -uo pipefail
dry=0
stage=all
for arg in "$@"; do
    case "$arg" in
        --dry-run) dry=1 ;;
        all|tests|static|sweep|bench) stage=$arg ;;
        *) echo "unknown argument $arg (stages: all tests static sweep bench; --dry-run)"; exit 2 ;;
    esac
done
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
export OUT
echo "results under $OUT"
runs() { [ "$stage" = all ] || [ "$stage" = "$1" ]; }
rc=0

if [ $dry = 1 ]; then
    export TRITON_INTERPRET=1
    cc=90  # the static table is built for Hopper whatever this machine has
    test_env="SEQMAMBA_TEST_DEVICE=cpu"
    test_args="--collect-only"  # the selection below exists; the tests themselves run in CI
    static_args="--quick"
    sweep_args="--dry-run"
else
    $PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device here')" || exit 2
    $PY -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, torch.cuda.get_device_name(0))"
    nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,driver_version --format=csv || true
    cc=$($PY -c "import torch; m, n = torch.cuda.get_device_capability(0); print(10 * m + n)")
    export TRITON_INTERPRET=0
    test_env="SEQMAMBA_TEST_DEVICE=cuda"
    test_args=""
    # parallel workers compile the kernels side by side (the tests share the one GPU)
    $PY -c "import xdist" 2>/dev/null && test_args="-n 4"
    # the candidate configs only: the full grid for sm_90 needs no GPU and is in
    # benchmarks/results/gpu_static.csv (python benchmarks/gpu_static.py, ~250 compilations)
    static_args="--candidates --jobs $(( $(nproc) > 4 ? $(nproc) - 4 : 1 ))"
    sweep_args=""
fi

static_pid=""
if runs static; then  # in the background, beside the tests: it needs CPUs, not the GPU
    timeout 240 $PY benchmarks/gpu_static.py --arch "$cc" $static_args \
        --out "$OUT/gpu_static.csv" > "$OUT/gpu_static.log" 2>&1 &
    static_pid=$!
fi
if runs tests; then
    env $test_env timeout 300 $PY -m pytest -q -rf -p no:cacheprovider $test_args \
        tests/test_scan_backends.py tests/test_conformance.py tests/test_chunked_state.py \
        tests/test_ssd_triton.py -k "triton" 2>&1 | tee "$OUT/tests.log" | tail -n 25 || rc=1
fi
if [ -n "$static_pid" ]; then
    wait "$static_pid" || { rc=1; echo "static analysis failed:"; }
    tail -n 30 "$OUT/gpu_static.log"
fi
if runs sweep; then
    # seconds for the scan, step and train sections: each starts no measurement after its own
    read -r -a budget <<< "${SWEEP_BUDGET:-160 35 70}"
    timeout 360 $PY benchmarks/gpu_scan_sweep.py --out "$OUT" --budget "${budget[@]}" \
        $sweep_args 2>&1 | tee "$OUT/sweep.log" | grep -v "^phase=" || rc=1
    timeout 150 $PY benchmarks/gpu_ssd.py --out "$OUT" --budget "${SSD_BUDGET:-60}" \
        $sweep_args 2>&1 | tee -a "$OUT/sweep.log" | tail -n 40 || rc=1
fi
if [ "$stage" = bench ]; then
    if [ $dry = 1 ]; then
        $PY benchmarks/scan.py --device cpu --batch 1 --dim 8 --state 4 --lengths 64 \
            --impls torch --repeats 1 --timeout 60 --out "$OUT/scan_cpu.csv" || rc=1
    else
        impls="triton torch"
        $PY -c "import mambapy" 2>/dev/null && impls="$impls mambapy"
        # --timeout: one hung measurement is reported as skipped instead of eating the lease
        $PY benchmarks/scan.py --device cuda --batch 8 --dim 2048 --state 16 \
            --lengths 2048 8192 32768 65536 --impls $impls --repeats 3 --timeout 60 || rc=1
        cp benchmarks/results/scan_cuda.csv "$OUT/" 2>/dev/null || true
    fi
fi
exit $rc
