"""Caduceus-layout checkpoint directories, built from the published parameter names and config
keys (modeling_caduceus.py / modeling_rcps.py / configuration_caduceus.py of
kuleshov-group/caduceus) for the import and scoring tests."""

import json

import torch
from safetensors.torch import save_file

# Caduceus's character vocabulary: [CLS]0 [SEP]1 [BOS]2 [MASK]3 [PAD]4 [RESERVED]5 [UNK]6 A7 C8 G9 T10 N11
COMPLEMENT = {str(i): i for i in range(7)} | {"7": 10, "8": 9, "9": 8, "10": 7, "11": 11}
D_STATE, D_CONV, EXPAND = 4, 4, 2


def caduceus_dir(tmp_path, rcps, fused, d_model=8, n_layer=2, seed=0, **overrides):
    """A Caduceus checkpoint directory as released: config.json and model.safetensors without
    the tied tensors (reverse in/out projections, LM head)."""
    g = torch.Generator().manual_seed(seed)
    config = {"model_type": "caduceus", "architectures": ["CaduceusForMaskedLM"],
              "auto_map": {"AutoModelForMaskedLM": "modeling_caduceus.CaduceusForMaskedLM"},
              "d_model": d_model, "n_layer": n_layer, "vocab_size": 12,
              "pad_vocab_size_multiple": 16, "rms_norm": True, "fused_add_norm": fused,
              "residual_in_fp32": True, "norm_epsilon": 1e-5, "bidirectional": True,
              "bidirectional_strategy": "add", "bidirectional_weight_tie": True, "rcps": rcps,
              "complement_map": COMPLEMENT,
              "ssm_cfg": {"d_state": D_STATE, "d_conv": D_CONV, "expand": EXPAND,
                          "dt_rank": "auto", "conv_bias": True, "bias": False}} | overrides
    di, r = EXPAND * d_model, -(-d_model // 16)

    def rnd(*shape, scale=0.3):
        return torch.randn(*shape, generator=g) * scale

    P = "caduceus.backbone."
    sub = ".submodule" if rcps else ""
    emb = P + "embeddings.word_embeddings" + (".embedding" if rcps else "") + ".weight"
    state = {emb: rnd(16, d_model, scale=1.0)}
    for i in range(n_layer):
        for direction in ("fwd", "rev"):
            m = f"{P}layers.{i}.mixer{sub}.mamba_{direction}."
            if direction == "fwd":
                state[m + "in_proj.weight"] = rnd(2 * di, d_model)
                state[m + "out_proj.weight"] = rnd(d_model, di)
            state[m + "conv1d.weight"] = rnd(di, 1, D_CONV)
            state[m + "conv1d.bias"] = rnd(di)
            state[m + "x_proj.weight"] = rnd(r + 2 * D_STATE, di)
            state[m + "dt_proj.weight"] = rnd(di, r)
            state[m + "dt_proj.bias"] = rnd(di) - 2.0
            state[m + "A_log"] = torch.log(torch.rand(di, D_STATE, generator=g) * 3 + 0.5)
            state[m + "D"] = rnd(di)
        norm = f"{P}layers.{i}.norm" + (".submodule" if rcps and not fused else "")
        state[norm + ".weight"] = 1 + rnd(d_model)
    state[P + "norm_f" + (".submodule" if rcps and not fused else "") + ".weight"] = 1 + rnd(d_model)
    if rcps:  # persistent buffers Caduceus saves
        cm = torch.tensor([COMPLEMENT.get(str(i), i) for i in range(16)])
        state[P + "embeddings.word_embeddings.complement_map"] = cm
        state["lm_head.complement_map"] = cm.clone()
    d = tmp_path / f"caduceus_{'ps' if rcps else 'ph'}_{'fused' if fused else 'unfused'}"
    d.mkdir()
    (d / "config.json").write_text(json.dumps(config))
    save_file({k: v.contiguous() for k, v in state.items()}, str(d / "model.safetensors"))
    return d, state
