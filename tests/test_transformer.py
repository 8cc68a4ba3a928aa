"""The Transformer++ baseline (config.arch == "transformer") on seqmamba's backbone and heads:
cached and chunked inference equal the full forward, the causal model never looks ahead, the
bidirectional one looks both ways, padding is invisible, and it saves and loads like a Mamba
model."""

import pytest
import torch

from seqmamba import (MambaConfig, MambaForMaskedLM, MambaForSequenceClassification,
                      MambaLMHeadModel)
from seqmamba.transformer import rope


def cfg(**kw):
    base = dict(arch="transformer", d_model=32, n_layer=2, n_head=4, vocab_size=12)
    return MambaConfig(**{**base, **kw})


def lm(seed=None):
    torch.manual_seed(torch.seed() if seed is None else seed)
    return MambaLMHeadModel(cfg()).eval()


def test_rope_makes_attention_scores_depend_on_the_offset_between_positions_only():
    q, k = torch.randn(1, 1, 1, 16, dtype=torch.float64), torch.randn(1, 1, 1, 16, dtype=torch.float64)
    scores = [float((rope(q, i) * rope(k, j)).sum()) for i, j in ((3, 1), (10, 8), (40, 38))]
    assert scores[1] == pytest.approx(scores[0], rel=1e-5)  # angles are computed in float32
    assert scores[2] == pytest.approx(scores[0], rel=1e-5)
    assert abs(float((rope(q, 3) * rope(k, 0)).sum()) - scores[0]) > 1e-3


def test_token_by_token_steps_and_chunks_with_a_kv_cache_equal_the_full_forward():
    model = lm()
    ids = torch.randint(0, 12, (2, 23))
    with torch.no_grad():
        full = model(ids).logits
        cache = model.allocate_inference_cache(2)
        steps = torch.stack([model.step(ids[:, t], cache) for t in range(ids.shape[1])], dim=1)
        chunked = model(ids, chunk_size=5).logits
    torch.testing.assert_close(steps, full, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(chunked, full, atol=1e-5, rtol=1e-5)
    assert cache.layers[0].k.shape == (2, 4, 23, 8)


def test_the_causal_model_never_sees_ahead_and_the_bidirectional_one_sees_both_ways():
    torch.manual_seed(0)
    ids = torch.randint(0, 12, (1, 16))
    changed = ids.clone()
    changed[0, 10] = (ids[0, 10] + 1) % 12
    causal = MambaLMHeadModel(cfg()).eval()
    both = MambaForMaskedLM(cfg(bidirectional="add")).eval()
    with torch.no_grad():
        d_causal = (causal(ids).logits - causal(changed).logits).abs().amax(-1)[0]
        d_both = (both(ids).logits - both(changed).logits).abs().amax(-1)[0]
    assert float(d_causal[:10].max()) == 0.0 and float(d_causal[10:].min()) > 0
    assert float(d_both[:10].min()) > 0 and float(d_both[11:].min()) > 0


@pytest.mark.parametrize("bidirectional", [None, "add"])
def test_right_padding_changes_nothing_for_the_real_tokens(bidirectional):
    torch.manual_seed(1)
    model = MambaForSequenceClassification(cfg(bidirectional=bidirectional, num_labels=3)).eval()
    short = torch.randint(0, 12, (1, 9))
    padded = torch.cat([short, torch.randint(0, 12, (1, 6))], dim=1)
    mask = torch.cat([torch.ones(1, 9), torch.zeros(1, 6)], dim=1).long()
    with torch.no_grad():
        alone = model(short).logits
        in_batch = model(padded, attention_mask=mask).logits
    torch.testing.assert_close(in_batch, alone, atol=1e-5, rtol=1e-5)


def test_greedy_generation_follows_the_full_forward_argmax():
    model = lm(2)
    prompt = torch.randint(0, 12, (1, 7))
    out = model.generate(prompt, 6, top_k=1)
    ids = prompt
    with torch.no_grad():
        for _ in range(6):
            ids = torch.cat([ids, model(ids).logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(out, ids)


def test_a_transformer_saves_and_loads_with_its_arch_and_gives_the_same_logits(tmp_path):
    model = lm(3)
    ids = torch.randint(0, 12, (2, 11))
    model.save_pretrained(tmp_path / "m")
    back = MambaLMHeadModel.from_pretrained(tmp_path / "m").eval()
    assert back.config.arch == "transformer" and back.config.n_head == 4
    with torch.no_grad():
        torch.testing.assert_close(back(ids).logits, model(ids).logits)


def test_bf16_logits_stay_close_to_fp32():
    model = lm(4)
    ids = torch.randint(0, 12, (2, 32))
    with torch.no_grad():
        ref = model(ids).logits
        half = model.to(torch.bfloat16)(ids).logits.float()
    assert float((half - ref).abs().max()) < 0.1 * float(ref.abs().max())


@pytest.mark.parametrize("kw, match", [
    (dict(arch="rnn"), "arch"),
    (dict(d_model=36, n_head=4), "even width"),
    (dict(rc_equivariant=True, complement_map=list(range(12))), "rc_equivariant"),
])
def test_bad_transformer_configs_name_the_field(kw, match):
    with pytest.raises(ValueError, match=match):
        cfg(**kw)


def test_a_windowed_cache_streams_in_bounded_memory_and_equals_the_windowed_forward():
    torch.manual_seed(5)
    ids = torch.randint(0, 12, (1, 40))
    for n_layer in (1, 2):
        model = MambaLMHeadModel(cfg(attn_window=6, n_layer=n_layer)).eval()
        with torch.no_grad():
            full = model(ids).logits
            cache = model.allocate_inference_cache(1)
            chunked = model(ids, inference_cache=cache, chunk_size=7).logits
            # each layer sees the 6 positions ending at its own: one layer's logits at t
            # are those of ids[t-5..t] alone
            alone = torch.stack([model(ids[:, max(0, t - 5):t + 1]).logits[0, -1]
                                 for t in range(40)])
        torch.testing.assert_close(chunked, full, atol=1e-5, rtol=1e-5)
        assert cache.layers[0].k.shape[2] == 6
        if n_layer == 1:
            torch.testing.assert_close(full[0], alone, atol=1e-5, rtol=1e-5)
        else:  # two layers see 2 x 5 positions back
            assert float((full[0, 15:] - alone[15:]).abs().max()) > 1e-3
