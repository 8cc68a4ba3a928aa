"""benchmarks/gpu_static.py compiles every Triton kernel (the selective scan's and the SSD's)
for Hopper with no GPU (so a change that breaks the GPU build fails here, not on a lent GPU),
and benchmarks/gpu_floor.py's byte and flop model counts what its definition says."""

import csv
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "benchmarks"


@pytest.fixture(scope="module")
def static_rows(tmp_path_factory):
    pytest.importorskip("triton")
    out = tmp_path_factory.mktemp("static") / "gpu_static.csv"
    # a fresh process: the script turns the interpreter off, which this one must keep on
    p = subprocess.run([sys.executable, str(SCRIPTS / "gpu_static.py"), "--quick", "--out",
                        str(out)], capture_output=True, text=True, timeout=600,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    with open(out) as f:
        return list(csv.DictReader(f))


def test_every_kernel_compiles_for_hopper(static_rows):
    assert sorted(r["kernel"] for r in static_rows) == sorted([
        "bwd_flip", "bwd_reverse", "fwd", "fwd_train", "step", "ssd_state", "ssd_pass",
        "ssd_out", "ssd_dstate", "ssd_pass_bwd", "ssd_bwd"])
    for r in static_rows:
        ints = {k: int(r[k]) for k in ("registers", "spill_stores", "spill_loads",
                                       "stack_bytes", "smem_bytes", "blocks_per_sm",
                                       "warps_per_sm", "num_warps", "block_d")}
        assert 0 < ints["registers"] <= 255, r
        assert min(ints.values()) >= 0, r
        assert r["dtype"] == "fp32"


def test_occupancy_follows_the_hopper_limits(static_rows):
    """Resident warps never exceed what the SM's registers (65536, per warp in units of 256),
    shared memory (228 KiB, 1 KiB reserved per block) and 64 warps allow, and the occupancy
    column is their share of 64."""
    for r in static_rows:
        warps, blocks, nw = int(r["warps_per_sm"]), int(r["blocks_per_sm"]), int(r["num_warps"])
        assert warps == blocks * nw and blocks >= 1
        per_warp = math.ceil(int(r["registers"]) * 32 / 256) * 256
        assert warps * per_warp <= 65536
        assert blocks * (int(r["smem_bytes"]) + 1024) <= 228 * 1024
        assert warps <= 64
        assert float(r["occupancy"]) == pytest.approx(warps / 64, abs=1e-4)
        # one more block would break the limit the table names
        one_more = {"registers": (warps + nw) * per_warp > 65536,
                    "smem": (blocks + 1) * (int(r["smem_bytes"]) + 1024) > 228 * 1024,
                    "warps": warps + nw > 64, "blocks": blocks + 1 > 32}
        assert one_more[r["limiter"]], r


def _floor_module():
    sys.path.insert(0, str(SCRIPTS))
    import gpu_floor

    return gpu_floor


def test_byte_model_counts_a_small_shape_by_hand():
    """batch 2, dim 8, state 4, length 10, fp32, 2 channels per program (4 programs per row)."""
    m = _floor_module()
    s = m.Shape(batch=2, dim=8, state=4, length=10, dtype="fp32")
    x = 2 * 8 * 10 * 4  # one (batch, dim, length) fp32 tensor: 640 bytes
    bc_once = 2 * 4 * 10 * 4  # B (batch, state, length) read once: 320 bytes
    last = 2 * 8 * 4 * 4  # (batch, dim, state) fp32
    params = 8 * 4 * 4 + 8 * 4 + 8 * 4  # A (dim, state), D, delta bias
    # forward: u, delta, z read, out written; B and C read by each of the 4 programs of a row
    assert m.scan_bytes("fwd", s, block_d=2) == 4 * x + 2 * 4 * bc_once + last + params
    assert m.scan_bytes("fwd", s) == 4 * x + 2 * bc_once + last + params  # the floor: once
    # backward, tiles of 4 steps: u, delta, z, dout read, du, ddelta, dz written; B, C read and
    # dB, dC written per program; 3 kept fp32 states per channel read; dh0 written
    kept = 2 * 8 * 3 * 4 * 4
    assert m.scan_bytes("bwd", s, block_d=2, block_l=4) == (7 * x + 4 * 4 * bc_once + kept
                                                          + last + params)
    assert m.scan_bytes("fwd+bwd", s, block_d=2, block_l=4) == (
        m.scan_bytes("fwd", s, block_d=2) + m.scan_bytes("bwd", s, block_d=2, block_l=4) + kept)
    # bf16 halves the tensors the inputs' dtype sets, not the fp32 states and parameters
    h = m.Shape(batch=2, dim=8, state=4, length=10, dtype="bf16")
    assert m.scan_bytes("fwd", h) == (4 * x + 2 * bc_once) // 2 + last + params
    # one step of a token: state read and written, x, dt, z read, out written, B and C
    assert m.scan_bytes("step", s) == 2 * last + 4 * 2 * 8 * 4 + 2 * 2 * 4 * 4 + params


def test_flop_model_and_floor_time():
    m = _floor_module()
    s = m.Shape(batch=2, dim=8, state=4, length=10)
    steps = 2 * 8 * 10
    # per state element 1 exp and 6 flops; per channel step the softplus and gate (12, 3)
    assert m.scan_flops("fwd", s) == (steps * (4 * 6 + 12), steps * (4 + 3))
    dev = m.Device("test", bandwidth=1e12, sms=1, clock_hz=1e9)
    f = m.floor("fwd", s, dev)
    assert f.memory_s == pytest.approx(m.scan_bytes("fwd", s) / 1e12)
    assert f.exp_s == pytest.approx(steps * 7 / 16e9)  # 16 exps per SM per clock
    assert f.seconds == max(f.memory_s, f.flop_s, f.exp_s)
    assert m.fraction("fwd", s, dev, 2 * f.seconds) == pytest.approx(0.5)
    assert m.device_for("NVIDIA H200").bandwidth == 4.8e12
    assert m.device_for("NVIDIA H100 80GB HBM3", bandwidth=3.0e12).bandwidth == 3.0e12
