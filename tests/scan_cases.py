"""Random inputs and comparison helpers shared by the scan tests."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Optional

import torch

from seqmamba_kernels.selfcheck import TOLERANCE

DEVICE = torch.device(os.environ.get("SEQMAMBA_TEST_DEVICE", "cpu"))
ON_GPU = DEVICE.type == "cuda"

# Relative error allowed per input dtype: the self-check's table (seqmamba_kernels.selfcheck.TOLERANCE).
TOL = TOLERANCE

INPUT_NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias", "initial_state")


@dataclass(frozen=True)
class Case:
    batch: int
    dim: int
    state: int
    length: int
    b_groups: Optional[int] = None  # None: (batch, state, length); k: (batch, k, state, length)
    c_groups: Optional[int] = None
    b_time_invariant: bool = False
    with_D: bool = True
    with_z: bool = True
    with_bias: bool = True
    softplus: bool = True
    with_h0: bool = True

    def but(self, **kw) -> "Case":
        return replace(self, **kw)

    @property
    def id(self) -> str:
        parts = [f"b{self.batch}d{self.dim}n{self.state}l{self.length}"]
        if self.b_time_invariant:
            parts.append("Bti")
        elif self.b_groups:
            parts.append(f"Bg{self.b_groups}")
        if self.c_groups:
            parts.append(f"Cg{self.c_groups}")
        flags = "".join(ch for ch, on in (("D", self.with_D), ("z", self.with_z),
                                          ("b", self.with_bias), ("s", self.softplus),
                                          ("h", self.with_h0)) if on)
        return "-".join(parts + [flags or "plain"])


def make_inputs(case: Case, dtype: torch.dtype, seed: int) -> dict:
    """Fresh random inputs for ``case``, rounded to ``dtype`` (float64 copies are made later).

    A is drawn like Mamba's -exp(A_log) spread over (-8, -0.05) and delta so that softplus(delta)
    spans roughly 0.02..2: long and short memories both occur.
    """
    g = torch.Generator().manual_seed(seed)
    b, d, n, L = case.batch, case.dim, case.state, case.length

    def rnd(*shape, scale=1.0, shift=0.0):
        return (torch.randn(*shape, generator=g) * scale + shift).to(dtype)

    x = {
        "u": rnd(b, d, L),
        # Without softplus, delta is dt itself and must be positive (as Mamba's dt is).
        "delta": (rnd(b, d, L, scale=1.0, shift=-1.0) if case.softplus
                  else (torch.rand(b, d, L, generator=g) * 0.5 + 0.01).to(dtype)),
        "A": (-torch.exp(torch.rand(d, n, generator=g) * 5.0 - 3.0)).to(dtype),
    }
    if case.b_time_invariant:
        x["B"] = rnd(d, n)
    elif case.b_groups:
        x["B"] = rnd(b, case.b_groups, n, L)
    else:
        x["B"] = rnd(b, n, L)
    x["C"] = rnd(b, case.c_groups, n, L) if case.c_groups else rnd(b, n, L)
    x["D"] = rnd(d) if case.with_D else None
    x["z"] = rnd(b, d, L) if case.with_z else None
    x["delta_bias"] = None
    if case.with_bias:
        x["delta_bias"] = (rnd(d, scale=0.5) if case.softplus
                           else (torch.rand(d, generator=g) * 0.1).to(dtype))
    x["initial_state"] = rnd(b, d, n) if case.with_h0 else None
    return x


def run_scan(fn, inputs: dict, softplus: bool, dtype: torch.dtype, device=DEVICE,
             seed: int = 1234, **kw):
    """Run ``fn`` on copies of ``inputs`` in ``dtype`` and back-propagate a random loss.

    Returns (out, last_state, grads) with grads a dict over the inputs that are present.
    The loss sum(out * g_out) + sum(last * g_last) reaches every gradient path.
    """
    leaves = {k: (v.to(device=device, dtype=dtype).detach().requires_grad_()
                  if v is not None else None) for k, v in inputs.items()}
    out, last = fn(**leaves, delta_softplus=softplus, return_last_state=True, **kw)
    g = torch.Generator().manual_seed(seed)
    g_out = torch.randn(out.shape, generator=g).to(device=device, dtype=out.dtype)
    g_last = torch.randn(last.shape, generator=g).to(device=device, dtype=last.dtype)
    ((out * g_out).sum() + (last * g_last).sum()).backward()
    grads = {k: v.grad for k, v in leaves.items() if v is not None}
    return out, last, grads


def direct(impl, **options):
    """A backend's implementation called directly (to pass its tuning options), after the
    public argument checks, with the signature of ``selective_scan``."""
    from seqmamba_kernels._checks import check_scan_args

    def fn(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
           initial_state=None, return_last_state=True):
        s = check_scan_args(u, delta, A, B, C, D, z, delta_bias, initial_state)
        return impl(u, delta, A, B, C, D, z, delta_bias, delta_softplus, initial_state, s,
                    **options)
    return fn


def rel_err(x: torch.Tensor, ref: torch.Tensor) -> float:
    x, ref = x.detach().double().cpu(), ref.detach().double().cpu()
    denom = ref.norm().item()
    return (x - ref).norm().item() / (denom if denom > 0 else 1.0)


def assert_close_all(got, ref, tol: float, what: str = "") -> None:
    """Compare (out, last, grads) triples; the message lists every tensor's relative error."""
    out, last, grads = got
    r_out, r_last, r_grads = ref
    errs = {"out": rel_err(out, r_out), "last_state": rel_err(last, r_last)}
    assert set(grads) == set(r_grads)
    for k in r_grads:
        assert grads[k] is not None, f"{what}: no gradient reached {k}"
        assert grads[k].shape == r_grads[k].shape, f"{what}: grad of {k} has wrong shape"
        errs[f"grad_{k}"] = rel_err(grads[k], r_grads[k])
    bad = {k: v for k, v in errs.items() if not v <= tol}
    assert not bad, f"{what}: relative errors above {tol:g}: {bad} (all: {errs})"
