"""generate(): prefill + recurrent steps agree with full forward passes; sampling filters."""

import math

import pytest
import torch

from seqmamba import MambaConfig, MambaLMHeadModel
from seqmamba.generation import filter_logits, sample_next


def model(seed=0, **kw):
    torch.manual_seed(seed)
    return MambaLMHeadModel(MambaConfig(d_model=32, n_layer=2, vocab_size=11, d_state=8, **kw)).eval()


def prompt(batch, length, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 11, (batch, length), generator=g)


def test_greedy_generation_equals_repeated_full_forward():
    m = model()
    p = prompt(2, 9, 1)
    out = m.generate(p, 12, temperature=0)
    assert out.shape == (2, 21) and torch.equal(out[:, :9], p)
    x = p
    with torch.no_grad():
        for _ in range(12):
            nxt = m(x).logits[:, -1].argmax(-1)
            x = torch.cat([x, nxt[:, None]], 1)
    assert torch.equal(out, x)


def test_chunked_prefill_gives_the_same_continuation():
    m = model(1)
    p = prompt(1, 50, 2)
    assert torch.equal(m.generate(p, 8, temperature=0),
                       m.generate(p, 8, temperature=0, chunk_size=16))


def test_seeded_sampling_is_reproducible():
    m = model(2)
    p = prompt(3, 5, 3)
    a = m.generate(p, 20, seed=7, top_k=5, top_p=0.9)
    assert torch.equal(a, m.generate(p, 20, seed=7, top_k=5, top_p=0.9))
    assert not torch.equal(a, m.generate(p, 20, seed=8, top_k=5, top_p=0.9))
    assert torch.equal(m.generate(p, 6, seed=1, top_k=1), m.generate(p, 6, temperature=0))


def test_eos_rows_stay_finished_and_suppressed_tokens_never_appear():
    m = model(3)
    p = prompt(4, 3, 4)
    # A high temperature makes every token likely, so rows do reach the end token (about 95%
    # of rows within 30 steps at 11 tokens): the property is exercised, not skipped.
    out = m.generate(p, 30, seed=0, eos_token_id=2, temperature=5.0)
    stayed = 0  # rows that ended before the last step, so that staying ended is tested
    for row in out[:, 3:]:
        hits = (row == 2).nonzero()
        if len(hits):
            assert (row[hits[0, 0]:] == 2).all()
            stayed += int(hits[0, 0] < len(row) - 1)
    assert stayed >= 2
    out = m.generate(p, 30, seed=0, suppress_tokens=[0, 1])
    assert not ((out[:, 3:] == 0) | (out[:, 3:] == 1)).any()


def test_filter_logits_top_k_and_top_p():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    logits = probs.log()
    kept = torch.isfinite(filter_logits(logits, top_k=2))
    assert kept.tolist() == [[True, True, False, False]]
    kept = torch.isfinite(filter_logits(logits, top_p=0.7))  # 0.5 < 0.7 <= 0.8
    assert kept.tolist() == [[True, True, False, False]]
    kept = torch.isfinite(filter_logits(logits, top_p=0.5))
    assert kept.tolist() == [[True, False, False, False]]
    shuffled = logits[:, [2, 0, 3, 1]]
    kept = torch.isfinite(filter_logits(shuffled, top_p=0.9))  # 0.5+0.3 < 0.9 -> three kept
    assert kept.tolist() == [[True, True, False, True]]


def test_sampling_follows_the_distribution():
    g = torch.Generator().manual_seed(0)
    logits = torch.tensor([[0.0, math.log(3.0)]]).expand(4000, 2)
    draws = sample_next(logits, temperature=1.0, generator=g).float().mean().item()
    assert abs(draws - 0.75) < 0.03


def test_sampling_matches_many_class_probabilities_and_never_draws_filtered_tokens():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(1, 12, generator=g) * 1.5
    n = 60000
    draws = sample_next(logits.expand(n, 12), temperature=0.7, top_k=8, generator=g)
    kept = torch.isfinite(filter_logits(logits / 0.7, top_k=8))[0]
    p = torch.where(kept, logits[0] / 0.7, torch.tensor(float("-inf"))).softmax(-1)
    freq = torch.bincount(draws, minlength=12).double() / n
    assert freq[~kept].sum() == 0  # filtered tokens: never
    # every kept token within 4.5 standard errors of its probability
    se = (p * (1 - p) / n).sqrt().double()
    assert ((freq - p.double()).abs() <= 4.5 * se + 1e-12).all(), (freq, p)


@pytest.mark.parametrize("kw, needle", [(dict(temperature=-1), "temperature"),
                                        (dict(top_p=0), "top_p"), (dict(top_k=-2), "top_k")])
def test_bad_sampling_arguments(kw, needle):
    with pytest.raises(ValueError, match=needle):
        model().generate(prompt(1, 3, 0), 2, **kw)


@pytest.mark.parametrize("kw", [dict(), dict(rms_norm=False, residual_in_fp32=False),
                                dict(tie_embeddings=False, bias=True, conv_bias=False)])
def test_recurrent_stepper_equals_full_forward(kw):
    from seqmamba.stepper import RecurrentStepper

    m = model(4, **kw)
    p = prompt(2, 30, 5)
    with torch.no_grad():
        full = m(p).logits
        cache = m.allocate_inference_cache(2)
        m(p[:, :1], inference_cache=cache)  # first position through the general path
        stepper = RecurrentStepper(m)
        steps = torch.stack([stepper(p[:, t], cache) for t in range(1, 30)], 1)
    assert (steps - full[:, 1:]).abs().max() <= 2e-5 * full.abs().max()


@pytest.mark.parametrize("backend", ["reference", "torch", "cpu"])
def test_recurrent_stepper_runs_the_models_scan_backend(backend, monkeypatch):
    """The step's state update is the kernels' update of the model's scan backend (a runtime
    choice, set_scan_backend), and every backend gives the full forward's logits."""
    import seqmamba_kernels.dispatch as dispatch
    from seqmamba.stepper import RecurrentStepper

    m = model(4).set_scan_backend(backend)
    p = prompt(2, 16, 7)
    resolved = []
    real = dispatch.resolve_backend
    monkeypatch.setattr(dispatch, "resolve_backend",
                        lambda *a: resolved.append(real(*a)) or resolved[-1])
    with torch.no_grad():
        full = m(p).logits
        cache = m.allocate_inference_cache(2)
        resolved.clear()
        stepper = RecurrentStepper(m)
        assert resolved == [backend]
        steps = torch.stack([stepper(p[:, t], cache) for t in range(16)], 1)
    assert (steps - full).abs().max() <= 2e-5 * full.abs().max()


def test_recurrent_stepper_in_bf16_keeps_the_dt_bias_in_float32():
    """bf16 weights: the fused dt/B/C matmul runs in bf16, the dt bias is added in float32 by
    the state update (the float32 path folds it into the matmul instead)."""
    from seqmamba.stepper import RecurrentStepper

    m = model(4).to(torch.bfloat16)
    p = prompt(2, 20, 6)
    with torch.no_grad():
        full = m(p).logits.float()
        cache = m.allocate_inference_cache(2)
        m(p[:, :1], inference_cache=cache)
        stepper = RecurrentStepper(m)
        assert stepper.layers[0].proj_b is None and stepper.layers[0].dt_b.dtype == torch.float32
        steps = torch.stack([stepper(p[:, t], cache).float() for t in range(1, 20)], 1)
    assert (steps - full[:, 1:]).abs().max() <= 3e-2 * full.abs().max()


def test_compiled_stepper_equals_eager_steps():
    """RecurrentStepper(compile=True): the same logits and cache as the eager step, and
    generate(compile=True) draws the same tokens for a seed."""
    from seqmamba.stepper import RecurrentStepper

    m = model(4)
    p = prompt(1, 12, 9)
    with torch.no_grad():
        caches = [m.allocate_inference_cache(1) for _ in range(2)]
        for c in caches:
            m(p[:, :4], inference_cache=c)
        eager, comp = RecurrentStepper(m), RecurrentStepper(m, compile=True)
        for t in range(4, 12):
            a, b = eager(p[:, t], caches[0]), comp(p[:, t], caches[1])
            assert torch.allclose(a, b, atol=1e-5, rtol=1e-5)
        for la, lb in zip(caches[0].layers, caches[1].layers):
            # (inductor reassociates sums: float32 rounding, not exact equality)
            assert torch.allclose(la.ssm, lb.ssm, atol=1e-5, rtol=1e-3)
            assert torch.allclose(la.conv, lb.conv, atol=1e-5, rtol=1e-3)
        assert caches[1].seqlen_offset == caches[0].seqlen_offset == 12
    out_e = m.generate(p[:, :5], 30, seed=3)
    out_c = m.generate(p[:, :5], 30, seed=3, compile=True)
    assert torch.equal(out_e, out_c)
    with pytest.raises(ValueError, match="float32"):
        RecurrentStepper(model(4).to(torch.bfloat16), compile=True)


def test_compile_on_a_model_that_cannot_compile_warns_and_still_generates():
    """A non-selective (time-invariant) model steps through model.step: compile=True says so."""
    torch.manual_seed(0)
    model = MambaLMHeadModel(MambaConfig(d_model=16, n_layer=1, vocab_size=8, selective=False))
    ids = torch.randint(0, 8, (1, 5))
    with pytest.warns(RuntimeWarning, match=r"compile=True\) is ignored"):
        out = model.generate(ids, 4, temperature=0.0, compile=True)
    assert torch.equal(out, model.generate(ids, 4, temperature=0.0))
