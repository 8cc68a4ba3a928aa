"""Masked-site variant scoring (PlantCaduceus / GPN convention) and the vocabularies of imported
masked LMs: windows centred at (window - 1) // 2 and padded with N, strands, one forward pass
per site, indels kept unscored with a FILTER, the header naming the scoring."""

from __future__ import annotations

import json

import numpy as np
import pysam
import pytest
import torch

from caduceus_helpers import caduceus_dir
from dna_helpers import seqmamba, write
from pipelines.dna.checkpoint_vocab import GPN_TOKENS
from pipelines.dna.fasta import FastaFile
from pipelines.dna.models import tokenizer_of
from pipelines.dna.tokenizer import DNATokenizer
from pipelines.dna.variant_scoring import masked_llr, masked_window
from seqmamba import MambaConfig, MambaForMaskedLM

rng = np.random.default_rng(7)
CHR = "".join(rng.choice(list("ACGT"), 600))


def tiny_mlm(directory, rc: bool, seed=0):
    tok = DNATokenizer()
    torch.manual_seed(seed)
    cfg = MambaConfig(d_model=16, n_layer=2, d_state=4, vocab_size=tok.vocab_size,
                      bidirectional="add", rc_equivariant=rc,
                      complement_map=tok.complement_map if rc else None,
                      extra={"task": "dna-mlm", "tokenizer": tok.to_dict(), "seq_len": 64})
    model = MambaForMaskedLM(cfg)
    model.save_pretrained(directory / "final")
    return model.eval(), tok


def test_masked_window_centres_the_variant_and_pads_with_n(tmp_path):
    fa = FastaFile(write(tmp_path / "r.fa", f">c\n{CHR}\n"))
    w = masked_window(fa, "c", 300, 10)  # index 4 of 10
    assert w == CHR[296:306] and w[4] == CHR[300]
    start = masked_window(fa, "c", 2, 11)  # index 5: three N before base 0
    assert start == "NNN" + CHR[:8] and start[5] == CHR[2]
    end = masked_window(fa, "c", 598, 8)  # index 3: bases 595..599, then N
    assert end == CHR[595:] + "NNN" and end[3] == CHR[598]


@pytest.mark.parametrize("window", [31, 32])
def test_an_equivariant_model_gives_the_same_score_on_either_strand(tmp_path, window):
    """Scoring the reverse complement (centre mirrored, bases complemented) and averaging must
    equal the one-strand score of an RC-equivariant model: this checks the mirror index and
    the complement permutation, for odd and even windows."""
    model, tok = tiny_mlm(tmp_path, rc=True)
    items = [(CHR[i:i + window], CHR[i + (window - 1) // 2], alt)
             for i in (0, 50, 120) for alt in "ACGT" if alt != CHR[i + (window - 1) // 2]]
    one = masked_llr(model, tok, items, "cpu", rc_equivariant=True)
    both = masked_llr(model, tok, items, "cpu", rc_equivariant=False)
    torch.testing.assert_close(one, both, rtol=1e-4, atol=1e-5)
    assert one.abs().max() > 1e-3  # a real score, not zeros


def test_the_score_is_the_log_ratio_at_the_masked_centre_one_pass_per_site(tmp_path):
    model, tok = tiny_mlm(tmp_path, rc=False)
    win = CHR[100:121]
    ref = win[10]
    alts = [b for b in "ACGT" if b != ref]
    calls = []
    model.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    got = masked_llr(model, tok, [(win, ref, a) for a in alts], "cpu", rc_equivariant=False)
    assert calls == [1, 1]  # one site: one window per strand, whatever the number of ALTs
    ids = tok.encode(win)
    ids[10] = tok.mask_id
    comp = tok.complement_map
    with torch.no_grad():
        fwd = model(ids[None]).logits[0, 10].log_softmax(-1)
        rc_ids = torch.tensor(comp)[ids].flip(0)
        rev = model(rc_ids[None]).logits[0, 10].log_softmax(-1)  # 21 - 1 - 10 = 10
    A = {b: tok.encode(b)[0] for b in "ACGT"}
    C = {b: comp[A[b]] for b in "ACGT"}
    want = [0.5 * (fwd[A[a]] - fwd[A[ref]] + rev[C[a]] - rev[C[ref]]) for a in alts]
    torch.testing.assert_close(got, torch.stack(want), rtol=1e-5, atol=1e-6)


def test_score_variants_on_a_masked_lm_writes_snvs_and_flags_indels(tmp_path):
    model, tok = tiny_mlm(tmp_path / "m", rc=True)
    fa = write(tmp_path / "ref.fa", f">chr1\n{CHR}\n")
    other = {"A": "C", "C": "G", "G": "T", "T": "A"}
    rows = [("chr1", 3, "edge", CHR[2], other[CHR[2]]),
            ("chr1", 300, "multi", CHR[299], f"{other[CHR[299]]},{other[other[CHR[299]]]}"),
            ("chr1", 400, "mixed", CHR[399], f"{other[CHR[399]]},{CHR[399]}AC"),
            ("chr1", 500, "del", CHR[499:502], CHR[499])]
    vcf = write(tmp_path / "in.vcf", "##fileformat=VCFv4.2\n##contig=<ID=chr1,length=600>\n"
                "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
                + "".join(f"{c}\t{p}\t{i}\t{r}\t{a}\t.\tPASS\t.\n" for c, p, i, r, a in rows))
    out = tmp_path / "out.vcf"
    rc, so, se = seqmamba("dna", "score-variants", "--model", tmp_path / "m", "--fasta", fa,
                          "--vcf", vcf, "--out", out, "--window", 32)
    assert rc == 0, se
    assert "##seqmamba_scoring=masked-site-llr" in out.read_text()
    recs = {r.id: r for r in pysam.VariantFile(str(out))}
    fasta = FastaFile(fa)
    for rid, pos0 in (("edge", 2), ("multi", 299)):
        alts = recs[rid].alts
        want = masked_llr(model, tok, [(masked_window(fasta, "chr1", pos0, 32), CHR[pos0], a)
                                       for a in alts], "cpu", True)
        np.testing.assert_allclose(recs[rid].info["SM_LLR"], want.numpy(), atol=2e-5)
        assert list(recs[rid].filter) == ["PASS"]
    assert recs["mixed"].info["SM_LLR"][0] is not None and recs["mixed"].info["SM_LLR"][1] is None
    assert "SM_NOT_SNV" in recs["mixed"].filter and "SM_NOT_SNV" in recs["del"].filter
    assert "SM_LLR" not in recs["del"].info


def test_caduceus_vocabulary_from_the_family_and_gpn_from_tokenizer_json(tmp_path):
    d, _ = caduceus_dir(tmp_path, rcps=True, fused=True)
    tok = tokenizer_of(d)
    assert tok.encode("acgtnR").tolist() == [7, 8, 9, 10, 11, 11]  # upper-cased; IUPAC -> N
    assert tok.mask_id == 3 and tok.suffix == [1]  # [SEP] appended
    assert tok.complement_map[7:12] == [10, 9, 8, 7, 11]
    (tmp_path / "gpn").mkdir()
    vocab = {t: i for i, t in enumerate(GPN_TOKENS)}
    (tmp_path / "gpn" / "config.json").write_text(json.dumps({"model_type": "caduceus",
                                                              "vocab_size": 8}))
    (tmp_path / "gpn" / "tokenizer.json").write_text(json.dumps(
        {"model": {"type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]"}}))
    gpn = tokenizer_of(tmp_path / "gpn")
    assert gpn.encode("ACgtN").tolist() == [3, 4, 5, 6, 2]  # lower-case vocabulary, N -> [UNK]
    assert gpn.mask_id == 1 and gpn.suffix == [] and gpn.acgt_ids == [3, 4, 5, 6]
    assert gpn.complement_map[3:7] == [6, 5, 4, 3]


def test_an_imported_caduceus_scores_through_the_command(tmp_path):
    d, _ = caduceus_dir(tmp_path, rcps=True, fused=True)
    fa = write(tmp_path / "ref.fa", f">chr1\n{CHR}\n")
    vcf = write(tmp_path / "in.vcf", "##fileformat=VCFv4.2\n##contig=<ID=chr1,length=600>\n"
                "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
                f"chr1\t200\tsnv\t{CHR[199]}\t{'A' if CHR[199] != 'A' else 'C'}\t.\tPASS\t.\n")
    out = tmp_path / "out.vcf"
    rc, so, se = seqmamba("dna", "score-variants", "--model", d, "--fasta", fa, "--vcf", vcf,
                          "--out", out, "--window", 16)
    assert rc == 0, se
    rec = next(iter(pysam.VariantFile(str(out))))
    assert rec.info["SM_LLR"][0] is not None and abs(rec.info["SM_LLR"][0]) > 0


def test_embeddings_of_an_imported_ps_model_are_strand_invariant(tmp_path):
    """--embed on an RC-equivariant masked LM: the mean of the two strands' halves, so a
    sequence and its reverse complement get the same record embedding."""
    d, _ = caduceus_dir(tmp_path, rcps=True, fused=True, d_model=8)
    seq = CHR[:300]
    rc = seq[::-1].translate(str.maketrans("ACGT", "TGCA"))
    fa = write(tmp_path / "two.fa", f">fwd\n{seq}\n>rev\n{rc}\n")
    out, emb = tmp_path / "p.tsv", tmp_path / "e.npz"
    code, so, se = seqmamba("dna", "predict", "--model", d, "--out", out, "--embed", emb, fa)
    assert code == 0, se
    z = np.load(emb)
    assert z["embeddings"].shape == (2, 8)  # one Caduceus half: d_model 8
    np.testing.assert_allclose(z["embeddings"][0], z["embeddings"][1], rtol=1e-4, atol=1e-5)
    code, so, se = seqmamba("dna", "predict", "--model", d, "--out", tmp_path / "q.tsv", fa)
    assert code == 2 and "--embed" in se and "Traceback" not in se


def test_finetune_starts_from_an_imported_caduceus(tmp_path):
    d, state = caduceus_dir(tmp_path, rcps=True, fused=True, d_model=8)
    rows = ["id\tlabel\tsequence"] + [f"s{i}\t{'ab'[i % 2]}\t{CHR[i * 13:i * 13 + 40]}"
                                      for i in range(24)]
    train = write(tmp_path / "train.tsv", "\n".join(rows) + "\n")
    code, so, se = seqmamba("dna", "finetune", "--init", d, "--train", train, "--max-steps", 2,
                            "--val-every", 2, "--batch-size", 4, "--baseline", "none",
                            "--lr", 1e-9, "--out", tmp_path / "ft")
    assert code == 0, se
    cfg = json.loads((tmp_path / "ft" / "final" / "config.json").read_text())
    assert cfg["rc_swap_halves"] and cfg["d_model"] == 16 and cfg["vocab_size"] == 12
    assert cfg["extra"]["tokenizer"]["tokens"][7:] == list("ACGTN")
    from safetensors.torch import load_file
    got = load_file(str(tmp_path / "ft" / "final" / "model.safetensors"))
    want = state["caduceus.backbone.layers.1.mixer.submodule.mamba_rev.x_proj.weight"]
    torch.testing.assert_close(got["backbone.layers.1.mixer.module.rev.x_proj.weight"], want,
                               rtol=0, atol=1e-6)  # lr 1e-9: the imported weights, unchanged
