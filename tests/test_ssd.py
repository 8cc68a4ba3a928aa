"""The Mamba-2 (SSD) scan's chunked matmul form against its loop-over-time reference, on fresh
random inputs: values, final states and gradients in float64, several shapes, chunk sizes
that do and do not divide the length, groups, initial states; fp32 and bf16 within their
precision; the one-step update against the scan."""

import pytest
import torch

from seqmamba_kernels import ssd, ssd_scan, ssd_scan_ref, ssd_state_update


def inputs(b, L, h, p, g, n, dtype=torch.float64, D2=False):
    gen = torch.Generator().manual_seed(torch.seed() % (1 << 31))
    r = lambda *s: torch.randn(*s, generator=gen, dtype=dtype)  # noqa: E731
    return dict(x=r(b, L, h, p), dt=r(b, L, h), A=-torch.rand(h, generator=gen, dtype=dtype) * 2,
                B=r(b, L, g, n), C=r(b, L, g, n), D=r(h, p) if D2 else r(h), z=r(b, L, h, p),
                dt_bias=0.1 * r(h), initial_state=r(b, h, p, n))


SHAPES = [  # (batch, length, heads, head_dim, groups, state, chunk)
    (2, 37, 4, 3, 2, 5, 8), (1, 64, 2, 4, 1, 16, 16), (2, 10, 6, 2, 3, 4, 64),
    (1, 33, 4, 8, 4, 8, 1), (3, 50, 2, 2, 2, 3, 7)]


@pytest.mark.parametrize("form", ["factored", "direct"])
@pytest.mark.parametrize("b, L, h, p, g, n, chunk", SHAPES)
def test_chunked_values_states_and_gradients_equal_the_reference(b, L, h, p, g, n, chunk, form,
                                                                monkeypatch):
    """Both forms of the within-chunk product (ssd._within_chunks): the factored one for
    chunks whose log decay spans at most FACTORED_SPAN, the direct one beyond."""
    monkeypatch.setattr(ssd, "FACTORED_SPAN", float("inf") if form == "factored" else -1.0)
    args = inputs(b, L, h, p, g, n, D2=chunk % 2 == 1)
    grads, w = {}, torch.randn(b, L, h, p, dtype=torch.float64)  # one weighting for both
    for name in ("ref", "chunked"):
        leaves = {k: v.clone().requires_grad_() for k, v in args.items()}
        if name == "ref":
            y, H = ssd_scan_ref(**leaves, dt_softplus=True, return_final_state=True)
        else:
            y, H = ssd_scan(**leaves, dt_softplus=True, return_final_state=True,
                            chunk_size=chunk)
        ((y * w).sum() + H.square().sum()).backward()
        grads[name] = (y.detach(), H.detach(), {k: v.grad for k, v in leaves.items()})
    (y0, H0, g0), (y1, H1, g1) = grads["ref"], grads["chunked"]
    torch.testing.assert_close(y1, y0, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(H1, H0, rtol=1e-10, atol=1e-10)
    for k in g0:
        torch.testing.assert_close(g1[k], g0[k], rtol=1e-8, atol=1e-8, msg=k)


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 2e-4), (torch.bfloat16, 3e-2)])
def test_low_precision_inputs_stay_close_to_the_float64_reference(dtype, tol):
    args = inputs(2, 70, 4, 8, 2, 16)
    ref = ssd_scan_ref(**args, dt_softplus=True)
    low = ssd_scan(**{k: v.to(dtype) for k, v in args.items()}, dt_softplus=True, chunk_size=32)
    assert low.dtype == dtype
    err = (low.double() - ref).abs().max() / ref.abs().max()
    assert err < tol, float(err)


def test_fast_decaying_heads_take_the_direct_form_values_and_gradients(monkeypatch):
    """One head decays slowly and one so fast that its chunks' log decay spans far more than
    FACTORED_SPAN: the factored form alone would overflow float32 (non-finite or wrong
    outputs), so those slices are recomputed in the direct form.  Values in float32, and values
    and every gradient in float64, match the reference; an empty batch still works."""
    args = inputs(1, 48, 2, 4, 1, 8)
    args["dt"] = args["dt"].abs() + 10  # softplus ~ 10-13 a step
    args["A"] = torch.tensor([-0.2, -3.0], dtype=torch.float64)  # spans ~40 and over 400
    ref = ssd_scan_ref(**args, dt_softplus=True)
    f32 = {k: v.float() for k, v in args.items()}
    got = ssd_scan(**f32, dt_softplus=True, chunk_size=16).double()
    assert ((got - ref).abs().max() / ref.abs().max()) < 1e-5
    grads, w = {}, torch.randn_like(ref)
    for name, fn in (("ref", ssd_scan_ref), ("chunked", ssd_scan)):
        leaves = {k: v.clone().requires_grad_() for k, v in args.items()}
        kw = {"chunk_size": 16} if name == "chunked" else {}
        (fn(**leaves, dt_softplus=True, **kw) * w).sum().backward()
        grads[name] = {k: v.grad for k, v in leaves.items()}
    for k in grads["ref"]:
        torch.testing.assert_close(grads["chunked"][k], grads["ref"][k], rtol=1e-8, atol=1e-8,
                                   msg=k)
    empty = {k: v[:0] if v.dim() > 1 and v.shape[0] == 1 else v for k, v in f32.items()}
    assert ssd_scan(**empty, dt_softplus=True, chunk_size=16).shape == (0, 48, 2, 4)
    monkeypatch.setattr(ssd, "FACTORED_SPAN", float("inf"))  # without the guard
    bad = ssd_scan(**f32, dt_softplus=True, chunk_size=16).double()
    assert not (torch.isfinite(bad).all() and (bad - ref).abs().max() / ref.abs().max() < 1e-3)


def test_without_optional_inputs_and_with_no_state_in():
    args = inputs(1, 20, 2, 3, 1, 4)
    for k in ("D", "z", "dt_bias", "initial_state"):
        args[k] = None
    torch.testing.assert_close(ssd_scan(**args, chunk_size=6), ssd_scan_ref(**args))


def test_one_step_updates_equal_the_scan():
    a = inputs(2, 12, 4, 3, 2, 5)
    state = a["initial_state"].clone()
    steps = [ssd_state_update(state, a["x"][:, t], a["dt"][:, t], a["A"], a["B"][:, t],
                              a["C"][:, t], a["D"], a["z"][:, t], a["dt_bias"], True)
             for t in range(12)]
    y, H = ssd_scan_ref(**a, dt_softplus=True, return_final_state=True)
    torch.testing.assert_close(torch.stack(steps, 1), y)
    torch.testing.assert_close(state, H)


def test_a_chunked_run_continues_from_its_own_final_state():
    a = inputs(1, 40, 2, 2, 2, 3)
    whole = ssd_scan(**a, dt_softplus=True, chunk_size=8)
    first = {k: (v[:, :25] if v is not None and v.dim() > 1 and v.shape[1] == 40 else v)
             for k, v in a.items()}
    second = {k: (v[:, 25:] if v is not None and v.dim() > 1 and v.shape[1] == 40 else v)
              for k, v in a.items()}
    y1, H = ssd_scan(**first, dt_softplus=True, return_final_state=True, chunk_size=8)
    y2 = ssd_scan(**{**second, "initial_state": H}, dt_softplus=True, chunk_size=8)
    torch.testing.assert_close(torch.cat([y1, y2], 1), whole)


@pytest.mark.parametrize("change, match", [
    (dict(A=torch.zeros(3)), "A must have shape"),
    (dict(B=torch.zeros(1, 9, 1, 4)), "B must be"),
    (dict(D=torch.zeros(2, 5)), "D must be"),
])
def test_bad_shapes_name_the_argument(change, match):
    a = {**inputs(1, 10, 2, 3, 1, 4), **change}
    with pytest.raises(ValueError, match=match):
        ssd_scan(**a)
