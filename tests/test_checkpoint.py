"""save_pretrained / from_pretrained, and loading mamba-ssm and transformers checkpoints."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from seqmamba import (MambaConfig, MambaForSequenceClassification, MambaForTokenClassification,
                      MambaLMHeadModel)


def tokens(batch, length, vocab, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab, (batch, length), generator=g)


def small(**kw):
    base = dict(d_model=32, n_layer=2, vocab_size=10, d_state=8)
    base.update(kw)
    return MambaConfig(**base)


@pytest.mark.parametrize("cls, kw", [
    (MambaLMHeadModel, dict()),
    (MambaLMHeadModel, dict(tie_embeddings=False, rms_norm=False)),
    (MambaForSequenceClassification, dict(bidirectional="add", num_labels=4)),
    (MambaForTokenClassification, dict(rc_equivariant=True, num_labels=3,
                                       complement_map=[3, 2, 1, 0] + list(range(4, 10)))),
])
def test_save_load_round_trip(tmp_path, cls, kw):
    torch.manual_seed(0)
    m = cls(small(**kw)).eval()
    m.save_pretrained(tmp_path / "run")
    files = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert files == ["config.json", "model.safetensors"]  # no temp files left behind
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["model_type"] == "seqmamba" and cfg["architecture"] == cls.__name__
    m2 = cls.from_pretrained(tmp_path / "run").eval()
    assert m2.config == m.config
    x = tokens(2, 15, 4, 1)
    with torch.no_grad():
        assert torch.equal(m(x).logits, m2(x).logits)
    if cls is MambaLMHeadModel and m.config.tie_embeddings:
        assert "lm_head.weight" not in load_file(str(tmp_path / "run" / "model.safetensors"))
        assert m2.lm_head.weight is m2.backbone.embedding.weight


def test_pretrained_lm_initialises_a_classifier(tmp_path):
    torch.manual_seed(1)
    lm = MambaLMHeadModel(small())
    lm.save_pretrained(tmp_path)
    with pytest.warns(UserWarning, match="classifier"):
        clf = MambaForSequenceClassification.from_pretrained(tmp_path, num_labels=5)
    assert clf.classifier.out_features == 5
    for k, v in lm.backbone.state_dict().items():
        assert torch.equal(v, clf.backbone.state_dict()[k]), k


def test_load_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="no config.json"):
        MambaLMHeadModel.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        MambaLMHeadModel.from_pretrained(tmp_path)
    m = MambaLMHeadModel(small())
    m.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="shape"):
        MambaLMHeadModel.from_pretrained(tmp_path, d_state=4)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(ValueError, match="no model.safetensors"):
        MambaLMHeadModel.from_pretrained(tmp_path)


def test_mamba_ssm_directory(tmp_path):
    """A mamba-ssm checkpoint built independently of seqmamba: transformers' MambaForCausalLM
    weights renamed by mamba-ssm's rules (``embeddings`` -> ``embedding``, lm_head kept), pickled
    as pytorch_model.bin beside mamba-ssm's config.json (vocabulary padded to a multiple of 8).
    Loaded through seqmamba's importer, it gives transformers' logits."""
    import transformers  # a dev dependency

    torch.manual_seed(2)
    hf = transformers.MambaForCausalLM(transformers.MambaConfig(
        vocab_size=16, hidden_size=32, num_hidden_layers=2, state_size=8,
        tie_word_embeddings=True)).eval()
    with torch.no_grad():
        for p in hf.parameters():
            p.add_(0.05 * torch.randn_like(p))
    sd = {k.replace("backbone.embeddings.", "backbone.embedding."): v.clone()
          for k, v in hf.state_dict().items()}
    assert "backbone.embedding.weight" in sd and "lm_head.weight" in sd
    torch.save(sd, tmp_path / "pytorch_model.bin")
    (tmp_path / "config.json").write_text(json.dumps({
        "d_model": 32, "d_intermediate": 0, "n_layer": 2, "vocab_size": 13,
        "ssm_cfg": {"d_state": 8, "layer": "Mamba1"}, "attn_layer_idx": [], "attn_cfg": {},
        "rms_norm": True, "residual_in_fp32": True, "fused_add_norm": True,
        "pad_vocab_size_multiple": 8, "tie_embeddings": True}))
    m = MambaLMHeadModel.from_pretrained(tmp_path).eval()
    assert m.config.padded_vocab_size == 16 and m.config.d_state == 8
    x = tokens(2, 12, 13, 3)
    with torch.no_grad():
        a, b = hf(x).logits[..., :13], m(x).logits  # seqmamba drops the padding's logits
    assert a.shape == b.shape
    assert (a - b).abs().max() <= 1e-4 * a.abs().max()
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["ssm_cfg"]["layer"] = "Mamba3"  # a layer seqmamba does not implement
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="Mamba3"):
        MambaLMHeadModel.from_pretrained(tmp_path)
    cfg["ssm_cfg"]["layer"] = "Mamba2"  # implemented, but these are Mamba-1 weights
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="does not fit"):
        MambaLMHeadModel.from_pretrained(tmp_path)


@pytest.mark.parametrize("tie", [True, False])
def test_transformers_mamba_for_causal_lm_logits_match(tmp_path, tie):
    import transformers  # a dev dependency (pyproject [dev]): always installed for the tests
    torch.manual_seed(3)
    hf_cfg = transformers.MambaConfig(vocab_size=50, hidden_size=48, num_hidden_layers=3,
                                      state_size=8, time_step_rank=5, tie_word_embeddings=tie)
    hf = transformers.MambaForCausalLM(hf_cfg).eval()
    # transformers' init leaves the (scan-relevant) parameters near their defaults; perturb
    # them so that the comparison exercises every weight
    with torch.no_grad():
        for name, p in hf.named_parameters():
            p.add_(0.05 * torch.randn_like(p))
    hf.save_pretrained(tmp_path)
    ours = MambaLMHeadModel.from_pretrained(tmp_path).eval()
    assert ours.config.d_model == 48 and ours.config.dt_rank_value == 5
    x = tokens(2, 40, 50, 4)
    with torch.no_grad():
        a = hf(x).logits
        b = ours(x).logits
    assert a.shape == b.shape
    assert (a - b).abs().max() <= 1e-4 * a.abs().max()


def test_model_directories_written_before_the_config_change_load_with_the_same_outputs():
    """Directories written by commit c8c03e8 (tests/data/legacy: an audio filterbank classifier
    whose config still holds the retired SpecAugment fields, and a DNA LM) load today and give
    the logits that code computed."""
    from safetensors.torch import load_file

    from seqmamba import MambaForSequenceClassification, MambaLMHeadModel

    from pathlib import Path

    legacy = Path(__file__).resolve().parent / "data" / "legacy"
    want = load_file(str(legacy / "expected.safetensors"))
    audio = MambaForSequenceClassification.from_pretrained(legacy / "audio_classifier").eval()
    dna = MambaLMHeadModel.from_pretrained(legacy / "dna_lm").eval()
    assert not hasattr(audio.config, "mask_bands")
    with torch.no_grad():
        assert torch.allclose(audio(want["wave"]).logits, want["audio_logits"], atol=1e-5)
        assert torch.allclose(dna(want["ids"]).logits, want["dna_logits"], atol=1e-5)


def test_attention_pooling_configs_are_refused_with_the_fix():
    from seqmamba import MambaConfig

    with pytest.raises(ValueError, match="pooling 'attention' was removed.*retrain"):
        MambaConfig(d_model=16, n_layer=1, pooling="attention")


def test_the_scan_backend_is_a_runtime_choice_not_saved(tmp_path):
    """set_scan_backend changes which kernel runs (same logits within float tolerance) and is
    not written into config.json; a legacy config that holds the field still loads."""
    from seqmamba import MambaConfig, MambaLMHeadModel

    torch.manual_seed(0)
    m = MambaLMHeadModel(MambaConfig(d_model=16, n_layer=1, vocab_size=8, d_state=4)).eval()
    x = torch.randint(0, 8, (2, 20))
    with torch.no_grad():
        ref = m.set_scan_backend("reference")(x).logits
        fast = m.set_scan_backend("torch")(x).logits
    assert torch.allclose(ref, fast, atol=1e-4)
    m.save_pretrained(tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert "scan_backend" not in cfg
    cfg["scan_backend"] = "torch"  # as earlier versions wrote it
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    back = MambaLMHeadModel.from_pretrained(tmp_path / "m").eval()
    assert back.scan_backend is None
    with torch.no_grad():
        assert torch.allclose(back(x).logits, fast, atol=1e-4)


def test_the_front_end_is_one_nested_field_and_flat_configs_still_read():
    """A waveform model's config.json holds ``frontend`` as one nested object; the flat
    fields earlier versions wrote (input_type, frame_size, frontend, frontend_filters, ...)
    read back as the same FrontendConfig."""
    from seqmamba import FrontendConfig, MambaConfig

    cfg = MambaConfig(d_model=16, n_layer=1, vocab_size=1,
                      frontend=FrontendConfig(frame_size=80, kind="filterbank", filters=12))
    d = cfg.to_dict()
    assert d["frontend"] == {"frame_size": 80, "kind": "filterbank", "filters": 12, "taps": 0,
                             "norm": None} and d["input_type"] == "waveform"
    assert MambaConfig.from_dict(json.loads(json.dumps(d))) == cfg
    legacy = json.loads((Path(__file__).resolve().parent / "data" / "legacy" /
                         "audio_classifier" / "config.json").read_text())
    assert legacy["frontend"] == "filterbank" and legacy["input_type"] == "waveform"
    old = MambaConfig.from_dict(legacy)
    assert old.frontend == FrontendConfig(frame_size=80, kind="filterbank", filters=12)
    tokens = MambaConfig.from_dict(json.loads((Path(__file__).resolve().parent / "data" /
                                               "legacy" / "dna_lm" / "config.json").read_text()))
    assert tokens.frontend is None and tokens.input_type == "tokens"
