"""The backbone: config, initialisation, full == step-by-step == chunked, padding, dtypes."""

import math

import pytest
import torch

from seqmamba import (FrontendConfig, MambaConfig, MambaForSequenceClassification,
                      MambaForTokenClassification, MambaLMHeadModel)
from seqmamba.bidirectional import flip_length

VOCAB = 12


def small(**kw):
    base = dict(d_model=32, n_layer=2, vocab_size=VOCAB, d_state=8)
    base.update(kw)
    return MambaConfig(**base)


def ids(batch, length, seed, vocab=VOCAB):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab, (batch, length), generator=g)


# ---------------------------------------------------------------- config

def test_config_json_round_trip(tmp_path):
    cfg = small(bidirectional="add", num_labels=5, extra={"task": "x"})
    cfg.to_json(tmp_path / "c.json")
    assert MambaConfig.from_json(tmp_path / "c.json") == cfg


def test_config_derived_sizes():
    cfg = MambaConfig(d_model=100, vocab_size=13, pad_vocab_size_multiple=8)
    assert cfg.dt_rank_value == math.ceil(100 / 16) == 7
    assert cfg.d_inner == 200
    assert cfg.padded_vocab_size == 16
    assert MambaConfig(d_model=64, dt_rank=3).dt_rank_value == 3


@pytest.mark.parametrize("kw, needle", [
    (dict(d_model=0), "d_model"),
    (dict(bidirectional="both"), "bidirectional"),
    (dict(pooling="sum"), "pooling"),
    (dict(frontend=FrontendConfig(kind="mel")), "frontend.kind"),
    (dict(frontend=FrontendConfig(kind="filterbank", taps=400)), "frontend.taps"),
    (dict(dt_min=0.2, dt_max=0.1), "dt_min"),
    (dict(rc_equivariant=True), "complement_map"),
    (dict(rc_equivariant=True, vocab_size=4, complement_map=[1, 2, 3, 0]), "own inverse"),
    (dict(rc_equivariant=True, d_model=33, vocab_size=4, complement_map=[3, 2, 1, 0]), "even"),
])
def test_config_rejects_bad_values(kw, needle):
    with pytest.raises(ValueError, match=needle):
        MambaConfig(**kw)


def test_config_rejects_unknown_fields():
    with pytest.raises(ValueError, match="unknown MambaConfig field"):
        MambaConfig.from_dict({"d_model": 8, "nlayer": 2})


# ---------------------------------------------------------------- initialisation

def test_standard_initialisation():
    torch.manual_seed(0)
    cfg = MambaConfig(d_model=64, n_layer=3, vocab_size=16, dt_min=0.001, dt_max=0.1)
    m = MambaLMHeadModel(cfg)
    mixer = m.backbone.layers[0].mixer
    n = cfg.d_state
    assert torch.allclose(mixer.A_log, torch.log(torch.arange(1, n + 1).float()).expand(cfg.d_inner, n))
    assert torch.equal(mixer.D, torch.ones(cfg.d_inner))
    dt = torch.nn.functional.softplus(mixer.dt_proj.bias)
    assert dt.min() >= cfg.dt_init_floor * 0.999 and dt.max() <= cfg.dt_max * 1.001
    # log-uniform: the median time step is near the geometric mean of the range
    assert 0.003 < dt.median() < 0.03
    bound = cfg.dt_rank_value ** -0.5
    assert mixer.dt_proj.weight.abs().max() <= bound
    emb = m.backbone.embedding.weight
    assert abs(emb.std().item() - cfg.initializer_range) < 0.005
    assert m.lm_head.weight is emb  # tied
    # out_proj rescaled by 1/sqrt(n_layer) from the default kaiming bound 1/sqrt(fan_in)
    assert mixer.out_proj.weight.abs().max() <= 1 / math.sqrt(cfg.d_inner) / math.sqrt(3) + 1e-6


def test_no_weight_decay_groups():
    m = MambaLMHeadModel(small())
    decay, no_decay = m.param_groups(0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    names = {id(p): n for n, p in m.named_parameters()}
    nd = {names[id(p)] for p in no_decay["params"]}
    d = {names[id(p)] for p in decay["params"]}
    assert any(n.endswith("A_log") for n in nd) and any(n.endswith(".D") for n in nd)
    assert any("norm" in n for n in nd) and any(n.endswith("dt_proj.bias") for n in nd)
    assert all(not n.endswith(("A_log", ".D", "bias")) and "norm" not in n for n in d)
    assert any(n.endswith("in_proj.weight") for n in d)
    total = sum(p.numel() for g in m.param_groups(0.1) for p in g["params"])
    assert total == m.num_parameters()


def test_fp32_parameters_survive_bf16_cast():
    m = MambaLMHeadModel(small()).to(torch.bfloat16)
    for name, p in m.named_parameters():
        keep = name.endswith(("A_log", ".D")) or "norm" in name
        assert p.dtype == (torch.float32 if keep else torch.bfloat16), name
    out = m(ids(2, 9, 0)).logits
    assert out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()


# ---------------------------------------------------------------- recurrent == parallel

@pytest.mark.parametrize("dtype, tol", [(torch.float32, 2e-5), (torch.bfloat16, 3e-2)])
@pytest.mark.parametrize("selective", [True, False])
def test_full_equals_steps_equals_chunks(dtype, tol, selective):
    torch.manual_seed(1)
    m = MambaLMHeadModel(small(selective=selective)).to(dtype).eval()
    x = ids(2, 29, 3)
    with torch.no_grad():
        full = m(x).logits.float()
        cache = m.allocate_inference_cache(2)
        steps = torch.stack([m.step(x[:, t], cache) for t in range(x.shape[1])], 1).float()
        chunked = m(x, chunk_size=7).logits.float()
        # uneven pieces through one cache: 5 tokens, then 1, then the rest
        cache = m.allocate_inference_cache(2)
        parts = [m(x[:, a:b], inference_cache=cache).logits for a, b in ((0, 5), (5, 6), (6, 29))]
        pieces = torch.cat(parts, 1).float()
    scale = full.abs().max()
    for other in (steps, chunked, pieces):
        assert (other - full).abs().max() <= tol * scale
    assert cache.seqlen_offset == 29


def test_chunked_forward_trains_with_carried_state():
    """Gradients through two chunks with a carried cache equal those of one full pass."""
    torch.manual_seed(2)
    m = MambaLMHeadModel(small())
    x = ids(2, 24, 4)
    m.zero_grad()
    m(x, labels=x).loss.backward()
    g_full = {n: p.grad.clone() for n, p in m.named_parameters()}
    m.zero_grad()
    m(x, labels=x, chunk_size=10).loss.backward()
    for n, p in m.named_parameters():
        assert torch.allclose(p.grad, g_full[n], rtol=1e-4, atol=1e-6), n


def test_causality():
    m = MambaLMHeadModel(small()).eval()
    x = ids(1, 20, 5)
    y = x.clone()
    y[0, 12] = (y[0, 12] + 1) % VOCAB
    with torch.no_grad():
        a, b = m(x).logits, m(y).logits
    assert torch.equal(a[:, :12], b[:, :12])
    assert not torch.allclose(a[:, 12:], b[:, 12:])


@pytest.mark.parametrize("mode", ["add", "ew_multiply"])
def test_bidirectional_sees_both_ways(mode):
    m = MambaForTokenClassification(small(bidirectional=mode)).eval()
    x = ids(1, 20, 6)
    y = x.clone()
    y[0, 12] = (y[0, 12] + 1) % VOCAB
    with torch.no_grad():
        a, b = m(x).logits, m(y).logits
    assert not torch.allclose(a[:, :12], b[:, :12])  # earlier positions see the change


def test_bidirectional_weight_tie_shares_projections():
    tied = MambaForTokenClassification(small(bidirectional="add"))
    untied = MambaForTokenClassification(small(bidirectional="add", bidirectional_weight_tie=False))
    mt = tied.backbone.layers[0].mixer
    assert mt.fwd.in_proj is mt.rev.in_proj and mt.fwd.out_proj is mt.rev.out_proj
    mu = untied.backbone.layers[0].mixer
    assert mu.fwd.in_proj is not mu.rev.in_proj
    assert tied.num_parameters() < untied.num_parameters()


def test_flip_length_reverses_real_positions_only():
    x = torch.arange(12.).view(2, 6, 1)
    out = flip_length(x, torch.tensor([4, 6]))[..., 0]
    assert out.tolist() == [[3, 2, 1, 0, 4, 5], [11, 10, 9, 8, 7, 6]]
    assert torch.equal(flip_length(flip_length(x, torch.tensor([4, 6])), torch.tensor([4, 6])), x)


# ---------------------------------------------------------------- padding

COMP = [3, 2, 1, 0] + list(range(4, VOCAB))  # A C G T + specials map to themselves


@pytest.mark.parametrize("variant", [
    dict(), dict(bidirectional="add"), dict(bidirectional="ew_multiply"),
    dict(rc_equivariant=True, complement_map=COMP),
    dict(rc_equivariant=True, complement_map=COMP, bidirectional="add"),
])
@pytest.mark.parametrize("pooling", ["mean", "last", "max", "center"])
def test_padded_batch_equals_unpadded(variant, pooling):
    torch.manual_seed(7)
    cfg = small(num_labels=3, pooling=pooling, **variant)
    seq = MambaForSequenceClassification(cfg).eval()
    tok = MambaForTokenClassification(cfg).eval()
    lengths = [17, 9, 13]
    rows = [ids(1, n, 10 + i)[0] for i, n in enumerate(lengths)]
    L = max(lengths)
    batch = torch.full((3, L), 5)  # pad token value is irrelevant: it must not leak
    mask = torch.zeros(3, L, dtype=torch.long)
    for i, r in enumerate(rows):
        batch[i, : len(r)] = r
        mask[i, : len(r)] = 1
    with torch.no_grad():
        pb = seq(batch, attention_mask=mask).logits
        tb = tok(batch, attention_mask=mask).logits
        for i, r in enumerate(rows):
            assert torch.allclose(pb[i], seq(r[None]).logits[0], atol=1e-5), i
            assert torch.allclose(tb[i, : len(r)], tok(r[None]).logits[0], atol=1e-5), i


def test_left_padding_is_rejected():
    m = MambaForSequenceClassification(small())
    x = ids(2, 6, 0)
    mask = torch.tensor([[0, 0, 1, 1, 1, 1], [1] * 6])
    with pytest.raises(ValueError, match="right-padded"):
        m(x, attention_mask=mask)


@pytest.mark.parametrize("bad, needle", [
    (torch.zeros(3, 4), "integer"),
    (torch.zeros(4, dtype=torch.long), r"\(batch, length\)"),
    (torch.full((1, 4), VOCAB), "outside the vocabulary"),
    (torch.zeros(1, 0, dtype=torch.long), "length 0"),
])
def test_bad_input_ids(bad, needle):
    with pytest.raises(ValueError, match=needle):
        MambaLMHeadModel(small())(bad)


def test_non_causal_models_refuse_cache_and_lm_head():
    with pytest.raises(ValueError, match="causal"):
        MambaLMHeadModel(small(bidirectional="add"))
    m = MambaForTokenClassification(small(bidirectional="add"))
    with pytest.raises(ValueError, match="causal"):
        m.allocate_inference_cache(1)
    with pytest.raises(ValueError, match="causal"):
        m(ids(1, 8, 0), chunk_size=4)


# ---------------------------------------------------------------- waveform input

@pytest.mark.parametrize("frontend", ["linear", "filterbank"])
def test_waveform_classifier_frames_padding_and_chunks(frontend):
    torch.manual_seed(8)
    cfg = MambaConfig(d_model=32, n_layer=2, d_state=8, num_labels=4, vocab_size=1,
                      frontend=FrontendConfig(frame_size=80, kind=frontend))
    m = MambaForSequenceClassification(cfg).eval()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 1600, generator=g)
    assert m.backbone.embedding(x).shape == (2, 20, 32)
    with torch.no_grad():
        full = m(x).logits
        assert torch.allclose(m(x, chunk_size=400).logits, full, atol=1e-5)
        mask = torch.ones(2, 1600, dtype=torch.long)
        mask[1, 800:] = 0
        padded = m(x, attention_mask=mask).logits
        assert torch.allclose(padded[1], m(x[1:, :800]).logits[0], atol=1e-5)
    with pytest.raises(ValueError, match="multiple of frame_size"):
        m(x, chunk_size=100)
    with pytest.raises(ValueError, match="NaN"):
        m(torch.full((1, 160), float("nan")))
    with pytest.raises(ValueError, match="float"):
        m(torch.zeros(1, 160, dtype=torch.long))
    with pytest.raises(ValueError, match="token input"):
        MambaLMHeadModel(cfg)


def test_filterbank_frontend_ignores_where_a_cycle_starts():
    """A steady tone moved by a few samples: the filterbank's band energies barely change, the
    linear projection of raw frames changes as much as the signal does (its reason to exist)."""
    torch.manual_seed(3)
    t = torch.arange(16000 + 16) / 16000.0
    tone = 0.5 * torch.sin(2 * math.pi * 440.0 * t) + 0.3 * torch.sin(2 * math.pi * 1250.0 * t)
    a, b = tone[None, :16000], tone[None, 7:16007]  # the same sound, 7 samples (0.4 ms) later
    rel = {}
    for frontend in ("linear", "filterbank"):
        cfg = MambaConfig(d_model=32, n_layer=1, num_labels=2, vocab_size=1,
                          frontend=FrontendConfig(frame_size=160, kind=frontend))
        emb = MambaForSequenceClassification(cfg).backbone.embedding
        with torch.no_grad():
            ea, eb = emb(a)[:, 1:-1], emb(b)[:, 1:-1]  # (1, frames, d_model)
        rel[frontend] = float((ea - eb).norm() / ea.norm())
    # measured: linear 1.42 (as different as two unrelated frames), filterbank 0.15 (a frame
    # holds 160 samples, not a whole number of periods, so its energy still moves a little)
    assert rel["filterbank"] < 0.3, rel
    assert rel["linear"] > 5 * rel["filterbank"], rel


def test_filterbank_mean_normalisation_removes_gain_and_ignores_silence():
    """frontend_norm='cmn': a clip recorded 10 dB louder, or with silence appended, gives the
    same normalised band energies on its voiced frames; without it the energies move with the
    gain."""
    from seqmamba.frontends import FilterbankEmbedding

    torch.manual_seed(0)
    t = torch.arange(8000) / 8000.0
    speech = (0.3 * torch.sin(2 * math.pi * 300 * t) * torch.sin(2 * math.pi * 3 * t) ** 2
              + 0.01 * torch.randn(8000))[None]
    emb = FilterbankEmbedding(80, 16, 24, 40, norm="cmn").eval()
    plain = FilterbankEmbedding(80, 16, 24, 40).eval()
    plain.load_state_dict(emb.state_dict())
    louder = speech * 10 ** 0.5
    padded = torch.cat([speech, torch.zeros(1, 4000)], 1)
    with torch.no_grad():
        ref = emb.band_energies(speech)
        # 10 dB is 2.30 in natural-log energy; what is left comes from the energy floor (EPS)
        # in the quietest frames
        raw = (plain.band_energies(louder) - plain.band_energies(speech)).mean()
        assert raw > 2.2
        assert (emb.band_energies(louder) - ref).abs().mean() < 0.02 * raw
        assert (emb.band_energies(padded)[:, :100] - ref).abs().max() < 1e-4
    with pytest.raises(ValueError, match="frontend.norm"):
        MambaConfig(d_model=16, n_layer=1, vocab_size=1,
                    frontend=FrontendConfig(kind="linear", norm="cmn"))
