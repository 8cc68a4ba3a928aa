#!/usr/bin/env bash
# GPU check for the Triton scan kernels, on a CUDA machine (run from anywhere):
#   1. the Triton tests compiled for the GPU at real sizes, fp32 and bf16 (both reverse-scan
#      modes of the backward kernel, see seqmamba_kernels/triton_kernels.py), and the conformance vectors
#      in full, gradients included;
#   2. forward and forward+backward timings at batch 8, dim 2048, state 16, lengths 2k..64k,
#      against the memory-traffic floor (bytes of u, delta, B, C, z read and out written, over
#      the measured device copy bandwidth; the "bw_fraction" column is floor time / measured time, the
#      target for forward is >= 70%), beside the torch backend and mamba.py's pscan where
#      mambapy is installed.
# Results: benchmarks/results/scan_cuda.csv, and a copy under $OUT when that is set.
#
#   bash benchmarks/gpu_check.sh            # both stages
#   bash benchmarks/gpu_check.sh tests      # stage 1 only (correctness: may share the GPU)
#   bash benchmarks/gpu_check.sh bench      # stage 2 only (timings: give it the GPU alone)
# Every test runs even after a failure, so one call lists all of them.
set -uo pipefail
stage=${1:-all}
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
$PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device here')" || exit 2
$PY -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, torch.cuda.get_device_name(0))"
rc=0
if [ "$stage" != bench ]; then
    SEQMAMBA_TEST_DEVICE=cuda TRITON_INTERPRET=0 $PY -m pytest -q -rf -p no:cacheprovider \
        tests/test_scan_backends.py tests/test_conformance.py tests/test_chunked_state.py \
        -k "triton" || rc=1
fi
if [ "$stage" != tests ]; then
    impls="triton torch"
    $PY -c "import mambapy" 2>/dev/null && impls="$impls mambapy"
    # --timeout: one hung measurement is reported as skipped instead of eating the lease
    $PY benchmarks/scan.py --device cuda --batch 8 --dim 2048 --state 16 \
        --lengths 2048 8192 32768 65536 --impls $impls --repeats 3 --timeout 60 || rc=1
    if [ -n "${OUT:-}" ]; then cp benchmarks/results/scan_cuda.csv "$OUT/" 2>/dev/null || true; fi
fi
exit $rc
