"""`seqmamba dna score-variants`: LLRs and class deltas written into a VCF, checked against
the model run directly on the windows; REF mismatches flagged, never scored; bad VCFs one line."""

from __future__ import annotations

import gzip

import numpy as np
import pysam
import pytest
import torch

from dna_helpers import seqmamba, tiny_classifier, tiny_lm, write
from pipelines.dna.tokenizer import DNATokenizer
from seqmamba import MambaLMHeadModel

RNG = np.random.default_rng(3)
CHR = "".join(RNG.choice(list("ACGT"), 3000))
W = 64


def vcf_text(rows, contigs=(("chr1", 3000),)):
    head = ["##fileformat=VCFv4.2"] + [f"##contig=<ID={c},length={n}>" for c, n in contigs]
    head.append("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO")
    return "\n".join(head + ["\t".join(map(str, r)) for r in rows]) + "\n"


@pytest.fixture
def data(tmp_path):
    fa = write(tmp_path / "ref.fa", f">chr1\n{CHR}\n")
    other = {"A": "C", "C": "G", "G": "T", "T": "A"}
    rows = [("chr1", 500, "v1", CHR[499], other[CHR[499]], ".", "PASS", "."),
            ("chr1", 1200, "v2", CHR[1199], f"{other[CHR[1199]]},{other[other[CHR[1199]]]}",
             ".", "PASS", "."),  # multi-allelic: one value per ALT
            ("chr1", 1500, "bad", other[CHR[1499]], CHR[1499], ".", "PASS", "."),  # REF wrong
            ("chr1", 2000, "del", CHR[1999:2002], CHR[1999], ".", "PASS", "."),  # a deletion
            ("chr1", 5, "edge", CHR[4], other[CHR[4]], ".", "PASS", ".")]  # too near the start
    vcf = write(tmp_path / "in.vcf", vcf_text(rows))
    return tmp_path, fa, vcf


def expected_llr(model, ref_w, alt_w):
    tok = DNATokenizer()
    out = []
    for w in (alt_w, ref_w):
        ids = tok.encode(w)[None]
        with torch.no_grad():
            lp = model(ids).logits.float()[:, :-1].log_softmax(-1)
        out.append(float(lp.gather(-1, ids[:, 1:, None]).sum()))
    return out[0] - out[1]


def test_lm_llrs_per_allele_mismatch_flagged(data):
    tmp, fa, vcf = data
    lm = tiny_lm(tmp / "lm")
    out = tmp / "scored.vcf.gz"
    rc, stdout, err = seqmamba("dna", "score-variants", "--model", lm, "--fasta", fa, "--vcf", vcf,
                               "--out", out, "--window", W, "--batch-size", 3)
    assert rc == 0, err
    assert "1 REF mismatches" in stdout and "chr1:1500 REF" in err
    model = MambaLMHeadModel.from_pretrained(lm / "final").eval()
    recs = {r.id: r for r in pysam.VariantFile(str(out))}
    assert list(recs) == ["v1", "v2", "bad", "del", "edge"]  # every record kept, in order
    for rid in ("v1", "v2"):
        r = recs[rid]
        p0 = r.pos - 1
        ref_w = CHR[p0 - W // 2:p0 - W // 2 + W]
        for k, alt in enumerate(r.alts):
            alt_w = ref_w[:W // 2] + alt + ref_w[W // 2 + 1:]
            assert abs(r.info["SM_LLR"][k] - expected_llr(model, ref_w, alt_w)) < 1e-3
    assert len(recs["v2"].info["SM_LLR"]) == 2
    assert "SM_REF_MISMATCH" in recs["bad"].filter and "SM_LLR" not in recs["bad"].info
    d = recs["del"]  # a deletion: the alt window is the left flank, the ALT, then what follows
    p0 = d.pos - 1
    ref_w = CHR[p0 - W // 2:p0 - W // 2 + W]
    alt_w = ref_w[:W // 2] + CHR[p0] + CHR[p0 + 3:p0 + 3 + W - W // 2 - 1]
    assert abs(d.info["SM_LLR"][0] - expected_llr(model, ref_w, alt_w)) < 1e-3
    assert "SM_LLR" not in recs["edge"].info  # no full window: left unscored, not invented
    assert "SM_LLR" in str(pysam.VariantFile(str(out)).header)


def test_classifier_deltas(data):
    tmp, fa, vcf = data
    clf = tiny_classifier(tmp / "clf", labels=("neg", "pos"))
    out = tmp / "scored.vcf"
    rc, _, err = seqmamba("dna", "score-variants", "--model", clf, "--fasta", fa, "--vcf", vcf,
                          "--out", out, "--window", W)
    assert rc == 0, err
    r = next(x for x in pysam.VariantFile(str(out)) if x.id == "v1")
    dneg, dpos = r.info["SM_D_neg"][0], r.info["SM_D_pos"][0]
    assert abs(dneg + dpos) < 1e-5  # two classes: the changes cancel


@pytest.mark.parametrize("case, needle", [
    ("contig", "are not in"), ("not_vcf", "cannot read as VCF"), ("gzip", "bgzip"),
    ("bgzip", None)])
def test_bad_and_compressed_vcfs(data, case, needle):
    tmp, fa, vcf = data
    lm = tiny_lm(tmp / "lm")
    if case == "contig":
        vcf = write(tmp / "c.vcf", vcf_text([("chrX", 10, ".", "A", "C", ".", ".", ".")],
                                            contigs=(("chrX", 100),)))
    elif case == "not_vcf":
        vcf = write(tmp / "n.vcf", "this is not a VCF\n")
    elif case == "gzip":  # plain gzip cannot be indexed: refused with the fix
        gz = tmp / "in.vcf.gz"
        gz.write_bytes(gzip.compress(vcf.read_bytes()))
        vcf = gz
    else:  # bgzip is read
        bgz = tmp / "in.bgz.vcf.gz"
        pysam.tabix_compress(str(vcf), str(bgz))
        vcf = bgz
    out = tmp / "o.vcf"
    rc, _, err = seqmamba("dna", "score-variants", "--model", lm, "--fasta", fa, "--vcf", vcf,
                          "--out", out, "--window", W)
    if needle is None:
        assert rc == 0, err
        assert len(list(pysam.VariantFile(str(out)))) == 5
    else:
        assert rc == 2 and needle in err and "Traceback" not in err and not out.exists()
