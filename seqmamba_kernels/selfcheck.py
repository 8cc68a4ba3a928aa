"""A quick correctness self-check of the scan backends, for ``seqmamba demo`` and new machines.

Every usable backend is run on fresh random inputs and compared with the float64 reference
(values and every gradient), and, when the conformance vectors are at hand, on each of their
cases.  Returns plain records; the command line prints them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from .dispatch import available_backends, selective_scan

_INPUTS = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")
# Relative error ||x - ref|| / ||ref|| allowed per input dtype against the float64 reference on
# the same (already rounded) inputs: the one table the self-check and the tests use.  bf16 and
# fp16 outputs and gradients are rounded to 8 and 11 bits of mantissa; float32 accumulation
# keeps the rest small.  2e-5 for float32 is what the conformance vectors' README allows.
TOLERANCE = {torch.float64: 1e-10, torch.float32: 2e-5, torch.bfloat16: 1e-2,
             torch.float16: 2e-3}
FLOAT32_BACKENDS = ("cpu", "triton")  # float32 arithmetic: checked on float32 inputs


@dataclass
class CheckResult:
    backend: str
    dtype: torch.dtype
    case: str
    worst: str  # the tensor with the largest relative error
    error: float
    tolerance: float

    @property
    def ok(self) -> bool:
        return self.error <= self.tolerance


def _rel(x: torch.Tensor, ref: torch.Tensor) -> float:
    x, ref = x.detach().double().cpu(), ref.detach().double().cpu()
    return (x - ref).norm().item() / max(ref.norm().item(), 1e-300)


def _random_case(seed: int) -> dict:
    """b=2, dim=16, state=8, length=300, grouped B (2 groups), D, z, bias and initial state."""
    g = torch.Generator().manual_seed(seed)
    b, d, n, L = 2, 16, 8, 300
    r = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64)  # noqa: E731
    return {"u": r(b, d, L), "delta": r(b, d, L) - 1.0,
            "A": -torch.exp(torch.rand(d, n, generator=g, dtype=torch.float64) * 4 - 2),
            "B": r(b, 2, n, L), "C": r(b, n, L), "D": r(d), "z": r(b, d, L),
            "delta_bias": 0.5 * r(d), "initial_state": r(b, d, n), "delta_softplus": True}


def _run(case: dict, backend: str, dtype, device, grad_out, with_state: bool):
    names = [k for k in (*_INPUTS, "initial_state") if k in case]
    leaves = {k: case[k].to(device=device, dtype=dtype).clone().requires_grad_() for k in names}
    out, last = selective_scan(**leaves, delta_softplus=case["delta_softplus"],
                               return_last_state=True, backend=backend)
    loss = (out * grad_out.to(device=device, dtype=out.dtype)).sum()
    if with_state:
        loss = loss + last.sum()
    loss.backward()
    return {"out": out, "last_state": last, **{f"grad_{k}": v.grad for k, v in leaves.items()}}


def _compare(got: dict, ref: dict) -> tuple[str, float]:
    errs = {k: _rel(got[k], ref[k]) for k in ref if k in got}
    worst = max(errs, key=errs.get)
    return worst, errs[worst]


def self_check(device: Optional[torch.device] = None, conformance: Optional[Path] = None,
               backends: Optional[list] = None) -> list[CheckResult]:
    """Check every usable backend on ``device`` (or those named) against the float64 reference."""
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    avail = available_backends(device, torch.float32)
    # Triton under the CPU interpreter takes minutes on these sizes: only when asked by name.
    names = backends or [b for b, why in avail.items() if why is None and b != "reference"
                         and not (b == "triton" and device.type != "cuda")]
    results = []
    g = torch.Generator().manual_seed(0)
    case = _random_case(seed=1)
    grad_out = torch.randn(case["u"].shape, generator=g, dtype=torch.float64)
    for dtype in (torch.float32, torch.bfloat16):
        rounded = {k: (v.to(dtype).double() if torch.is_tensor(v) else v) for k, v in case.items()}
        ref = _run(rounded, "reference", torch.float64, "cpu", grad_out, True)
        for name in names:
            got = _run(rounded, name, dtype, device, grad_out, True)
            worst, err = _compare(got, ref)
            results.append(CheckResult(name, dtype, "random b2 d16 n8 L300 grouped", worst, err,
                                       TOLERANCE[dtype]))
    if conformance is not None and Path(conformance).exists():
        data = torch.load(conformance, weights_only=True)
        for i, c in enumerate(data["selective_scan"]):
            ref = {k: c[k] for k in c if k in ("out", "last_state") or k.startswith("grad_")}
            ref.pop("grad_out")
            for name in ["reference"] + names:
                dtype = torch.float32 if name in FLOAT32_BACKENDS else torch.float64
                got = _run(c, name, dtype, device if name != "reference" else "cpu",
                           c["grad_out"], False)
                worst, err = _compare(got, ref)
                b, d, L = c["u"].shape
                results.append(CheckResult(name, dtype, f"conformance #{i} b{b} d{d} L{L}",
                                           worst, err, TOLERANCE[dtype]))
    return results
