"""A long sequence processed in chunks with carried state equals one pass, values and gradients."""

from functools import partial

import pytest
import torch

from seqmamba_kernels import selective_scan
from scan_cases import DEVICE, ON_GPU, TOL, Case, make_inputs, rel_err

TIME_KEYS = ("u", "delta", "z")


def _split(x: dict, bounds):
    """Slice every time-dependent input at ``bounds``; B/C are time-dependent unless 2-D."""
    pieces = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        p = {}
        for k, v in x.items():
            if v is None or k in ("A", "D", "delta_bias", "initial_state") or (k == "B" and v.dim() == 2):
                p[k] = v
            else:
                p[k] = v[..., a:b]
        pieces.append(p)
    return pieces


@pytest.mark.parametrize("backend", ["reference", "torch", "cpu", "triton"])
def test_chunked_with_carried_state_equals_one_shot(backend):
    length = 400 if ON_GPU or backend != "triton" else 40
    case = Case(2, 6, 4, length, b_groups=2)
    dtype = torch.float64 if backend in ("reference", "torch") else torch.float32
    x = make_inputs(case, dtype, seed=21)
    scan = partial(selective_scan, backend=backend, delta_softplus=True)
    g = torch.Generator().manual_seed(0)
    g_out = torch.randn(2, 6, length, generator=g).to(dtype)

    # One shot.
    leaves = {k: v.clone().to(DEVICE).requires_grad_() for k, v in x.items() if v is not None}
    out, last = scan(**leaves, return_last_state=True)
    ((out * g_out.to(DEVICE)).sum() + last.sum()).backward()
    one = (out.detach(), last.detach(), {k: v.grad for k, v in leaves.items()})

    # Three uneven chunks; the state flows through initial_state, and so does the gradient.
    leaves2 = {k: v.clone().to(DEVICE).requires_grad_() for k, v in x.items() if v is not None}
    bounds = [0, length // 3, length // 3 + 1, length]
    h = leaves2["initial_state"]
    outs = []
    for p in _split(leaves2, bounds):
        p["initial_state"] = h
        o, h = scan(**p, return_last_state=True)
        outs.append(o)
    out2 = torch.cat(outs, dim=-1)
    ((out2 * g_out.to(DEVICE)).sum() + h.sum()).backward()

    tol = TOL[dtype] * 10
    assert rel_err(out2, one[0]) < tol
    assert rel_err(h, one[1]) < tol
    for k, v in leaves2.items():
        assert rel_err(v.grad, one[2][k]) < tol, k


def test_truncated_backprop_detaches_cleanly():
    """With the carried state detached (truncated BPTT) the second chunk still computes the
    one-shot values, and its gradient no longer reaches the first chunk's inputs."""
    case = Case(1, 4, 3, 30)
    x = make_inputs(case, torch.float32, seed=2)
    full = selective_scan(**x, delta_softplus=True, backend="torch")
    halves = _split(x, [0, 15, 30])
    u1 = halves[0]["u"].clone().requires_grad_()
    _, h = selective_scan(**{**halves[0], "u": u1}, delta_softplus=True,
                          return_last_state=True, backend="torch")
    u2 = halves[1]["u"].clone().requires_grad_()
    out2 = selective_scan(**{**halves[1], "u": u2, "initial_state": h.detach()},
                          delta_softplus=True, backend="torch")
    assert rel_err(out2, full[..., 15:]) < 1e-5
    out2.sum().backward()
    assert u2.grad is not None and bool(torch.isfinite(u2.grad).all())
    assert u1.grad is None
