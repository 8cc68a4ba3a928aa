"""Heads (pooling, losses) and the reverse-complement symmetry, as properties on random DNA."""

import pytest
import torch

from seqmamba import MambaConfig, MambaForSequenceClassification, MambaForTokenClassification
from seqmamba.pooling import StreamingPool, pool
from seqmamba.rc import rc_flip

# token ids: A=0 C=1 G=2 T=3 N=4, then specials (pad, mask, ...) that are their own complement
VOCAB = 8
COMP = [3, 2, 1, 0, 4, 5, 6, 7]


def rc_ids(x):
    return torch.tensor(COMP)[x].flip(1)


def dna(batch, length, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 5, (batch, length), generator=g)


def rc_cfg(**kw):
    kw.setdefault("num_labels", 3)
    return MambaConfig(d_model=32, n_layer=2, vocab_size=VOCAB, d_state=8, rc_equivariant=True,
                       complement_map=COMP, **kw)


@pytest.mark.parametrize("bidirectional", [None, "add", "ew_multiply"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rc_equivariance_property(bidirectional, seed):
    torch.manual_seed(seed)
    cfg = rc_cfg(bidirectional=bidirectional)
    tok = MambaForTokenClassification(cfg).eval()
    seq = MambaForSequenceClassification(cfg).eval()
    x = dna(3, 23 + seed * 11, seed)
    with torch.no_grad():
        h, h_rc = tok.backbone(x), tok.backbone(rc_ids(x))
        # the backbone maps RC of the input to RC of the hidden states
        assert torch.allclose(h_rc, rc_flip(h), atol=1e-5)
        # per-position outputs are reversed, sequence outputs unchanged
        assert torch.allclose(tok(rc_ids(x)).logits, tok(x).logits.flip(1), atol=1e-5)
        for pooling in ("mean", "max", "center"):  # (the middle positions map onto themselves)
            a = seq(x, pooling=pooling).logits
            assert torch.allclose(seq(rc_ids(x), pooling=pooling).logits, a, atol=1e-5)


def test_rc_equivariance_holds_for_padded_batches():
    torch.manual_seed(3)
    tok = MambaForTokenClassification(rc_cfg(bidirectional="add")).eval()
    x = dna(2, 19, 4)
    mask = torch.ones_like(x)
    mask[1, 12:] = 0
    rc = torch.stack([rc_ids(x[:1])[0], torch.cat([rc_ids(x[1:, :12])[0], x[1, 12:]])])
    with torch.no_grad():
        a = tok(x, attention_mask=mask).logits
        b = tok(rc, attention_mask=mask).logits
    assert torch.allclose(b[0], a[0].flip(0), atol=1e-5)
    assert torch.allclose(b[1, :12], a[1, :12].flip(0), atol=1e-5)


@pytest.mark.parametrize("bidirectional", [None, "add"])
@pytest.mark.parametrize("seed", [0, 1])
def test_rc_token_head_swaps_strand_classes(bidirectional, seed):
    """Gene annotation: classes [intergenic, CDS+, CDS-, intron]; under reverse complement a +
    strand CDS is a - strand CDS, so out(RC x)[L-1-i] = out(x)[i] with classes 1 and 2 swapped
    while 0 and 3 stay.  Checked after a few optimizer steps too (the tie must survive training,
    not hold only at initialisation), and the strand classes must not be forced equal."""
    torch.manual_seed(seed)
    perm = [0, 2, 1, 3]
    tok = MambaForTokenClassification(rc_cfg(bidirectional=bidirectional, num_labels=4,
                                             label_complement=perm))
    x = dna(2, 31 + seed * 7, seed)
    opt = torch.optim.AdamW(tok.parameters(), lr=1e-2)
    labels = torch.randint(0, 4, x.shape, generator=torch.Generator().manual_seed(seed))
    for _ in range(3):
        opt.zero_grad()
        tok(x, labels=labels).loss.backward()
        opt.step()
    tok.eval()
    with torch.no_grad():
        a = tok(x).logits
        b = tok(rc_ids(x)).logits
    assert torch.allclose(b, a.flip(1)[..., perm], atol=1e-5)
    # a strand-blind model would also satisfy b == a.flip(1): this one tells the strands apart
    assert not torch.allclose(a[..., 1], a[..., 2], atol=1e-3)


def test_label_complement_must_be_an_involution():
    with pytest.raises(ValueError, match="label_complement"):
        rc_cfg(num_labels=4, label_complement=[0, 2, 3, 1])
    with pytest.raises(ValueError, match="label_complement"):
        rc_cfg(num_labels=4, label_complement=[0, 2, 1])


def test_plain_model_is_not_rc_equivariant():
    """The property above is a property of the RC variant, not of every model."""
    torch.manual_seed(0)
    cfg = MambaConfig(d_model=32, n_layer=2, vocab_size=VOCAB, d_state=8, num_labels=3,
                      bidirectional="add")
    tok = MambaForTokenClassification(cfg).eval()
    x = dna(2, 20, 5)
    with torch.no_grad():
        assert not torch.allclose(tok(rc_ids(x)).logits, tok(x).logits.flip(1), atol=1e-3)


# ---------------------------------------------------------------- pooling

def test_pooling_modes_respect_padding():
    g = torch.Generator().manual_seed(0)
    f = torch.randn(3, 7, 5, generator=g)
    lengths = torch.tensor([7, 3, 5])
    for i, n in enumerate(lengths.tolist()):
        assert torch.allclose(pool(f, lengths, "mean")[i], f[i, :n].mean(0))
        assert torch.allclose(pool(f, lengths, "max")[i], f[i, :n].amax(0))
        assert torch.allclose(pool(f, lengths, "last")[i], f[i, n - 1])
        assert torch.allclose(pool(f, lengths, "center")[i], (f[i, (n - 1) // 2] + f[i, n // 2]) / 2)
    assert torch.allclose(pool(f, lengths, "center")[1], f[1, 1])  # odd length 3: the middle one
    assert torch.allclose(pool(f, None, "mean"), f.mean(1))
    with pytest.raises(ValueError, match="center pooling needs the sequence lengths"):
        pool(f, None, "center")


@pytest.mark.parametrize("mode", ["mean", "max", "last", "center"])
def test_streaming_pool_over_chunks_equals_one_pass(mode):
    g = torch.Generator().manual_seed(1)
    f = torch.randn(3, 20, 4, generator=g)
    lengths = torch.tensor([20, 6, 13])
    p = StreamingPool(mode)
    for s in range(0, 20, 8):  # chunks 0-8, 8-16, 16-20; row 1 ends in the first chunk
        p.update(f[:, s:s + 8], lengths)
    whole = pool(f, lengths, mode)
    assert torch.allclose(p.result(), whole, atol=1e-6)
    # saved after the first chunk and restored (a long record resumed), the same result
    q = StreamingPool(mode)
    q.update(f[:, :8], lengths)
    r = StreamingPool(mode)
    r.restore({k: v.clone() for k, v in q.state().items()}, 8)
    r.update(f[:, 8:], lengths)
    assert torch.allclose(r.result(), whole, atol=1e-6)


@pytest.mark.parametrize("mode", ["mean", "max", "last", "center"])
def test_sequence_classifier_chunked_equals_full(mode):
    torch.manual_seed(4)
    m = MambaForSequenceClassification(MambaConfig(d_model=32, n_layer=2, vocab_size=VOCAB,
                                                   d_state=8, num_labels=3, pooling=mode)).eval()
    x = dna(2, 41, 6)
    mask = torch.ones_like(x)
    mask[1, 30:] = 0
    with torch.no_grad():
        a = m(x, attention_mask=mask).logits
        b = m(x, attention_mask=mask, chunk_size=9).logits
    assert torch.allclose(a, b, atol=1e-5)


def test_pooling_choice_changes_the_classifier_input():
    torch.manual_seed(5)
    m = MambaForSequenceClassification(MambaConfig(d_model=32, n_layer=2, vocab_size=VOCAB,
                                                   d_state=8, num_labels=3)).eval()
    x = dna(2, 16, 7)
    with torch.no_grad():
        feats = m.backbone(x)
        outs = {mode: m(x, pooling=mode) for mode in ("mean", "last", "max", "center")}
    assert torch.allclose(outs["mean"].pooled, feats.mean(1), atol=1e-6)
    assert torch.allclose(outs["center"].pooled, feats[:, 7:9].mean(1), atol=1e-6)
    assert torch.allclose(outs["last"].pooled, feats[:, -1], atol=1e-6)
    assert torch.allclose(outs["max"].pooled, feats.amax(1), atol=1e-6)
    assert not torch.allclose(outs["mean"].logits, outs["last"].logits)


def test_losses_ignore_padding():
    torch.manual_seed(6)
    cfg = MambaConfig(d_model=32, n_layer=2, vocab_size=VOCAB, d_state=8, num_labels=3)
    tok = MambaForTokenClassification(cfg)
    x = dna(2, 10, 8)
    labels = torch.randint(0, 3, (2, 10))
    mask = torch.ones_like(x)
    mask[1, 6:] = 0
    out = tok(x, attention_mask=mask, labels=labels)
    keep = mask.bool()
    manual = torch.nn.functional.cross_entropy(out.logits[keep], labels[keep])
    assert torch.allclose(out.loss, manual, atol=1e-6)
    seq = MambaForSequenceClassification(cfg)
    y = torch.tensor([0, 2])
    o = seq(x, attention_mask=mask, labels=y)
    assert torch.allclose(o.loss, torch.nn.functional.cross_entropy(o.logits, y))
    o.loss.backward()
    assert all(p.grad is not None for p in seq.parameters())
