"""Import of Caduceus and PlantCaduceus checkpoints (Schiff et al. 2024; Zhai et al. 2025):
a Hugging Face directory of ``config.json`` (``model_type: "caduceus"``) and
``model.safetensors``, loaded into :class:`seqmamba.MambaForMaskedLM` without Caduceus's
remote code or mamba-ssm.

How the published layout maps onto seqmamba (``P`` = ``caduceus.backbone.``):

==========================================================  ===================================
Caduceus parameter                                          seqmamba parameter
==========================================================  ===================================
``P embeddings.word_embeddings[.embedding].weight``         ``backbone.embedding.weight``
``P layers.{i}.mixer[.submodule].mamba_fwd.*``              ``backbone.layers.{i}.mixer[.module].fwd.*``
``P layers.{i}.mixer[.submodule].mamba_rev.*``              ``backbone.layers.{i}.mixer[.module].rev.*``
``P layers.{i}.norm[.submodule].weight``                    ``backbone.layers.{i}.norm[.module].weight``
``P norm_f[.submodule].weight``                             ``backbone.norm_f[.module].weight``
``lm_head[.lm_head].weight``                                ``lm_head.weight``
==========================================================  ===================================

(the bracketed parts are present under RC parameter sharing, ``rcps``; ``.submodule`` on a norm
only when ``fused_add_norm`` is off).  Caduceus's ``d_model`` is the width of one RC half, so an
RCPS model is a seqmamba model of twice that ``d_model``.  Tied tensors (the reverse Mamba's
in/out projections, the LM head) are omitted from released files and re-tied here.  With
``rcps`` and ``fused_add_norm`` Caduceus's fused path treats the second channel half as the
forward one in every block: ``rc_swap_halves`` reproduces that.
"""

from __future__ import annotations

import re

from .config import MambaConfig

SSM_KEYS = {"d_state", "d_conv", "expand", "dt_rank", "dt_min", "dt_max", "dt_init", "dt_scale",
            "dt_init_floor", "conv_bias", "bias"}
IGNORED_SSM_KEYS = {"use_fast_path", "layer_idx"}  # speed switches of mamba-ssm, no semantics
ARCHITECTURES = ("CaduceusForMaskedLM", "Caduceus")


def is_caduceus(raw: dict) -> bool:
    return raw.get("model_type") == "caduceus"


def _complement_map(raw: dict, vocab_size: int) -> list:
    """The config's ``complement_map`` (string keys, as JSON writes them) -> a list of
    vocab_size ids; ids past the map (vocabulary padding) complement to themselves."""
    cm = raw.get("complement_map")
    if not isinstance(cm, dict) or not cm:
        raise ValueError("complement_map: rcps needs a map of token id -> complement id")
    try:
        pairs = {int(k): int(v) for k, v in cm.items()}
    except (TypeError, ValueError):
        raise ValueError("complement_map: keys and values must be token ids") from None
    if sorted(pairs) != list(range(len(pairs))) or len(pairs) > vocab_size:
        raise ValueError(f"complement_map: keys must be the ids 0..n-1 with n <= the padded "
                         f"vocabulary ({vocab_size}), got {sorted(pairs)[:20]}")
    out = [pairs.get(i, i) for i in range(vocab_size)]
    if any(not 0 <= j < vocab_size or out[j] != i for i, j in enumerate(out)):
        raise ValueError("complement_map: not an involution (the complement of a token's "
                         "complement must be the token)")
    return out


def config_from_caduceus(raw: dict) -> MambaConfig:
    """A Caduceus ``config.json`` -> MambaConfig; any setting seqmamba does not reproduce is a
    ValueError naming its key."""
    arch = raw.get("architectures") or ["CaduceusForMaskedLM"]
    if not set(arch) <= set(ARCHITECTURES):
        raise ValueError(f"architectures: {arch} is not a Caduceus masked LM "
                         f"(supported: {', '.join(ARCHITECTURES)})")
    strategy = raw.get("bidirectional_strategy", "add")
    bidirectional = raw.get("bidirectional", True)
    if bidirectional and strategy not in ("add", "ew_multiply"):
        raise ValueError(f"bidirectional_strategy: {strategy!r} is not one seqmamba implements "
                         "('add' or 'ew_multiply')")
    rcps = bool(raw.get("rcps", False))
    if not bidirectional and not rcps:
        raise ValueError("bidirectional: false without rcps is a causal model, not a masked LM")
    ssm = dict(raw.get("ssm_cfg") or {})
    unknown = sorted(set(ssm) - SSM_KEYS - IGNORED_SSM_KEYS)
    if unknown:
        raise ValueError(f"ssm_cfg: settings seqmamba does not implement: {unknown}")
    for key in ("d_model", "n_layer", "vocab_size"):
        if not isinstance(raw.get(key), int) or isinstance(raw.get(key), bool):
            raise ValueError(f"{key}: must be an integer, got {raw.get(key)!r}")
    multiple = raw.get("pad_vocab_size_multiple", 8)
    vocab = raw["vocab_size"]
    padded = -(-vocab // multiple) * multiple
    return MambaConfig(
        d_model=raw["d_model"] * (2 if rcps else 1), n_layer=raw["n_layer"], vocab_size=vocab,
        pad_vocab_size_multiple=multiple, rms_norm=raw.get("rms_norm", True),
        norm_epsilon=raw.get("norm_epsilon", 1e-5),
        residual_in_fp32=raw.get("residual_in_fp32", True),
        bidirectional=strategy if bidirectional else None,
        bidirectional_weight_tie=raw.get("bidirectional_weight_tie", True),
        rc_equivariant=rcps,
        complement_map=_complement_map(raw, padded)[:vocab] if rcps else None,
        rc_swap_halves=rcps and raw.get("fused_add_norm", True),
        tie_embeddings=raw.get("tie_word_embeddings", True),
        pad_token_id=raw.get("pad_token_id"),
        extra={"imported_from": "caduceus"},
        **{k: v for k, v in ssm.items() if k in SSM_KEYS})


_RENAMES = (  # (published pattern, seqmamba name with {rc} for ".module" under rcps)
    (r"caduceus\.backbone\.embeddings\.word_embeddings(\.embedding)?\.weight",
     "backbone.embedding.weight"),
    (r"caduceus\.backbone\.layers\.(\d+)\.mixer(\.submodule)?\.mamba_(fwd|rev)\.(.+)",
     "backbone.layers.{0}.mixer{rc}.{2}.{3}"),
    (r"caduceus\.backbone\.layers\.(\d+)\.norm(\.submodule)?\.(weight|bias)",
     "backbone.layers.{0}.norm{rc}.{2}"),
    (r"caduceus\.backbone\.norm_f(\.submodule)?\.(weight|bias)", "backbone.norm_f{rc}.{1}"),
    (r"lm_head(\.lm_head)?\.weight", "lm_head.weight"),
)
# Persistent buffers Caduceus saves beside the weights: the complement map, checked below.
_BUFFERS = re.compile(r"(caduceus\.backbone\.embeddings\.word_embeddings|lm_head)\.complement_map")


def state_from_caduceus(state: dict, cfg: MambaConfig) -> dict:
    """Rename a Caduceus state dict to seqmamba's names.  A name outside the published layout
    is kept as it is, so loading reports it as unexpected."""
    rc = ".module" if cfg.rc_equivariant else ""
    out = {}
    for key, value in state.items():
        if _BUFFERS.fullmatch(key):
            saved = value.tolist()[: cfg.vocab_size]
            if cfg.rc_equivariant and saved != cfg.complement_map:
                raise ValueError(f"{key}: the saved complement map {saved} differs from "
                                 f"config.json's {cfg.complement_map}")
            continue
        for pattern, target in _RENAMES:
            m = re.fullmatch(pattern, key)
            if m:
                groups = [g or "" for g in m.groups()]
                if "mixer" in target:
                    groups[2] = groups[2] if cfg.bidirectional else ""
                name = target.format(*groups, rc=rc).replace("..", ".")
                out[name] = value
                break
        else:
            out[key] = value
    return out

