"""The causal depthwise convolution (seqmamba_kernels.causal_conv1d) against its float64 reference."""

import pytest
import torch

from seqmamba_kernels import causal_conv1d, causal_conv1d_ref
from scan_cases import rel_err

SHAPES = [(1, 1, 1, 4), (2, 5, 3, 4), (2, 16, 40, 4), (3, 37, 100, 4), (1, 20, 9000, 3),
          (2, 24, 7, 1)]


def _inputs(batch, dim, length, width, seed, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, dim, length, generator=g).to(dtype),
            torch.randn(dim, width, generator=g).to(dtype),
            torch.randn(dim, generator=g).to(dtype),
            torch.randn(batch, dim, width - 1, generator=g).to(dtype))


def _ref(x, w, b, h0, activation):
    d = (lambda t: None if t is None else t.double())  # noqa: E731
    return causal_conv1d_ref(d(x), d(w), d(b), d(h0), activation)


@pytest.mark.parametrize("activation", [None, "silu"])
@pytest.mark.parametrize("with_bias,with_state", [(True, True), (False, False)])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "b{}d{}l{}k{}".format(*s))
def test_cpu_kernel_matches_reference(shape, with_bias, with_state, activation):
    x, w, b, h0 = _inputs(*shape, seed=sum(shape))
    b, h0 = (b if with_bias else None), (h0 if with_state else None)
    with torch.no_grad():
        out, state = causal_conv1d(x, w, b, h0, activation, backend="cpu")
    ref, ref_state = _ref(x, w, b, h0, activation)
    assert out.dtype == torch.float32 and out.shape == x.shape
    assert rel_err(out, ref) < 1e-6
    assert torch.equal(state.double(), ref_state)


def test_strided_input_and_bf16():
    """A transposed view (the model's layout) is read in place; bf16 comes back as bf16."""
    x, w, b, h0 = _inputs(2, 48, 300, 4, seed=3)
    view = x.transpose(1, 2).contiguous().transpose(1, 2)
    assert not view.is_contiguous()
    with torch.no_grad():
        out, _ = causal_conv1d(view, w, b, h0, "silu", backend="cpu")
        out16, _ = causal_conv1d(x.bfloat16(), w.bfloat16(), b.bfloat16(), h0.bfloat16(), "silu",
                                 backend="cpu")
    ref, _ = _ref(x, w, b, h0, "silu")
    assert rel_err(out, ref) < 1e-6
    ref16, _ = _ref(x.bfloat16(), w.bfloat16(), b.bfloat16(), h0.bfloat16(), "silu")
    assert out16.dtype == torch.bfloat16 and rel_err(out16, ref16) < 1e-2


def test_chunks_with_carried_state_equal_one_shot():
    x, w, b, _ = _inputs(2, 20, 50, 4, seed=4)
    with torch.no_grad():
        full, last = causal_conv1d(x, w, b, None, "silu", backend="cpu")
        state, outs = None, []
        for a, z in ((0, 1), (1, 2), (2, 31), (31, 50)):  # pieces shorter than the window too
            o, state = causal_conv1d(x[..., a:z], w, b, state, "silu", backend="cpu")
            outs.append(o)
    assert rel_err(torch.cat(outs, -1), full) < 1e-6
    assert torch.equal(state, last)


def test_gradients_flow_when_asked_for():
    """Under autograd the op is differentiable (PyTorch's conv1d) and agrees with the kernel."""
    x, w, b, h0 = _inputs(2, 8, 30, 4, seed=5)
    leaves = [t.clone().requires_grad_() for t in (x, w, b, h0)]
    out, _ = causal_conv1d(*leaves, activation="silu", backend="cpu")
    out.square().sum().backward()
    assert all(t.grad is not None and torch.isfinite(t.grad).all() for t in leaves)
    with torch.no_grad():
        fast, _ = causal_conv1d(x, w, b, h0, "silu", backend="cpu")
    assert rel_err(fast, out) < 1e-6


@pytest.mark.parametrize("args,match", [
    (dict(x=torch.randn(4, 5)), r"x must have shape \(batch, dim, length\)"),
    (dict(weight=torch.randn(3, 4)), r"weight must have shape \(dim=5, width\)"),
    (dict(bias=torch.randn(4)), r"bias must have shape \(dim=5,\)"),
    (dict(initial_state=torch.randn(2, 5, 2)), r"initial_state must have shape"),
    (dict(activation="relu"), r"activation must be None or 'silu'"),
    (dict(x=torch.ones(2, 5, 7, dtype=torch.int64)), r"x must be a real floating-point"),
])
def test_bad_calls_name_the_argument(args, match):
    kw = dict(x=torch.randn(2, 5, 7), weight=torch.randn(5, 4), bias=torch.randn(5),
              initial_state=torch.randn(2, 5, 3), activation=None)
    kw.update(args)
    with pytest.raises(ValueError, match=match):
        causal_conv1d(**kw)
