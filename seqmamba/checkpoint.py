"""Checkpoints: ``config.json`` + ``model.safetensors``, and import from mamba-ssm, Hugging Face
transformers ``MambaForCausalLM`` and Caduceus / PlantCaduceus directories.

Exported weights are never pickled; a ``pytorch_model.bin`` from elsewhere is read with
``torch.load(weights_only=True)``, which refuses arbitrary objects.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Tuple

import torch
from safetensors.torch import load_file, save_file

from .atomic import atomic_output
from .caduceus import config_from_caduceus, is_caduceus, state_from_caduceus
from .config import MambaConfig

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
BIN_NAME = "pytorch_model.bin"


def _atomic_write(path: Path, write) -> None:
    with atomic_output(path) as tmp:
        write(str(tmp))


def save_pretrained(model, directory) -> None:
    """Write config.json and model.safetensors into directory (each written atomically)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    state, seen = {}, {}
    for k, v in model.state_dict().items():
        # A tied tensor (lm_head.weight is the embedding) is stored once; loading re-ties it.
        if v.data_ptr() in seen and seen[v.data_ptr()][1].shape == v.shape:
            continue
        seen[v.data_ptr()] = (k, v)
        state[k] = v.detach().contiguous().cpu()
    _atomic_write(d / WEIGHTS_NAME, lambda p: save_file(state, p, metadata={"format": "pt"}))
    _atomic_write(d / CONFIG_NAME,
                  lambda p: model.config.to_json(p, architecture=type(model).__name__))


# ---------------------------------------------------------------- foreign formats

def _dt_limit(lim):
    """A checkpoint's time-step clamp: None where it is (0, inf), i.e. no clamp."""
    if lim is None:
        return None

    def number(v):  # transformers writes infinity as {"__float__": "Infinity"}
        return float(v["__float__"] if isinstance(v, dict) and "__float__" in v else v)

    lo, hi = number(lim[0]), number(lim[1])
    return None if lo <= 0 and hi == float("inf") else [lo, hi]


def _config_from_hf_mamba2(c: dict) -> MambaConfig:
    """transformers' Mamba2Config -> MambaConfig(arch="mamba2")."""
    d_model, expand = c["hidden_size"], c.get("expand", 2)
    heads, head_dim = c.get("num_heads", 128), c.get("head_dim", 64)
    if heads * head_dim != expand * d_model:
        raise ValueError(f"transformers Mamba2 config has num_heads*head_dim={heads * head_dim}, "
                         f"not expand*hidden_size={expand * d_model}")
    if c.get("hidden_act", "silu") != "silu":
        raise ValueError(f"transformers Mamba2 config uses hidden_act={c['hidden_act']!r}; only "
                         "silu is supported")
    return MambaConfig(
        arch="mamba2", d_model=d_model, n_layer=c["num_hidden_layers"],
        vocab_size=c["vocab_size"], d_state=c.get("state_size", 128),
        d_conv=c.get("conv_kernel", 4), expand=expand, head_dim=head_dim,
        n_groups=c.get("n_groups", 8), dt_limit=_dt_limit(c.get("time_step_limit")),
        dt_min=c.get("time_step_min", 0.001), dt_max=c.get("time_step_max", 0.1),
        dt_init_floor=c.get("time_step_floor", 1e-4), conv_bias=c.get("use_conv_bias", True),
        bias=c.get("use_bias", False), norm_epsilon=c.get("layer_norm_epsilon", 1e-5),
        residual_in_fp32=c.get("residual_in_fp32", True),
        tie_embeddings=c.get("tie_word_embeddings", False), pad_vocab_size_multiple=1,
        pad_token_id=c.get("pad_token_id"))


def _config_from_hf(c: dict) -> MambaConfig:
    if c.get("model_type") == "mamba2":
        return _config_from_hf_mamba2(c)
    d_model = c["hidden_size"]
    expand = c.get("expand", 2)
    inter = c.get("intermediate_size", expand * d_model)
    if inter != expand * d_model:
        raise ValueError(f"transformers Mamba config has intermediate_size={inter}, not "
                         f"expand*hidden_size={expand * d_model}; seqmamba derives it from expand")
    if c.get("hidden_act", "silu") != "silu":
        raise ValueError(f"transformers Mamba config uses hidden_act={c['hidden_act']!r}; only silu is supported")
    rank = c.get("time_step_rank", "auto")
    return MambaConfig(
        d_model=d_model, n_layer=c["num_hidden_layers"], vocab_size=c["vocab_size"],
        d_state=c.get("state_size", 16), d_conv=c.get("conv_kernel", 4), expand=expand,
        dt_rank=rank, dt_min=c.get("time_step_min", 0.001), dt_max=c.get("time_step_max", 0.1),
        dt_init_floor=c.get("time_step_floor", 1e-4), conv_bias=c.get("use_conv_bias", True),
        bias=c.get("use_bias", False), rms_norm=True, norm_epsilon=c.get("layer_norm_epsilon", 1e-5),
        residual_in_fp32=c.get("residual_in_fp32", True),
        tie_embeddings=c.get("tie_word_embeddings", True),
        pad_vocab_size_multiple=1,  # transformers sizes the embedding to vocab_size exactly
        pad_token_id=c.get("pad_token_id"),
    )


MAMBA2_SSM_KEYS = {"d_state", "d_conv", "expand", "headdim", "ngroups", "dt_min", "dt_max",
                   "dt_init_floor", "dt_limit", "conv_bias", "bias", "chunk_size", "rmsnorm",
                   "norm_before_gate", "A_init_range", "D_has_hdim", "d_ssm"}


def _mamba2_fields(ssm: dict) -> dict:
    """mamba-ssm's Mamba2 ssm_cfg -> MambaConfig fields (refusing what seqmamba computes
    otherwise: a partial SSM width, a norm before the gate, D per channel, no gated norm)."""
    unknown = sorted(set(ssm) - MAMBA2_SSM_KEYS - {"use_mem_eff_path"})
    if unknown:
        raise ValueError(f"mamba-ssm Mamba2 ssm_cfg has settings seqmamba does not support: "
                         f"{unknown}")
    for key, ok in (("d_ssm", None), ("norm_before_gate", False), ("D_has_hdim", False),
                    ("rmsnorm", True)):
        if key in ssm and ssm[key] != ok:
            raise ValueError(f"mamba-ssm Mamba2 ssm_cfg {key}={ssm[key]!r} is not supported "
                             f"(seqmamba computes {key}={ok!r})")
    names = {"headdim": "head_dim", "ngroups": "n_groups"}
    out = {names.get(k, k): v for k, v in ssm.items()
           if k in MAMBA2_SSM_KEYS - {"chunk_size", "rmsnorm", "norm_before_gate",
                                      "A_init_range", "D_has_hdim", "d_ssm"}}
    out["dt_limit"] = _dt_limit(out.get("dt_limit"))
    return {"arch": "mamba2", "head_dim": 64, "n_groups": 1, "d_state": 128, **out}


def _config_from_mamba_ssm(c: dict) -> MambaConfig:
    ssm = dict(c.get("ssm_cfg") or {})
    layer = ssm.pop("layer", "Mamba1")
    if layer == "Mamba2":
        base = dict(d_model=c["d_model"], n_layer=c["n_layer"], vocab_size=c["vocab_size"],
                    rms_norm=c.get("rms_norm", True),
                    residual_in_fp32=c.get("residual_in_fp32", True),
                    pad_vocab_size_multiple=c.get("pad_vocab_size_multiple", 8),
                    tie_embeddings=c.get("tie_embeddings", True))
        if c.get("d_intermediate", 0) or c.get("attn_layer_idx"):
            raise ValueError("mamba-ssm checkpoint has MLP or attention layers; seqmamba's "
                             "backbone is a pure Mamba stack")
        return MambaConfig(**base, **_mamba2_fields(ssm))
    if layer != "Mamba1":
        raise ValueError(f"mamba-ssm checkpoint uses layer={layer!r}; seqmamba implements "
                         "Mamba1 and Mamba2")
    if c.get("d_intermediate", 0):
        raise ValueError("mamba-ssm checkpoint has MLP layers (d_intermediate > 0); seqmamba's "
                         "backbone is a pure Mamba stack")
    if c.get("attn_layer_idx"):
        raise ValueError("mamba-ssm checkpoint has attention layers (attn_layer_idx); seqmamba's "
                         "backbone is a pure Mamba stack")
    known = {"d_state", "d_conv", "expand", "dt_rank", "dt_min", "dt_max", "dt_init", "dt_scale",
             "dt_init_floor", "conv_bias", "bias"}
    unknown = sorted(set(ssm) - known - {"use_fast_path"})
    if unknown:
        raise ValueError(f"mamba-ssm ssm_cfg has settings seqmamba does not support: {unknown}")
    return MambaConfig(
        d_model=c["d_model"], n_layer=c["n_layer"], vocab_size=c["vocab_size"],
        rms_norm=c.get("rms_norm", True), residual_in_fp32=c.get("residual_in_fp32", True),
        pad_vocab_size_multiple=c.get("pad_vocab_size_multiple", 8),
        tie_embeddings=c.get("tie_embeddings", True),
        **{k: v for k, v in ssm.items() if k in known})


def detect_format(cfg: dict) -> str:
    if cfg.get("model_type") == "seqmamba":
        return "seqmamba"
    if is_caduceus(cfg):
        return "caduceus"
    if cfg.get("model_type") in ("mamba", "mamba2") or "hidden_size" in cfg:
        return "transformers"
    if "d_model" in cfg and "n_layer" in cfg:
        return "mamba-ssm"
    raise ValueError("config.json is not a seqmamba, mamba-ssm, transformers Mamba or Caduceus "
                     "config (expected model_type 'seqmamba', 'mamba' or 'caduceus', or "
                     "d_model/n_layer keys)")


def _read_weights(d: Path) -> dict:
    """The state dict of a directory, every failure a ValueError naming the file: a truncated
    or foreign safetensors file, or a pytorch_model.bin that holds anything but tensors (a
    pickle payload is refused by weights_only=True, never run)."""
    if (d / WEIGHTS_NAME).exists():
        try:
            return load_file(str(d / WEIGHTS_NAME))
        except Exception as e:  # safetensors raises its own SafetensorError, or OSError
            raise ValueError(f"{d / WEIGHTS_NAME}: not a readable safetensors file "
                             f"({_first_line(e)})") from None
    if (d / BIN_NAME).exists():
        try:
            state = torch.load(d / BIN_NAME, map_location="cpu", weights_only=True)
        except Exception as e:  # UnpicklingError for a payload, RuntimeError/EOFError for junk
            raise ValueError(f"{d / BIN_NAME}: refused or unreadable as plain tensors "
                             f"({_first_line(e)})") from None
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor)
                                                  for v in state.values()):
            raise ValueError(f"{d / BIN_NAME}: not a state dict of tensors")
        return state
    raise ValueError(f"{d}: no {WEIGHTS_NAME} or {BIN_NAME} with the weights")


def _first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:200]


def load_directory(directory) -> Tuple[MambaConfig, dict, str]:
    """(config, state_dict with seqmamba names, source format) from a checkpoint directory.
    Any problem with the directory's files is a ValueError naming the file."""
    d = Path(directory)
    if not (d / CONFIG_NAME).is_file():
        raise ValueError(f"{d}: no {CONFIG_NAME}; pass a directory written by save_pretrained "
                         "(or a mamba-ssm / transformers Mamba checkpoint)")
    try:
        raw = json.loads((d / CONFIG_NAME).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{d / CONFIG_NAME}: not valid JSON ({e})") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{d / CONFIG_NAME}: must hold a JSON object of settings, not "
                         f"{type(raw).__name__}")
    try:
        fmt = detect_format(raw)
        if fmt == "seqmamba":
            cfg = MambaConfig.from_dict(raw)
        elif fmt == "transformers":
            cfg = _config_from_hf(raw)
        elif fmt == "caduceus":
            cfg = config_from_caduceus(raw)
        else:
            cfg = _config_from_mamba_ssm(raw)
    except (TypeError, ValueError, KeyError) as e:
        raise ValueError(f"{d / CONFIG_NAME}: {_first_line(e)}") from None
    state = _read_weights(d)
    if fmt == "transformers":
        state = {k.replace("backbone.embeddings.", "backbone.embedding."): v for k, v in state.items()}
    elif fmt == "caduceus":
        try:
            state = state_from_caduceus(state, cfg)
        except ValueError as e:
            raise ValueError(f"{d}: {_first_line(e)}") from None
    return cfg, state, fmt


class FreshHeadWarning(UserWarning):
    """A head the checkpoint has no weights for starts from its initialisation (a classifier
    started from a pretrained backbone): expected when fine-tuning, so callers may turn it into
    a note rather than a warning."""


def from_pretrained(cls, directory, **config_overrides):
    """Build ``cls`` from a checkpoint directory; head weights that do not belong to ``cls``
    (e.g. an LM head when fine-tuning a classifier) are dropped and the new head is freshly
    initialised.  Any other missing or unexpected weight is an error."""
    cfg, state, fmt = load_directory(directory)
    if config_overrides:
        cfg = cfg.replace(**config_overrides)
    model = cls(cfg)
    own = model.state_dict()
    heads = ("lm_head.", "classifier.")
    # Head weights of another task, or of this task with another number of classes, are
    # dropped: the new head starts from its initialisation.
    state = {k: v for k, v in state.items()
             if not k.startswith(heads) or (k in own and v.shape == own[k].shape)}
    # Tied tensors (lm_head = embedding, shared projections of a bidirectional mixer) are saved
    # once; a key is satisfied when any key sharing its storage is present.
    groups: dict = {}
    for k, v in own.items():
        groups.setdefault((v.data_ptr(), tuple(v.shape)), []).append(k)
    present = {k for ks in groups.values() if any(x in state for x in ks) for k in ks}
    absent = [k for k in own if k not in present]
    missing = [k for k in absent if not k.startswith(heads)]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        raise ValueError(f"{directory} ({fmt} format) does not fit {cls.__name__}: missing "
                         f"{missing[:8]}, unexpected {unexpected[:8]}")
    for k, v in state.items():
        if v.shape != own[k].shape:
            raise ValueError(f"{directory}: weight {k} has shape {tuple(v.shape)}, the config "
                             f"implies {tuple(own[k].shape)}")
    fresh = [k for k in absent if k.startswith(heads)]
    if fresh:
        warnings.warn(f"{cls.__name__}.from_pretrained: {fresh} not in {directory}; that head "
                      "starts from its initialisation", FreshHeadWarning, stacklevel=3)
    model.load_state_dict(state, strict=False)
    return model


def model_class_name(directory) -> str:
    """The seqmamba class a checkpoint directory loads into: the one a seqmamba directory was
    saved from; MambaForMaskedLM for Caduceus; MambaLMHeadModel for mamba-ssm and transformers."""
    d = Path(directory)
    try:
        raw = json.loads((d / CONFIG_NAME).read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{d / CONFIG_NAME}: cannot read it ({_first_line(e)})") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{d / CONFIG_NAME}: must hold a JSON object of settings")
    try:
        fmt = detect_format(raw)
    except ValueError as e:
        raise ValueError(f"{d / CONFIG_NAME}: {e}") from None
    if fmt == "seqmamba":
        return raw.get("architecture") or "MambaLMHeadModel"
    return "MambaForMaskedLM" if fmt == "caduceus" else "MambaLMHeadModel"
