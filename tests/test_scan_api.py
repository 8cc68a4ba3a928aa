"""Argument checking and backend choice of the public scan API."""

import warnings

import pytest
import torch

import seqmamba_kernels
from seqmamba_kernels import dispatch, selective_scan, selective_state_update
from scan_cases import Case, make_inputs


def _args(**over):
    x = make_inputs(Case(2, 4, 3, 10), torch.float32, seed=0)
    x.update(over)
    return x


@pytest.mark.parametrize("over,match", [
    (dict(u=torch.randn(4, 10)), r"u must have shape \(batch, dim, length\)"),
    (dict(delta=torch.randn(2, 4, 9)), r"delta must have shape \(batch=2, dim=4, length=10\)"),
    (dict(u=torch.randn(2, 4, 10, dtype=torch.complex64)), r"u must be a real floating-point"),
    (dict(delta=torch.ones(2, 4, 10, dtype=torch.int64)), r"delta must be a real floating-point"),
    (dict(A=torch.full((4, 3), float("nan"))), r"A contains NaN or infinite"),
    (dict(A=torch.randn(5, 3)), r"A must have shape \(dim=4, state\)"),
    (dict(B=torch.randn(2, 3, 11)), r"B must have shape \(batch=2, state=3, length=10\)"),
    (dict(B=torch.randn(2, 3, 3, 10)), r"B has 3 groups, which must divide dim=4"),
    (dict(B=torch.randn(3)), r"B must have one of the shapes"),
    (dict(C=torch.randn(4, 3)), r"C must have one of the shapes \(batch, state, length\), "
                                r"\(batch, groups, state, length\), got \(4, 3\)"),
    (dict(D=torch.randn(5)), r"D must have shape \(dim=4\)"),
    (dict(z=torch.randn(2, 4)), r"z must have shape \(batch=2, dim=4, length=10\)"),
    (dict(delta_bias=torch.randn(4, 1)), r"delta_bias must have shape \(dim=4\)"),
    (dict(initial_state=torch.randn(2, 4, 2)), r"initial_state must have shape \(batch=2, dim=4, state=3\)"),
    (dict(u=torch.randn(2, 4, 0), delta=torch.randn(2, 4, 0)), r"length 0"),
    (dict(delta=torch.randn(2, 4, 10, device="meta")), r"delta is on meta but u is on cpu"),
    (dict(u=[[1.0]]), r"u must be a torch.Tensor"),
])
def test_bad_calls_raise_value_error_naming_the_argument(over, match):
    """Arguments are checked once, before any backend is chosen (so once is enough here)."""
    with pytest.raises(ValueError, match=match):
        selective_scan(**_args(**over))


def test_state_update_bad_calls():
    st = torch.zeros(2, 4, 3)
    good = dict(x=torch.randn(2, 4), dt=torch.randn(2, 4), A=-torch.rand(4, 3),
                B=torch.randn(2, 3), C=torch.randn(2, 3))
    with pytest.raises(ValueError, match=r"x must have shape \(batch=2, dim=4\)"):
        selective_state_update(st, **{**good, "x": torch.randn(2, 5)})
    with pytest.raises(ValueError, match=r"B must have shape \(batch, state\) or"):
        selective_state_update(st, **{**good, "B": torch.randn(3)})
    with pytest.raises(ValueError, match=r"state must be a real floating-point"):
        selective_state_update(st.long(), **good)
    with pytest.raises(ValueError, match=r"A contains NaN"):
        selective_state_update(st, **{**good, "A": torch.full((4, 3), float("inf"))})


def test_state_update_grouped_matches_one_scan_step():
    """One step with grouped B/C equals a length-1 scan from the same initial state."""
    x = make_inputs(Case(2, 6, 4, 1, b_groups=3, c_groups=2), torch.float64, seed=4)
    state = x["initial_state"].clone()
    out = selective_state_update(state, x["u"][..., 0], x["delta"][..., 0], x["A"],
                                 x["B"][..., 0], x["C"][..., 0], D=x["D"], z=x["z"][..., 0],
                                 dt_bias=x["delta_bias"], dt_softplus=True, backend="torch")
    ref, last = selective_scan(**x, delta_softplus=True, return_last_state=True,
                               backend="reference")
    torch.testing.assert_close(out, ref[..., 0])
    torch.testing.assert_close(state, last)


def test_state_update_triton_matches_reference_bf16_and_groups():
    x = make_inputs(Case(2, 8, 5, 1, b_groups=2, c_groups=4), torch.float32, seed=6)
    args = (x["u"][..., 0], x["delta"][..., 0], x["A"], x["B"][..., 0], x["C"][..., 0])
    kw = dict(D=x["D"], z=x["z"][..., 0], dt_bias=x["delta_bias"], dt_softplus=True)
    for dtype, tol in ((torch.float32, 1e-6), (torch.bfloat16, 2e-2)):
        s_ref = x["initial_state"].double().clone()
        o_ref = selective_state_update(s_ref, *[a.to(dtype).double() for a in args],
                                       **{k: (v.to(dtype).double() if torch.is_tensor(v) else v)
                                          for k, v in kw.items()}, backend="reference")
        s = x["initial_state"].to(dtype).clone()
        o = selective_state_update(s, *[a.to(dtype) for a in args],
                                   **{k: (v.to(dtype) if torch.is_tensor(v) else v)
                                      for k, v in kw.items()}, backend="triton")
        assert o.dtype == dtype and s.dtype == dtype
        torch.testing.assert_close(o.double(), o_ref, rtol=tol, atol=tol)
        torch.testing.assert_close(s.double(), s_ref, rtol=tol, atol=tol)


def test_env_var_picks_backend_and_argument_wins(monkeypatch):
    monkeypatch.setenv(dispatch.ENV_VAR, "reference")
    assert dispatch.resolve_backend(None, torch.device("cpu"), torch.float32) == "reference"
    assert dispatch.resolve_backend("torch", torch.device("cpu"), torch.float32) == "torch"
    monkeypatch.setenv(dispatch.ENV_VAR, "cuda-magic")
    with pytest.raises(ValueError, match=r"unknown scan backend 'cuda-magic' \(from \$SEQMAMBA"):
        selective_scan(**_args())


def test_automatic_choice_on_cpu_is_the_fused_kernel(monkeypatch):
    """The compiled kernel for float32/bf16/fp16 (CI has a compiler); torch for float64."""
    monkeypatch.delenv(dispatch.ENV_VAR, raising=False)
    cpu = torch.device("cpu")
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        assert dispatch.resolve_backend(None, cpu, dtype) == "cpu"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # float64 going to torch is the design, not a fallback
        assert dispatch.resolve_backend(None, cpu, torch.float64) == "torch"


def test_named_unavailable_backend_says_why(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(RuntimeError, match=r"'triton'.*need CUDA tensors.*TRITON_INTERPRET=1"):
        selective_scan(**_args(), backend="triton")
    with pytest.raises(RuntimeError, match=r"do not take float64"):
        x = {k: (v.double() if v is not None else None) for k, v in _args().items()}
        selective_scan(**x, backend="triton")
    with pytest.raises(ValueError, match=r"unknown scan backend 'cuda'"):
        selective_scan(**_args(), backend="cuda")


def test_automatic_fallback_warns_once(monkeypatch):
    monkeypatch.delenv(dispatch.ENV_VAR, raising=False)
    monkeypatch.setattr(dispatch, "_triton_installed", lambda: False)
    monkeypatch.setattr(dispatch, "_warned", set())
    cuda = torch.device("cuda")
    with pytest.warns(RuntimeWarning, match="falls back to the torch backend: the triton package"):
        assert dispatch.resolve_backend(None, cuda, torch.float32) == "torch"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert dispatch.resolve_backend(None, cuda, torch.float32) == "torch"


def test_available_backends_reports_reasons(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    avail = seqmamba_kernels.available_backends(torch.device("cpu"))
    assert avail["reference"] is None and avail["torch"] is None and avail["cpu"] is None
    assert "CUDA" in avail["triton"]
    assert "float64" in seqmamba_kernels.available_backends(torch.device("cpu"), torch.float64)["cpu"]
    assert "CPU tensors" in seqmamba_kernels.available_backends(torch.device("meta"))["cpu"]


def test_kernels_does_not_import_upward():
    """seqmamba_kernels depends on torch/triton only: no import of seqmamba or pipelines anywhere in it."""
    import ast
    from pathlib import Path

    for path in Path(seqmamba_kernels.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for n in names:
                assert n.split(".")[0] not in ("seqmamba", "pipelines"), f"{path.name} imports {n}"
