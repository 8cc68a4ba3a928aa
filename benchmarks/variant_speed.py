"""Variant scoring throughput on the CPU: ``seqmamba dna score-variants`` on random SNVs of
the E. coli genome with a small untrained language model (the speed does not depend on the
weights), for a few window sizes.

    python benchmarks/variant_speed.py

Writes ``benchmarks/results/variant_speed.csv``: window, variants, seconds (the command's
wall time without process start-up), variants per second, threads.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pipelines.dna.fasta import FastaFile  # noqa: E402
from pipelines.dna.tokenizer import DNATokenizer  # noqa: E402
from pipelines.dna.variants import run as score_variants  # noqa: E402
from seqmamba import MambaConfig, MambaLMHeadModel  # noqa: E402
from seqmamba.atomic import write_csv_atomic  # noqa: E402

GENOME = ROOT / "data" / "genomes" / "Ecoli_K12_MG1655.fa.gz"


def main() -> int:
    tmp = Path(tempfile.mkdtemp())
    tok = DNATokenizer()
    torch.manual_seed(0)
    cfg = MambaConfig(d_model=64, n_layer=2, vocab_size=tok.vocab_size, pad_token_id=tok.pad_id,
                      extra={"task": "dna-lm", "tokenizer": tok.to_dict()})
    MambaLMHeadModel(cfg).save_pretrained(tmp / "lm" / "final")
    fa = FastaFile(GENOME)
    chrom, n = fa.records[0].name, fa.records[0].length
    rng = np.random.default_rng(0)
    pos = np.sort(rng.choice(np.arange(5000, n - 5000), 4000, replace=False))
    other = {"A": "C", "C": "G", "G": "T", "T": "A"}
    lines = ["##fileformat=VCFv4.2", f"##contig=<ID={chrom},length={n}>",
             "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"]
    for p in pos:
        ref = fa.fetch(chrom, int(p) - 1, int(p)).upper()
        if ref in other:
            lines.append(f"{chrom}\t{p}\t.\t{ref}\t{other[ref]}\t.\t.\t.")
    (tmp / "v.vcf").write_text("\n".join(lines) + "\n")
    rows = []
    for window in (64, 128, 512):
        t0 = time.perf_counter()
        score_variants(["--model", str(tmp / "lm"), "--fasta", str(GENOME), "--vcf",
                        str(tmp / "v.vcf"), "--out", str(tmp / f"o{window}.vcf"), "--window",
                        str(window), "--batch-size", "256"])
        s = time.perf_counter() - t0
        rows.append({"window": window, "variants": len(lines) - 3, "seconds": round(s, 2),
                     "variants_per_s": round((len(lines) - 3) / s), "d_model": 64, "n_layer": 2,
                     "threads": torch.get_num_threads()})
        print(rows[-1], flush=True)
    write_csv_atomic(rows, HERE / "results" / "variant_speed.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
