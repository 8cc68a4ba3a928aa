"""The scan's memory, measured by benchmarks/scan.py's child process (peak resident set of
one call in a fresh process): it does not grow with length x state."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _peak_bytes(impl, mode, length, dim, state):
    """Peak resident-set growth of one call, measured by benchmarks/scan.py in a fresh process."""
    cmd = [sys.executable, str(ROOT / "benchmarks" / "scan.py"), "--child", "--impl", impl,
           "--mode", mode, "--length", str(length), "--batch", "1", "--dim", str(dim),
           "--state", str(state), "--device", "cpu", "--repeats", "1", "--mem-budget-gb", "4",
           "--threads", "0"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    r = json.loads(p.stdout.strip().splitlines()[-1])
    assert r["status"] == "ok", r
    return r["peak_bytes"]


@pytest.mark.parametrize("impl", ["torch", "cpu"])
@pytest.mark.parametrize("mode", ["fwd", "fwd+bwd"])
def test_scan_memory_does_not_grow_with_length_times_state(mode, impl):
    """Peak memory grows with the length like the (dim, length) inputs, not like the states.

    At dim 32 and state 64, each extra step would cost 8 KiB if the (length, dim, state) states
    were kept; a (dim, length) tensor costs 128 B per step, a (state, length) one 256 B.  The slope
    between two lengths removes fixed costs (libraries, thread pools, chunk buffers).
    """
    dim, state = 32, 64
    short, long_ = 1 << 15, 1 << 17
    slope = (_peak_bytes(impl, mode, long_, dim, state)
             - _peak_bytes(impl, mode, short, dim, state)) / (long_ - short)
    per_tensor = dim * 4  # bytes per step of one (dim, length) float32 tensor
    # forward: the output; forward+backward: the output, its gradient, the gradients of u,
    # delta and z, and those of B and C, which are (state, length).  The cpu kernel also keeps
    # the state every 64 steps for its backward (dim * state / 64 floats per step).
    expected = per_tensor if mode == "fwd" else 5 * per_tensor + 2 * state * 4
    if impl == "cpu" and mode == "fwd+bwd":
        expected += dim * state * 4 // 64
    assert slope < expected + 2 * per_tensor, f"{slope:.0f} B/step, expected ~{expected}"
    assert slope < dim * state * 4 / 4
