"""The Triton SSD (Mamba-2) scan against the float64 loop-over-time reference, on fresh random
inputs: values, final states and every gradient (x, dt, A, B, C, D, z, dt_bias,
initial_state), fp32 and bf16, over shapes whose length the chunk does and does not divide,
groups, D per head / per channel / absent, with and without z, bias, initial state and
softplus; and the backend's dispatch and its refusals.

Under the interpreter (the default, see conftest.py) the shapes stay small and the chunks short
(7, 8, 16 steps) so that every case crosses chunk boundaries; on a GPU (gpu_check.sh) larger
cases join them.
"""

import warnings
import zlib
from dataclasses import dataclass, replace
from typing import Optional

import pytest
import torch

from scan_cases import DEVICE, ON_GPU, TOL, rel_err
from seqmamba_kernels import ssd_scan, ssd_scan_ref
from seqmamba_kernels import dispatch, ssd


@dataclass(frozen=True)
class Case:
    batch: int
    length: int
    heads: int
    head_dim: int
    groups: int
    state: int
    chunk: int
    D: Optional[str] = "head"  # "head": (heads,); "channel": (heads, head_dim); None
    z: bool = True
    h0: bool = True
    softplus: bool = True
    bias: bool = True

    @property
    def id(self) -> str:
        flags = "".join(ch for ch, on in (("z", self.z), ("h", self.h0), ("s", self.softplus),
                                          ("b", self.bias)) if on)
        return (f"b{self.batch}L{self.length}h{self.heads}p{self.head_dim}g{self.groups}"
                f"n{self.state}q{self.chunk}-D{self.D}-{flags or 'plain'}")


CASES = [
    Case(2, 37, 4, 3, 2, 5, 8),  # 5 chunks, the last one partial; 2 groups
    Case(1, 40, 2, 20, 1, 18, 16, D="channel", z=False, h0=False, bias=False),
    Case(1, 33, 6, 4, 3, 8, 16, D=None, softplus=False),
    Case(2, 16, 2, 8, 2, 4, 16, D=None, z=False, h0=False, bias=False, softplus=False),
    Case(1, 50, 4, 4, 1, 4, 7, D="channel"),  # a chunk that is not a power of two
    Case(2, 12, 2, 2, 1, 3, 1, z=False),  # chunks of one step
]
# Relative error allowed: the self-check's table for fp32; for bf16 twice its 1e-2, because
# the kernels' matrix products take bf16 operands (the decay-masked C B^T, the fp32 states
# and the output gradient are rounded to bf16 before tl.dot, as on tensor cores), which
# measured 2-4x the torch path's error (all float32 after the inputs): up to 0.008 here.
TOLS = {torch.float32: TOL[torch.float32], torch.bfloat16: 2 * TOL[torch.bfloat16]}
if ON_GPU:
    CASES += [Case(2, 1000, 8, 64, 2, 64, 64), Case(1, 4097, 4, 64, 1, 128, 64, D="channel"),
              Case(2, 777, 4, 32, 4, 16, 128, D=None, softplus=False, h0=False)]


def make_inputs(case: Case, dtype: torch.dtype, seed: int) -> dict:
    """Inputs rounded to ``dtype`` (the reference sees the same values in float64).  A in
    (-2, 0); without softplus, dt (+ bias) is positive, as Mamba's time step is."""
    g = torch.Generator().manual_seed(seed)
    b, L, h, p, n, G = (case.batch, case.length, case.heads, case.head_dim, case.state,
                        case.groups)

    def rnd(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g) * scale).to(dtype)

    x = dict(x=rnd(b, L, h, p),
             dt=(rnd(b, L, h) - 1 if case.softplus
                 else (torch.rand(b, L, h, generator=g) * 0.5 + 0.01).to(dtype)),
             A=(-2 * torch.rand(h, generator=g)).to(dtype),
             B=rnd(b, L, G, n), C=rnd(b, L, G, n))
    x["D"] = {"head": rnd(h), "channel": rnd(h, p), None: None}[case.D]
    x["z"] = rnd(b, L, h, p) if case.z else None
    x["dt_bias"] = None
    if case.bias:
        x["dt_bias"] = rnd(h, scale=0.5) if case.softplus else (
            torch.rand(h, generator=g) * 0.1).to(dtype)
    x["initial_state"] = rnd(b, h, p, n) if case.h0 else None
    return x


def run(fn, inputs: dict, dtype, device, softplus: bool, seed: int = 1234):
    """(y, final state, gradients) of sum(y * w) + sum(final * w_final) for random w."""
    leaves = {k: (v.to(device=device, dtype=dtype).detach().requires_grad_() if v is not None
                  else None)
              for k, v in inputs.items()}
    y, H = fn(**leaves, dt_softplus=softplus, return_final_state=True)
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(y.shape, generator=g).to(device=device, dtype=y.dtype)
    w_final = torch.randn(H.shape, generator=g).to(device=device, dtype=H.dtype)
    ((y * w).sum() + (H * w_final).sum()).backward()
    return y, H, {k: v.grad for k, v in leaves.items() if v is not None}


def check(case: Case, dtype, fn, tol: float):
    inputs = make_inputs(case, dtype, seed=zlib.crc32(f"{case.id}{dtype}".encode()))
    y0, H0, g0 = run(ssd_scan_ref, inputs, torch.float64, "cpu", case.softplus)
    y, H, grads = run(fn, inputs, dtype, DEVICE, case.softplus)
    assert y.dtype == dtype and H.dtype == torch.float32
    errs = {"y": rel_err(y, y0), "final_state": rel_err(H, H0)}
    assert set(grads) == set(g0)
    for k in g0:
        assert grads[k] is not None and grads[k].shape == g0[k].shape, k
        errs[f"grad_{k}"] = rel_err(grads[k], g0[k])
    bad = {k: v for k, v in errs.items() if not v <= tol}
    assert not bad, f"{case.id} {dtype}: relative errors above {tol:g}: {bad} (all: {errs})"


def triton_fn(chunk: int, tiles=None):
    from seqmamba_kernels.triton_ssd import DEFAULT_SSD_TILES, ssd_scan_triton

    def fn(dt_softplus, return_final_state, **kw):
        ssd.check_ssd_args(**{k: v for k, v in kw.items()})
        return ssd_scan_triton(**kw, dt_softplus=dt_softplus, chunk_size=chunk,
                               tiles=tiles or DEFAULT_SSD_TILES)
    return fn


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_triton_ssd_matches_reference(case, dtype):
    def fn(**kw):
        return ssd_scan(**kw, chunk_size=case.chunk, backend="triton")
    check(case, dtype, fn, TOLS[dtype])


def test_triton_ssd_fp16():
    """fp16 inputs: products on fp16 operands, the same 2x allowance over the table as bf16."""
    def fn(**kw):
        return ssd_scan(**kw, chunk_size=8, backend="triton")
    check(CASES[0], torch.float16, fn, 2 * TOL[torch.float16])


def test_triton_ssd_small_tiles_split_head_dim_and_state():
    """Tiles of 16 head_dim channels and 16 states (and 64-element state-passing blocks): the
    forward kernels run several programs per chunk, the backward loops over the state in
    steps, and dL/d a_last is summed over several blocks."""
    from seqmamba_kernels.triton_ssd import SSDTiles

    case = Case(1, 40, 2, 20, 2, 18, 16, D="channel")
    check(case, torch.float32, triton_fn(16, SSDTiles(block_p=16, block_n=16, block_pn=64)),
          TOL[torch.float32])


def test_triton_ssd_default_chunk_and_state_continuation():
    """The default chunk (64) through the public API, and a run split in two that carries
    the final state into the second half gives the whole run's outputs."""
    case = Case(1, 70, 2, 4, 1, 8, 64)
    a = {k: (v.to(DEVICE) if v is not None else None)
         for k, v in make_inputs(case, torch.float32, seed=5).items()}
    whole, H = ssd_scan(**a, dt_softplus=True, return_final_state=True, backend="triton")
    ref, H_ref = ssd_scan_ref(**a, dt_softplus=True, return_final_state=True)
    assert rel_err(whole, ref) < TOL[torch.float32] and rel_err(H, H_ref) < TOL[torch.float32]

    def part(sl):
        return {k: (v[:, sl] if k in ("x", "dt", "B", "C", "z") else v) for k, v in a.items()}
    y1, H1 = ssd_scan(**part(slice(0, 45)), dt_softplus=True, return_final_state=True,
                      backend="triton")
    y2, H2 = ssd_scan(**{**part(slice(45, None)), "initial_state": H1}, dt_softplus=True,
                      return_final_state=True, backend="triton")
    assert rel_err(torch.cat([y1, y2], 1), whole) < TOL[torch.float32]
    assert rel_err(H2, H) < TOL[torch.float32]


def _small_args(dtype=torch.float32):
    return make_inputs(Case(1, 6, 2, 2, 1, 3, 4), dtype, seed=0)


def test_named_triton_backend_that_cannot_run_says_why(monkeypatch):
    """As the selective scan's (test_scan_api.py): CPU tensors outside the interpreter,
    float64, no triton package; an unknown name is a ValueError."""
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(RuntimeError, match=r"'triton'.*need CUDA tensors.*TRITON_INTERPRET=1"):
        ssd_scan(**_small_args(), backend="triton")
    with pytest.raises(RuntimeError, match=r"do not take float64"):
        ssd_scan(**_small_args(torch.float64), backend="triton")
    monkeypatch.setattr(dispatch, "_triton_installed", lambda: False)
    with pytest.raises(RuntimeError, match=r"'triton' cannot run: the triton package"):
        ssd_scan(**_small_args(), backend="triton")
    with pytest.raises(ValueError, match=r"backend must be one of .*'cuda'"):
        ssd_scan(**_small_args(), backend="cuda")


def test_automatic_choice(monkeypatch):
    """CPU tensors: torch, silently (even under the interpreter).  CUDA: triton when it can
    run; else torch, warning once per reason; float64 goes to torch silently."""
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ssd.resolve_ssd_backend(None, cpu, torch.float32) == "torch"
        assert ssd.resolve_ssd_backend(None, cuda, torch.float64) == "torch"
    monkeypatch.setattr(dispatch, "_warned", set())
    assert ssd.resolve_ssd_backend(None, cuda, torch.bfloat16) == "triton"
    monkeypatch.setattr(dispatch, "_triton_installed", lambda: False)
    with pytest.warns(RuntimeWarning, match="ssd_scan falls back to the torch backend: the "
                      "triton package"):
        assert ssd.resolve_ssd_backend(None, cuda, torch.float32) == "torch"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ssd.resolve_ssd_backend(None, cuda, torch.float32) == "torch"
