"""The floor of a selective-scan kernel on a GPU: the bytes it must move, the arithmetic it must
do, and the time neither can go under.

A timing means little alone: 40 ms for a scan is fast or slow depending on how many bytes had
to cross the memory bus.  Every GPU timing of the scan (benchmarks/gpu_scan_sweep.py) is
therefore reported as a fraction of a floor computed here, from the shape alone:

    floor_s = max(bytes / bandwidth, flops / fp32_rate, exps / exp_rate)

Bytes (``scan_bytes``), element size e of the inputs (4 fp32, 2 bf16), x = batch*dim*length*e:
  fwd   reads u, delta, z and writes out (4x); reads B and C, (batch, state, length) each, once
        per program that reads them; writes the last state (batch*dim*state*4).
  bwd   reads u, delta, z, dout and writes du, ddelta, dz (7x); reads B and C and writes dB,
        dC once per program; reads the states kept at each tile start
        (batch*dim*ceil(length/block_l)*state*4) and writes dh0 (batch*dim*state*4).
  fwd+bwd  both, and the forward's writes of the kept states.
  step  one token: reads and writes the state (2*batch*dim*state*4), reads x, dt, z and
        writes out (4*batch*dim*e), reads B and C (batch*state*e each, once per program).
The "programs" are the kernel's channel blocks: with block_d channels per program each batch
row's B and C tiles are read max(groups, ceil(dim / block_d)) times (512 times at dim 2048,
block_d 4).  ``block_d=None`` gives the floor proper: B and C read once per group, no kept
states (a kernel holding every channel of a group in one program).  Parameters (A, D, the
delta bias: dim*(state+2) floats) are read once in both.

Arithmetic (``scan_flops``), per state element (batch*dim*length*state of them): the forward's
one exp(dt*A), dt*A, the input term (dt*u)*B, the recurrence a*h + b (an FMA) and the output
term h*C (an FMA): 1 exp and 6 flops.  The backward recomputes a and h (1 exp, 4 flops), runs
the adjoint lam = a*lam + g*C (4), and forms dA, ddelta, du, dB, dC terms (10): 1 exp and 18
flops.  Per channel step the softplus, gate and skip add a few more (``PER_STEP``).

Rates: HBM bandwidth from the data sheet unless a measured copy bandwidth is given; fp32
rate = SMs * 128 lanes * 2 * clock; exp rate = SMs * 16 (the special-function units' ex2
throughput per SM per clock on sm_90) * clock.  At state 16 the exp term is close to the
bytes term in fp32 and above it in bf16: a bf16 scan is bounded by exps, not bytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

DTYPE_BYTES = {"fp32": 4, "float32": 4, "bf16": 2, "bfloat16": 2, "fp16": 2, "float16": 2}
KERNELS = ("fwd", "bwd", "fwd+bwd", "step")
FWD_FLOPS, BWD_FLOPS = 6, 18  # per state element (module docstring)
FWD_EXPS, BWD_EXPS = 1, 1
PER_STEP = {"fwd": (12, 3), "bwd": (30, 3)}  # (flops, exps) per channel step: softplus, gate


@dataclass(frozen=True)
class Device:
    """What bounds a kernel: memory bandwidth (bytes/s), fp32 FMA-lane rate, exp rate."""

    name: str
    bandwidth: float
    sms: int = 132
    clock_hz: float = 1.98e9

    @property
    def flop_rate(self) -> float:
        return self.sms * 128 * 2 * self.clock_hz

    @property
    def exp_rate(self) -> float:
        return self.sms * 16 * self.clock_hz


DEVICES = {"h100": Device("H100 SXM", 3.35e12), "h200": Device("H200", 4.8e12)}


def device_for(name: str, bandwidth: Optional[float] = None,
               sms: Optional[int] = None) -> Device:
    """The data sheet's device for a name such as 'NVIDIA H100 80GB HBM3', its bandwidth and
    SM count replaced by measured ones when given; an unknown GPU takes the H100's rates."""
    key = "h200" if "h200" in name.lower() else "h100"
    d = DEVICES[key]
    return Device(name, bandwidth or d.bandwidth, sms or d.sms, d.clock_hz)


@dataclass(frozen=True)
class Shape:
    batch: int
    dim: int
    state: int
    length: int
    dtype: str = "fp32"
    groups: int = 1  # B/C groups

    @property
    def e(self) -> int:
        return DTYPE_BYTES[self.dtype]


def bc_reads(s: Shape, block_d: Optional[int]) -> int:
    """How many times each batch row's B (or C) tiles are read: once per program."""
    if block_d is None:
        return s.groups
    return max(s.groups, math.ceil(s.dim / block_d))


def kept_state_bytes(s: Shape, block_l: Optional[int]) -> int:
    """The float32 states the forward keeps at each tile start for the backward (none for the
    floor, block_l=None)."""
    if block_l is None:
        return 0
    return s.batch * s.dim * math.ceil(s.length / block_l) * s.state * 4


def scan_bytes(kernel: str, s: Shape, block_d: Optional[int] = None,
               block_l: Optional[int] = None) -> int:
    """Bytes ``kernel`` moves at shape ``s`` (module docstring); block_d=None: the floor."""
    if kernel == "fwd+bwd":  # the forward also writes the states the backward reads
        return (scan_bytes("fwd", s, block_d, block_l) + scan_bytes("bwd", s, block_d, block_l)
                + kept_state_bytes(s, block_l))
    params = s.dim * (s.state + 2) * 4
    state = s.batch * s.dim * s.state * 4
    if kernel == "step":
        bc = 2 * s.batch * s.state * s.e * bc_reads(s, block_d)
        return 2 * state + 4 * s.batch * s.dim * s.e + bc + params
    x = s.batch * s.dim * s.length * s.e
    bc = s.batch * s.state * s.length * s.e * bc_reads(s, block_d)  # one of B, C, dB, dC
    if kernel == "fwd":
        return 4 * x + 2 * bc + state + params
    if kernel == "bwd":
        return 7 * x + 4 * bc + kept_state_bytes(s, block_l) + state + params
    raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")


def scan_flops(kernel: str, s: Shape) -> tuple[int, int]:
    """(flops, exps) ``kernel`` must compute at shape ``s`` (module docstring)."""
    if kernel == "fwd+bwd":
        f, e = scan_flops("fwd", s)
        fb, eb = scan_flops("bwd", s)
        return f + fb, e + eb
    steps = s.batch * s.dim * (1 if kernel == "step" else s.length)
    per_state = {"fwd": (FWD_FLOPS, FWD_EXPS), "step": (FWD_FLOPS, FWD_EXPS),
                 "bwd": (BWD_FLOPS, BWD_EXPS)}[kernel]
    per_step = PER_STEP["bwd" if kernel == "bwd" else "fwd"]
    return (steps * (s.state * per_state[0] + per_step[0]),
            steps * (s.state * per_state[1] + per_step[1]))


@dataclass(frozen=True)
class Floor:
    bytes: int
    flops: int
    exps: int
    memory_s: float
    flop_s: float
    exp_s: float

    @property
    def seconds(self) -> float:
        return max(self.memory_s, self.flop_s, self.exp_s)

    @property
    def bound(self) -> str:
        return max((self.memory_s, "memory"), (self.flop_s, "flops"), (self.exp_s, "exp"))[1]


def floor(kernel: str, s: Shape, device: Device, block_d: Optional[int] = None,
          block_l: Optional[int] = None) -> Floor:
    """The floor of ``kernel`` at ``s`` on ``device``; with block_d/block_l, the floor of the
    bytes that tile configuration moves (B/C re-reads and kept states included)."""
    nbytes = scan_bytes(kernel, s, block_d, block_l)
    flops, exps = scan_flops(kernel, s)
    return Floor(nbytes, flops, exps, nbytes / device.bandwidth, flops / device.flop_rate,
                 exps / device.exp_rate)


def fraction(kernel: str, s: Shape, device: Device, seconds: float, **tiles) -> float:
    """Floor time over measured time: 1.0 is the hardware's limit."""
    return floor(kernel, s, device, **tiles).seconds / seconds
