"""Mamba-2 mixers (config arch "mamba2") in every backbone variant, and transformers'
Mamba2ForCausalLM checkpoints loaded with its logits and its greedy tokens."""

import json

import pytest
import torch

from seqmamba import (MambaConfig, MambaForSequenceClassification, MambaForTokenClassification,
                      MambaLMHeadModel)
from seqmamba.rc import rc_flip

COMP = [3, 2, 1, 0, 4, 5, 6, 7]


def cfg(**kw):
    base = dict(arch="mamba2", d_model=32, n_layer=2, d_state=16, head_dim=16, n_groups=2,
                vocab_size=8)
    return MambaConfig(**{**base, **kw})


def test_steps_and_chunks_with_carried_state_equal_the_full_forward():
    torch.manual_seed(0)
    model = MambaLMHeadModel(cfg()).eval()
    ids = torch.randint(0, 8, (2, 41))
    with torch.no_grad():
        full = model(ids).logits
        cache = model.allocate_inference_cache(2)
        steps = torch.stack([model.step(ids[:, t], cache) for t in range(41)], dim=1)
        chunked = model(ids, chunk_size=9).logits
    torch.testing.assert_close(steps, full, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(chunked, full, atol=1e-5, rtol=1e-5)
    assert cache.layers[0].ssm.shape == (2, 4, 16, 16)  # (batch, heads, head_dim, state)


@pytest.mark.parametrize("bidirectional", [None, "add"])
def test_rc_equivariant_mamba2_maps_the_reverse_complement_to_the_reversed_outputs(bidirectional):
    torch.manual_seed(1)
    c = cfg(d_model=64, rc_equivariant=True, complement_map=COMP, bidirectional=bidirectional,
            num_labels=3)
    tok = MambaForTokenClassification(c).eval()
    x = torch.randint(0, 5, (2, 30))
    rc = torch.tensor(COMP)[x].flip(1)
    with torch.no_grad():
        torch.testing.assert_close(tok.backbone(rc), rc_flip(tok.backbone(x)), atol=1e-5,
                                   rtol=1e-5)
        torch.testing.assert_close(tok(rc).logits, tok(x).logits.flip(1), atol=1e-5, rtol=1e-5)


def test_a_bidirectional_mamba2_sees_both_sides_and_ignores_right_padding():
    torch.manual_seed(2)
    model = MambaForSequenceClassification(cfg(bidirectional="add", num_labels=2)).eval()
    mix = model.backbone.layers[0].mixer
    x = torch.randint(0, 5, (1, 20))
    changed = x.clone()
    changed[0, 15] = (x[0, 15] + 1) % 5
    with torch.no_grad():
        h, h2 = model.backbone(x), model.backbone(changed)
        assert float((h - h2)[0, :15].abs().max()) > 0  # earlier positions see the change
        padded = torch.cat([x, torch.randint(0, 5, (1, 7))], dim=1)
        mask = torch.cat([torch.ones(1, 20), torch.zeros(1, 7)], dim=1).long()
        torch.testing.assert_close(model(padded, attention_mask=mask).logits, model(x).logits,
                                   atol=1e-5, rtol=1e-5)
    assert type(mix.fwd).__name__ == "Mamba2Mixer"


def test_transformers_mamba2_checkpoints_load_with_their_logits_and_greedy_tokens(tmp_path):
    """A checkpoint written by transformers' own Mamba2ForCausalLM (n_groups 2, the gated norm
    per group, norms and D moved off their initial values), loaded by seqmamba's importer."""
    transformers = pytest.importorskip("transformers")  # a dev dependency
    torch.manual_seed(3)
    hf = transformers.Mamba2ForCausalLM(transformers.Mamba2Config(
        num_heads=8, head_dim=8, hidden_size=32, state_size=16, num_hidden_layers=2,
        n_groups=2, vocab_size=20, chunk_size=16, tie_word_embeddings=False,
        pad_token_id=None, eos_token_id=None, bos_token_id=None)).eval()  # no token is special
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if "norm" in name or name.endswith(".D") or "dt_bias" in name:
                p.add_(0.3 * torch.randn_like(p))
    hf.save_pretrained(tmp_path)
    ours = MambaLMHeadModel.from_pretrained(tmp_path).eval()
    assert ours.config.arch == "mamba2" and ours.config.n_groups == 2
    ids = torch.randint(0, 20, (2, 45))
    with torch.no_grad():
        want, got = hf(ids).logits, ours(ids).logits
    assert float((got - want).abs().max() / want.abs().max()) < 1e-4
    greedy = hf.generate(ids[:, :10], max_new_tokens=12, do_sample=False)
    assert torch.equal(ours.generate(ids[:, :10], 12, top_k=1), greedy)


def test_mamba_ssm_mamba2_directories_load_with_the_logits_of_the_same_weights(tmp_path):
    """A mamba-ssm Mamba-2 directory built without seqmamba: transformers' Mamba2ForCausalLM
    weights (n_groups 2; norms, D and dt_bias moved off their initial values) renamed by
    mamba-ssm's rules (``embeddings`` -> ``embedding``), pickled as pytorch_model.bin beside
    mamba-ssm's config.json (ssm_cfg layer "Mamba2", vocabulary padded to a multiple of 8).
    mamba-ssm normalises the gate per group (RMSNormGated, group_size d_ssm / ngroups), as this
    transformers version does, so the logits must be transformers' own."""
    transformers = pytest.importorskip("transformers")  # a dev dependency
    torch.manual_seed(5)
    hf = transformers.Mamba2ForCausalLM(transformers.Mamba2Config(
        num_heads=8, head_dim=8, hidden_size=32, state_size=16, num_hidden_layers=2,
        n_groups=2, vocab_size=16, chunk_size=16, tie_word_embeddings=True,
        pad_token_id=None, eos_token_id=None, bos_token_id=None)).eval()
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if "norm" in name or name.endswith(".D") or "dt_bias" in name:
                p.add_(0.3 * torch.randn_like(p))
    sd = {k.replace("backbone.embeddings.", "backbone.embedding."): v.clone()
          for k, v in hf.state_dict().items()}
    assert "backbone.embedding.weight" in sd and "backbone.layers.1.mixer.norm.weight" in sd
    torch.save(sd, tmp_path / "pytorch_model.bin")
    (tmp_path / "config.json").write_text(json.dumps({
        "d_model": 32, "d_intermediate": 0, "n_layer": 2, "vocab_size": 13,
        "ssm_cfg": {"layer": "Mamba2", "d_state": 16, "headdim": 8, "ngroups": 2,
                    "chunk_size": 16}, "attn_layer_idx": [], "attn_cfg": {},
        "rms_norm": True, "residual_in_fp32": True, "fused_add_norm": True,
        "pad_vocab_size_multiple": 8, "tie_embeddings": True}))
    ours = MambaLMHeadModel.from_pretrained(tmp_path).eval()
    assert (ours.config.arch, ours.config.n_groups, ours.config.padded_vocab_size) == (
        "mamba2", 2, 16)
    ids = torch.randint(0, 13, (2, 37))
    with torch.no_grad():
        want, got = hf(ids).logits[..., :13], ours(ids).logits  # the padding's logits dropped
    assert want.shape == got.shape
    assert float((got - want).abs().max() / want.abs().max()) < 1e-4


def test_mamba_ssm_mamba2_configs_map_and_unsupported_settings_are_refused(tmp_path):
    from seqmamba.checkpoint import load_directory

    c = {"d_model": 32, "n_layer": 1, "vocab_size": 8, "pad_vocab_size_multiple": 8,
         "ssm_cfg": {"layer": "Mamba2", "d_state": 16, "headdim": 16, "ngroups": 2,
                     "dt_limit": [0.0, float("inf")]}}
    model = MambaLMHeadModel(cfg(n_layer=1))
    model.save_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(c))
    mapped, state, fmt = load_directory(tmp_path)
    assert fmt == "mamba-ssm" and (mapped.arch, mapped.head_dim, mapped.n_groups) == (
        "mamba2", 16, 2) and mapped.dt_limit is None
    assert set(state) == set(model.state_dict()) - {"lm_head.weight"}  # mamba-ssm's names
    c["ssm_cfg"]["d_ssm"] = 32
    (tmp_path / "config.json").write_text(json.dumps(c))
    with pytest.raises(ValueError, match="d_ssm"):
        load_directory(tmp_path)


@pytest.mark.parametrize("kw, match", [
    (dict(head_dim=24), "head_dim=24"),
    (dict(n_groups=3), "n_groups=3"),
    (dict(dt_limit=[0.5, 0.1]), "dt_limit"),
])
def test_bad_mamba2_configs_name_the_field(kw, match):
    with pytest.raises(ValueError, match=match):
        cfg(**kw)


@pytest.mark.parametrize("kw", [dict(n_groups=1), dict(dt_limit=[0.01, 0.5])])
def test_the_recurrent_stepper_runs_mamba2_blocks_as_the_full_forward(kw):
    """generate's per-token path for Mamba-2 (RecurrentStepper with ssd_state_update) gives the
    full forward's logits, with groups and a clamped time step too."""
    from seqmamba.stepper import RecurrentStepper

    model = MambaLMHeadModel(cfg(**kw)).eval()
    ids = torch.randint(0, 5, (2, 24))
    with torch.no_grad():
        full = model(ids).logits
        cache = model.allocate_inference_cache(2)
        model(ids[:, :5], inference_cache=cache)
        stepper = RecurrentStepper(model)
        steps = torch.stack([stepper(ids[:, t], cache) for t in range(5, 24)], 1)
    assert (steps - full[:, 5:]).abs().max() <= 2e-5 * full.abs().max()
