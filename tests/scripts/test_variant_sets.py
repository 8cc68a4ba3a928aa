"""The zero-shot variant sets have the answer they claim: applied to their gene, every
nonsense SNV makes a stop codon and every synonymous one keeps the amino acid; the shipped
sets' REF alleles are the genome's."""

import sys
from pathlib import Path

import pysam

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "experiments"))

import mtb_variant_sets as S  # noqa: E402


def test_candidates_change_the_protein_as_labelled():
    fa = S.FastaFile(S.GENOME)
    chrom = fa.records[0].name
    genes = {start: (end, strand, cds) for start, end, strand, cds in S.genes(fa, chrom, 60)}
    cand = S.candidates(fa, chrom, margin=0, limit=60)
    assert len(cand["nonsense"]) > 100 and len(cand["synonymous"]) > 1000
    for kind, rows in cand.items():
        for pos, ref, alt, gstart in rows[::37]:
            end, strand, cds = genes[gstart]
            assert fa.fetch(chrom, pos - 1, pos).upper() == ref
            off = pos - 1 - gstart if strand == "+" else end - pos
            base = alt if strand == "+" else alt.translate(S.COMP)
            mutated = cds[:off] + base + cds[off + 1:]
            k = off - off % 3
            before, after = S.CODE[cds[k:k + 3]], S.CODE[mutated[k:k + 3]]
            assert before != "*"
            assert (after == "*") if kind == "nonsense" else (after == before)


def test_shipped_sets_match_the_genome():
    fa = S.FastaFile(S.GENOME)
    for kind in ("synonymous", "nonsense"):
        recs = list(pysam.VariantFile(str(ROOT / "data" / "variants" / f"mtb_{kind}.vcf")))
        assert len(recs) == 500
        assert all(fa.fetch(r.chrom, r.pos - 1, r.pos).upper() == r.ref for r in recs)
