"""Caduceus / PlantCaduceus checkpoints: directories built here by the published parameter names
and config keys (modeling_caduceus.py / modeling_rcps.py / configuration_caduceus.py of
kuleshov-group/caduceus), loaded by seqmamba, and checked against

* a float64 forward written in this file from the published semantics (a sequential Mamba
  recurrence, Caduceus's fused add+norm half order taken literally), not from seqmamba code;
* properties: PS models are RC-equivariant with fused add+norm on and off, and the two give
  different logits on the same weights.
"""

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

import seqmamba
from caduceus_helpers import COMPLEMENT, D_CONV, D_STATE, EXPAND, caduceus_dir
from seqmamba import MambaForMaskedLM

# ---- the published semantics, in float64, one position at a time where order matters ----

def mamba(x, w, m_fwd, m):
    """mamba-ssm's Mamba on x (L, d); ``m`` names this direction's tensors, in/out projections
    come from the forward one (weight tying)."""
    di = w[m_fwd + "out_proj.weight"].shape[1]
    xz = x @ w[m_fwd + "in_proj.weight"].T
    u, z = xz[:, :di], xz[:, di:]
    k = w[m + "conv1d.weight"][:, 0]  # (di, d_conv), causal: output t sees inputs t-3..t
    padded = torch.cat([torch.zeros(D_CONV - 1, di, dtype=x.dtype), u])
    u = torch.stack([(padded[t:t + D_CONV] * k.T).sum(0) for t in range(len(x))]) + w[m + "conv1d.bias"]
    u = F.silu(u)
    r = w[m + "dt_proj.weight"].shape[1]
    proj = u @ w[m + "x_proj.weight"].T
    dt = F.softplus(proj[:, :r] @ w[m + "dt_proj.weight"].T + w[m + "dt_proj.bias"])
    B, C = proj[:, r:r + D_STATE], proj[:, r + D_STATE:]
    A = -torch.exp(w[m + "A_log"])
    h = torch.zeros(di, D_STATE, dtype=x.dtype)
    ys = []
    for t in range(len(x)):
        h = torch.exp(dt[t, :, None] * A) * h + dt[t, :, None] * B[t] * u[t, :, None]
        ys.append(h @ C[t] + w[m + "D"] * u[t])
    y = torch.stack(ys) * F.silu(z)
    return y @ w[m_fwd + "out_proj.weight"].T


def rms(x, weight):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * weight


def flip_tc(x):  # reverse over time and channels
    return x.flip(0).flip(-1)


def reference_logits(state, ids, rcps, fused, n_layer=2):
    w = {k: v.double() for k, v in state.items()}
    P = "caduceus.backbone."
    comp = torch.tensor([COMPLEMENT.get(str(i), i) for i in range(16)])
    sub = ".submodule" if rcps else ""

    def bimamba(x, i):
        m = f"{P}layers.{i}.mixer{sub}.mamba_"
        return mamba(x, w, m + "fwd.", m + "fwd.") + mamba(x.flip(0), w, m + "fwd.", m + "rev.").flip(0)

    if rcps:
        E = w[P + "embeddings.word_embeddings.embedding.weight"]
        hidden = torch.cat([E[ids], E[comp[ids]].flip(-1)], -1)
    else:
        hidden = w[P + "embeddings.word_embeddings.weight"][ids]
    residual = None
    for i in range(n_layer):
        norm_w = w[f"{P}layers.{i}.norm" + (".submodule" if rcps and not fused else "") + ".weight"]
        if not rcps:
            residual = hidden if residual is None else hidden + residual
            hidden = bimamba(rms(residual, norm_w), i)
            continue
        k = hidden.shape[-1] // 2
        res = residual if residual is not None else torch.zeros_like(hidden)
        if fused:  # modeling_rcps.py RCPSMambaBlock.forward, fused branch, literally
            r_fwd = hidden[:, k:] + res[:, k:]
            r_rc = (hidden[:, :k] + res[:, :k]).flip(0).flip(-1)
            h_fwd, h_rc = rms(r_fwd, norm_w), rms(r_rc, norm_w)
            normed = torch.cat([h_fwd, flip_tc(h_rc)], -1)
            residual = torch.cat([r_fwd, flip_tc(r_rc)], -1)
        else:  # RCPSAddNormWrapper
            r_fwd = hidden[:, :k] + res[:, :k]
            r_rc = flip_tc(hidden[:, k:] + res[:, k:])
            normed = torch.cat([rms(r_fwd, norm_w), flip_tc(rms(r_rc, norm_w))], -1)
            residual = torch.cat([r_fwd, flip_tc(r_rc)], -1)
        hidden = torch.cat([bimamba(normed[:, :k], i), flip_tc(bimamba(flip_tc(normed[:, k:]), i))], -1)
    residual = hidden + residual
    if rcps:
        nf = w[P + "norm_f" + (".submodule" if not fused else "") + ".weight"]
        k = residual.shape[-1] // 2
        out = torch.cat([rms(residual[:, :k], nf), flip_tc(rms(flip_tc(residual[:, k:]), nf))], -1)
        W = w[P + "embeddings.word_embeddings.embedding.weight"]  # the LM head is tied to it
        logits = out[:, :k] @ W.T + out[:, k:].flip(-1) @ W[comp].T
    else:
        out = rms(residual, w[P + "norm_f.weight"])
        logits = out @ w[P + "embeddings.word_embeddings.weight"].T
    return logits[:, :12]


SETTINGS = [(True, True), (False, True), (True, False)]  # PS fused (as released), PH, PS unfused


@pytest.mark.parametrize("rcps,fused", SETTINGS, ids=["ps-fused", "ph", "ps-unfused"])
def test_caduceus_checkpoint_matches_the_published_semantics(tmp_path, rcps, fused):
    d, state = caduceus_dir(tmp_path, rcps, fused)
    model = seqmamba.from_pretrained(d)
    assert isinstance(model, MambaForMaskedLM)
    assert model.config.rc_equivariant == rcps and model.config.rc_swap_halves == (rcps and fused)
    assert model.lm_head.weight is model.backbone.embedding.weight  # re-tied
    ids = torch.randint(7, 12, (2, 11), generator=torch.Generator().manual_seed(1))
    ids[0, 4] = 3  # a [MASK]
    got = model.set_scan_backend("reference")(ids).logits.double()
    for b in range(2):
        want = reference_logits(state, ids[b], rcps, fused)
        torch.testing.assert_close(got[b], want, rtol=1e-4, atol=1e-4)


def rc_ids(ids):
    comp = torch.tensor([COMPLEMENT[str(i)] for i in range(12)])
    return comp[ids].flip(-1)


def test_fused_and_unfused_ps_are_both_equivariant_and_differ(tmp_path):
    ids = torch.randint(7, 12, (3, 13), generator=torch.Generator().manual_seed(2))
    comp = torch.tensor([COMPLEMENT[str(i)] for i in range(12)])
    outs = {}
    for fused in (True, False):
        d, state = caduceus_dir(tmp_path, True, fused, seed=5)
        model = seqmamba.from_pretrained(d).eval()
        logits = model(ids).logits
        logits_rc = model(rc_ids(ids)).logits
        # the reverse complement's logits at the mirrored position, tokens complemented
        torch.testing.assert_close(logits_rc.flip(1)[..., comp], logits, rtol=1e-4, atol=1e-4)
        outs[fused] = logits
    assert (outs[True] - outs[False]).abs().max() > 0.1


@pytest.mark.parametrize("change,key", [
    ({"bidirectional_strategy": "concat"}, "bidirectional_strategy"),
    ({"ssm_cfg": {"d_state": D_STATE, "d_conv": D_CONV, "expand": EXPAND, "headdim": 8}}, "ssm_cfg"),
    ({"complement_map": COMPLEMENT | {"7": 9}}, "complement_map"),
    ({"architectures": ["CaduceusForSequenceClassification"]}, "architectures"),
])
def test_settings_seqmamba_does_not_implement_are_refused_naming_the_key(tmp_path, change, key):
    d, _ = caduceus_dir(tmp_path, True, True, **change)
    with pytest.raises(ValueError) as err:
        seqmamba.from_pretrained(d)
    msg = str(err.value)
    assert key in msg and "\n" not in msg and "config.json" in msg


def test_a_parameter_outside_the_published_layout_is_refused(tmp_path):
    d, state = caduceus_dir(tmp_path, False, True)
    state["caduceus.backbone.layers.0.mixer.mamba_fwd.extra_gate.weight"] = torch.zeros(2)
    save_file({k: v.contiguous() for k, v in state.items()}, str(d / "model.safetensors"))
    with pytest.raises(ValueError, match="unexpected"):
        seqmamba.from_pretrained(d)


def test_from_pretrained_builds_the_class_a_directory_was_saved_from(tmp_path):
    from seqmamba import MambaConfig, MambaForSequenceClassification, MambaLMHeadModel

    cfg = MambaConfig(d_model=16, n_layer=1, vocab_size=8, d_state=4, num_labels=3)
    ids = torch.randint(0, 8, (2, 9))
    for cls in (MambaForSequenceClassification, MambaLMHeadModel):
        model = cls(cfg).eval()
        model.save_pretrained(tmp_path / cls.__name__)
        loaded = seqmamba.from_pretrained(tmp_path / cls.__name__).eval()
        assert type(loaded) is cls
        torch.testing.assert_close(loaded(ids).logits, model(ids).logits)
    (tmp_path / "mamba_ssm").mkdir()  # a mamba-ssm directory is a causal LM
    (tmp_path / "mamba_ssm" / "config.json").write_text(
        '{"d_model": 16, "n_layer": 1, "vocab_size": 8, "ssm_cfg": {"d_state": 4}}')
    state = {k: v for k, v in MambaLMHeadModel(cfg.replace(pad_vocab_size_multiple=8))
             .state_dict().items() if k != "lm_head.weight"}
    save_file({k: v.contiguous() for k, v in state.items()},
              str(tmp_path / "mamba_ssm" / "model.safetensors"))
    assert type(seqmamba.from_pretrained(tmp_path / "mamba_ssm")) is MambaLMHeadModel
